"""The run report, as Markdown and as one self-contained HTML file (figures embedded).

Both are rendered from one list of blocks, so they always say the same thing: the verdict per claim,
the measured table beside the published one, findings beyond the source, figures, method and config.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

Block = tuple[str, Any]


def fmt(value: float | None, percent: bool | None = None) -> str:
    """Fractions print as percent; anything else with four significant digits; None (missing) as —.
    `percent` forces the unit (a spread prints in its mean's unit)."""
    if value is None:
        return "—"
    if percent is None:
        percent = 0.0 <= value <= 1.0
    return f"{100 * value:.1f}%" if percent else f"{value:.4g}"


def mean_std(mean: float | None, std: float | None, percent: bool | None = None) -> str:
    """'mean ± std', or just the mean where no spread is known (some published numbers)."""
    if mean is not None and percent is None:
        percent = 0.0 <= mean <= 1.0
    if std is None or mean is None:
        return fmt(mean, percent)
    return f"{fmt(mean, percent)} ± {fmt(std, percent)}"


def as_percent(summary: dict[str, Any], metric: str) -> bool | None:
    """False for a study's metrics that are plain numbers even in [0, 1] (an exponent, an R²)."""
    return False if metric in summary.get("plain_metrics", ()) else None


def _cell(cell: dict[str, Any], percent: bool | None = None) -> str:
    return mean_std(cell["mean"], cell.get("std"), percent)


def _ci(cell: dict[str, Any], percent: bool | None = None) -> str:
    lo, hi = cell["ci95"]
    if percent is None and cell.get("mean") is not None:
        percent = 0.0 <= cell["mean"] <= 1.0
    return f"[{fmt(lo, percent)}, {fmt(hi, percent)}]"


def blocks(summary: dict[str, Any], figure_files: dict[str, str]) -> list[Block]:
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
    if summary.get("claims"):
        out.append(("h2", "Verdict"))
        out.append(("list", [f"**{c['verdict']}** — {c['claim']}. {c['evidence']}." for c in summary["claims"]]))
    if summary.get("comparison"):
        out.append(("h2", "Measured beside published"))
        rows = [
            [
                r["arm"],
                r["metric"],
                mean_std(r["mean"], r["std"], as_percent(summary, r["metric"])),
                _ci(r, as_percent(summary, r["metric"])),
                mean_std(r["published_mean"], r["published_std"], as_percent(summary, r["metric"])),
                f"{100 * r['difference']:+.1f} pts"
                if abs(r["published_mean"]) <= 1 and as_percent(summary, r["metric"]) is None
                else f"{r['difference']:+.3g}",
                "yes" if r["published_inside_ci"] else "no",
            ]
            for r in summary["comparison"]
        ]
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
                            f"{_cell(c, as_percent(summary, m))} {_ci(c, as_percent(summary, m))}"
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
        out += [("img", (file, name.replace("_", " "))) for name, file in figure_files.items()]
    if summary.get("method"):
        out.append(("h2", "Method"))
        out.append(("p", summary["method"]))
    out.append(("h2", "Configuration"))
    out.append(("code", "\n".join(f"{k}: {v}" for k, v in summary["config"].items())))
    return out


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
        elif kind == "table":
            header, rows = body
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]
        elif kind == "img":
            file, caption = body
            lines += [f"![{caption}]({file})", ""]
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
        elif kind == "table":
            header, rows = content
            head = "".join(f"<th>{_inline(h)}</th>" for h in header)
            cells = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in rows)
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
    files = {}
    for name, fig in made.items():
        if fig is not None:
            figs.save(fig, run_dir / f"{name}.png")
            files[name] = f"{name}.png"
    doc = blocks(summary, files)
    (run_dir / "report.md").write_text(to_markdown(doc))
    (run_dir / "report.html").write_text(to_html(doc, run_dir))
