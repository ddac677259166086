"""The import layers, read from the source (ast): studies stand on protocols and never import each other,
and no module imports a module of a higher layer.

Every import counts, at module level or inside a function (a lazy import dodges a cycle at import time,
not the dependency). Layers, low to high:

    tasks, native             data generators; the C kernels
    models                    ensemble architectures
    engine, interventions,    the training loop and its random streams; weight perturbations; metric
      metrics, calibration,   formulas and calibration; live tracking sinks the loop streams to; statistics,
      tracking, reporting     figures and the report (studies judge claims with them)
    protocols                 how a family of studies trains and measures
    studies                   one method section each
    store                     run directories
    api                       the Python API
    sweeps                    grid sweeps over the API
    cli, the package itself   the command line, and the package's public facade over the API
    __main__                  `python -m learnlab`

(`resources`, the memory estimate checked before a run, and `interop`, exports of trained models to other
libraries, sit with `store`.)

`config`, `errors`, `progress`, `cache` and `engine.rng` (the per-seed random streams that data
generators draw from) are base utilities: anyone may import them, and they import only each other.
The engine holds what every protocol runs on: the training loop, the run context (progress bars, work
directory), deterministic kernels, and the jobs of grid studies with their Ray plumbing (`engine.jobs`).

And importing a low layer does not import a high one: the package's facade loads the API on first use.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import learnlab

ROOT = Path(learnlab.__file__).parent
BASE = ("learnlab.config", "learnlab.errors", "learnlab.progress", "learnlab.cache", "learnlab.engine.rng")
LAYERS = {  # module prefix: layer (the longest matching prefix wins)
    "learnlab.tasks": 0,
    "learnlab.native": 0,
    "learnlab.models": 1,
    "learnlab.engine": 2,
    "learnlab.interventions": 2,
    "learnlab.metrics": 2,
    "learnlab.calibration": 2,  # calibration error and temperature scaling: metric formulas
    "learnlab.tracking": 2,  # live sinks (MLflow, TensorBoard, W&B) that the training loop streams to
    "learnlab.reporting": 2,
    "learnlab.protocols": 3,
    "learnlab.studies": 4,
    "learnlab.store": 5,
    "learnlab.store.models": 2,  # the models/ folder of a run: studies that load trained models read it
    "learnlab.store.rundir": 2,  # a run directory's files, read and written (imports only errors)
    "learnlab.resources": 5,  # memory estimates of a resolved config, checked before a run writes anything
    "learnlab.interop": 5,  # a trained model as a Hugging Face or TransformerLens one (the API exports with it)
    "learnlab.api": 6,
    "learnlab.sweeps": 7,
    "learnlab.cli": 8,
    "learnlab.__main__": 9,
}
TOP = 8  # the package's __init__: the public facade over the API, beside the CLI (which reads its version)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The learnlab modules `name` imports: `from pkg import mod` counts as mod where mod is a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in out if m == "learnlab" or m.startswith("learnlab.")}


def layer(name: str) -> int | None:
    """The layer of a module; None for a base utility (KeyError: a module no layer names)."""
    if name in BASE:
        return None
    if name == "learnlab":
        return TOP
    prefix = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len, default=None)
    if prefix is None:
        raise KeyError(name)
    return LAYERS[prefix]


def is_study(name: str) -> bool:
    """A study module (not the registry, not base.py, which says what a study is)."""
    return name.startswith("learnlab.studies.") and name != "learnlab.studies.base"


EDGES = {(a, b) for a in MODULES for b in imports(a) if b != a}


def test_the_parser_sees_the_imports_it_should():
    # `from pkg import module` is the module; `from module import name` is the module; relative imports resolve
    assert "learnlab.protocols.biography_lm" in imports("learnlab.studies.knowledge_acquisition")
    assert "learnlab.studies.attention_patching" in imports("learnlab.studies")
    assert "learnlab.engine.train" in imports("learnlab.protocols.biography_lm")
    assert ("learnlab.sweeps.grid", "learnlab.api") in EDGES  # `from learnlab import api`: the module
    assert ("learnlab.cli", "learnlab.sweeps") in EDGES  # an import inside a function counts
    assert (
        layer("learnlab.studies.plateau_scaling")
        > layer("learnlab.protocols.biography_lm")
        > layer("learnlab.models.transformer")
    )
    assert layer("learnlab.config") is None and layer("learnlab") == TOP


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if m not in BASE and m != "learnlab" and not _placed(m))
    assert not unplaced, f"place these modules in LAYERS (or BASE): {unplaced}"


def _placed(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in LAYERS)


def test_no_study_imports_another_study():
    bad = sorted((a, b) for a, b in EDGES if is_study(a) and (is_study(b) or b == "learnlab.studies"))
    assert not bad, "a study imports a study (move what they share into learnlab.protocols): " + str(bad)


def test_base_utilities_import_only_base_utilities():
    bad = sorted((a, b) for a, b in EDGES if a in BASE and b not in BASE)
    assert not bad


def test_no_import_goes_up_a_layer():
    upward = sorted((a, b) for a, b in EDGES if a not in BASE and layer(b) is not None and layer(b) > layer(a))
    assert not upward, "imports from a lower layer to a higher one: " + str(upward)


@pytest.mark.parametrize(
    "module", ["learnlab.models.transformer", "learnlab.engine.jobs", "learnlab.protocols.biography_lm"]
)
def test_importing_a_low_layer_imports_no_study(module):
    """Importing a module loads the package's __init__ first: it must not pull in the API and every study."""
    code = f"import {module}, sys; print(len([m for m in sys.modules if m.startswith('learnlab.studies')]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0", out.stderr


def test_the_facade_still_offers_the_api():
    code = "import learnlab, sys; assert 'learnlab.api' not in sys.modules; print(learnlab.run.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "learnlab.api", out.stderr
