"""D1 compositional: each claim on a table where it holds and one where it fails, bad input through the
CLI (one line, exit 2, nothing written), and the smoke run end to end (tables, figures, the kept model)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import cli

import learnlab
from learnlab.reporting.stats import describe
from learnlab.studies import compositional as d1
from learnlab.tasks import scan

RUN = ["run", "compositional", "--preset", "smoke", "--quiet"]
HOLDS = {"simple": 0.98, "turn_left": 0.85, "jump": 0.01, "length": 0.12, "tf/simple": 0.99, "tf/length": 0.02}
FAILS = {"simple": 0.90, "turn_left": 0.55, "jump": 0.20, "length": 0.40, "tf/simple": 0.90, "tf/length": 0.60}


def table(values: dict[str, float], seeds: int = 5) -> dict:
    wiggle = np.linspace(-0.005, 0.005, seeds)
    return {arm: {"exact": describe(list(np.clip(v + wiggle, 0, 1)))} for arm, v in values.items()}


@pytest.mark.parametrize("claim", range(len(d1.CLAIMS)))
def test_each_claim_holds_on_a_table_made_to_hold_it_and_fails_on_one_made_to_fail_it(claim):
    c = d1.CLAIMS[claim]
    assert c.judge(table(HOLDS)).held is True
    assert c.judge(table(FAILS)).held is False
    assert c.judge(table(HOLDS, seeds=2)).held is None  # too few seeds
    assert c.judge({"simple": table(HOLDS)["simple"]} if claim else {}).held is None  # arm not measured


@pytest.mark.parametrize("claim", [2, 3, 5])
def test_a_failure_to_generalize_is_undetermined_unless_the_model_learned_the_simple_split(claim):
    untrained = table({**HOLDS, "simple": 0.5, "tf/simple": 0.5})
    verdict = d1.CLAIMS[claim].judge(untrained)
    assert verdict.held is None and "not learned" in verdict.evidence
    assert d1.CLAIMS[claim].judge(table({**FAILS, "simple": 0.9, "tf/simple": 0.9})).held is False


def test_the_transformer_length_claim_asks_whether_the_transformer_learned_not_the_gru():
    verdict = d1.CLAIMS[5].judge(table({**HOLDS, "simple": 0.99, "tf/simple": 0.5}))
    assert verdict.held is None and "tf/simple" in verdict.evidence


def test_a_claim_whose_ci_straddles_its_bound_is_not_reproduced():
    straddle = {"simple": {"exact": describe([0.93, 0.97, 0.99, 0.94, 0.96])}}
    assert d1.CLAIMS[0].judge(straddle).held is False


def test_the_laptop_preset_has_the_seeds_every_claim_needs():
    cfg = d1.Config(**d1.PRESETS["laptop"])
    assert cfg.seeds >= max(c.min_seeds for c in d1.CLAIMS) and cfg.seeds >= 5
    assert set(d1.BOUNDS) == set(cfg.arm_names)  # every claimed arm, and no other


def test_curve_arms_of_another_primitive_draw_from_its_split():
    cfg = d1.Config(splits=["simple"], primitive="walk", curve=[2], arms=list(d1.ARMS))
    assert cfg.arm_names == ["simple", "walk+2", "tf/simple"]  # the transformer learns the GRU's splits by default
    s = d1.arm_split(cfg, "walk+2", seed=3)
    assert len(s.test) == len(scan.primitive_split("walk").test) - 2


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--set", "splits=[simple, jmup]"], "jmup"), (["--set", "primitive=fly"], "fly"),
     (["--set", "curve=[4, 4]"], "curve"), (["--arms", "simple,nope"], "nope"),
     (["--set", "tf_splits=[simple, lenght]"], "lenght"), (["--set", "tf_heads=3"], "tf_heads")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, argv, named):
    code, _, err = cli([*RUN, *argv])
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


def test_smoke_run_end_to_end(tmp_path):
    out = tmp_path / "run"
    code, _, err = cli([*RUN, "--out", str(out)])
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    cfg = d1.Config(**d1.PRESETS["smoke"])
    assert list(summary["table"]) == [*scan.SPLITS, "jump+4", "tf/simple", "tf/length"]
    for cells in summary["table"].values():
        assert {"exact", "token"} <= set(cells) and len(cells["exact"]["values"]) == cfg.seeds
        assert 0 <= cells["exact"]["mean"] <= cells["token"]["mean"] <= 1
    assert {c["verdict"] for c in summary["claims"]} == {"undetermined"}
    for figure in ("splits", "primitive_curve", "length_breakdown"):
        assert (out / f"{figure}.png").is_file()
    run = learnlab.load_run(out)
    assert (run.metrics.split == "by_length").any()
    assert set(run.metrics[run.metrics.split == "by_length"].arm) == {"length", "tf/length"}
    for name, arms in (("seq2seq", 6), ("transformer", 2)):
        model = run.models[name].model
        assert model.n_models == arms * cfg.seeds
        src = torch.as_tensor(scan.encode(scan.all_commands()[:3])[0])[None].expand(model.n_models, -1, -1)
        assert model.greedy(src, 5, scan.BOS, scan.EOS).shape == (model.n_models, 3, 5)


def test_members_with_smaller_test_sets_are_scored_on_their_own_lines_only():
    cfg = d1.Config(splits=["simple", "turn_left"], curve=[], seeds=1, eval_size=1500)
    data = d1.Data(cfg, [("simple", 0), ("turn_left", 0)])
    src, tgt, valid = data.test_set()
    assert valid.sum(1).tolist() == [1500, 1208] and src.shape[1] == 1500
    exact = torch.ones(2, 1500, dtype=torch.bool)
    exact[1, 1208:] = False  # padding rows: whatever they score must not count
    token = torch.full((2, 1500), float("nan"))
    token[:, :1208] = 0.5
    token[0] = 0.5
    assert d1._means(exact, valid).tolist() == [1.0, 1.0]
    assert d1._means(token, valid).tolist() == [0.5, 0.5]
