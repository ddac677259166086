"""A grid sweep: every point is an independent, normal run directory; one table summarises them all.

Points are validated before anything is written. Runs are computed by a backend — in this process
(`local`) or as Ray tasks (`ray`, the optional extra `learnlab[ray]`) — and written by the driver, so
a remote cluster needs no shared filesystem. An existing sweep directory (of the same study) is resumed:
points whose run directory is complete are not run again. Any other existing directory is refused: a
sweep directory is marked from its start by its sweep.json. A sweep holds its directory's lock.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from learnlab import api
from learnlab.config import StudyConfig, config_from_yaml, parse_overrides
from learnlab.engine.jobs import connect_ray, import_ray, in_ray_worker, ray_results, task_threads
from learnlab.engine.train import torch_threads
from learnlab.errors import LearnlabError
from learnlab.progress import progress_bar
from learnlab.reporting.report import fmt, guess_unit, mean_std, metric_unit, to_markdown
from learnlab.store.rundir import DEFAULT_ROOT, load_summary, locked, read_summary, write_json

BACKENDS = ("local", "ray")


@dataclass
class SweepResult:
    out: Path
    table: pd.DataFrame
    units: dict[str, list[str]] = field(default_factory=dict)  # the study's plain_metrics, point_metrics

    @property
    def table_markdown(self) -> str:
        return _markdown(self.table, self.units)

    def headline_markdown(self, headline: tuple[tuple[str, str], ...]) -> str:
        """Only the study's headline cells (arm, metric), when it names any."""
        keep = self.table[[(a, m) in set(headline) for a, m in zip(self.table.arm, self.table.metric, strict=True)]]
        return _markdown(keep if len(keep) else self.table, self.units)


NUMBERS = ("mean", "std", "ci95_lo", "ci95_hi")


def _markdown(table: pd.DataFrame, units: dict[str, list[str]]) -> str:
    """The sweep table as the reports print numbers (a fraction in percent, a gain in points, the rest
    plain: `metric_unit`): one row per point, arm and metric, with 'mean ± std' and the 95% CI."""
    keys = [c for c in table.columns if c not in NUMBERS]
    rows = []
    for row in table.to_dict("records"):
        unit = metric_unit(units, row["metric"]) or guess_unit(row["mean"])
        rows.append(
            [
                *(str(row[k]) for k in keys),
                mean_std(row["mean"], row["std"], unit),
                f"[{fmt(row['ci95_lo'], unit)}, {fmt(row['ci95_hi'], unit)}]",
            ]
        )
    return to_markdown([("table", ([*keys, "mean ± std", "95% CI"], rows))])


def expand_grid(grid: list[str]) -> list[dict[str, Any]]:
    """`["lr=1e-3,5e-3", "steps=100,200"]` -> the product of the values, in the order given."""
    axes: dict[str, list[Any]] = {}
    for item in grid:
        key, sep, raw = item.partition("=")
        values = [v for v in raw.split(",") if v.strip()]
        if not sep or not key.strip() or not values:
            raise LearnlabError(f"bad --grid {item!r}: expected key=v1,v2,...")
        if key.strip() in axes:
            raise LearnlabError(f"bad --grid {item!r}: {key.strip()!r} is already a grid axis")
        axes[key.strip()] = [next(iter(parse_overrides([f"{key}={v}"]).values())) for v in values]
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def point_name(index: int, point: dict[str, Any]) -> str:
    label = ",".join(f"{k}={v}" for k, v in point.items())
    return f"{index:03d}-" + re.sub(r"[^A-Za-z0-9_.,=+-]", "_", label)


def run_sweep(
    study: str,
    grid: list[str],
    *,
    preset: str = "laptop",
    seeds: int | None = None,
    arms: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    device: str | None = None,
    backend: str = "local",
    address: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> SweepResult:
    if backend not in BACKENDS:
        raise LearnlabError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    points = expand_grid(grid)
    given = {"seeds": seeds, "arms": arms, "device": device}
    clash = [key for key in points[0] if given.get(key) is not None]
    if clash:
        raise LearnlabError(f"--grid {clash[0]}=... and --{clash[0]} both set {clash[0]!r}: give one")
    configs = []
    for point in points:
        spec, cfg = api.resolve(
            study, preset=preset, seeds=seeds, arms=arms, overrides={**(overrides or {}), **point}, device=device
        )
        configs.append(cfg)
    out_dir = Path(out) if out else DEFAULT_ROOT / f"{spec.name}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    names = [point_name(i, p) for i, p in enumerate(points)]
    todo = _check_resumable(out_dir, spec.name, names, configs)
    if backend == "local" or address is None:  # the points run on this machine (a remote cluster's: unknown)
        for i in todo:
            api.check_resources(spec, configs[i])
    if backend == "ray":
        connect_ray(address)  # before anything is written: an address nothing answers is an error
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LearnlabError(f"--out {str(out_dir)!r}: cannot create the sweep directory ({err.strerror})") from None
    marker = {
        "study": spec.name,
        "preset": preset,
        "grid": grid,
        "backend": backend,
        "points": [{"run": n, **p} for n, p in zip(names, points, strict=True)],
    }
    kept = "the finished points are kept: the same command continues the sweep"
    with locked(out_dir), api.out_of_resources(kept):
        todo = _check_resumable(out_dir, spec.name, names, configs)  # again, under the lock
        _start(out_dir, marker)
        execute = _ray_executor(address) if backend == "ray" else _local_executor(progress)
        with progress_bar(f"sweep {spec.name} · {len(points)} points", len(points), progress) as update:
            update(len(points) - len(todo))
            for done, (i, result) in enumerate(execute(spec.name, [configs[i] for i in todo], todo), start=1):
                api.write_run(result, out_dir / names[i])
                update(len(points) - len(todo) + done)

        table = summarise(out_dir, names, points)
        result = SweepResult(out_dir, table, api.units(spec))
        table.to_parquet(out_dir / "sweep.parquet", index=False)
        (out_dir / "sweep.md").write_text(f"# Sweep of {spec.name}\n\n" + result.table_markdown)
        write_json(out_dir / "sweep.json", marker)
    return result


def _check_resumable(out_dir: Path, study: str, names: list[str], configs: list[StudyConfig]) -> list[int]:
    """The points still to run in `out_dir`: all of them in a new or empty directory, the unfinished
    ones in a sweep directory of `study` whose finished points are these points; anything else is a
    LearnlabError (a run directory, any other non-empty directory, another study's sweep)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise LearnlabError(f"--out {str(out_dir)!r} is a file, not a sweep directory; choose another --out")
    marker = out_dir / "sweep.json"
    if marker.is_file():
        try:
            swept = json.loads(marker.read_text()).get("study")
        except (OSError, ValueError, AttributeError):
            raise LearnlabError(f"{str(marker)!r}: not a readable sweep marker; choose another --out") from None
        if swept != study:
            raise LearnlabError(f"--out {str(out_dir)!r} is a sweep of {swept!r}, not {study!r}; choose another --out")
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        raise LearnlabError(
            f"--out {str(out_dir)!r} exists and is not a sweep directory (no sweep.json); choose another --out"
        )
    todo = [i for i, name in enumerate(names) if not (out_dir / name / "summary.json").is_file()]
    for i in set(range(len(names))) - set(todo):  # resuming: a finished point must be this point
        if config_from_yaml(out_dir / names[i] / "config.yaml") != configs[i].model_dump(mode="json"):
            raise LearnlabError(f"{str(out_dir / names[i])!r} was run with another config; use another --out")
        load_summary(out_dir / names[i] / "summary.json")  # a damaged one: an error naming it, before any work
    return todo


def _start(out_dir: Path, marker: dict[str, Any]) -> None:
    """The sweep directory, marked as one by its sweep.json from the start (rewritten at the end)."""
    try:
        out_dir.mkdir(exist_ok=True)
        if not (out_dir / "sweep.json").is_file():
            write_json(out_dir / "sweep.json", marker)
    except OSError as err:
        raise LearnlabError(f"--out {str(out_dir)!r}: cannot create the sweep directory ({err.strerror})") from None


def summarise(out_dir: Path, names: list[str], points: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (point, arm, metric): the point's values, mean, std and the 95% CI."""
    rows = []
    for name, point in zip(names, points, strict=True):
        summary = read_summary(out_dir / name)
        for arm, cells in summary["table"].items():
            for metric, cell in cells.items():
                rows.append(
                    {
                        "run": name,
                        **point,
                        "arm": arm,
                        "metric": metric,
                        "mean": round(cell["mean"], 6),
                        "std": round(cell["std"], 6),
                        "ci95_lo": round(cell["ci95"][0], 6),
                        "ci95_hi": round(cell["ci95"][1], 6),
                    }
                )
    return pd.DataFrame(rows)


Executor = Callable[[str, list[StudyConfig], list[int]], Iterator[tuple[int, api.RunResult]]]


def _local_executor(progress: bool) -> Executor:
    def execute(study: str, configs: list[StudyConfig], ids: list[int]) -> Iterator[tuple[int, api.RunResult]]:
        spec = api.get_study(study)
        for i, cfg in zip(ids, configs, strict=True):
            yield i, api.execute(spec, cfg, progress=False)

    return execute


def _execute_remote(study: str, config: dict[str, Any], threads: int) -> api.RunResult:
    spec = api.get_study(study)
    config = {**config, "device": in_ray_worker(config["device"])}
    with torch_threads(task_threads(threads, config["device"])):  # the driver's count, capped at the task's CPUs
        return api.execute(spec, spec.config.model_validate(config))


def _ray_executor(address: str | None) -> Executor:
    ray = import_ray()

    def execute(study: str, configs: list[StudyConfig], ids: list[int]) -> Iterator[tuple[int, api.RunResult]]:
        threads, device = torch.get_num_threads(), configs[0].device if configs else "cpu"
        calls = {i: (study, cfg.model_dump(mode="json"), threads) for i, cfg in zip(ids, configs, strict=True)}
        yield from ray_results(ray, address, _execute_remote, threads, device, calls)

    return execute
