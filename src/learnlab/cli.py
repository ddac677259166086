"""The `learnlab` command line: list, show, run, resume, report, runs, sweep, reproduce, export.

Bad input (unknown study, key or value) prints one line naming the problem and exits with code 2,
before any run directory is created.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from learnlab import api
from learnlab.config import config_from_yaml, parse_overrides
from learnlab.errors import Interrupted, LearnlabError
from learnlab.progress import console as _console
from learnlab.reporting.report import SMOKE, fmt, mean_std, metric_unit, shown_claims, verdict_counts
from learnlab.reporting.stats import OUTCOME
from learnlab.store.run import EXPORTS
from learnlab.store.rundir import DEFAULT_ROOT, find_runs
from learnlab.tracking import KINDS as TRACKERS


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("learnlab")
    except PackageNotFoundError:  # run from a source tree that is not installed
        import learnlab

        return learnlab.__version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", "-V", prog_name="learnlab", message="%(prog)s %(version)s")
def app() -> None:
    """A laboratory for the science of how neural networks learn.

    `learnlab list` names the studies; `learnlab show STUDY` its arms, presets and config keys."""


def _arms(arms: str | None) -> list[str] | None:
    """--arms as a list; None (all arms) only where --arms is not given: `--arms ""` names none."""
    if arms is None:
        return None
    named = [a.strip() for a in arms.split(",") if a.strip()]
    if not named:
        raise LearnlabError(f"--arms {arms!r} names no arm (leave --arms out to run them all)")
    return named


def _overrides(config: Path | None, sets: tuple[str, ...]) -> dict:
    """The config file's values (its study and preset too: build_config refuses to run them relabelled),
    then --set's."""
    values = config_from_yaml(config) if config is not None else {}
    return {**values, **parse_overrides(list(sets))}


def _preset(preset: str | None, config: Path | None) -> str:
    """--preset if given, else the saved config's preset (its values are in the file anyway)."""
    if preset is None and config is not None:
        preset = str(config_from_yaml(config).get("preset", "laptop"))
    return preset or "laptop"


def run_options(command):
    """Options shared by `run` and `sweep`."""
    options = [
        click.option("--preset", "-p", default=None, help="smoke | laptop (default) | paper"),
        click.option("--seeds", type=int, help="number of seeds per arm: seed .. seed+K-1"),
        click.option("--arms", help="comma-separated arms to run (default: all)"),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="override a config value"),
        click.option("--device", help="cpu | cuda"),
        click.option("--quiet", "-q", is_flag=True, help="no progress bar"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@app.command("list")
def list_cmd() -> None:
    """List the studies, one line each, with their presets (`learnlab show STUDY`: the details)."""
    for spec in api.list_studies():
        click.echo(spec.describe())


@app.command()
@click.argument("study")
def show(study: str) -> None:
    """A study's arms, presets (their values) and every config key: type, default, bounds, description."""
    info = api.show(study)
    screen = _console()
    screen.print(f"[bold]{info['name']}[/bold]: {escape(info['title'])}", highlight=False)
    screen.print(f"source: {escape(info['source'])}", highlight=False)
    screen.print(f"arms: {', '.join(info['arms']) or '(none: one protocol)'}", highlight=False)
    screen.print("presets (`--preset NAME`; the values each sets, the rest are the defaults):", highlight=False)
    for name, values in info["presets"].items():
        shown = ", ".join(f"{k}={_value(v)}" for k, v in values.items()) or "the defaults"
        screen.print(f"  {name}: {escape(shown)}", highlight=False)
    screen.print("config keys (`--set KEY=VALUE`, or in a --config file):", highlight=False)
    keys = Table()
    for column in ("key", "type", "default", "bounds", "description"):
        keys.add_column(column, overflow="fold")
    for key in info["keys"]:
        keys.add_row(*(escape(_value(key[c])) for c in ("key", "type", "default", "bounds", "description")))
    screen.print(keys)


def _value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(_value, value)) + "]"
    return "" if value is None else str(value)


@app.command()
@click.argument("study")
@run_options
@click.option("--out", type=click.Path(path_type=Path), help="run directory (default: runs/STUDY-PRESET-TIME)")
@click.option("--config", type=click.Path(path_type=Path), help="a config.yaml to re-run (--set follows it)")
@click.option(
    "--resume", "resume_dir", type=click.Path(path_type=Path), help="continue this interrupted run (as `resume`)"
)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=200, show_default=True, help="steps")
@click.option("--backend", type=click.Choice(["local", "ray"]), help="where a grid study's trainings run")
@click.option("--address", help="Ray cluster address for --backend ray (default: start a local one)")
@click.option(
    "--save-models",
    type=click.Choice(["none", "final", "all"]),
    help="trained models kept in models/: final weights, or all (with snapshots); default: final if under 64 MB",
)
@click.option(
    "--snapshot-every",
    type=click.IntRange(min=1),
    default=None,
    help="steps between snapshots of the models kept in models/snapshots/ (implies --save-models all)",
)
@click.option("--track", type=click.Choice(TRACKERS), help="stream every evaluation live to this tracker (an extra)")
@click.option(
    "--track-uri", help="the tracker's store (default: mlruns/, tensorboard/ or wandb/ beside the run directory)"
)
def run(
    study,
    preset,
    seeds,
    arms,
    sets,
    device,
    quiet,
    out,
    config,
    resume_dir,
    checkpoint_every,
    backend,
    address,
    save_models,
    snapshot_every,
    track,
    track_uri,
) -> None:
    """Run a study and write its run directory (summary.json, metrics.parquet, report.md/html, figures,
    and the trained models in models/).

    STUDY is one of `learnlab list`; `learnlab show STUDY` lists its arms, its presets and every key
    --set takes, with its default and bounds. `learnlab export` exports a member of a kept transformer."""
    if backend is not None or address is not None:
        sets = (*sets, *_backend_sets(study, backend, address))
    if resume_dir is not None:
        if save_models is not None or snapshot_every is not None:
            raise LearnlabError(
                "--resume keeps the models as the interrupted run asked: drop --save-models/--snapshot-every"
            )
        resumed = api.resume(
            resume_dir,
            progress=not quiet,
            study=study,
            checkpoint_every=checkpoint_every,
            track=track,
            track_uri=track_uri,
        )
        print_summary(resumed)
        return
    summary = api.run(
        study,
        preset=_preset(preset, config),
        seeds=seeds,
        arms=_arms(arms),
        overrides=_overrides(config, sets),
        device=device,
        out=out,
        progress=not quiet,
        checkpoint_every=checkpoint_every,
        save_models=save_models,
        snapshot_every=snapshot_every or 0,
        track=track,
        track_uri=track_uri,
    )
    print_summary(summary)


def _shown(summary: dict, metric: str, cell: dict) -> str:
    return mean_std(cell["mean"], cell.get("std"), metric_unit(summary, metric))


def _backend_sets(study: str, backend: str | None, address: str | None) -> list[str]:
    """--backend/--address as config values; only grid studies (several trainings) have them."""
    if "backend" not in api.get_study(study).config.model_fields:
        raise LearnlabError(
            f"--backend: {study!r} is not a grid study (its models train as one ensemble); "
            "`learnlab sweep --backend ray` spreads a grid of its runs"
        )
    return [f"backend={backend or 'ray'}"] + ([f"address={address}"] if address else [])


def print_summary(summary: dict) -> None:
    table = summary["table"]
    metrics = list(dict.fromkeys(m for cells in table.values() for m in cells))
    if len(metrics) > 8:  # a wide table: the published and headline metrics here, the rest in the report
        spec = api.STUDIES.get(summary["study"])
        named = {m for cells in summary.get("reference", {}).values() for m in cells}
        named |= {m for _, m in (spec.headline if spec else ())}
        metrics = [m for m in metrics if m in named]
    view = Table(
        title=f"{summary['study']} · {summary['preset']} · {len(summary['seeds'])} seeds · "
        f"{summary['wall_seconds']:.1f} s"
    )
    view.add_column("arm", overflow="fold")  # a narrow terminal folds a cell, never cuts it
    for m in metrics:
        view.add_column(m, justify="right", overflow="fold")
    for arm, cells in table.items():
        view.add_row(arm, *(_shown(summary, m, c) if (c := cells.get(m)) else "—" for m in metrics))
    for arm, cells in summary.get("reference", {}).items():
        view.add_row(
            f"{arm} (published)",
            *(_shown(summary, m, c) if (c := cells.get(m)) else "" for m in metrics),
            style="dim",
        )
    screen = _console()
    screen.print(view)
    if claims := shown_claims(summary):
        smoke = f" ({SMOKE})" if summary.get("preset") == "smoke" else ""
        screen.print(f"[bold]Verdicts: {verdict_counts(claims)}{smoke}[/bold]", highlight=False)
    for claim in claims:
        colour = {True: "green", False: "red"}.get(OUTCOME.get(claim["verdict"]), "yellow")
        text = f"{claim['claim']}: {claim['evidence']}"
        screen.print(f"[{colour}]{claim['verdict']}[/{colour}] {escape(text)}", highlight=False)
    if "run_dir" in summary:
        screen.print(f"run directory: {escape(summary['run_dir'])}", highlight=False)


@app.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--track", type=click.Choice(TRACKERS), help="stream every evaluation live to this tracker (an extra)")
@click.option("--track-uri", help="the tracker's store (default beside the run directory)")
def resume(run_dir: Path, quiet: bool, track: str | None, track_uri: str | None) -> None:
    """Continue an interrupted run (Ctrl-C) from its last checkpoint."""
    print_summary(api.resume(run_dir, progress=not quiet, track=track, track_uri=track_uri))


@app.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Re-render report.md, report.html and the figures of a run directory."""
    click.echo(api.report(run_dir))


@app.command()
@click.option("--root", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True)
def runs(root: Path) -> None:
    """List past runs: study, preset, seeds, date and headline numbers (a damaged one: a warning)."""
    found = find_runs(root, on_skip=lambda message: click.echo(f"warning: {message}", err=True))
    if not found:
        click.echo(f"no runs under {root}")
        return
    rows = [("run", "study", "preset", "seeds", "date", "headline")]
    for path, stored in found:
        summary = api.with_current_units(stored)
        spec = api.STUDIES.get(summary.get("study", ""))
        cells = []
        for arm, metric in spec.headline if spec else ():
            cell = summary.get("table", {}).get(arm, {}).get(metric)
            if cell:
                cells.append(f"{arm}.{metric} {fmt(cell['mean'], metric_unit(summary, metric))}")
        rows.append(
            (
                str(path),
                summary.get("study", "?"),
                summary.get("preset", "?"),
                str(len(summary.get("seeds", []))),
                summary.get("created", "")[:16].replace("T", " "),
                ", ".join(cells),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])


@app.command()
@click.argument("study")
@click.option("--grid", multiple=True, required=True, metavar="KEY=V1,V2", help="repeat for a product grid")
@run_options
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="Ray cluster address (default: start a local one)")
@click.option("--out", type=click.Path(path_type=Path), help="sweep directory; an existing one is resumed")
def sweep(study, grid, preset, seeds, arms, sets, device, quiet, backend, address, out) -> None:
    """Run a grid of independent runs (each a normal run directory) and a sweep summary table."""
    from learnlab.sweeps import run_sweep

    result = run_sweep(
        study,
        list(grid),
        preset=preset or "laptop",
        seeds=seeds,
        arms=_arms(arms),
        overrides=_overrides(None, sets),
        device=device,
        backend=backend,
        address=address,
        out=out,
        progress=not quiet,
    )
    screen = _console()
    screen.print(escape(result.headline_markdown(api.get_study(study).headline)), highlight=False, soft_wrap=True)
    screen.print(f"sweep directory: {escape(str(result.out))} (all metrics: sweep.md, sweep.parquet)", highlight=False)


@app.command()
@click.option("--preset", default="laptop", show_default=True, help="every study's preset of this name")
@click.option("--only", metavar="A1,C3,...", help="studies by STUDIES.md code or name (default: all)")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="Ray cluster address (default: start a local one)")
@click.option("--device", help="cpu, cuda, cuda:1, ... (default: each preset's)")
@click.option("--out", type=click.Path(path_type=Path), help="default runs/reproduce-PRESET; an existing one continues")
@click.option("--quiet", is_flag=True, help="no progress bars")
def reproduce(preset, only, backend, address, device, out, quiet) -> None:
    """Run every study (or --only some) and write an index page of all verdicts (index.html, index.md).

    Run again to continue: finished studies are kept, an interrupted one resumes."""
    from learnlab.sweeps.reproduce import reproduce as run_all

    names = [n.strip() for n in only.split(",")] if only is not None else None
    if names is not None and not all(names):
        raise LearnlabError(f"--only {only!r}: name at least one study, separated by commas")
    result = run_all(
        preset=preset, only=names, backend=backend, address=address, device=device, out=out, progress=not quiet
    )
    for study in result["studies"]:
        done = f"{study['wall_seconds']:.0f} s" if "wall_seconds" in study else f"did not finish: {study['error']}"
        click.echo(f"  {study['study']:<24} {done}")
    minutes = result["total_seconds"] / 60
    click.echo(f"{result['summary_line']}; {minutes:.1f} min in all")
    click.echo(f"index: {result['index']}")


@app.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--member", type=int, required=True, help="which member (0..K-1: the kept model's members)")
@click.option(
    "--to", "to", type=click.Choice(list(EXPORTS)), required=True, help="hf: a Hugging Face GPT-2; transformer-lens"
)
@click.option("--model", "name", help="which kept model (default: the run's only transformer)")
def export(run_dir: Path, out: Path, member: int, to: str, name: str | None) -> None:
    """Export one member of a run's trained transformer to OUT (a new directory).

    --to hf: a GPT-2 checkpoint and tokenizer, `transformers.GPT2LMHeadModel.from_pretrained(OUT)`, with
    learnlab's logits; --to transformer-lens: `learnlab.interop.load_transformer_lens(OUT)` rebuilds a
    HookedTransformer with learnlab's activations. Needs the interop extra: pip install 'learnlab[interop]'."""
    target = api.export(run_dir, member=member, to=to, out=out, model=name)
    click.echo(f"member {member} of {run_dir} exported to {target} ({to})")


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors with exit code 2 instead of tracebacks for bad input."""
    try:
        code = app.main(args=argv, prog_name="learnlab", standalone_mode=False)
    except Interrupted as err:
        click.echo(str(err), err=True)
        return 130
    except LearnlabError as err:
        click.echo(f"error: {err}", err=True)
        return 2
    except click.exceptions.NoArgsIsHelpError as err:
        click.echo(err.format_message())
        return 0
    except click.ClickException as err:
        click.echo(f"error: {err.format_message()}", err=True)
        return err.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted: no run directory was written", err=True)
        return 130
    return code if isinstance(code, int) else 0


def entry() -> None:
    """The `learnlab` command: main(), then a quick exit. Tearing down torch, pandas, scipy and
    matplotlib at interpreter exit takes about half a second, longer than some whole runs; every file
    is closed by now, so the process ends at once. (With Ray loaded, its exit handlers must run.)"""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if "ray" in sys.modules:
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    entry()
