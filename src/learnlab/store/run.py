"""A finished run directory opened in Python (`learnlab.load_run`), and the export of one of its members
(`learnlab.export`, `learnlab export`).

    run = learnlab.load_run("runs/knowledge-acquisition-smoke")
    run.summary, run.metrics, run.config    # summary.json, metrics.parquet as a DataFrame, the config
    kept = run.models["train"]              # the trained ensemble, rebuilt with its final weights
    model = kept.member(1)                  # member 1 alone (a K=1 ensemble, the same hook names)

A damaged or missing file is a LearnlabError naming it. A run made before learnlab kept models (or with
--save-models none) loads with `models` empty.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from learnlab.config import StudyConfig, config_from_yaml
from learnlab.errors import LearnlabError
from learnlab.store.models import KeptEnsemble, read_run_models
from learnlab.store.rundir import read_metrics, read_summary
from learnlab.studies import STUDIES
from learnlab.studies.base import COLUMNS

EXPORTS = ("hf", "transformer-lens")


@dataclass
class Run:
    """A run directory's contents: `summary` (summary.json), `metrics` (metrics.parquet), `config` (the
    study's config object; a plain dict where today's config no longer accepts it) and `models` (name ->
    `KeptEnsemble`, rebuilt with its final weights; empty for a run that kept none)."""

    path: Path
    summary: dict[str, Any]
    metrics: pd.DataFrame
    config: StudyConfig | dict[str, Any]
    models: dict[str, KeptEnsemble] = field(default_factory=dict)

    @property
    def model(self) -> KeptEnsemble:
        """The run's only kept ensemble (a LearnlabError naming them where there are several or none)."""
        if len(self.models) != 1:
            raise LearnlabError(f"{str(self.path)!r} keeps {_listing(self.models)}: pick one of run.models[...]")
        return next(iter(self.models.values()))


def _listing(models: dict[str, KeptEnsemble]) -> str:
    if not models:
        return "no trained models"
    return f"{len(models)} trained model{'s' if len(models) > 1 else ''} ({', '.join(models)})"


def load_run(run_dir: str | Path) -> Run:
    """Open a finished run directory: its summary, metrics, config and kept models."""
    path = Path(run_dir)
    summary = read_summary(path)
    metrics = read_metrics(path, COLUMNS)
    return Run(path, summary, metrics, _config(path, summary), read_run_models(path))


def _config(path: Path, summary: dict[str, Any]) -> StudyConfig | dict[str, Any]:
    file = path / "config.yaml"
    values = config_from_yaml(file) if file.is_file() else dict(summary["config"])
    spec = STUDIES.get(summary["study"])
    if spec is None:
        return values
    try:
        return spec.config.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        warnings.warn(
            f"{str(file)!r}: today's {spec.name} config does not take it ({where}: {first['msg']}); run.config "
            "is the plain dict",
            stacklevel=3,
        )
        return values


# --- export ---------------------------------------------------------------------------------------------------


def export(run: str | Path | Run, *, member: int, to: str, out: str | Path, model: str | None = None) -> Path:
    """Export member `member` of a run's kept transformer (`model`: its name, needed where the run keeps
    several) to `out`, a directory that must not exist: `to="hf"`, a Hugging Face GPT-2 checkpoint and
    tokenizer (`transformers.GPT2LMHeadModel.from_pretrained(out)`); `to="transformer-lens"`, what
    `learnlab.interop.load_transformer_lens(out)` rebuilds as a HookedTransformer. See learnlab.interop."""
    if to not in EXPORTS:
        raise LearnlabError(f"--to {to!r}: expected one of {', '.join(EXPORTS)}")
    target = Path(out)
    if target.exists():
        raise LearnlabError(f"output {str(target)!r} already exists; choose another OUT")
    if not target.parent.is_dir():
        raise LearnlabError(f"output {str(target)!r}: its parent directory does not exist")
    loaded = run if isinstance(run, Run) else load_run(run)
    kept = _exported(loaded, model)
    n = len(kept.members)
    if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member < n:
        members = ", ".join(f"{k}: {arm} seed {seed}" for k, (arm, seed) in enumerate(kept.members))
        raise LearnlabError(f"--member {member!r}: model {kept.name!r} has members 0..{n - 1} ({members})")
    from learnlab import interop  # transformers / transformer-lens load only here

    with _no_progress_bars():
        if to == "hf":
            interop.to_hf(kept.model, member, kept.tokenizer, target)
        else:
            interop.to_transformer_lens(kept.model, member, kept.tokenizer, target)
    return target


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' own progress bars ('Writing model shards') off while exporting: a few files, at once."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # interop says what to install
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _exported(run: Run, name: str | None) -> KeptEnsemble:
    """The kept transformer to export: `name`, or the run's only transformer."""
    from learnlab.models.transformer import EnsembleTransformer

    where = str(run.path)
    if not run.models:
        raise LearnlabError(
            f"{where!r} keeps no trained models (made before learnlab kept them, with --save-models none, or "
            "over the default's size limit: see summary.json's 'models')"
        )
    if name is not None:
        if name not in run.models:
            raise LearnlabError(f"--model {name!r}: {where!r} keeps {_listing(run.models)}")
        kept = run.models[name]
        if not isinstance(kept.model, EnsembleTransformer):
            raise LearnlabError(
                f"--model {name!r} is an {type(kept.model).__name__}, not a transformer (EnsembleTransformer): "
                "only transformers export"
            )
        return kept
    transformers = [k for k in run.models.values() if isinstance(k.model, EnsembleTransformer)]
    if not transformers:
        kinds = ", ".join(f"{n} ({type(k.model).__name__})" for n, k in run.models.items())
        raise LearnlabError(f"{where!r} keeps no transformer ({kinds}): only transformers export")
    if len(transformers) > 1:
        names = ", ".join(k.name for k in transformers)
        raise LearnlabError(f"{where!r} keeps several transformers ({names}): name one with --model")
    return transformers[0]
