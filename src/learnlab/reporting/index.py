"""The lab's index page: every study's verdicts on one page, as `learnlab reproduce` leaves them.

One row per study and claim (the verdict as a badge, the claim as published, the evidence we measured, the
study's wall time, a link to its report), then every published number beside ours, and a summary line
("41 claims: 29 reproduced, 7 not, 5 undetermined"). A study that did not finish has a row saying why.
Markdown and HTML come from one list of blocks, as a run's report does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learnlab.reporting.report import Badge, Block, Link, comparison_rows, shown_claims, to_html, to_markdown
from learnlab.reporting.stats import OUTCOME


@dataclass(frozen=True)
class Entry:
    """One study of the index: its finished run (`summary` read from `run_dir`), or why there is none."""

    study: str
    codes: tuple[str, ...]
    run_dir: Path
    summary: dict[str, Any] | None = None
    error: str | None = None


def claims(entries: list[Entry]) -> list[dict[str, Any]]:
    """Every finished study's claims as its report shows them (a smoke run decides nothing)."""
    return [c for e in entries if e.summary for c in shown_claims(e.summary)]


def summary_line(entries: list[Entry]) -> str:
    """'41 claims: 29 reproduced, 7 not, 5 undetermined' (and the studies that did not finish, if any)."""
    found = claims(entries)
    counts = {held: sum(OUTCOME[c["verdict"]] is held for c in found) for held in (True, False, None)}
    line = f"{len(found)} claims: {counts[True]} reproduced, {counts[False]} not, {counts[None]} undetermined"
    failed = [e.study for e in entries if e.summary is None]
    return line + (f"; {len(failed)} of {len(entries)} studies did not finish ({', '.join(failed)})" if failed else "")


def total_seconds(entries: list[Entry]) -> float:
    return sum(e.summary["wall_seconds"] for e in entries if e.summary)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def blocks(entries: list[Entry], root: Path, preset: str) -> list[Block]:
    out: list[Block] = [
        ("h1", f"learnlab: every study, preset `{preset}`"),
        ("p", f"**{summary_line(entries)}**. Studies' wall time, summed: {_minutes(total_seconds(entries))}."),
        ("h2", "Verdicts"),
    ]
    header = ["study", "source", "verdict", "claim", "evidence (measured)", "wall time"]
    out.append(("table", (header, _claim_rows(entries, root))))
    if rows := _published_rows(entries):
        out.append(("h2", "Published numbers beside ours"))
        header = ["study", "arm", "metric", "measured (mean ± std)", "95% CI", "published", "difference", "inside CI"]
        out.append(("table", (header, rows)))
    return out


def _claim_rows(entries: list[Entry], root: Path) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for e in entries:
        codes = ", ".join(e.codes)
        if e.summary is None:
            rows.append([e.study, codes, Badge("did not finish"), "—", e.error or "", "—"])
            continue
        link = Link(e.study, f"{e.run_dir.relative_to(root)}/report.html")
        wall = _minutes(e.summary["wall_seconds"])
        shown = shown_claims(e.summary) or [{"verdict": "no claims", "claim": "—", "evidence": ""}]
        rows += [[link, codes, Badge(c["verdict"]), c["claim"], c["evidence"], wall] for c in shown]
    return rows


def _published_rows(entries: list[Entry]) -> list[list[Any]]:
    return [[e.study, *row] for e in entries if e.summary for row in comparison_rows(e.summary)]


def render_index(root: Path, entries: list[Entry], preset: str) -> Path:
    """Write index.md and index.html into `root`; returns the HTML's path."""
    doc = blocks(entries, root, preset)
    (root / "index.md").write_text(to_markdown(doc))
    (root / "index.html").write_text(to_html(doc, root))
    return root / "index.html"
