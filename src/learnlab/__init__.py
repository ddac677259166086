"""learnlab: a laboratory for the science of how neural networks learn."""

import gc
import os

# Idle OpenMP threads sleep instead of spinning. learnlab's ops are tiny and its native kernel runs on
# its own threads: spinning workers would take cores from those threads, and from the other processes
# of a sweep. Set before torch loads its OpenMP runtime; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Importing torch, pandas and the rest creates about a million objects that live as long as the process;
# the garbage collector would walk them again and again (0.2 s of start-up, more during a run). They are
# collected never, so the collector is off while they are made and then leaves them out (gc.freeze).
gc.disable()
try:
    from learnlab.api import execute, list_studies, report, resolve, resume, run, runs, show, write_run
    from learnlab.errors import LearnlabError
finally:
    gc.freeze()
    gc.enable()

__all__ = [
    "LearnlabError",
    "execute",
    "list_studies",
    "report",
    "resolve",
    "resume",
    "run",
    "runs",
    "show",
    "write_run",
]
__version__ = "0.1.0"
