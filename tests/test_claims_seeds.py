"""Across studies: every laptop preset runs enough seeds for each of its claims (`Claim.min_seeds`), and
a claim judged on too few seeds or on missing data is undetermined."""

import pytest

from learnlab.api import resolve
from learnlab.reporting.stats import describe
from learnlab.studies import STUDIES
from learnlab.studies.base import Claim


@pytest.mark.parametrize("name", list(STUDIES))
def test_the_laptop_preset_runs_the_seeds_its_claims_need(name):
    spec, cfg = resolve(name, preset="laptop")
    needed = max((c.min_seeds for c in spec.claims), default=0)
    assert cfg.seeds >= needed, f"{name}: laptop preset runs {cfg.seeds} seeds; its claims need {needed}"


def test_a_claim_below_its_seeds_is_undetermined_whatever_the_check_says():
    claim = Claim("always true", lambda t: (True, "yes"), min_seeds=5)
    few = {"a": {"m": describe([1.0, 2.0, 3.0])}}
    enough = {"a": {"m": describe([1.0, 2.0, 3.0, 4.0, 5.0])}}
    verdict = claim.judge(few).as_dict()
    assert verdict["verdict"] == "undetermined" and "needs 5 seeds" in verdict["evidence"]
    assert claim.judge(enough).as_dict()["verdict"] == "reproduced"


def test_a_missing_arm_or_metric_is_undetermined_not_reproduced():
    claim = Claim("needs arm b", lambda t: (t["b"]["m"]["mean"] > 0, "b measured"))
    assert claim.judge({"a": {"m": describe([1.0, 2.0, 3.0])}}).as_dict()["verdict"] == "undetermined"
