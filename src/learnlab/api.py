"""The Python API; the CLI is a thin layer over these functions.

    import learnlab
    summary = learnlab.run("hard-negatives", seeds=20)

`execute` runs a study and returns its result in memory (no I/O: sweeps ship it back from Ray workers);
`write_run` turns a result into a run directory atomically; `run` does both.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import ValidationError

import learnlab.reporting as reporting_modules
from learnlab.config import (
    StudyConfig,
    build_config,
    config_from_yaml,
    config_to_yaml,
    parse_overrides,
    validation_message,
)
from learnlab.errors import Interrupted, LearnlabError
from learnlab.progress import progress_bar
from learnlab.reporting import report as reporting
from learnlab.reporting.stats import compare, table_from_metrics
from learnlab.store.rundir import atomic_dir, check_free, default_run_dir, partial_dir, read_summary, write_json
from learnlab.studies import STUDIES, get_study  # noqa: F401 - re-exported
from learnlab.studies.base import COLUMNS, RunContext, Study


@dataclass
class RunResult:
    summary: dict[str, Any]
    metrics: pd.DataFrame
    config: StudyConfig


@contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels (they matter on CUDA: scatter-add backward uses atomics), without the
    NaN-filling of fresh tensors that deterministic mode adds by default and that costs ~40% on CPU."""
    enabled, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    fill = torch.utils.deterministic.fill_uninitialized_memory
    _use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        _use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def _use_deterministic_algorithms(mode: bool, warn_only: bool) -> None:
    """torch.use_deterministic_algorithms without importing torch.compile's inductor (~0.9 s) just to set
    its flag: that flag is set only when inductor is already loaded (nothing here compiles)."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    setter(mode, warn_only=warn_only)
    if (inductor := sys.modules.get("torch._inductor.config")) is not None:
        inductor.deterministic = mode


def list_studies() -> list[Study]:
    return list(STUDIES.values())


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


def execute(
    spec: Study, cfg: StudyConfig, progress: bool = False, workdir: Path | None = None, checkpoint_every: int = 200
) -> RunResult:
    """Run the protocol and compute statistics, comparison and verdicts; writes nothing but checkpoints
    (into `workdir`, when given)."""
    started = time.perf_counter()
    ctx = RunContext(lambda desc, total: progress_bar(desc, total, progress), workdir, checkpoint_every)
    reporting_modules.warm_up()
    with deterministic():
        metrics = spec.measure(cfg, ctx)
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
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "table": table,
        "reference": reference,
        "comparison": compare(table, reference),
        "claims": [claim.judge(table).as_dict() for claim in spec.claims],
        "method": spec.method,
    }
    summary.update(units(spec))
    for key, value in spec.extras.items():  # a study's own top-level keys never replace the standard ones
        summary.setdefault(key, value)
    summary["notes"] = spec.notes(summary) if spec.notes else []
    return RunResult(summary, metrics.reset_index(drop=True), cfg)


def write_run(result: RunResult, out: Path) -> Path:
    """Write the output contract into `out`, atomically."""
    with atomic_dir(out) as tmp:
        _write_contents(result, tmp)
    return out


def _write_contents(result: RunResult, directory: Path) -> None:
    spec = get_study(result.summary["study"])
    (directory / "config.yaml").write_text(config_to_yaml(result.config))
    result.metrics.to_parquet(directory / "metrics.parquet", index=False)
    write_json(directory / "summary.json", result.summary)
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
) -> dict[str, Any]:
    """Run a study end to end and return its summary (also written to the run directory).

    The run is built in a hidden directory beside `out` and renamed into place when complete. If it is
    interrupted (Ctrl-C) after a checkpoint, that directory is kept and `resume(out)` continues it.
    """
    spec, cfg = resolve(study, preset=preset, seeds=seeds, arms=arms, overrides=overrides, device=device)
    out_dir = Path(out) if out is not None else default_run_dir(spec.name, cfg.preset)
    check_free(out_dir)
    work = partial_dir(out_dir)
    if work.exists():
        raise LearnlabError(f"{str(out_dir)!r} has an interrupted run: `learnlab resume {out_dir}` continues it")
    try:
        work.mkdir(parents=True)
        (work / "config.yaml").write_text(config_to_yaml(cfg))
    except OSError as err:
        raise LearnlabError(f"--out {str(out_dir)!r}: cannot create the run directory ({err.strerror})") from None
    return _complete(spec, cfg, out_dir, work, progress, checkpoint_every)


def resume(
    run_dir: str | Path, *, progress: bool = True, checkpoint_every: int = 200, study: str | None = None
) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint; the result equals an uninterrupted run.
    With `study`, the interrupted run must be of that study."""
    out_dir = Path(run_dir)
    work = partial_dir(out_dir)
    if not (work / "config.yaml").is_file():
        raise LearnlabError(f"no interrupted run to resume at {str(out_dir)!r}")
    check_free(out_dir)
    values = config_from_yaml(work / "config.yaml")
    spec = get_study(str(values.get("study", "")))
    if study is not None and study != spec.name:
        raise LearnlabError(f"--resume {str(out_dir)!r} is a {spec.name!r} run, not {study!r}")
    try:
        cfg = spec.config.model_validate(values)
    except ValidationError as err:
        raise LearnlabError(validation_message(err, str(work / "config.yaml"))) from None
    check_device(cfg)
    return _complete(spec, cfg, out_dir, work, progress, checkpoint_every)


def _complete(
    spec: Study, cfg: StudyConfig, out_dir: Path, work: Path, progress: bool, checkpoint_every: int
) -> dict[str, Any]:
    try:
        result = execute(spec, cfg, progress=progress, workdir=work, checkpoint_every=checkpoint_every)
    except KeyboardInterrupt:
        if not any(work.rglob("*.ckpt")) and not any(work.glob("jobs/*.parquet")):  # nothing to resume from
            shutil.rmtree(work, ignore_errors=True)
            raise
        raise Interrupted(f"interrupted: `learnlab resume {out_dir}` continues from the last checkpoint") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        for checkpoint in work.glob("*.ckpt*"):
            checkpoint.unlink()
        shutil.rmtree(work / "jobs", ignore_errors=True)  # a grid study's finished jobs and their checkpoints
        _write_contents(result, work)
        os.replace(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return {**result.summary, "run_dir": str(out_dir)}


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
    """Re-render report.md/report.html and the figures of an existing run directory."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if not (run_dir / "metrics.parquet").is_file():
        raise LearnlabError(f"{str(run_dir)!r} has no metrics.parquet: not a complete run directory")
    spec = STUDIES.get(summary.get("study", ""))
    summary = with_current_units(summary)
    reporting.render(run_dir, summary, spec.figures if spec else None)
    return run_dir / "report.html"
