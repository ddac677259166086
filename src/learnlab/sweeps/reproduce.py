"""`learnlab reproduce`: every study (or a few) in one command, and one index page of their verdicts.

The output directory (default `runs/reproduce-<preset>`) holds one normal run directory per study, named
after it, and `index.md` / `index.html` (learnlab.reporting.index). The same command run again continues:
a finished study is kept as it is, an interrupted one resumed from its checkpoint, the rest run — so a
Ctrl-C, or a study that failed, costs only that study. A study that cannot run (a paper preset refused as
too big for this machine, say) gets a row in the index saying why, and the others go on. With
`backend="ray"` the studies run as Ray tasks over the cluster and the driver writes each run directory
(a cluster needs no shared filesystem), as a sweep's points do; grid studies run their jobs inside their
task. The directory is marked as a reproduction by its `reproduce.json` from the start.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from learnlab import api
from learnlab.engine.jobs import connect_ray, import_ray, ray_results
from learnlab.errors import Interrupted, LearnlabError
from learnlab.reporting.index import Entry, render_index, summary_line, total_seconds
from learnlab.store.rundir import DEFAULT_ROOT, locked, partial_dir, read_summary, write_json
from learnlab.studies.base import Study
from learnlab.sweeps.grid import BACKENDS, _execute_remote

MARKER = "reproduce.json"


def _order(spec: Study) -> tuple[str, int, str]:
    """A1 … A6, B1, C2 … E3 (a study with no code last, by name)."""
    code = spec.codes[0] if spec.codes else "Z0"
    return code[0], int(code[1:]), spec.name


def select(only: list[str] | None) -> list[Study]:
    """The studies named (by name or by STUDIES.md code: A1, C3 …; all when None), in code order."""
    studies = sorted(api.STUDIES.values(), key=_order)
    if not only:
        return studies
    chosen = []
    for wanted in only:
        found = [s for s in studies if wanted == s.name or wanted.upper() in s.codes]
        if not found:
            codes = ", ".join(c for s in studies for c in s.codes)
            raise LearnlabError(f"--only {wanted!r}: no study has that name or code (codes: {codes})")
        chosen += [s for s in found if s not in chosen]
    return sorted(chosen, key=_order)


def _check_out(out_dir: Path, preset: str) -> None:
    """A new or empty directory, or a reproduction of the same preset (to continue); nothing else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise LearnlabError(f"--out {str(out_dir)!r} is a file, not a directory; choose another --out")
    marker = out_dir / MARKER
    if marker.is_file():
        try:
            made = json.loads(marker.read_text()).get("preset")
        except (OSError, ValueError, AttributeError):
            raise LearnlabError(f"{str(marker)!r}: not a readable marker; choose another --out") from None
        if made != preset:
            raise LearnlabError(f"--out {str(out_dir)!r} reproduces preset {made!r}, not {preset!r}: choose another")
    elif out_dir.is_dir() and any(out_dir.iterdir()):
        raise LearnlabError(f"--out {str(out_dir)!r} exists and is not a reproduction (no {MARKER}): choose another")


def reproduce(
    *,
    preset: str = "laptop",
    only: list[str] | None = None,
    backend: str = "local",
    address: str | None = None,
    device: str | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    checkpoint_every: int = 200,
) -> dict[str, Any]:
    """Run every study (or `only`) at `preset` into `out`, continuing what an earlier call left, and write
    the index. Returns {"out", "index", "summary_line", "total_seconds", "studies": [{study, run_dir,
    verdicts | error}]}."""
    studies = select(only)
    if backend not in BACKENDS:
        raise LearnlabError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    for spec in studies:  # every config checked before anything runs
        api.resolve(spec.name, preset=preset, device=device)
    out_dir = Path(out) if out is not None else DEFAULT_ROOT / f"reproduce-{preset}"
    _check_out(out_dir, preset)
    if backend == "ray":
        connect_ray(address)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with locked(out_dir):
            if not (out_dir / MARKER).is_file():
                write_json(out_dir / MARKER, {"preset": preset, "studies": [s.name for s in studies]})
            entries = _run_all(studies, preset, backend, address, device, out_dir, (progress, checkpoint_every))
            index = render_index(out_dir, entries, preset)
    except OSError as err:
        raise LearnlabError(f"--out {str(out_dir)!r}: cannot write there ({err.strerror})") from None
    return {
        "out": str(out_dir),
        "index": str(index),
        "summary_line": summary_line(entries),
        "total_seconds": total_seconds(entries),
        "studies": [_brief(e) for e in entries],
    }


def _brief(e: Entry) -> dict[str, Any]:
    if e.summary is None:
        return {"study": e.study, "run_dir": str(e.run_dir), "error": e.error}
    return {
        "study": e.study,
        "run_dir": str(e.run_dir),
        "wall_seconds": e.summary["wall_seconds"],
        "verdicts": [c["verdict"] for c in e.summary.get("claims", [])],
    }


def _run_all(
    studies: list[Study],
    preset: str,
    backend: str,
    address: str | None,
    device: str | None,
    out: Path,
    how: tuple[bool, int],
) -> list[Entry]:
    done: dict[str, dict[str, Any] | str] = {}  # study: its summary, or why it has none
    remote = []
    for spec in studies:
        run_dir = out / spec.name
        if (run_dir / "summary.json").is_file():
            done[spec.name] = read_summary(run_dir)  # kept from an earlier call
        elif backend == "ray" and not (partial_dir(run_dir) / "config.yaml").is_file():
            remote.append(spec)
        else:
            done[spec.name] = _run_here(spec, preset, device, run_dir, *how)
    if remote:
        done |= _run_on_ray(remote, preset, address, device, out)
    entries = []
    for spec in studies:
        got = done[spec.name]
        summary, error = (got, None) if isinstance(got, dict) else (None, got)
        entries.append(Entry(spec.name, spec.codes, out / spec.name, summary, error))
    return entries


def _run_here(
    spec: Study, preset: str, device: str | None, run_dir: Path, progress: bool, checkpoint_every: int
) -> dict[str, Any] | str:
    """The study's summary (resumed if it was interrupted), or the one-line reason it could not run."""
    every = {"progress": progress, "checkpoint_every": checkpoint_every}
    try:
        if (partial_dir(run_dir) / "config.yaml").is_file():
            return api.resume(run_dir, study=spec.name, **every)
        return api.run(spec.name, preset=preset, device=device, out=run_dir, **every)
    except Interrupted:
        raise Interrupted(
            f"interrupted in {spec.name}: the same `learnlab reproduce` continues (finished studies are kept)"
        ) from None
    except LearnlabError as err:
        return re.sub(r"\s+", " ", str(err))


def _run_on_ray(
    studies: list[Study], preset: str, address: str | None, device: str | None, out: Path
) -> dict[str, dict[str, Any] | str]:
    ray = import_ray()
    configs = {s.name: api.resolve(s.name, preset=preset, device=device)[1] for s in studies}
    threads, on = torch.get_num_threads(), next(iter(configs.values())).device
    calls = {name: (name, cfg.model_dump(mode="json"), threads) for name, cfg in configs.items()}
    done: dict[str, dict[str, Any] | str] = {}
    for name, result in ray_results(ray, address, _execute_remote, threads, on, calls):
        api.write_run(result, out / name)
        done[name] = {**result.summary, "run_dir": str(out / name)}
    return done
