"""What a study is: a config, presets, arms, a protocol that measures, and the claims it tests.

A study's `measure(cfg, ctx)` runs the protocol (`ctx`: a `learnlab.engine.context.RunContext`) and
returns long-format measurements (arm, seed, step, split, metric, value). Rows with split == "test" at
the final step are the study's result table; the rest are learning curves. Everything else —
statistics, the comparison with the published numbers, verdicts, the run directory and the report — is
shared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from learnlab.config import StudyConfig
from learnlab.engine.context import RunContext
from learnlab.reporting.stats import WORDS, Table

COLUMNS = ["arm", "seed", "step", "split", "metric", "value"]


@dataclass(frozen=True)
class Verdict:
    claim: str
    held: bool | None  # None: this run cannot decide (one seed gives no confidence interval)
    evidence: str

    def as_dict(self, vocabulary: str = "published") -> dict[str, Any]:
        return {"claim": self.claim, "verdict": WORDS[vocabulary][self.held], "evidence": self.evidence}


def every(outcomes: Iterable[bool | None]) -> bool | None:
    """A claim that must hold in every part: False if one part fails, else None if one is undecided."""
    outcomes = list(outcomes)
    return False if False in outcomes else None if None in outcomes else True


MIN_SEEDS = 3  # a claim's default: the t-interval is valid from 2 seeds, but has next to no power there


@dataclass(frozen=True)
class Claim:
    """A published claim and the test that decides, from our table, whether it held (None: the run
    cannot decide, e.g. only one seed reached the phase the claim is about).

    `min_seeds` is the number of seeds per arm the test needs to mean anything: below it the verdict is
    "undetermined" whatever the check would say. A test that must hold "in every seed" needs at least 5
    (under a fair coin, 2 seeds agree by chance 25% of the time, 5 seeds about 3%)."""

    text: str
    check: Callable[[Table], tuple[bool | None, str]]
    min_seeds: int = MIN_SEEDS

    def judge(self, table: Table) -> Verdict:
        per_seed = [cell for cells in table.values() for cell in cells.values() if not cell.get("derived")]
        seeds = min((len(cell["values"]) for cell in per_seed), default=0)
        if per_seed and seeds < self.min_seeds:
            return Verdict(self.text, None, f"needs {self.min_seeds} seeds per arm; this run has {seeds}")
        try:
            held, evidence = self.check(table)
        except KeyError as missing:  # an arm or metric this run did not measure
            return Verdict(self.text, None, f"not measured in this run ({missing})")
        return Verdict(self.text, held, evidence)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    source: str
    method: str  # the protocol in a paragraph, for the report
    config: type[StudyConfig]
    presets: dict[str, dict[str, Any]]
    arms: tuple[str, ...]
    measure: Callable[[Any, RunContext], pd.DataFrame]
    reference: Table = field(default_factory=dict)  # published numbers, {arm: {metric: {mean, std}}}
    claims: tuple[Claim, ...] = ()
    headline: tuple[tuple[str, str], ...] = ()  # (arm, metric) cells shown by `learnlab runs`
    figures: Callable[[dict[str, Any], pd.DataFrame], dict[str, Any]] | None = None
    notes: Callable[[dict[str, Any]], list[str]] | None = None  # findings beyond the source
    extras: dict[str, Any] = field(default_factory=dict)  # added to summary.json, e.g. {"chance": 0.1}
    # cells computed from all measurements at once (a fit with a bootstrap CI), {arm: {metric: cell}};
    # such a cell carries "derived": True, and its "values" are not per seed
    derived: Callable[[pd.DataFrame, Any], Table] | None = None
    plain_metrics: tuple[str, ...] = ()  # metrics that are numbers, not fractions, even inside [0, 1]
    point_metrics: tuple[str, ...] = ()  # differences of fractions: signed percentage points
    # "published" (reproduced / not reproduced) or "hypothesis" (held / did not hold); None: "published" for
    # learnlab's own studies, "hypothesis" for one defined outside the package
    vocabulary: str | None = None

    @property
    def verdict_words(self) -> str:
        if self.vocabulary is not None:
            return self.vocabulary
        return "published" if self.measure.__module__.startswith("learnlab.studies.") else "hypothesis"

    @property
    def codes(self) -> tuple[str, ...]:
        """The STUDIES.md sections it reproduces, from its title's closing parentheses: '... (C2, C7)'."""
        tail = self.title.rsplit("(", 1)[-1].rstrip(")") if self.title.endswith(")") else ""
        return tuple(c for c in (part.strip() for part in tail.split(",")) if re.fullmatch(r"[A-Z]\d+", c))

    def describe(self) -> str:
        return f"{self.name:<22} {self.title} [presets: {', '.join(self.presets)}]"
