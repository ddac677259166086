"""Helpers the test modules share (pytest puts this folder on sys.path: `from helpers import cli`)."""

from __future__ import annotations

from click.testing import CliRunner

from learnlab.cli import main


def cli(argv: list[str]) -> tuple[int, str, str]:
    """`learnlab ARGV` in this process, as the command calls it: (exit code, stdout, stderr)."""
    with CliRunner().isolation(env={"COLUMNS": None}) as (out, err, _):
        code = main(argv)
    return code, out.getvalue().decode(), err.getvalue().decode()
