"""learnlab: a laboratory for the science of how neural networks learn."""

from learnlab.api import execute, list_studies, report, resolve, resume, run, write_run
from learnlab.errors import LearnlabError

__all__ = ["LearnlabError", "execute", "list_studies", "report", "resolve", "resume", "run", "write_run"]
__version__ = "0.1.0"
