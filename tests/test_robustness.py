"""A4 robustness: the smoke preset end to end, the protocol's invariants, and every claim judged on
hand-built tables (reproduced where it holds, not reproduced where it is false, undetermined on too few
seeds or a missing arm)."""

import numpy as np
import pytest
from pydantic import ValidationError

import learnlab
from learnlab.reporting.stats import describe
from learnlab.studies import robustness as a4


def test_smoke_run_measures_every_intervention(tmp_path):
    summary = learnlab.run("robustness", preset="smoke", out=tmp_path / "r", progress=False)
    table = summary["table"]
    assert list(table) == ["a1-baseline", "a1-concept", "a2-gen0", "a2-gen2"]
    settings = ["clean"] + [f"int{b}_{s}" for b in (8, 6, 4, 3) for s in ("tensor", "channel")]
    settings += ["dropout10", "dropout20", "dropout30", "dropout50"]
    accuracies = [f"{t}_{s}" for t in ("hard", "easy") for s in settings]
    drops = [f"drop_{t}_{s}" for t in ("hard", "easy") for s in settings[1:]]
    for cells in table.values():
        assert list(cells) == accuracies + drops
        for metric in drops:
            test, setting = metric.removeprefix("drop_").split("_", 1)
            clean = cells[f"{test}_clean"]["values"]
            after = cells[f"{test}_{setting}"]["values"]
            assert cells[metric]["values"] == pytest.approx([a - c for a, c in zip(after, clean, strict=True)])
    # A2's generation 0 is A1's concept model trained again: every measurement agrees exactly
    assert table["a2-gen0"] == table["a1-concept"]
    assert len(summary["claims"]) == len(a4.CLAIMS)
    assert (tmp_path / "r" / "robustness.png").is_file()
    assert "bars = 95% CI of the mean (t-interval)" in (tmp_path / "r" / "report.md").read_text()


def test_config_rejects_bad_widths_and_probabilities():
    for bad in ({"bits": [1]}, {"bits": [4, 4]}, {"dropout": [0.0]}, {"dropout": [0.125]}, {"arms": ["gen2"]}):
        with pytest.raises(ValidationError):
            a4.Config(**bad)


# --- claims on hand-built tables ----------------------------------------------------------------------

SURVIVES, BREAKS, DROPOUT = a4.CLAIMS
CLEAN = {"a1-baseline": 0.50, "a1-concept": 0.86, "a2-gen0": 0.86, "a2-gen2": 0.68}
HOLDS = {  # (arm, setting): (mean, spread) of the change in hard accuracy
    ("a1-concept", "int8_channel"): (0.0, 0.0),  # INT8 changes no prediction: every drop exactly 0
    ("a1-concept", "int4_channel"): (-0.005, 0.005),
    ("a1-concept", "int4_tensor"): (-0.03, 0.01),
    ("a2-gen2", "int4_channel"): (-0.06, 0.01),
    ("a2-gen2", "dropout30"): (-0.08, 0.02),
    ("a2-gen0", "dropout30"): (-0.03, 0.01),
}


def table(n: int = 10, drop: str | None = None, **changed: tuple[float, float]) -> dict:
    """Per arm `hard_clean` and `drop_hard_{setting}` over n seeds; a2-gen0 is a1-concept (the same model)
    except where HOLDS or `arm__setting=(mean, spread)` say otherwise; unlisted changes are 0."""
    rng = np.random.default_rng(0)
    cells = HOLDS | {tuple(key.replace("_", "-", 1).split("__")): value for key, value in changed.items()}
    out: dict = {}
    for arm, clean in CLEAN.items():
        source = "a1-concept" if arm == "a2-gen0" else arm
        out[arm] = {"hard_clean": describe(clean + 0.02 * rng.standard_normal(n))}
        for setting in ("int8_channel", "int4_channel", "int4_tensor", "dropout30"):
            mean, spread = cells.get((arm, setting), cells.get((source, setting), (0.0, 0.0)))
            out[arm][f"drop_hard_{setting}"] = describe(mean + spread * rng.standard_normal(n))
    return {arm: cells for arm, cells in out.items() if arm != drop}


def verdict(claim, t) -> str:
    return claim.judge(t).as_dict()["verdict"]


def _name(x) -> str:
    return getattr(getattr(x, "check", None), "__qualname__", "").split(".")[0]


@pytest.mark.parametrize("claim", a4.CLAIMS, ids=_name)
def test_claim_reproduced_where_it_holds(claim):
    assert verdict(claim, table()) == "reproduced"


FALSE = [
    (SURVIVES, {"a1_concept__int4_channel": (-0.05, 0.01)}),  # INT4 costs 5 points
    (SURVIVES, {"a1_concept__int4_channel": (0.0, 0.03)}),  # a mean of 0, a CI wider than ±2 points
    (SURVIVES, {"a1_concept__int4_channel": (0.05, 0.01)}),  # a change is a change, even a gain
    (BREAKS, {"a2_gen2__int4_channel": (-0.005, 0.005)}),  # Gen2 loses no more than Gen0
    (BREAKS, {"a2_gen2__int4_channel": (-0.015, 0.003)}),  # more than Gen0, but under 2 points: survives
    (DROPOUT, {"a2_gen2__dropout30": (-0.03, 0.01)}),  # Gen2 loses as much as Gen0
    (DROPOUT, {"a2_gen2__dropout30": (-0.01, 0.01)}),  # less
]


@pytest.mark.parametrize("claim, changed", FALSE, ids=_name)
def test_claim_not_reproduced_where_it_is_false(claim, changed):
    assert verdict(claim, table(**changed)) == "not reproduced"


@pytest.mark.parametrize("claim", a4.CLAIMS, ids=_name)
def test_claim_undetermined_below_its_seeds_or_without_an_arm(claim):
    assert verdict(claim, table(n=claim.min_seeds - 1)) == "undetermined"
    assert verdict(claim, table(n=claim.min_seeds)) == "reproduced"
    assert verdict(claim, table(drop="a1-concept" if claim is SURVIVES else "a2-gen2")) == "undetermined"


def test_claim_seeds_fit_the_laptop_preset():
    assert max(c.min_seeds for c in a4.CLAIMS) <= a4.Config(**a4.PRESETS["laptop"]).seeds
