"""fact-editing: prompts cut where a value starts, ROME's position groups, the detection AUROC, every claim on
a table where it holds and one where it fails, bad input through the CLI, and the smoke run end to end, then
again on its kept model (`from_run`) without training."""

import json

import numpy as np
import pytest
import torch
from helpers import cli

from learnlab.config import build_config
from learnlab.interventions.editing import IGNORE
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols import biography_lm as bl
from learnlab.reporting.stats import describe
from learnlab.studies import fact_editing as fe

RUN = ["run", "fact-editing", "--preset", "smoke", "--quiet"]


def smoke(**over):
    return build_config(fe.Config, fe.STUDY.name, fe.PRESETS, "smoke", over)


# --- prompts ------------------------------------------------------------------------------------------------


def test_prompts_end_where_the_value_starts_and_mark_the_last_sentence_name():
    cfg = smoke()
    enc = bl.world_of(cfg)
    seq_len = bl.context_length(cfg, enc)
    who, attrs = [0, 1, 2, 3], [1, 2, 3, 5]
    for alone in (True, False):
        p = fe.prompts(enc, who, attrs, "train", 3, alone, seq_len)
        full = enc.eval_batch(np.asarray(who), "train", 3, seq_len)
        for b, (i, a) in enumerate(zip(who, attrs, strict=True)):
            read = int(p.read_at[b])
            name = enc.name_ids(i)
            last = int(p.last_name[b])
            assert p.tokens[b, last - len(name) + 1 : last + 1].tolist() == name
            assert int(p.name[b].sum()) == len(name)  # the prompt sentence's name only
            assert (p.tokens[b, read + 1 :] == enc.pad_id).all()
            assert p.tokens[b, 0] == enc.bos_id
            start = int((full.value_attr[b] == a).nonzero()[0])
            if not alone:  # the biography itself, cut before the value
                assert p.tokens[b, : read + 1].tolist() == full.tokens[b, :start].tolist()
            else:
                assert p.tokens[b, 1 : read + 1].tolist() == full.tokens[b, start - read : start].tolist()
        tokens, labels = fe.with_value(p, [enc.value_ids(i, a) for i, a in zip(who, attrs, strict=True)], enc.pad_id)
        for b, (i, a) in enumerate(zip(who, attrs, strict=True)):
            value = enc.value_ids(i, a)
            r = int(p.read_at[b])
            assert labels[b, r : r + len(value)].tolist() == value == tokens[b, r + 1 : r + 1 + len(value)].tolist()
            assert (labels[b, :r] == IGNORE).all() and (labels[b, r + len(value) :] == IGNORE).all()


def test_position_groups_as_rome():
    tokens = torch.zeros(1, 9, dtype=torch.long)
    name = torch.zeros(1, 9, dtype=torch.bool)
    name[0, 2:5] = True
    p = fe.Prompts(tokens, torch.tensor([7]), name, torch.tensor([4]))
    assert fe.categories(p, 0) == ["before", "before", "first_name", "middle_name", "last_name", "first_after",
                                   "further", "last"]  # fmt: skip


def test_auroc_and_detection_statistics():
    assert fe.auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0]))[0] == 1.0
    assert fe.auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0]))[0] == 0.0
    assert fe.auroc(np.array([1.0, 1.0]), np.array([1.0]))[0] == 0.5
    w = torch.randn(2, 32, 8, generator=torch.Generator().manual_seed(0))
    spiked = w.clone()
    spiked[1, 5] += 20.0  # a rank-one change concentrated on one row
    before, after = fe.layer_statistics(w), fe.layer_statistics(spiked)
    assert after["row_ratio"][1] > 2 * before["row_ratio"][1] and after["sigma1"][1] > before["sigma1"][1]
    assert after["row_ratio"][0] == before["row_ratio"][0]


def test_value_logprob_sums_the_labelled_tokens_and_the_efficacy_score_compares_them():
    m = EnsembleTransformer(2, 11, 8, d_model=8, n_layers=1, n_heads=1, d_mlp=16, n_out=11)
    m.reset_parameters([torch.Generator().manual_seed(i) for i in range(2)])
    tokens = torch.randint(0, 11, (3, 6), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(tokens, IGNORE)
    labels[:, 2:4] = tokens[:, 3:5]
    logp = m(tokens.expand(2, -1, -1)).log_softmax(-1)
    expected = sum(logp[:, :, t].gather(-1, tokens[:, t + 1].expand(2, -1)[..., None])[..., 0] for t in (2, 3))
    got = fe.value_logprob(m, tokens, labels)
    assert torch.allclose(got, expected, atol=1e-5)
    other = labels.clone()
    other[:, 2:4] = (labels[:, 2:4] + 1) % 11
    score = fe._new_beats_old(m, (tokens, labels), (tokens, other))
    assert torch.equal(score, (got > fe.value_logprob(m, tokens, other)).float().mean(1))
    assert torch.equal(fe._new_beats_old(m, (tokens, labels), (tokens, labels)), torch.zeros(2))  # ties: not beaten


# --- claims on hand-made tables ------------------------------------------------------------------------------

SEEDS = 5


def cell(mean, spread=0.01):
    return describe(mean + spread * np.linspace(-1, 1, SEEDS))


def table(mlp_vs_attention=0.05, last_vs_name=0.03, efficacy=0.98, generalisation=0.8, unedited=0.0, drop=0.02):
    return {
        fe.TRACING: {"ie_mlp_minus_attention_last_name": cell(mlp_vs_attention),
                     "ie_mlp_last_minus_other_name": cell(last_vs_name), "ie_mlp_last_name": cell(0.1),
                     "ie_attention_last_name": cell(0.05), "total_effect": cell(0.3)},
        fe.ROME: {"efficacy": cell(efficacy), "generalisation": cell(generalisation), "specificity_drop": cell(drop)},
        fe.FT: {"efficacy": cell(0.5), "generalisation": cell(0.2), "specificity_drop": cell(0.2)},
        fe.UNEDITED: {"generalisation": cell(unedited, 0.0), "efficacy": cell(unedited, 0.0)},
    }  # fmt: skip


def verdicts(t):
    return [c.judge(t).as_dict()["verdict"] for c in fe.CLAIMS]


def test_every_claim_holds_on_a_table_that_shows_it():
    assert verdicts(table()) == ["reproduced"] * 4


@pytest.mark.parametrize(
    ("changes", "index"),
    [({"mlp_vs_attention": -0.05}, 0), ({"last_vs_name": -0.05}, 0), ({"efficacy": 0.6}, 1),
     ({"generalisation": 0.1}, 2), ({"generalisation": 0.3, "unedited": 0.2}, 2), ({"drop": 0.3}, 3)],
)  # fmt: skip
def test_each_claim_fails_on_a_table_that_refutes_it(changes, index):
    got = verdicts(table(**changes))
    assert got[index] == "not reproduced"
    assert all(v == "reproduced" for i, v in enumerate(got) if i != index)


def test_a_ci_across_the_bound_or_few_seeds_is_undetermined():
    t = table()
    t[fe.ROME]["efficacy"] = describe([0.7, 1.0, 0.95, 0.99, 0.85])  # mean 0.90, CI across 90%
    assert verdicts(t)[1] == "undetermined"
    few = {a: {m: describe(c["values"][:3]) for m, c in cells.items()} for a, cells in table().items()}
    assert set(verdicts(few)) == {"undetermined"}


# --- the CLI and whole runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--set", "edit_layer=2"], "edit_layer"), (["--set", "noise_multiplier=0"], "noise_multiplier"),
     (["--set", "noise_multiplier=-1"], "noise_multiplier"), (["--set", "trace_kinds=[mlp, heads]"], "trace_kinds"),
     (["--set", "from_run=nowhere"], "from_run"), (["--set", "trace_samples=0"], "trace_samples"),
     (["--set", "edits=21"], "edits")],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(in_tmp, argv, named):
    code, _, err = cli([*RUN, *argv])
    assert code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(in_tmp.iterdir()) == []


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fe") / "run"
    code, _, err = cli([*RUN, "--out", str(out)])
    assert code == 0, err
    return out


def test_smoke_run_end_to_end(smoke_run):
    summary = json.loads((smoke_run / "summary.json").read_text())
    t = summary["table"]
    assert {fe.TRACING, fe.ROME, fe.FT, fe.UNEDITED} <= set(t)
    for method in (fe.ROME, fe.FT, fe.UNEDITED):
        for metric in ("efficacy", "generalisation", "specificity_drop", "specificity", "score"):
            assert len(t[method][metric]["values"]) == 2
    assert {"ie_mlp_last_name", "ie_attention_last_name", "ie_residual_last_name", "total_effect"} <= set(t[fe.TRACING])
    assert t[fe.UNEDITED]["specificity_drop"]["mean"] == 0.0
    assert "site_efficacy" in t[fe.ROME] and all("efficacy_score" in t[m] for m in (fe.ROME, fe.FT, fe.UNEDITED))
    assert all(0 <= v <= 1 for m in ("site_efficacy", "efficacy_score") for v in t[fe.ROME][m]["values"])
    assert "auroc_sigma1" in t["detect-rome"]
    assert [c["verdict"] for c in summary["claims"]] == ["undetermined"] * 4
    assert (smoke_run / "causal_trace.png").exists() and (smoke_run / "edits.png").exists()


def test_from_run_reuses_the_kept_model_and_refuses_a_layer_it_lacks(smoke_run, in_tmp):
    code, _, err = cli([*RUN, "--set", f"from_run={smoke_run}", "--set", "edit_layer=7"])
    assert code == 2 and "edit_layer" in err and len(err.strip().splitlines()) == 1
    assert list(in_tmp.iterdir()) == []
    out = in_tmp / "again"
    code, _, err = cli([*RUN, "--set", f"from_run={smoke_run}", "--out", str(out)])
    assert code == 0, err
    first = json.loads((smoke_run / "summary.json").read_text())["table"]
    again = json.loads((out / "summary.json").read_text())["table"]
    assert again[fe.ROME] == first[fe.ROME] and again[fe.TRACING] == first[fe.TRACING]  # the same members
