"""The Python API; the CLI is a thin layer over these functions.

    import learnlab
    summary = learnlab.run("hard-negatives", seeds=20)

`execute` runs a study and returns its result in memory (no I/O: sweeps ship it back from Ray workers);
`write_run` turns a result into a run directory atomically; `run` does both. `load_run` opens a finished
run directory (its models rebuilt) and `export` exports a member of its transformer (learnlab.store.run).

A run or a resume holds its directory's lock for its whole life, and running out of memory or disk is a
one-line LearnlabError. What a failed run keeps: a resume never removes what it started from, and a
fresh run removes its hidden work directory only when it never saved a checkpoint.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
import typing
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import ValidationError

import learnlab.reporting as reporting_modules
from learnlab import tracking
from learnlab.config import (
    StudyConfig,
    build_config,
    config_from_yaml,
    config_to_yaml,
    parse_overrides,
    validation_message,
)
from learnlab.engine.context import RunContext
from learnlab.engine.determinism import deterministic
from learnlab.engine.jobs import connect_ray
from learnlab.errors import Interrupted, LearnlabError
from learnlab.progress import progress_bar
from learnlab.reporting import report as reporting
from learnlab.reporting.stats import compare, table_from_metrics
from learnlab.resources import check_memory
from learnlab.store.models import KeptModels, ModelKeeper, check_options
from learnlab.store.provenance import provenance, versions
from learnlab.store.run import Run, export, load_run  # noqa: F401 - re-exported
from learnlab.store.rundir import (
    DEFAULT_ROOT,
    atomic_dir,
    check_free,
    default_run_dir,
    find_runs,
    locked,
    partial_dir,
    read_metrics,
    read_summary,
    write_json,
)
from learnlab.studies import STUDIES, get_study, register_entry_points, register_study  # noqa: F401 - re-exported
from learnlab.studies.base import COLUMNS, Study


@dataclass
class RunResult:
    summary: dict[str, Any]
    metrics: pd.DataFrame
    config: StudyConfig
    models: KeptModels = field(default_factory=KeptModels)  # the trained models kept (`.ensembles()`)


def list_studies() -> list[Study]:
    return list(STUDIES.values())


# what a key means where its study's config does not say (the field's own description wins)
GLOSSARY = {
    "device": "cpu, cuda or cuda:N",
    "seeds": "number of independent repetitions per arm",
    "steps": "training steps",
    "lr": "Adam learning rate",
    "transformer_lr": "Adam learning rate of the transformer arms",
    "weight_decay": "weight decay",
    "beta2": "Adam's second-moment decay",
    "batch_size": "training examples per step and model",
    "vocab_size": "tokens in the vocabulary",
    "embed_dim": "token embedding width",
    "hidden_size": "hidden units (the LSTM's state, each MLP layer)",
    "min_len": "shortest training sequence",
    "max_len": "longest training sequence",
    "d_model": "transformer width",
    "n_layers": "transformer layers",
    "n_heads": "attention heads per layer",
    "d_mlp": "width of the transformer's MLPs",
    "eval_every": "steps between evaluations",
    "eval_individuals": "individuals scored at each evaluation",
    "n_individuals": "individuals trained on (N)",
    "world_seed": "seed of the generated world of individuals",
    "n_universities": "universities in the world",
    "n_majors": "majors in the world",
    "n_companies": "companies in the world",
    "celebrity_weight": "how many times as often a celebrity is drawn",
    "schedule_steps": "the cosine schedule's length (0: steps)",
    "stop_after_plateau": "stop once every seed's plateau has ended",
    "logit_scale": "standard deviation of the random logits in (a)",
    "window": "context words on each side of a skip-gram center",
    "probe_pairs": "(center, context) pairs of the fixed probe",
    "teacher_steps": "teacher training steps",
    "teacher_batch": "teacher batch size",
    "student_steps": "student training steps",
    "student_batch": "student batch size (noise images)",
    "toy_hidden": "hidden width of the toy memory's MLP",
    "toy_classes": "classes of the toy memory",
    "toy_batch": "toy memory batch size",
    "toy_lr": "toy memory pre-training learning rate",
    "toy_weight_decay": "toy memory weight decay",
    "toy_ft_lr": "toy memory fine-tuning learning rate",
}


def show(study: str) -> dict[str, Any]:
    """What `learnlab show STUDY` prints: the study's arms, its presets (the values each sets) and every
    config key with its type, default, bounds and description."""
    spec = get_study(study)
    keys = [
        {
            "key": name,
            "type": _type_name(field.annotation),
            "default": field.get_default(call_default_factory=True),
            "bounds": _bounds(field),
            "description": field.description or GLOSSARY.get(name, ""),
        }
        for name, field in spec.config.model_fields.items()
        if name not in ("study", "preset")
    ]
    return {
        "name": spec.name,
        "title": spec.title,
        "source": spec.source,
        "arms": list(spec.arms),
        "presets": {name: dict(values) for name, values in spec.presets.items()},
        "keys": keys,
    }


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "items >=", "max_length": "items <="}


def _bounds(field: Any) -> str:
    """The field's constraints in words: '> 0', '>= 1, <= 28', 'items >= 2', 'matches ^(cpu|cuda)$'."""
    parts = []
    for meta in field.metadata:
        for attr, word in _BOUNDS.items():
            if (value := getattr(meta, attr, None)) is not None:
                parts.append(f"{word} {value}")
        if (pattern := getattr(meta, "pattern", None)) is not None:
            parts.append(f"matches {pattern}")
    return ", ".join(parts)


def resolve(
    study: str,
    *,
    preset: str = "laptop",
    seeds: int | None = None,
    arms: list[str] | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    device: str | None = None,
) -> tuple[Study, StudyConfig]:
    """The validated config for a run; raises LearnlabError naming the first bad key or value."""
    spec = get_study(study)
    values = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    if seeds is not None:
        values["seeds"] = seeds
    if arms:
        values["arms"] = list(arms)
    if device is not None:
        values["device"] = device
    cfg = build_config(spec.config, spec.name, spec.presets, preset, values)
    if not cfg.arms:
        cfg.arms = list(spec.arms)  # config.yaml names the arms it ran, even if arms are added later
    check_device(cfg)
    return spec, cfg


def check_device(cfg: StudyConfig) -> None:
    if not cfg.device.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise LearnlabError(f"--device {cfg.device}: CUDA is not available on this machine")
    # deterministic cuBLAS needs a fixed workspace, set before its first use
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def check_resources(spec: Study, cfg: StudyConfig) -> float:
    """The run's estimated peak memory; a LearnlabError naming the keys that make it too big for the
    memory available now (see learnlab.resources). Called before anything is written."""
    try:  # what the preset alone would run: the keys set away from it are the ones to name
        baseline = build_config(spec.config, spec.name, spec.presets, cfg.preset, {"device": cfg.device})
    except LearnlabError:
        baseline = None
    return check_memory(cfg, baseline)


def execute(
    spec: Study,
    cfg: StudyConfig,
    progress: bool = False,
    workdir: Path | None = None,
    checkpoint_every: int = 200,
    *,
    save_models: str | None = None,
    snapshot_every: int = 0,
    tracker: tracking.Tracker | None = None,
) -> RunResult:
    """Run the protocol and compute statistics, comparison and verdicts; writes nothing but checkpoints and
    the kept models (into `workdir`, when given; else the result holds them). `save_models`: none, final or
    all (None: final when under 64 MB, see learnlab.store.models); `snapshot_every`: steps between snapshots.
    `tracker`: where the trainings' evaluations stream as they happen (learnlab.tracking)."""
    started = time.perf_counter()
    keeper = ModelKeeper.open(workdir / "models" if workdir else None, save_models, snapshot_every, checkpoint_every)
    bars: Any = lambda desc, total: progress_bar(desc, total, progress)  # noqa: E731
    if tracker is not None:  # each bar names the trainings run under it
        bars = tracker.progress(bars)
    ctx = RunContext(bars, workdir, checkpoint_every, keeper, tracker)
    reporting_modules.warm_up()
    with deterministic(), tracking.active(tracker):
        metrics = spec.measure(cfg, ctx)
    kept = keeper.result()
    if getattr(cfg, "backend", "local") == "ray" and kept.summary["save_models"] != "none":
        kept.summary["note"] = "the jobs that ran as Ray tasks keep no models (--backend local keeps them)"
    metrics = metrics[COLUMNS].astype({"seed": "int64", "step": "int64", "value": "float64"})
    final = metrics[metrics.split == "test"]
    table = table_from_metrics(final)
    for arm, cells in (spec.derived(metrics, cfg) if spec.derived else {}).items():
        table.setdefault(arm, {}).update(cells)
    reference = {arm: cells for arm, cells in spec.reference.items() if arm in table}
    summary: dict[str, Any] = {
        "study": spec.name,
        "title": spec.title,
        "source": spec.source,
        "preset": cfg.preset,
        "config": cfg.model_dump(mode="json"),
        "seeds": cfg.seed_list,
        "device": cfg.device,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": versions(),
        "provenance": provenance(),
        "models": kept.summary,
        "table": table,
        "reference": reference,
        "comparison": compare(table, reference),
        "claims": [claim.judge(table).as_dict(spec.verdict_words) for claim in spec.claims],
        "method": spec.method,
    }
    summary.update(units(spec))
    for key, value in spec.extras.items():  # a study's own top-level keys never replace the standard ones
        summary.setdefault(key, value)
    summary["notes"] = spec.notes(summary) if spec.notes else []
    return RunResult(summary, metrics.reset_index(drop=True), cfg, kept)


def write_run(result: RunResult, out: Path) -> Path:
    """Write the output contract into `out`, atomically (on any failure, nothing is left at `out`)."""
    with atomic_dir(out) as tmp:
        _write_contents(result, tmp)
    return out


# what torch and the C allocator say when an allocation fails (torch.OutOfMemoryError says it too)
_OOM = re.compile(r"out of memory|can't allocate memory|cannot allocate memory", re.IGNORECASE)
# what torch.save says when the file it writes to a path comes out short (it does not keep the errno)
_SHORT_WRITE = re.compile(r"PytorchStreamWriter failed|unexpected pos \d+ vs \d+|file write failed")


def resource_problem(err: BaseException) -> str | None:
    """`err` in words when it is the machine running out of memory or disk, else None."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" while writing {str(err.filename)!r}" if err.filename else ""
        return f"out of disk space{where} ({os.strerror(err.errno)})"
    if isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and _OOM.search(str(err))):
        return "out of memory: lower batch_size, hidden_size, eval_size or --seeds"
    if isinstance(err, RuntimeError) and (short := _SHORT_WRITE.search(str(err))):
        return f"torch could not write a file ({short.group(0)}): is the disk full?"
    return None


@contextmanager
def out_of_resources(kept: str) -> Iterator[None]:
    """Running out of memory or disk in the block is a one-line LearnlabError that ends with `kept`."""
    try:
        yield
    except Exception as err:
        if (problem := resource_problem(err)) is None:
            raise
        raise LearnlabError(f"{problem}; {kept}") from None


def _write_contents(result: RunResult, directory: Path) -> None:
    spec = get_study(result.summary["study"])
    (directory / "config.yaml").write_text(config_to_yaml(result.config))
    result.metrics.to_parquet(directory / "metrics.parquet", index=False)
    write_json(directory / "summary.json", result.summary)
    result.models.write(directory)
    reporting.render(directory, result.summary, spec.figures, result.metrics)


def run(
    study: str,
    *,
    preset: str = "laptop",
    seeds: int | None = None,
    arms: list[str] | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    device: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    checkpoint_every: int = 200,
    save_models: str | None = None,
    snapshot_every: int = 0,
    track: str | None = None,
    track_uri: str | Path | None = None,
) -> dict[str, Any]:
    """Run a study end to end and return its summary (also written to the run directory).

    The run is built in a hidden directory beside `out` and renamed into place when complete. If it is
    interrupted (Ctrl-C) after a checkpoint, that directory is kept and `resume(out)` continues it.
    The trained models go to its models/ (`save_models`: none, final or all; None: final when they take
    under 64 MB; `snapshot_every`: steps between snapshots, with all): see learnlab.store.models.
    `track`: mlflow, tensorboard or wandb streams every evaluation live to that tracker, at `track_uri`
    (default beside the run directory: see learnlab.tracking); the run directory is the same without it.
    """
    check_options(save_models, snapshot_every)
    tracking.check(track, None if track_uri is None else str(track_uri))
    spec, cfg = resolve(study, preset=preset, seeds=seeds, arms=arms, overrides=overrides, device=device)
    out_dir = Path(out) if out is not None else default_run_dir(spec.name, cfg.preset)
    check_free(out_dir)
    check_resources(spec, cfg)
    work = partial_dir(out_dir)
    _connect(cfg)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LearnlabError(f"--out {str(out_dir)!r}: cannot create the run directory ({err.strerror})") from None
    with locked(out_dir):
        check_free(out_dir)  # again, now that no other process can be finishing it
        if work.exists():
            raise LearnlabError(f"{str(out_dir)!r} has an interrupted run: `learnlab resume {out_dir}` continues it")
        try:
            work.mkdir()
            (work / "config.yaml").write_text(config_to_yaml(cfg))
            # what to keep, beside the config: a resume keeps what this run asked for
            ModelKeeper.open(work / "models", save_models, snapshot_every, checkpoint_every).save_state()
        except OSError as err:
            shutil.rmtree(work, ignore_errors=True)
            raise LearnlabError(f"--out {str(out_dir)!r}: cannot create the run directory ({err.strerror})") from None
        models = {"save_models": save_models, "snapshot_every": snapshot_every}
        sink = _Track(track, track_uri)
        return _complete(
            spec, cfg, out_dir, work, progress, checkpoint_every, resuming=False, models=models, track=sink
        )


def resume(
    run_dir: str | Path,
    *,
    progress: bool = True,
    checkpoint_every: int = 200,
    study: str | None = None,
    track: str | None = None,
    track_uri: str | Path | None = None,
) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint; the result equals an uninterrupted run.
    With `study`, the interrupted run must be of that study. `track`, `track_uri`: as `run`'s (a new
    tracked run, which gets the curves saved in the checkpoints too)."""
    tracking.check(track, None if track_uri is None else str(track_uri))
    out_dir = Path(run_dir)
    work = partial_dir(out_dir)
    if not (work / "config.yaml").is_file():
        raise LearnlabError(f"no interrupted run to resume at {str(out_dir)!r}")
    with locked(out_dir):
        if not (work / "config.yaml").is_file():  # the process that held the lock finished it
            raise LearnlabError(f"no interrupted run to resume at {str(out_dir)!r}")
        check_free(out_dir)
        values = config_from_yaml(work / "config.yaml")
        try:
            spec = get_study(str(values.get("study", "")))
        except LearnlabError as err:  # a damaged or hand-made config: name the file
            raise LearnlabError(f"{str(work / 'config.yaml')!r}: {err}") from None
        if study is not None and study != spec.name:
            raise LearnlabError(f"--resume {str(out_dir)!r} is a {spec.name!r} run, not {study!r}")
        try:
            cfg = spec.config.model_validate(values)
        except ValidationError as err:
            raise LearnlabError(validation_message(err, str(work / "config.yaml"))) from None
        check_device(cfg)
        check_resources(spec, cfg)
        _connect(cfg)
        sink = _Track(track, track_uri)
        return _complete(spec, cfg, out_dir, work, progress, checkpoint_every, resuming=True, track=sink)


def _connect(cfg: StudyConfig) -> None:
    """A grid study on Ray connects before anything is written: an address nothing answers is an error."""
    if getattr(cfg, "backend", "local") == "ray":
        connect_ray(getattr(cfg, "address", None))


def _complete(
    spec: Study,
    cfg: StudyConfig,
    out_dir: Path,
    work: Path,
    progress: bool,
    checkpoint_every: int,
    resuming: bool,
    models: dict[str, Any] | None = None,
    track: _Track | None = None,
) -> dict[str, Any]:
    """Execute into `work`, then write the run directory beside it and drop `work`. On failure `work` is
    kept as it is if anything can resume from it (a resume never removes what it started from). `models`:
    execute's save_models and snapshot_every (a resume takes those the run saved in `work`); `track`: the
    tracker to open, closed with the summary (or as failed)."""
    tracker = None
    try:
        options = models or {}
        tracker = track.open(out_dir, cfg, resuming) if track is not None else None
        result = execute(
            spec, cfg, progress=progress, workdir=work, checkpoint_every=checkpoint_every, tracker=tracker, **options
        )
        with atomic_dir(out_dir) as tmp:  # `work` stays untouched until the run directory is complete
            _write_contents(result, tmp)
    except BaseException as err:
        if tracker is not None:
            with suppress(Exception):  # the run's own error is the one to tell
                tracker.close(None)
        kept = resuming or _has_progress(work)
        if not kept:
            shutil.rmtree(work, ignore_errors=True)
        if isinstance(err, KeyboardInterrupt) and kept:
            raise Interrupted(f"interrupted: `learnlab resume {out_dir}` continues from the last checkpoint") from None
        if isinstance(err, Exception) and (problem := resource_problem(err)) is not None:
            after = f"`learnlab resume {out_dir}` continues from the last checkpoint" if kept else "nothing was written"
            raise LearnlabError(f"{problem}; {after}") from None
        raise
    shutil.rmtree(work, ignore_errors=True)  # its checkpoints and a grid study's finished jobs
    if tracker is not None:
        tracker.close(result.summary)
    return {**result.summary, "run_dir": str(out_dir)}


@dataclass(frozen=True)
class _Track:
    """The tracker a run asked for (`--track KIND`, `--track-uri`), opened once its work directory exists."""

    kind: str | None
    uri: str | Path | None

    def open(self, out_dir: Path, cfg: StudyConfig, resuming: bool) -> tracking.Tracker | None:
        if self.kind is None:
            return None
        uri = str(self.uri) if self.uri is not None else tracking.default_uri(self.kind, out_dir)
        config = {**cfg.model_dump(mode="json"), "run_dir": str(out_dir), "resumed": resuming}
        return tracking.Tracker(tracking.open_sink(self.kind, out_dir.name, config, uri))


def _has_progress(work: Path) -> bool:
    """Whether a run saved anything to resume from: a checkpoint, or a grid study's finished job."""
    return any(work.rglob("*.ckpt")) or any(work.glob("jobs/*.parquet"))


def units(spec: Study) -> dict[str, list[str]]:
    """How the study's metrics print (`plain_metrics`, `point_metrics`), for the summary."""
    declared = {"plain_metrics": spec.plain_metrics, "point_metrics": spec.point_metrics}
    return {key: list(metrics) for key, metrics in declared.items() if metrics}


def with_current_units(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with its study's unit lists as declared now merged in (units are presentation, not
    measurement: a run made before a declaration prints as a new one; points win over plain)."""
    spec = STUDIES.get(summary.get("study", ""))
    current = units(spec) if spec else {}
    return {**summary, **{k: sorted(set(summary.get(k, ())) | set(v)) for k, v in current.items()}}


def report(run_dir: str | Path) -> Path:
    """Re-render report.md/report.html and the figures of an existing run directory; a damaged or
    incomplete one is a LearnlabError naming the file."""
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").is_file() and not (run_dir / "metrics.parquet").is_file():
        raise LearnlabError(f"{str(run_dir)!r} has no metrics.parquet: not a complete run directory")
    summary = read_summary(run_dir)
    metrics = read_metrics(run_dir, COLUMNS)
    spec = STUDIES.get(summary["study"])
    summary = with_current_units(summary)
    try:
        with out_of_resources(f"the report in {str(run_dir)!r} may be incomplete"):
            reporting.render(run_dir, summary, spec.figures if spec else None, metrics)
    except OSError as err:
        raise LearnlabError(f"{str(run_dir)!r}: cannot write the report ({err.strerror})") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        # checked above: the keys every report reads; a study's own figures read more of both files
        problem = (str(err).splitlines() or [""])[0]
        raise LearnlabError(
            f"{str(run_dir / 'summary.json')!r} or its metrics.parquet lacks what the {summary['study']} report "
            f"draws ({type(err).__name__}: {problem})"
        ) from None
    return run_dir / "report.html"


def runs(root: str | Path = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """The summaries of every run under `root` (sweeps included), oldest first, each with its "run_dir".
    A damaged summary.json is skipped with a warning naming it."""
    found = find_runs(Path(root), on_skip=lambda message: warnings.warn(message, stacklevel=4))
    return [{**summary, "run_dir": str(path)} for path, summary in found]


register_entry_points()  # last: a plugin's `learnlab.register_study` finds this module complete
