"""A1 hard-negatives: every claim is judged reproduced on a table where it holds, not reproduced on one
where it is false, and undetermined on too few seeds or a missing arm (hand-built tables, no training)."""

import numpy as np
import pytest

from learnlab.reporting.stats import describe
from learnlab.studies import hard_negatives as a1

SHORTCUT, RULE, EXTRAPOLATES, EASY_KEPT = a1.CLAIMS

# (arm, metric): (mean, spread), values mean + spread * (the same per-seed pattern in every cell)
HOLDS = {
    ("baseline", "easy"): (0.999, 0.001),
    ("baseline", "hard"): (0.500, 0.002),
    ("baseline", "extrap"): (0.503, 0.007),
    ("concept", "easy"): (0.975, 0.020),
    ("concept", "hard"): (0.860, 0.050),
    ("concept", "extrap"): (0.680, 0.060),
}


def table(n: int = 20, drop: str | None = None, **changed: tuple[float, float]) -> dict:
    """The table of HOLDS over n seeds, with cells changed by `arm__metric=(mean, spread)` and an arm dropped."""
    pattern = np.random.default_rng(0).standard_normal(n)
    cells = HOLDS | {tuple(key.split("__")): value for key, value in changed.items()}
    out: dict = {}
    for (arm, metric), (mean, spread) in cells.items():
        if arm != drop:
            out.setdefault(arm, {})[metric] = describe(mean + spread * pattern)
    return out


def verdict(claim, t) -> str:
    return claim.judge(t).as_dict()["verdict"]


@pytest.mark.parametrize("claim", a1.CLAIMS, ids=lambda c: c.check.__name__)
def test_claim_reproduced_where_the_published_numbers_hold(claim):
    assert verdict(claim, table()) == "reproduced"


FALSE = [
    (SHORTCUT, {"baseline__hard": (0.60, 0.01)}),  # the shortcut does better than chance on one swap
    (SHORTCUT, {"baseline__hard": (0.50, 0.08)}),  # a mean at chance, but a CI wider than ±3 points
    (SHORTCUT, {"baseline__easy": (0.95, 0.02)}),  # not near-perfect on random negatives
    (RULE, {"concept__hard": (0.70, 0.03)}),  # below the published range
    (RULE, {"concept__hard": (0.85, 0.25)}),  # the mean in range, the CI not: no evidence of the range
    (RULE, {"concept__hard": (0.80, 0.01), "baseline__hard": (0.65, 0.01)}),  # in range, gain 15 < 20 points
    (EXTRAPOLATES, {"concept__extrap": (0.58, 0.03)}),
    (EXTRAPOLATES, {"concept__extrap": (0.62, 0.15)}),  # mean above 60%, CI not
    (EASY_KEPT, {"concept__easy": (0.92, 0.02)}),
    (EASY_KEPT, {"concept__easy": (0.96, 0.10)}),  # mean above 94.6%, CI not
]


@pytest.mark.parametrize("claim, changed", FALSE, ids=lambda x: getattr(getattr(x, "check", None), "__name__", ""))
def test_claim_not_reproduced_where_it_is_false(claim, changed):
    assert verdict(claim, table(**changed)) == "not reproduced"


@pytest.mark.parametrize("claim", a1.CLAIMS, ids=lambda c: c.check.__name__)
def test_claim_undetermined_below_its_seeds_or_without_an_arm(claim):
    assert verdict(claim, table(n=claim.min_seeds - 1)) == "undetermined"
    assert verdict(claim, table(n=claim.min_seeds)) == "reproduced"
    assert verdict(claim, table(drop="concept" if claim is not SHORTCUT else "baseline")) == "undetermined"


def test_claim_evidence_says_when_the_published_mean_is_outside_our_ci():
    # inside the published range 78.3-92.3%, but tightly around 90%: the table's column says "outside"
    evidence = RULE.judge(table(concept__hard=(0.90, 0.005))).as_dict()
    assert evidence["verdict"] == "reproduced" and "its mean outside our CI" in evidence["evidence"]


def test_claim_seeds_fit_the_laptop_preset():
    assert max(c.min_seeds for c in a1.CLAIMS) <= a1.Config(**a1.PRESETS["laptop"]).seeds


def test_share_sweep_figure_has_a_caption_saying_what_the_bars_are():
    t = {
        arm: {m: describe([0.5 + share / 2, 0.51 + share / 2]) for m in ("easy", "hard", "extrap", "distant")}
        for arm, share in a1.ARMS.items()
    }
    figs = a1.figures({"table": t, "seeds": [0, 1], "config": {}}, None)
    caption = figs["share_sweep"].learnlab_caption
    assert "mean over 2 seeds" in caption and "95% CI" in caption
