"""A run keeps its trained models (models/: safetensors + what rebuilds them) and `learnlab.load_run`
rebuilds them: the loaded weights give back the numbers the run reported, snapshots are the weights of
their step, a resumed run keeps what an uninterrupted one keeps, and damaged files are one-line errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import learnlab
from learnlab import api
from learnlab.engine.rng import generator
from learnlab.errors import Interrupted, LearnlabError
from learnlab.models.lstm import EnsembleLSTMClassifier
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols import sortedness_lstm as sl
from learnlab.store import models as kept_models
from learnlab.store.models import ModelKeeper

OLD = Path(__file__).parent / "data" / "runs-before-issue-11"
ARMS = ["baseline", "concept"]


def smoke(out: Path, **kw) -> dict:
    return learnlab.run("hard-negatives", preset="smoke", arms=ARMS, out=out, progress=False, **kw)


@pytest.fixture(scope="module")
def hn(tmp_path_factory) -> Path:
    """A hard-negatives smoke run (60 steps) keeping snapshots every 20 steps."""
    out = tmp_path_factory.mktemp("kept") / "hn"
    smoke(out, snapshot_every=20)
    return out


def test_the_loaded_models_give_back_the_runs_numbers(hn):
    run = learnlab.load_run(hn)
    assert isinstance(run.config, sl.SortednessConfig) and run.config.steps == 60
    assert run.summary["study"] == "hard-negatives" and len(run.metrics) > 0
    kept = run.models["train"]
    assert run.model is kept  # the only one
    assert isinstance(kept.model, EnsembleLSTMClassifier) and not kept.model.training
    assert kept.members == [(arm, seed) for arm in ARMS for seed in (0, 1)]
    assert kept.tokenizer is None and kept.index("concept", 1) == 3
    test = run.metrics[run.metrics.split == "test"].set_index(["metric", "arm", "seed"])["value"]
    for name, (x, y) in sl.final_sets(run.config, kept.members, ("easy", "hard")).items():
        with torch.no_grad():
            accuracy = sl.accuracy(kept, x, y).numpy()  # calls go through to the ensemble
        np.testing.assert_array_equal(accuracy, [test[name, arm, seed] for arm, seed in kept.members])


def test_the_files_and_the_summary_say_what_was_kept(hn):
    files = sorted(p.relative_to(hn / "models").as_posix() for p in (hn / "models").rglob("*") if p.is_file())
    steps = [f"snapshots/train/step-{s:07d}.safetensors" for s in (0, 20, 40, 60)]
    assert files == [*steps, "train.json", "train.safetensors"]
    spec = json.loads((hn / "models" / "train.json").read_text())
    assert spec["class"] == "learnlab.models.lstm:EnsembleLSTMClassifier"
    assert spec["kwargs"] == {"n_models": 4, "vocab_size": 50, "embed_dim": 8, "hidden_size": 32}
    assert spec["members"][2] == {"arm": "concept", "seed": 0}
    models = json.loads((hn / "summary.json").read_text())["models"]
    assert models["save_models"] == "all" and models["snapshot_every"] == 20
    assert models["kept"] == ["train"] and models["snapshots"] == 4
    assert models["bytes"] == sum((hn / "models" / f).stat().st_size for f in files)
    assert "`train`" in (hn / "report.md").read_text()


def test_a_member_alone_and_the_snapshots(hn):
    kept = learnlab.load_run(hn).models["train"]
    tokens = torch.randint(0, 50, (4, 16, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        every = kept(tokens)
        for k in range(4):
            one = kept.member(k)
            assert isinstance(one, EnsembleLSTMClassifier) and one.embedding.shape[0] == 1
            torch.testing.assert_close(one(tokens[k : k + 1])[0], every[k], rtol=0, atol=1e-6)
    assert kept.snapshot_steps == [0, 20, 40, 60]
    last, first = kept.snapshot(60), kept.snapshot(0)
    for name, p in kept.model.state_dict().items():
        assert torch.equal(last.state_dict()[name], p)  # the last step's snapshot is the final model
    fresh = EnsembleLSTMClassifier(4, 50, 8, 32)
    fresh.reset_parameters([generator(s, "init", "cpu") for _, s in kept.members])  # as the protocol does
    for name, p in fresh.state_dict().items():
        assert torch.equal(first.state_dict()[name], p)  # step 0: the initialisation
    with pytest.raises(LearnlabError, match="no snapshot at step 30"):
        kept.snapshot(30)
    with pytest.raises(LearnlabError, match=r"member must be an integer in 0\.\.3, got 4"):
        kept.member(4)


def test_by_default_models_over_the_limit_are_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(kept_models, "AUTO_LIMIT", 1000)
    summary = smoke(tmp_path / "r", overrides={"steps": 10})
    assert summary["models"]["save_models"] == "none" and summary["models"]["kept"] == []
    assert "none kept (--save-models final keeps them)" in summary["models"]["note"]
    assert not (tmp_path / "r" / "models").exists()
    assert learnlab.load_run(tmp_path / "r").models == {}
    assert "Trained models: none kept" in (tmp_path / "r" / "report.md").read_text()
    asked = smoke(tmp_path / "asked", overrides={"steps": 10}, save_models="final")  # asked for: no limit
    assert asked["models"]["kept"] == ["train"] and (tmp_path / "asked" / "models" / "train.safetensors").is_file()


def test_save_models_none_keeps_nothing(tmp_path):
    summary = smoke(tmp_path / "r", overrides={"steps": 10}, save_models="none")
    assert summary["models"] == {"save_models": "none", "kept": [], "snapshots": 0, "bytes": 0}
    assert not (tmp_path / "r" / "models").exists()


def test_execute_holds_the_models_in_memory(tmp_path):
    spec, cfg = api.resolve("model-collapse", preset="smoke", overrides={"steps": 10, "generations": 2})
    result = api.execute(spec, cfg)
    assert all(isinstance(content, bytes) for content in result.models.files.values())
    ensembles = result.models.ensembles()
    assert sorted(ensembles) == ["gen0", "gen1"]
    assert {arm for arm, _ in ensembles["gen0"].members} == {"concept"}  # every chain's shared generation 0
    assert len(ensembles["gen1"].members) == len(cfg.arms) * cfg.seeds
    api.write_run(result, tmp_path / "r")
    assert sorted(learnlab.load_run(tmp_path / "r").models) == ["gen0", "gen1"]


def test_a_grid_study_keeps_each_jobs_models_under_its_name(tmp_path):
    learnlab.run("plateau-scaling", preset="smoke", out=tmp_path / "r", progress=False, overrides={"steps": 20})
    run = learnlab.load_run(tmp_path / "r")
    assert len(run.models) > 1 and all(name.endswith("/train") for name in run.models)
    for name, kept in run.models.items():
        assert isinstance(kept.model, EnsembleTransformer) and kept.tokenizer is not None
        assert {arm for arm, _ in kept.members} == {name.removesuffix("/train")}  # the job is the arm
    with pytest.raises(LearnlabError, match="keeps 2 trained models"):
        run.model  # noqa: B018


def test_a_resumed_run_keeps_what_an_uninterrupted_one_keeps(tmp_path, ctrl_c):
    kw = {"overrides": {"steps": 130}, "checkpoint_every": 50, "snapshot_every": 50}
    smoke(tmp_path / "whole", **kw)
    ctrl_c(120)
    with pytest.raises(Interrupted):
        smoke(tmp_path / "cut", **kw)
    ctrl_c(None)
    learnlab.resume(tmp_path / "cut", progress=False, checkpoint_every=50)  # the options come from the run

    def files(run: Path) -> dict[str, bytes]:
        return {p.relative_to(run).as_posix(): p.read_bytes() for p in (run / "models").rglob("*") if p.is_file()}

    whole, cut = files(tmp_path / "whole"), files(tmp_path / "cut")
    assert "models/snapshots/train/step-0000100.safetensors" in whole
    assert cut == whole


def test_a_keeper_reopened_in_its_directory_keeps_its_options_and_files(tmp_path):
    keeper = ModelKeeper.open(tmp_path, "all", snapshot_every=5)
    model = EnsembleLSTMClassifier(2, 10, 4, 8)
    keeper.keep("a", model, [("x", 0), ("x", 1)])
    again = ModelKeeper.open(tmp_path, None)  # as a resume opens it: the saved options win
    assert again.mode == "all" and again.result().summary["kept"] == ["a"]
    with pytest.raises(ValueError, match="3 members named for 2"):
        again.keep("b", model, [("x", 0), ("x", 1), ("x", 2)])
    (tmp_path / "keeper.json").write_text("{")
    with pytest.raises(LearnlabError, match="keeper.json"):
        ModelKeeper.open(tmp_path, None)


def test_a_run_from_before_models_were_kept_loads_without_models(tmp_path):
    run_dir = shutil.copytree(OLD / "knowledge-acquisition", tmp_path / "old")
    run = learnlab.load_run(run_dir)
    assert run.models == {} and len(run.metrics) > 0 and run.summary["study"] == "knowledge-acquisition"
    with pytest.raises(LearnlabError, match="keeps no trained models"):
        run.model  # noqa: B018


def _damaged(hn: Path, tmp_path: Path, edit) -> Path:
    run_dir = shutil.copytree(hn, tmp_path / "run")
    edit(run_dir / "models")
    return run_dir


def _edit_spec(**changes):
    def edit(models: Path) -> None:
        spec = json.loads((models / "train.json").read_text())
        (models / "train.json").write_text(json.dumps(spec | changes))

    return edit


@pytest.mark.parametrize(
    "edit, named",
    [
        (lambda m: (m / "train.safetensors").write_bytes(b"\x10\x00\x00\x00"), "train.safetensors'"),
        (
            lambda m: (m / "train.safetensors").write_bytes((m / "train.safetensors").read_bytes()[:-100]),
            "train.safetensors'",
        ),
        (lambda m: (m / "train.json").unlink(), "train.json' is missing"),
        (lambda m: (m / "train.safetensors").unlink(), "train.safetensors'"),
        (lambda m: (m / "train.json").write_text("{not json"), "train.json': not valid JSON"),
        (_edit_spec(kwargs={"n_models": 4, "vocab_size": 50, "embed_dim": 8, "hidden_size": 16}), "do not fit"),
        (_edit_spec(**{"class": "os:system"}), "not one of learnlab's models"),
        (_edit_spec(members=[{"arm": "a", "seed": 0}]), "1 members, but n_models is 4"),
        (lambda m: (m / "snapshots" / "train" / "step-0000020.safetensors").write_bytes(b"junk"), None),
    ],
    ids=[
        "not safetensors",
        "truncated",
        "no description",
        "no weights",
        "bad JSON",
        "wrong shapes",
        "foreign class",
        "members",
        "damaged snapshot",
    ],  # fmt: skip
)
def test_damaged_model_files_are_one_line_errors_naming_them(hn, tmp_path, edit, named):
    run_dir = _damaged(hn, tmp_path, edit)
    if named is None:  # a snapshot is read when asked for
        kept = learnlab.load_run(run_dir).models["train"]
        with pytest.raises(LearnlabError, match="step-0000020.safetensors'"):
            kept.snapshot(20)
        return
    with pytest.raises(LearnlabError) as err:
        learnlab.load_run(run_dir)
    assert named in str(err.value) and "\n" not in str(err.value)
