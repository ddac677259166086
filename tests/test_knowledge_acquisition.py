"""knowledge-acquisition: the summary's names, its figures, the paper model, and a resume after SIGKILL."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import learnlab
from learnlab.studies import knowledge_acquisition as ka
from learnlab.tasks import biographies as bio

NAMES = (
    "no_knowledge_baseline",
    "empirical_baseline",
    "phase1_end_step",
    "plateau_end_step",
    "final_loss_heldout_templates",
    "final_acc_train_templates",
    "final_acc_heldout_templates",
    "final_acc_unseen_individuals",
    "unseen_loss_peak_minus_baseline",
    "conf_seen",
    "conf_unseen",
    "ece_unseen",
)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ka") / "run"
    return out, learnlab.run("knowledge-acquisition", preset="smoke", out=out, progress=False)


def test_smoke_summary_has_every_named_metric_per_seed(smoke_run):
    out, summary = smoke_run
    cells = summary["table"]["default"]
    assert set(NAMES) <= set(cells)
    assert all(len(cells[n]["values"]) == 2 for n in NAMES)
    assert cells["no_knowledge_baseline"]["mean"] == pytest.approx(bio.no_knowledge_baseline())
    assert {"phases.png", "hallucination.png", "calibration.png", "report.html"} <= {p.name for p in out.iterdir()}
    assert len(summary["claims"]) == len(ka.CLAIMS)


def test_learning_curves_track_the_three_evaluation_sets(smoke_run):
    import pandas as pd

    out, _ = smoke_run
    metrics = pd.read_parquet(out / "metrics.parquet")
    tracked = set(metrics[metrics.split == "eval"].metric)
    assert {f"{q}_{s}" for q in ("loss", "acc") for s in ka.EVAL_SETS} <= tracked
    assert sorted(set(metrics[metrics.split == "calibration"].step)) == list(range(ka.CALIBRATION_BINS))


def test_the_paper_preset_builds_the_full_size_model_and_steps_on_cpu():
    cfg = ka.Config(**{**ka.PRESETS["paper"], "steps": 2})
    model = ka.build_model(cfg, _tiny_vocab_encoder(), [0])
    blocks = sum(p.numel() for n, p in model.named_parameters() if n.startswith("blocks."))
    assert (len(model.blocks), model.w_embed.shape[-1]) == (8, 512)
    assert blocks == 8 * (4 * 512 * 512 + 4 * 512 + 2 * 512 * 2048 + 2048 + 512 + 4 * 512)  # 25.2M
    tokens = torch.randint(0, 100, (1, 2, 64))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    for _ in range(2):
        loss = ka.lm_loss(cfg, pad_id=1)(model, tokens)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    assert torch.isfinite(loss).all()


def _tiny_vocab_encoder():
    """The paper preset's model shape with a small world's tokenizer (a 64k world is not needed here)."""
    return ka.encoder(20, 10, 0, 2048)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    sets = ["steps=120", "eval_every=30"]
    args = ["knowledge-acquisition", "--preset", "smoke", "--quiet", "--checkpoint-every", "40"]
    cli = [sys.executable, "-m", "learnlab"]
    out = tmp_path / "cut"
    proc = subprocess.Popen([*cli, "run", *args, *(f"--set={s}" for s in sets), "--out", str(out)])
    checkpoint = tmp_path / ".cut.partial" / "train.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and checkpoint.exists()
    subprocess.run([*cli, "run", *args, "--resume", str(out)], check=True)
    whole = learnlab.run(
        "knowledge-acquisition", preset="smoke", overrides=sets, out=tmp_path / "whole", progress=False
    )
    resumed = learnlab.api.read_summary(out)
    assert resumed["table"] == whole["table"]


def test_hallucination_seen_in_one_seed_only_is_undetermined():
    from learnlab.reporting.stats import describe

    table = {"default": {"unseen_loss_peak_minus_baseline": describe([2.0, None])}}
    held, evidence = ka._hallucinates(table)
    assert held is None and "only one seed" in evidence


def test_pool_knobs_bound_by_the_texts_pools_and_a_bad_one_named_in_one_line():
    from learnlab.config import build_config
    from learnlab.errors import LearnlabError

    for key, limit in bio.pool_limits().items():
        assert ka.Config.model_fields[key].default == limit  # the paper's pools by default
        with pytest.raises(LearnlabError, match=key) as err:
            build_config(ka.Config, "knowledge-acquisition", ka.PRESETS, "smoke", {key: limit + 1})
        assert "\n" not in str(err.value)


def test_the_world_and_its_baselines_follow_the_pool_knobs():
    small = {"n_days": 10, "n_years": 10, "n_cities": 10, "n_universities": 10, "n_majors": 10, "n_companies": 10}
    paper = ka.Config(**ka.PRESETS["smoke"])
    cfg = ka.Config(**{**ka.PRESETS["smoke"], **small})
    assert cfg.pools == bio.Pools(**small) and paper.pools == bio.PAPER_POOLS
    world = ka.world_of(cfg).world
    assert world.pools == cfg.pools and (world.values[:, 1:] < 10).all()
    assert ka.world_of(paper).world.pools == bio.PAPER_POOLS  # the cache keys on the pools
    pooled, empirical = ka.baselines(cfg)
    assert pooled == pytest.approx(bio.no_knowledge_baseline(cfg.pools)) and pooled < bio.no_knowledge_baseline()
    assert empirical == pytest.approx(bio.empirical_baseline(world)) and empirical <= pooled
