"""Statistics over seeds, the comparison with published numbers, figures and the Markdown/HTML report."""

import importlib
import threading

_HEAVY = ("scipy.stats", "learnlab.reporting.figures")  # ~0.7 s of imports that only the report needs


def warm_up() -> threading.Thread:
    """Import what the statistics and figures need in a background thread while a protocol runs: its
    main thread mostly waits on native kernels or PyTorch then, so the imports cost the run little wall
    time instead of adding to its end. Importing is thread-safe; a report that comes first just waits."""
    thread = threading.Thread(target=lambda: [importlib.import_module(m) for m in _HEAVY], daemon=True)
    thread.start()
    return thread
