"""A2 model-collapse: the protocol's invariants on the smoke preset."""

import torch

import learnlab
from learnlab.engine.rng import generator
from learnlab.models.lstm import EnsembleLSTMClassifier, select_members
from learnlab.studies import model_collapse as a2


def test_smoke_run_has_every_generation_and_verdicts(tmp_path):
    summary = learnlab.run("model-collapse", preset="smoke", out=tmp_path / "r", progress=False)
    table = summary["table"]
    assert list(table) == list(a2.ARMS)
    for cells in table.values():
        assert {f"hard_g{g}" for g in range(3)} | {"agree_g1", "agree_g2"} <= set(cells)
        assert "hard_g3" not in cells  # `generations` counts generation 0: 3 are g0, g1, g2
    # every arm's chains start from the same generation 0
    assert len({tuple(cells["hard_g0"]["values"]) for cells in table.values()}) == 1
    assert len(summary["claims"]) == len(a2.CLAIMS)
    assert (tmp_path / "r" / "generations.png").is_file()


def test_generation_0_is_the_hard_negatives_concept_model(tmp_path):
    collapse = learnlab.run("model-collapse", preset="smoke", arms=["hard-labels"], out=tmp_path / "a", progress=False)
    concept = learnlab.run(
        "hard-negatives", preset="smoke", arms=["concept"], out=tmp_path / "b", progress=False, overrides={"steps": 40}
    )
    assert collapse["table"]["hard-labels"]["hard_g0"]["values"] == concept["table"]["concept"]["hard"]["values"]


def test_students_learn_the_teachers_labels_and_real_rows_the_truth():
    cfg = a2.Config(**a2.PRESETS["smoke"])
    teacher = EnsembleLSTMClassifier(1, cfg.vocab_size, cfg.embed_dim, cfg.hidden_size)
    teacher.reset_parameters([generator(0, "init")])
    members = torch.zeros(3, dtype=torch.long)
    stream = a2.SyntheticStream(
        cfg, [0], members, ["hard-labels", "soft-labels", "real-50"], 1, select_members(teacher, members).eval()
    )
    tokens, labels = stream(0)
    with torch.no_grad():
        p = torch.sigmoid(stream.teacher(tokens))  # the same teacher, copied for each member
    assert torch.equal(labels[0], (p[0] > 0.5).float())  # hard labels
    torch.testing.assert_close(labels[1], p[1])  # soft labels
    real = stream.current.data["is_real"][2, 0]
    assert 0 < real.sum() < len(real)
    truth = torch.tensor([bool((row[row != cfg.vocab_size].diff() > 0).all()) for row in tokens[2]]).float()
    assert torch.equal(labels[2][real], truth[real])
    assert torch.equal(labels[2][~real], (p[2] > 0.5).float()[~real])


def test_select_members_copies_and_repeats():
    model = EnsembleLSTMClassifier(2, 10, 4, 8)
    model.reset_parameters([generator(1, "init"), generator(2, "init")])
    picked = select_members(model, torch.tensor([1, 1, 0]))
    assert torch.equal(picked.w_hh[0], model.w_hh[1]) and torch.equal(picked.w_hh[2], model.w_hh[0])


def test_arm_names_are_the_published_ones():
    assert list(a2.ARMS) == ["hard-labels", "soft-labels", "real-10", "real-20", "real-30", "real-50"]
