"""attention-patching: attention masses on hand-made patterns, stage choice, the patched gradient, paired
cells on a hand-made frame, a smoke run, and Ray = local."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import learnlab
from learnlab.errors import Interrupted
from learnlab.protocols import biography_lm as bl
from learnlab.reporting.stats import describe
from learnlab.studies import attention_patching as ap


@pytest.fixture(scope="module")
def smoke():
    cfg = ap.Config(**ap.PRESETS["smoke"])
    enc = bl.world_of(cfg)
    return cfg, enc, ap.eval_set(cfg, enc)


def one_hot_patterns(batch, key_of_query, layers=2, heads=2):
    """Patterns [1, B, heads, T, T] putting all attention of query q on key_of_query(q)."""
    b, t = batch.tokens.shape
    pattern = torch.zeros(1, b, heads, t, t)
    for q in range(t):
        pattern[..., q, key_of_query(q)] = 1.0
    return {name: pattern for name in bl.pattern_names(layers)}


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
    got = ap.masses({n: uniform for n in bl.pattern_names(2)}, batch)["name_attention_l1"].item()
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
    model, reference = bl.build_model(cfg, enc, [0, 1]), bl.build_model(cfg, enc, [5, 6])
    reference.requires_grad_(False)
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    tokens = batch.tokens[:4].expand(2, -1, -1)
    bl.lm_loss(cfg, enc.pad_id, hooks=ap.patched(reference))(model, tokens).sum().backward()
    d = cfg.d_model
    for block in model.blocks:
        grad = block.attn.w_qkv.grad
        assert grad[..., : 2 * d].abs().max() == 0 and grad[..., 2 * d :].abs().max() > 0  # queries, keys / values
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in before.items())
    # with its own initial weights as reference, the patched model computes what the plain one does
    own = bl.build_model(cfg, enc, [0, 1]).requires_grad_(False)
    plain = bl.lm_loss(cfg, enc.pad_id)(model, tokens)
    torch.testing.assert_close(bl.lm_loss(cfg, enc.pad_id, hooks=ap.patched(own))(model, tokens), plain)


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


def test_a_plateau_reads_as_zero_when_removed_and_never_ending_without_knowledge():
    cells = {
        "phase1_end_step": describe([100, 100, None, None]),
        "plateau_end_step": describe([150, None, None, None]),
        "knowledge_step": describe([150, None, 60, None]),
        "final_acc": describe([0.5, 0.0, 0.6, 0.01]),
    }
    got = ap._effective_plateau(cells)
    assert got[0] == 50 and got[1] == np.inf and got[2] == 0 and got[3] == np.inf
    old_run = {k: v for k, v in cells.items() if k != "knowledge_step"}  # before knowledge_step: final accuracy
    assert ap._effective_plateau(old_run).tolist() == [50, np.inf, 0, np.inf]


# --- the claims, on hand-built tables (5 seeds) -------------------------------------------------------------

NOISE = np.array([0.0, 1.0, -1.0, 0.5, -0.5])
OTHER = np.array([1.0, -0.5, 0.0, -1.0, 0.5])  # another arm's seed noise: paired differences vary too


def _arm(p1, p2, knowledge, auc, name=0.2, kind=0.3, step=None, noise=OTHER, **extra):
    """An arm's cells: scalars get a little seed noise; lists are taken per seed."""
    per_seed = lambda v, scale: list(v) if isinstance(v, list) else list(v + scale * noise)  # noqa: E731
    cells = {
        "phase1_end_step": describe(per_seed(p1, 0) if p1 is not None else [None] * 5),
        "plateau_end_step": describe(per_seed(p2, 10) if p2 is not None else [None] * 5),
        "plateau_detected": describe([float(v is not None) for v in (p2 if isinstance(p2, list) else [p2] * 5)]),
        "knowledge_step": describe(per_seed(knowledge, 10) if knowledge is not None else [None] * 5),
        "acc_auc": describe(per_seed(auc, 0.01)),
        "final_acc": describe(per_seed(0.8 if knowledge is not None else 0.0, 0.01)),
        "name_attention": describe(per_seed(name, 0.01)),
        "type_attention": describe(per_seed(kind, 0.01)),
    }
    if step is not None:
        cells["reference_step"] = describe([step] * 5)
    return cells | {k: describe(per_seed(v, 0.01)) for k, v in extra.items()}


def _table(**arms):
    """A run in which every claim holds; keyword arms replace the defaults."""
    table = {
        "unpatched": _arm(
            100, 400, 400, 0.30, noise=NOISE, name_attention_at_phase1_end=0.15, name_attention_at_plateau_end=0.40
        ),
        "untrained-patterns": _arm(100, 420, 420, 0.28, 0.25, 0.30, step=0, noise=NOISE),
        "patch-phase1": _arm(100, 520, 520, 0.18, 0.10, 0.55, step=50),
        "patch-early-plateau": _arm(100, 350, 350, 0.35, step=175),
        "patch-late-plateau": _arm(100, 200, 200, 0.48, step=325),
        "patch-after-plateau": _arm(None, None, 60, 0.70, step=450),  # the detector finds no plateau
        "patch-end": _arm(None, None, 50, 0.75, step=600),
    }
    return table | arms


def _verdicts(table):
    return [claim.judge(table).as_dict()["verdict"] for claim in ap.CLAIMS]


def test_claims_are_reproduced_on_a_run_where_they_hold():
    assert _verdicts(_table()) == ["reproduced"] * len(ap.CLAIMS)


def test_claims_need_five_seeds():
    four = {arm: {m: describe(c["values"][:4]) for m, c in cells.items()} for arm, cells in _table().items()}
    assert _verdicts(four) == ["undetermined"] * len(ap.CLAIMS)
    assert all(c.min_seeds >= 5 for c in ap.CLAIMS) and ap.PRESETS["laptop"]["seeds"] >= 5


FALSE = {  # claim index -> arms that make it false
    0: {"patch-after-plateau": _arm(100, 400, 400, 0.31, step=450)},  # as long a plateau as the reference
    1: {"patch-phase1": _arm(100, 380, 380, 0.33, 0.10, 0.55, step=50)},  # better than untrained
    2: {"patch-phase1": _arm(100, 520, 520, 0.18, 0.30, 0.20, step=50)},  # more on the name than untrained
    3: {"patch-late-plateau": _arm(100, 360, 360, 0.34, step=325)},  # no better than early in the plateau
    4: {"unpatched": _arm(100, 400, 400, 0.30, noise=NOISE, name_attention_at_phase1_end=0.40,
                          name_attention_at_plateau_end=0.39)},  # attention to the name falls
}  # fmt: skip


@pytest.mark.parametrize("index", sorted(FALSE))
def test_claim_is_not_reproduced_where_it_is_false(index):
    verdicts = _verdicts(_table(**FALSE[index]))
    assert verdicts[index] == "not reproduced", ap.CLAIMS[index].text


def test_claim_post_plateau_no_plateau_but_no_sooner_knowledge_is_not_removal():
    """A detector that finds no plateau is length 0, but knowledge must come earlier too."""
    late = _arm(None, None, 400, 0.3, step=450)
    assert _verdicts(_table(**{"patch-after-plateau": late}))[0] == "not reproduced"


def test_claim_post_plateau_a_patched_run_that_never_learns_refutes():
    knowledge = [60, 70, None, 65, 55]  # one seed never reaches 5% accuracy
    never = _arm(None, None, knowledge, 0.6, step=450)
    verdict = ap.CLAIMS[0].judge(_table(**{"patch-after-plateau": never})).as_dict()
    assert verdict["verdict"] == "not reproduced" and "never reached knowledge in 1 seed" in verdict["evidence"]


def test_claim_post_plateau_without_a_reference_plateau_is_undetermined():
    flat = _arm([100, None, None, None, 100], [400, None, None, None, 420], 400, 0.3,
                name_attention_at_phase1_end=[0.15, None, None, None, 0.16],
                name_attention_at_plateau_end=[0.4, None, None, None, 0.42])  # fmt: skip
    verdicts = _verdicts(_table(unpatched=flat))
    assert verdicts[0] == verdicts[3] == verdicts[4] == "undetermined"


def test_claim_early_patterns_at_step_zero_or_without_learning_are_undetermined():
    at_zero = _arm(100, 520, 520, 0.18, 0.10, 0.55, step=0)  # the phase-1 checkpoint is the initialisation
    assert _verdicts(_table(**{"patch-phase1": at_zero}))[1:3] == ["undetermined"] * 2
    nothing = {"patch-phase1": _arm(100, None, None, 0.001, 0.1, 0.55, step=50),
               "untrained-patterns": _arm(100, None, None, 0.002, 0.25, 0.3, step=0)}  # fmt: skip
    assert _verdicts(_table(**nothing))[1] == "undetermined"  # neither learnt: noise, not evidence


def test_claim_with_a_missing_arm_is_undetermined():
    table = _table()
    del table["patch-late-plateau"]
    assert _verdicts(table)[3] == "undetermined"


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


def test_an_interrupted_reference_resumes_with_its_step_0_evaluation_and_snapshots(tmp_path, ctrl_c):
    """Interrupted at step 12 of the reference (checkpoint at 10): the resume takes the step-0 evaluation from
    the checkpoint and the weights kept at 0, 5 and 10 from the work directory, so its patched arms start
    from the same checkpoints and every number equals the uninterrupted run's."""
    arms = ["unpatched", "untrained-patterns", "patch-phase1"]
    kw = {"preset": "smoke", "arms": arms, "checkpoint_every": 5, "progress": False}
    whole = learnlab.run("attention-patching", out=tmp_path / "whole", **kw)
    ctrl_c(12, "reference")
    with pytest.raises(Interrupted):
        learnlab.run("attention-patching", out=tmp_path / "cut", **kw)
    kept = tmp_path / ".cut.partial" / "jobs" / "reference-snapshots"
    assert sorted(p.name for p in kept.iterdir()) == [f"step-{s:07d}.pt" for s in (0, 5, 10)]
    ctrl_c(None)
    resumed = learnlab.resume(tmp_path / "cut", progress=False, checkpoint_every=5)
    assert resumed["table"] == whole["table"]
    metrics = pd.read_parquet(tmp_path / "cut" / "metrics.parquet")
    pd.testing.assert_frame_equal(metrics, pd.read_parquet(tmp_path / "whole" / "metrics.parquet"))
    assert 0 in set(metrics[metrics.metric == "acc_heldout_templates"].step)


def test_ray_backend_gives_the_local_numbers(local_and_ray):
    local, remote = local_and_ray("attention-patching", {"seeds": 1}, arms=["unpatched", "patch-end"])
    assert local["table"] == remote["table"] and "final_acc" in local["table"]["patch-end"]
