"""The run report, as Markdown and as one self-contained HTML file (figures embedded).

Both are rendered from one list of blocks, so they always say the same thing: the verdict per claim,
the measured table beside the published one, findings beyond the source, figures, method and config.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from learnlab.reporting.stats import OUTCOME, WORDS

Block = tuple[str, Any]


class Badge(str):
    """A table cell shown as a verdict badge (bold in Markdown)."""


class Link(str):
    """A table cell that links to `href` (a path relative to the page)."""

    href: str

    def __new__(cls, text: str, href: str) -> Link:
        link = super().__new__(cls, text)
        link.href = href
        return link


def _md_cell(cell: Any) -> str:
    if isinstance(cell, Badge):
        return f"**{cell}**"
    if isinstance(cell, Link):
        return f"[{cell}]({cell.href})"
    return str(cell).replace("|", "\\|").replace("\n", " ")


def _html_cell(cell: Any) -> str:
    if isinstance(cell, Badge):
        return f'<span class="badge" style="background:{BADGE.get(cell, "#666")}">{html.escape(cell)}</span>'
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href)}">{html.escape(cell)}</a>'
    return _inline(str(cell))


# how a metric's numbers print: a fraction as percent, a difference of fractions as signed percentage
# points, anything else plain; None guesses percent for a value in [0, 1]
Unit = Literal["percent", "points", "plain"]


def fmt(value: float | None, unit: Unit | None = None) -> str:
    """One number in its unit, four significant digits when plain; None (missing) as —."""
    if value is None:
        return "—"
    unit = unit or guess_unit(value)
    if unit == "percent":
        return f"{100 * value:.1f}%"
    if unit == "points":
        return f"{100 * value:+.1f} pts"
    return f"{value:.4g}"


def guess_unit(value: float | None) -> Unit:
    """A value with no declared unit: a fraction (in [0, 1]) in percent, anything else plain."""
    return "percent" if value is not None and 0.0 <= value <= 1.0 else "plain"


def mean_std(mean: float | None, std: float | None, unit: Unit | None = None) -> str:
    """'mean ± std' (the spread in the mean's unit), or just the mean where no spread is known."""
    unit = unit or guess_unit(mean)
    if std is None or mean is None:
        return fmt(mean, unit)
    spread = f"{100 * std:.1f} pts" if unit == "points" else fmt(std, unit)
    return f"{fmt(mean, unit)} ± {spread}"


def metric_unit(summary: dict[str, Any], metric: str) -> Unit | None:
    """The study's declared unit: plain numbers even in [0, 1] (an exponent, an R²), or points (a gain
    in accuracy, which may be negative); None leaves it to the value."""
    if metric in summary.get("point_metrics", ()):
        return "points"
    if metric in summary.get("plain_metrics", ()):
        return "plain"
    return None


def _cell(cell: dict[str, Any], unit: Unit | None = None) -> str:
    return mean_std(cell["mean"], cell.get("std"), unit)


def _ci(cell: dict[str, Any], unit: Unit | None = None) -> str:
    lo, hi = cell["ci95"]
    unit = unit or guess_unit(cell.get("mean"))
    return f"[{fmt(lo, unit)}, {fmt(hi, unit)}]"


def _difference(row: dict[str, Any], unit: Unit | None) -> str:
    """Measured minus published: in points where both are fractions, else plain and signed."""
    if unit == "points" or (unit is None and abs(row["published_mean"]) <= 1):
        return f"{100 * row['difference']:+.1f} pts"
    return f"{row['difference']:+.3g}"


def comparison_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Each published number beside ours, as the report prints it: arm, metric, measured (mean ± std), 95% CI,
    published, difference, whether the published mean is inside our CI."""
    rows = []
    for r in summary.get("comparison", []):
        unit = metric_unit(summary, r["metric"])
        rows.append(
            [
                r["arm"],
                r["metric"],
                mean_std(r["mean"], r["std"], unit),
                _ci(r, unit),
                mean_std(r["published_mean"], r["published_std"], unit),
                _difference(r, unit),
                "yes" if r["published_inside_ci"] else "no",
            ]
        )
    return rows


def verdict_counts(claims: list[dict[str, Any]]) -> str:
    """'4/5 reproduced, 1 undetermined' (a user's hypotheses: '4/5 held, …'): the verdicts of a run in one line."""
    if not claims:
        return "no claims"
    neutral = any(c["verdict"] in WORDS["hypothesis"].values() and c["verdict"] != "undetermined" for c in claims)
    words = WORDS["hypothesis" if neutral else "published"]
    counts = {held: sum(OUTCOME[c["verdict"]] is held for c in claims) for held in (True, False, None)}
    rest = [f"{counts[held]} {words[held]}" for held in (False, None) if counts[held]]
    return ", ".join([f"{counts[True]}/{len(claims)} {words[True]}", *rest])


SMOKE = "smoke preset: decides nothing"


def shown_claims(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims as the terminal and the report show them. A smoke run (seconds of training on 2-3
    seeds, for tests) decides nothing, whatever its checks said: each of its claims shows as undetermined,
    with the check's own outcome kept in the evidence. summary.json keeps the verdicts as judged."""
    claims = summary.get("claims", [])
    if summary.get("preset") != "smoke":
        return claims
    return [{**c, "verdict": "undetermined", "evidence": _smoke_evidence(c)} for c in claims]


def _smoke_evidence(claim: dict[str, Any]) -> str:
    if claim["verdict"] == "undetermined":
        return f"{SMOKE}; {claim['evidence']}"
    return f"{SMOKE} (its check said {claim['verdict']}: {claim['evidence']})"


def _contradictions(summary: dict[str, Any]) -> list[str]:
    """Where the 'published mean inside CI' column and the verdicts seem to disagree, say why they may."""
    rows, claims = summary.get("comparison", []), shown_claims(summary)
    outside = [f"{r['arm']} {r['metric']}" for r in rows if not r["published_inside_ci"]]
    failed = [c for c in claims if OUTCOME[c["verdict"]] is False]
    if outside and claims and not failed:
        return [
            f"The published mean lies outside our 95% CI for {', '.join(outside)}, yet no claim failed: a claim "
            "tests the published statement (a direction, a range, a threshold), the column tests each published "
            "number's level, which depends on protocol details the statement does not fix."
        ]
    if failed and rows and not outside:
        return [
            "Every published number lies inside our 95% CI, yet a claim failed: the claim tests a relation the "
            "published means alone do not show (a difference between arms, a trend), judged on our own seeds."
        ]
    return []


BADGE = {word: {True: "#1a7f37", False: "#cf222e", None: "#9a6700"}[held] for word, held in OUTCOME.items()}


DEFAULT_CAPTIONS = {
    "learning_curves": "Learning curves: mean over seeds per arm; the band is ±1 standard deviation over seeds "
    "(training loss smoothed over 2% of the steps).",
    "final": "Final measurements: mean over seeds per arm; bars are the 95% t-interval of the mean; "
    "◆ the published mean.",
}


def blocks(
    summary: dict[str, Any], figure_files: dict[str, str], captions: dict[str, str] | None = None
) -> list[Block]:
    table = summary["table"]
    out: list[Block] = [
        ("h1", f"{summary['study']}: {summary.get('title', '')}"),
        (
            "p",
            f"Source: {summary.get('source', '')}. Preset `{summary['preset']}`, "
            f"{len(summary['seeds'])} seeds ({summary['seeds'][0]}…{summary['seeds'][-1]}) per arm, "
            f"device `{summary['device']}`, {summary['wall_seconds']:.1f} s wall, {summary.get('created', '')}.",
        ),
    ]
    if claims := shown_claims(summary):
        smoke = f" ({SMOKE})" if summary.get("preset") == "smoke" else ""
        out.append(("h2", f"Verdict: {verdict_counts(claims)}{smoke}"))
        out.append(("verdicts", claims))
        if contradictions := _contradictions(summary):
            out.append(("p", " ".join(contradictions)))
    if summary.get("comparison"):
        out.append(("h2", "Measured beside published"))
        rows = comparison_rows(summary)
        out.append(
            (
                "table",
                (
                    [
                        "arm",
                        "metric",
                        "measured (mean ± std)",
                        "95% CI",
                        "published (mean ± std)",
                        "difference",
                        "published mean inside CI",
                    ],
                    rows,
                ),
            )
        )
    metrics = list(dict.fromkeys(m for arm in table.values() for m in arm))
    out.append(("h2", "All measurements (mean ± std, 95% CI)"))
    out.append(
        (
            "table",
            (
                ["arm", *metrics],
                [
                    [
                        arm,
                        *(
                            f"{_cell(c, metric_unit(summary, m))} {_ci(c, metric_unit(summary, m))}"
                            if (c := cells.get(m))
                            else "—"
                            for m in metrics
                        ),
                    ]
                    for arm, cells in table.items()
                ],
            ),
        )
    )
    if summary.get("notes"):
        out.append(("h2", "Beyond the source"))
        out.append(("list", summary["notes"]))
    if figure_files:
        out.append(("h2", "Figures"))
        captions = captions or {}
        out += [("img", (file, captions.get(name, name.replace("_", " ")))) for name, file in figure_files.items()]
    if summary.get("method"):
        out.append(("h2", "Method"))
        out.append(("p", summary["method"]))
    out.append(("h2", "Configuration"))
    out.append(("code", "\n".join(f"{k}: {v}" for k, v in summary["config"].items())))
    if line := provenance_line(summary):
        out += [("h2", "Provenance"), ("p", line)]
    if line := models_line(summary):
        out.append(("p", line))
    return out


def provenance_line(summary: dict[str, Any]) -> str | None:
    """What made the run, in one line: learnlab's version and commit, the libraries, Python, the platform
    (summary.json's `versions` and `provenance`); None for a run that recorded none."""
    found, where = summary.get("versions") or {}, summary.get("provenance") or {}
    if not isinstance(found, dict) or not isinstance(where, dict) or not (found or where):
        return None
    parts = []
    if version := where.get("learnlab") or found.get("learnlab"):
        commit = where.get("git_commit")
        dirty = ", dirty" if where.get("git_dirty") else ""
        parts.append(f"learnlab {version}" + (f" (git `{str(commit)[:12]}`{dirty})" if commit else ""))
    parts += [f"{name} {v}" for name, v in found.items() if name not in ("learnlab", "python")]
    if "python" in found:
        parts.append(f"Python {found['python']}")
    if where.get("platform"):
        parts.append(str(where["platform"]))
    return "Made with " + ", ".join(parts) + "."


def models_line(summary: dict[str, Any]) -> str | None:
    """Which trained models the run directory keeps (summary.json's `models`), in one line."""
    models = summary.get("models")
    if not isinstance(models, dict):
        return None
    kept = models.get("kept") or []
    if not kept:
        return f"Trained models: none kept ({models.get('note') or '--save-models ' + str(models.get('save_models'))})."
    snapshots = f", {models['snapshots']} snapshots" if models.get("snapshots") else ""
    size = f"{models.get('bytes', 0) / 1e6:.1f} MB"
    return (
        f"Trained models kept in `models/` ({size}{snapshots}): {', '.join(f'`{name}`' for name in kept)}; "
        "`learnlab.load_run` rebuilds them, `learnlab export` exports a transformer's member."
    )


def to_markdown(doc: list[Block]) -> str:
    lines: list[str] = []
    for kind, body in doc:
        if kind == "h1":
            lines += [f"# {body}", ""]
        elif kind == "h2":
            lines += [f"## {body}", ""]
        elif kind == "p":
            lines += [" ".join(body.split()), ""]
        elif kind == "list":
            lines += [f"- {item}" for item in body] + [""]
        elif kind == "verdicts":
            lines += [f"- **{c['verdict']}** — {c['claim']}. {c['evidence']}." for c in body] + [""]
        elif kind == "table":
            header, rows = body
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows] + [""]
        elif kind == "img":
            file, caption = body
            lines += [f"![{caption}]({file})", "", f"*{caption}*", ""]
        elif kind == "code":
            lines += ["```yaml", body, "```", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then render **bold** and `code` the way the Markdown does."""
    parts = html.escape(text).split("**")
    text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(doc: list[Block], run_dir: Path) -> str:
    body: list[str] = []
    for kind, content in doc:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{_inline(content)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(content)}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in content) + "</ul>")
        elif kind == "verdicts":
            body.append(
                "<ul>"
                + "".join(
                    f'<li><span class="badge" style="background:{BADGE.get(c["verdict"], "#666")}">'
                    f"{html.escape(c['verdict'])}</span> {_inline(c['claim'])}. {_inline(c['evidence'])}.</li>"
                    for c in content
                )
                + "</ul>"
            )
        elif kind == "table":
            header, rows = content
            head = "".join(f"<th>{_inline(h)}</th>" for h in header)
            cells = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
        elif kind == "img":
            file, caption = content
            data = base64.b64encode((run_dir / file).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        elif kind == "code":
            body.append(f"<pre>{html.escape(content)}</pre>")
    title = html.escape(doc[0][1]) if doc else "learnlab report"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style>"
        f"</head><body>{''.join(body)}</body></html>\n"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}"
    ".badge{color:#fff;border-radius:.8em;padding:.1em .6em;font-size:.85em;white-space:nowrap}"
    "img{max-width:100%}figure{margin:1em 0}pre{background:#f6f6f6;padding:1em;overflow:auto}"
)


def render(
    run_dir: Path,
    summary: dict[str, Any],
    study_figures: Callable[..., dict[str, Any]] | None = None,
    metrics: pd.DataFrame | None = None,
) -> None:
    """Write the figures (PNG), report.md and report.html into run_dir."""
    from learnlab.reporting import figures as figs  # matplotlib: imported where figures are drawn

    if metrics is None:
        metrics = pd.read_parquet(run_dir / "metrics.parquet")
    made = {"learning_curves": figs.learning_curves(metrics), "final": figs.final_table(summary)}
    if study_figures is not None:
        made.update(study_figures(summary, metrics))
    files, captions = {}, {}
    for name, fig in made.items():
        if fig is not None:
            captions[name] = figs.caption_of(fig, DEFAULT_CAPTIONS.get(name, name.replace("_", " ")))
            figs.save(fig, run_dir / f"{name}.png")
            files[name] = f"{name}.png"
    doc = blocks(summary, files, captions)
    (run_dir / "report.md").write_text(to_markdown(doc))
    (run_dir / "report.html").write_text(to_html(doc, run_dir))
