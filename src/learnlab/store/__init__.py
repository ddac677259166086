"""The run store: one directory per run, written atomically, and the listing of past runs."""
