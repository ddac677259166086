"""learnlab: a laboratory for the science of how neural networks learn."""

import os

# Idle OpenMP threads sleep instead of spinning. learnlab's ops are tiny and its native kernel runs on
# its own threads: spinning workers would take cores from those threads, and from the other processes
# of a sweep. Set before torch loads its OpenMP runtime; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from learnlab.api import execute, list_studies, report, resolve, resume, run, write_run  # noqa: E402
from learnlab.errors import LearnlabError  # noqa: E402

__all__ = ["LearnlabError", "execute", "list_studies", "report", "resolve", "resume", "run", "write_run"]
__version__ = "0.1.0"
