"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class LearnlabError(Exception):
    """A problem with the user's input (unknown study, bad config value, ...), not a bug."""


class Interrupted(LearnlabError):
    """A run stopped by the user after a checkpoint was saved: it can be resumed."""
