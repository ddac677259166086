"""attention-patching: attention masses on hand-made patterns, stage choice, the patched gradient, paired
cells on a hand-made frame, a smoke run, and Ray = local."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import learnlab
from learnlab.studies import attention_patching as ap
from learnlab.studies import knowledge_acquisition as ka


@pytest.fixture(scope="module")
def smoke():
    cfg = ap.Config(**ap.PRESETS["smoke"])
    enc = ka.world_of(cfg)
    return cfg, enc, ap.eval_set(cfg, enc)


def one_hot_patterns(batch, key_of_query, layers=2, heads=2):
    """Patterns [1, B, heads, T, T] putting all attention of query q on key_of_query(q)."""
    b, t = batch.tokens.shape
    pattern = torch.zeros(1, b, heads, t, t)
    for q in range(t):
        pattern[..., q, key_of_query(q)] = 1.0
    return {name: pattern for name in ap.pattern_names(layers)}


def test_attention_masses_on_hand_made_patterns(smoke):
    _, _, batch = smoke
    to_bos = ap.masses(one_hot_patterns(batch, lambda q: 0), batch)
    to_self = ap.masses(one_hot_patterns(batch, lambda q: q), batch)
    for layer in (0, 1):
        assert to_bos[f"bos_attention_l{layer}"].item() == 1.0 and to_bos[f"name_attention_l{layer}"].item() == 0
        # the predicting position is the last attribute-type word: attending to itself is "type"
        assert to_self[f"type_attention_l{layer}"].item() == 1.0 and to_self[f"name_attention_l{layer}"].item() == 0
    # uniform causal attention: the name's share of the tokens so far, averaged over predicting positions
    t = batch.tokens.shape[1]
    uniform = torch.ones(t, t).tril()
    uniform = (uniform / uniform.sum(-1, keepdim=True)).expand(1, len(batch.tokens), 2, t, t)
    got = ap.masses({n: uniform for n in ap.pattern_names(2)}, batch)["name_attention_l1"].item()
    b, q = torch.nonzero(batch.first_value[:, 1:], as_tuple=True)
    share = torch.stack([batch.name_mask[i, : j + 1].float().mean() for i, j in zip(b, q, strict=True)]).mean()
    assert got == pytest.approx(share.item(), rel=1e-5) and 0.2 < got < 0.6


def test_stages_follow_the_reference_phases_and_fall_back_to_nominal_points():
    available = list(range(0, 801, 25))
    steps = ap.stage_steps(250.0, 450.0, 800, available)
    assert steps == {"phase1": 125, "early-plateau": 300, "late-plateau": 400, "after-plateau": 525, "end": 800}
    assert ap.stage_steps(25.0, 100.0, 800, available)["phase1"] == 0  # nothing strictly before p1: the start
    nominal = ap.stage_steps(math.nan, math.nan, 800, available)  # p1 = 200, p2 = 500
    assert nominal == {"phase1": 100, "early-plateau": 275, "late-plateau": 425, "after-plateau": 575, "end": 800}


def test_patched_attention_takes_no_gradient_and_reference_stays_frozen(smoke):
    cfg, enc, batch = smoke
    model, reference = ka.build_model(cfg, enc, [0, 1]), ka.build_model(cfg, enc, [5, 6])
    reference.requires_grad_(False)
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    tokens = batch.tokens[:4].expand(2, -1, -1)
    ap.patched_loss(cfg, enc.pad_id, reference)(model, tokens).sum().backward()
    d = cfg.d_model
    for block in model.blocks:
        grad = block.attn.w_qkv.grad
        assert grad[..., : 2 * d].abs().max() == 0 and grad[..., 2 * d :].abs().max() > 0  # queries, keys / values
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in before.items())
    # with its own initial weights as reference, the patched model computes what the plain one does
    own = ka.build_model(cfg, enc, [0, 1]).requires_grad_(False)
    plain = ka.lm_loss(cfg, enc.pad_id)(model, tokens)
    torch.testing.assert_close(ap.patched_loss(cfg, enc.pad_id, own)(model, tokens), plain)


def test_paired_cells_on_a_hand_made_frame():
    values = {  # arm: (plateau_length per seed, acc_auc per seed)
        "unpatched": ([200, 300], [0.2, 0.3]),
        "untrained-patterns": ([250, math.nan], [0.25, 0.1]),
        "patch-end": ([0, 100], [0.5, 0.6]),
    }
    rows = [
        {"arm": arm, "seed": s, "step": 800, "split": "test", "metric": metric, "value": v[s]}
        for arm, pair in values.items()
        for metric, v in zip(("plateau_length", "acc_auc"), pair, strict=True)
        for s in (0, 1)
    ]
    cells = ap.paired(pd.DataFrame(rows), None)
    assert set(cells) == {"untrained-patterns", "patch-end"}
    end = cells["patch-end"]
    assert end["plateau_length_vs_unpatched"]["values"] == [-200, -200] and end["acc_auc_vs_untrained"]["derived"]
    assert end["acc_auc_vs_unpatched"]["mean"] == pytest.approx(0.3)
    assert end["acc_auc_vs_untrained"]["values"] == pytest.approx([0.25, 0.5])
    untrained = cells["untrained-patterns"]
    assert set(untrained) == {"plateau_length_vs_unpatched", "acc_auc_vs_unpatched"}
    assert untrained["plateau_length_vs_unpatched"]["values"] == [50, None]  # a missing seed stays missing
    assert untrained["plateau_length_vs_unpatched"]["missing"] == 1


def test_a_plateau_that_never_ends_is_longer_than_any_and_no_phase_one_is_no_evidence():
    def cells(p1, length, step=None):
        end = [None if a is None or b is None else a + b for a, b in zip(p1, length, strict=True)]
        return {
            "phase1_end_step": {"values": p1},
            "plateau_length": {"values": length},
            "plateau_end_step": {"values": end},
            "final_acc": {"mean": 0.5},
            "reference_step": {"values": [step] * len(p1)},
        }

    got = ap._effective_plateau(cells([100, 100, None], [50, None, None]))
    assert got[0] == 50 and got[1] == np.inf and np.isnan(got[2])
    table = {
        "unpatched": cells([100, 100], [200, None]),
        "patch-after-plateau": cells([100, 100], [0, 300], 500),
        "patch-end": cells([100, None], [0, None], 800),
    }
    held, evidence = ap._post_plateau_removes(table)
    assert held and "never ends" in evidence  # 300 steps beat a plateau that never ended
    table["patch-after-plateau"]["plateau_length"]["values"] = [0, None]  # ... but not another one
    assert not ap._post_plateau_removes(table)[0]


def test_smoke_run_reports_every_arm_with_paired_cells(tmp_path):
    summary = learnlab.run("attention-patching", preset="smoke", out=tmp_path / "r", progress=False)
    table = summary["table"]
    assert set(ap.ARMS) <= set(table)
    assert all({"plateau_length", "final_acc", "acc_auc", "name_attention"} <= set(table[a]) for a in ap.ARMS)
    assert table["patch-end"]["plateau_length_vs_unpatched"]["derived"]
    assert table["patch-end"]["reference_step"]["values"] == [20, 20]
    assert table["untrained-patterns"]["reference_step"]["values"] == [0, 0]
    assert len(summary["claims"]) == 5 and not (tmp_path / "r" / "jobs").exists()
    assert {"learning_curves.png", "name_attention.png"} <= {p.name for p in (tmp_path / "r").iterdir()}
    metrics = pd.read_parquet(tmp_path / "r" / "metrics.parquet")
    start = metrics[(metrics.step == 0) & (metrics.metric == "loss_heldout_templates")]
    by_arm = start.groupby("arm")["value"].apply(list)
    np.testing.assert_allclose(by_arm["untrained-patterns"], by_arm["unpatched"], rtol=1e-5)  # same model at 0


def test_ray_backend_gives_the_local_numbers(local_and_ray):
    local, remote = local_and_ray("attention-patching", {"seeds": 1}, arms=["unpatched", "patch-end"])
    assert local["table"] == remote["table"] and "final_acc" in local["table"]["patch-end"]
