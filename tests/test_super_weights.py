"""super-weights: spikes found where a weight was planted, members searched alone, entry edits that undo
bit for bit, every claim on a table where it holds and one where it fails, bad input through the CLI, and
a short run end to end whose kept models a second run loads with from_run."""

import copy
import json

import numpy as np
import pytest
import torch
from helpers import cli

import learnlab
from learnlab.engine.rng import generator
from learnlab.interventions import quantized_copy
from learnlab.interventions import super_weight as sw
from learnlab.models.transformer import EnsembleTransformer
from learnlab.reporting.stats import describe
from learnlab.studies import super_weights as sws

RUN = ["run", "super-weights", "--preset", "smoke", "--quiet"]
ROW, COL = 5, 3  # the planted super weight of member 1, layer 1


def planted(k: int = 2) -> EnsembleTransformer:
    """A small random transformer; member 1's layer-1 MLP channel ROW always fires (bias 8) and writes
    through a weight of 40 into output channel COL: a massive activation and its super weight."""
    model = EnsembleTransformer(k, 20, 8, d_model=16, n_layers=2, n_heads=2, d_mlp=32)
    model.reset_parameters([generator(s, "init") for s in range(k)])
    with torch.no_grad():
        model.blocks[1].mlp.b_in[1, ROW] = 8.0
        model.blocks[1].mlp.w_out[1, ROW, COL] = 40.0
    return model.eval()


def tokens() -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.randint(0, 20, (6, 8), generator=generator(0, "tokens"))
    return t, torch.ones_like(t, dtype=torch.bool)


def test_the_planted_super_weight_is_found_and_only_in_its_member():
    model = planted()
    spikes = sw.find_spikes(model, *tokens())
    top = sw.candidates(spikes, 1)
    assert top[1, 0].tolist() == [1, ROW, COL]
    assert spikes.out_ratio[1, 1] > 50 * spikes.out_ratio[0, 1]  # member 0 has no spike
    assert spikes.in_channel[1, 1] == ROW
    # member 0 alone (a K=1 copy) finds the same spikes as inside the ensemble
    alone = EnsembleTransformer(1, 20, 8, d_model=16, n_layers=2, n_heads=2, d_mlp=32)
    alone.load_state_dict({n: p[:1] for n, p in model.state_dict().items()})
    solo = sw.find_spikes(alone.eval(), *tokens())
    torch.testing.assert_close(solo.out_max[0], spikes.out_max[0])
    assert torch.equal(sw.candidates(solo, 3)[0], sw.candidates(spikes, 3)[0])


def test_zeroing_the_super_weight_removes_the_spike_and_undoes_exactly():
    model = planted()
    before = copy.deepcopy(model.state_dict())
    spikes = sw.find_spikes(model, *tokens())
    top = sw.candidates(spikes, 1)
    with sw.scaled(model, top, 0.0):
        assert model.blocks[1].mlp.w_out[1, ROW, COL] == 0
        after = sw.find_spikes(model, *tokens())
        assert after.out_max[1, 1] < spikes.out_max[1, 1] / 10
    for name, p in model.state_dict().items():
        assert torch.equal(p, before[name]), name
    with sw.scaled(model, top, 2.5):
        assert model.blocks[1].mlp.w_out[1, ROW, COL] == 100.0
    assert torch.equal(model.blocks[1].mlp.w_out, before["blocks.1.mlp.w_out"])


def test_largest_leaves_out_the_candidates_and_random_entries_are_distinct():
    model = planted()
    top = sw.candidates(sw.find_spikes(model, *tokens()), 1)
    assert sw.largest(model, 1)[1, 0].tolist() == [1, ROW, COL]  # 40 is the largest weight
    other = sw.largest(model, 4, exclude=top)
    assert [1, ROW, COL] not in other[1].tolist()
    picks = sw.random_entries(model, 50, generator(0, "r"))
    assert picks.shape == (2, 50, 3)
    for m in range(2):
        assert len({tuple(e) for e in picks[m].tolist()}) == 50
    assert picks[..., 0].max() < 2 and picks[..., 1].max() < 32 and picks[..., 2].max() < 16


def test_keeping_the_super_weight_changes_int4_only_around_it():
    model = planted()
    top = sw.candidates(sw.find_spikes(model, *tokens()), 1)
    params = {"blocks.0.mlp.w_out": None, "blocks.1.mlp.w_out": None}
    plain = quantized_copy(model, 4, params).blocks[1].mlp.w_out
    kept = quantized_copy(model, 4, params, keep=sw.keep_masks(model, top)).blocks[1].mlp.w_out
    assert kept[1, ROW, COL] == 40.0
    assert (plain[1] != 0).sum() < (kept[1] != 0).sum()  # the outlier no longer sets member 1's grid


# --- the claims on hand-made tables --------------------------------------------------------------------


def table(top: float, random: float, largest: float, int4: float, int4_keep: float, base_peak: float,
          long_peak: float, seeds: int = 5) -> dict:  # fmt: skip
    """Two arms; per-seed values: the given means plus small seed noise."""
    noise = np.linspace(-0.05, 0.05, seeds)
    out = {}
    for arm, peak in (("base", base_peak), ("long", long_peak)):
        values = {
            "zero_top.log10_ppl_ratio": top, "zero_random.log10_ppl_ratio": random,
            "zero_largest.log10_ppl_ratio": largest, "int4.log10_ppl_ratio": int4,
            "int4_keep.log10_ppl_ratio": int4_keep, "log10_peak_out_ratio": peak,
            "zero_top.acc": 0.1, "zero_random.acc": 0.8, "zero_largest.acc": 0.8, "int4.acc": 0.5,
            "int4_keep.acc": 0.8, "intact.acc": 0.8,
        }  # fmt: skip
        out[arm] = {m: describe(v + noise * (i + 1)) for i, (m, v) in enumerate(values.items())}
    return out


HOLDS = {"top": 3.0, "random": 0.0, "largest": 0.1, "int4": 1.0, "int4_keep": 0.1, "base_peak": 2.5, "long_peak": 3.5}
FAILS = {
    "zero_vs_random": {"top": 0.2},  # hurts, but far less than 2x perplexity
    "zero_vs_largest": {"largest": 3.5},
    "int4": {"int4_keep": 1.2},
    "grow": {"long_peak": 2.0},
    "massive": {"base_peak": 1.0},
}
CLAIM = {"massive": 0, "zero_vs_random": 1, "zero_vs_largest": 2, "int4": 3, "grow": 4}


def test_every_claim_holds_on_a_table_where_it_should():
    verdicts = [c.judge(table(**HOLDS)).as_dict()["verdict"] for c in sws.CLAIMS]
    assert verdicts == ["reproduced"] * len(sws.CLAIMS)


@pytest.mark.parametrize("name", list(FAILS))
def test_each_claim_fails_on_a_table_where_it_is_false(name):
    t = table(**{**HOLDS, **FAILS[name]})
    assert sws.CLAIMS[CLAIM[name]].judge(t).as_dict()["verdict"] == "not reproduced"


def test_missing_evidence_is_undetermined():
    t = table(**HOLDS)
    only_base = {"base": t["base"]}
    assert sws.CLAIMS[CLAIM["grow"]].judge(only_base).as_dict()["verdict"] == "undetermined"
    no_int4 = {a: {m: c for m, c in cells.items() if not m.startswith("int4")} for a, cells in t.items()}
    assert sws.CLAIMS[CLAIM["int4"]].judge(no_int4).as_dict()["verdict"] == "undetermined"
    assert {c.judge(table(**HOLDS, seeds=2)).as_dict()["verdict"] for c in sws.CLAIMS} == {"undetermined"}


# --- the CLI and a whole run ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--set", "k=0"], "k"), (["--set", "k=-2"], "k"), (["--set", "scales=[]"], "scales"),
     (["--set", "scales=[1, -1]"], "scales"), (["--set", "bits=[16]"], "bits"), (["--set", "bits=[]"], "bits"),
     (["--set", "from_run=nowhere"], "from_run")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, argv, named):
    code, _, err = cli([*RUN, *argv])
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


def test_from_run_that_is_a_directory_but_not_a_run_is_refused(in_tmp):
    (in_tmp / "empty").mkdir()
    code, _, err = cli([*RUN, "--set", "from_run=empty"])
    assert code == 2 and "from_run" in err and "not a run directory" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in in_tmp.iterdir()) == ["empty"]


def test_a_short_run_end_to_end_and_again_from_its_kept_models(tmp_path):
    out = tmp_path / "run"
    short = ["--set", "arms=[base]", "--set", "steps=10", "--set", "random_draws=1"]
    code, _, err = cli([*RUN, *short, "--out", str(out)])
    assert code == 0, err
    t = json.loads((out / "summary.json").read_text())["table"]
    cells = t["base"]
    for m in ("L0.in_ratio", "L1.out_ratio", "zero_top.acc", "zero_random.log10_ppl_ratio", "scale_2.acc",
              "int4_keep.loss", "intact.log_ppl"):  # fmt: skip
        assert len(cells[m]["values"]) == 2
    assert cells["scale_1.log10_ppl_ratio"]["mean"] == pytest.approx(0.0, abs=1e-6)  # scale 1: the intact model
    assert (out / "spike_ratios.png").exists() and (out / "scale.png").exists() and (out / "zeroing.png").exists()
    model = learnlab.load_run(out).models["base"].model
    assert model.n_models == 2
    again = tmp_path / "again"
    code, _, err = cli([*RUN, "--set", f"from_run={out}", "--set", "random_draws=1", "--out", str(again)])
    assert code == 0, err
    loaded = json.loads((again / "summary.json").read_text())["table"]["base"]
    for m in ("L1.out_ratio", "zero_top.log10_ppl_ratio", "int4.loss"):
        assert loaded[m]["values"] == pytest.approx(cells[m]["values"], rel=1e-5)
