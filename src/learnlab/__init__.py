"""learnlab: a laboratory for the science of how neural networks learn.

The names below come from `learnlab.api`, loaded on first use: importing a low layer
(`learnlab.models.transformer`, `learnlab.engine`) runs this file first, and must not load the API and
with it every study.
"""

import gc
import importlib
import os
from types import ModuleType
from typing import Any

from learnlab.errors import LearnlabError

# Idle OpenMP threads sleep instead of spinning. learnlab's ops are tiny and its native kernel runs on
# its own threads: spinning workers would take cores from those threads, and from the other processes
# of a sweep. Set before torch loads its OpenMP runtime; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = [
    "LearnlabError",
    "execute",
    "export",
    "list_studies",
    "load_run",
    "report",
    "register_study",
    "reproduce",
    "resolve",
    "resume",
    "run",
    "runs",
    "show",
    "write_run",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """An API name (or the `api` module itself, as `from learnlab import api` asks for it), loading the API."""
    if name == "reproduce":  # above the API: it runs studies through it
        _load_api()
        return importlib.import_module("learnlab.sweeps.reproduce").reproduce
    if name == "api" or name in __all__:
        api = _load_api()
        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'learnlab' has no attribute {name!r}")


def _load_api() -> ModuleType:
    """Importing torch, pandas, the studies and the rest creates about a million objects that live as long
    as the process; the garbage collector would walk them again and again (0.2 s of start-up, more during a
    run). They are collected never, so the collector is off while they are made and then leaves them out
    (gc.freeze)."""
    gc.disable()
    try:
        return importlib.import_module("learnlab.api")
    finally:
        gc.freeze()
        gc.enable()
