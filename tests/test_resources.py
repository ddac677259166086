"""Memory (issue 12, class 2): a run that cannot fit is refused before anything is written, in one line
naming the keys that make it too big and the estimate against what is available; no preset is refused."""

import time

import pytest
import torch

from learnlab import api, resources
from learnlab.cli import main
from learnlab.errors import LearnlabError

GiB = 2**30
LAPTOP_FREE = 21 * GiB  # what a 24 GiB machine leaves a run
H200_FREE = 139 * GiB
# paper presets too big for a CPU machine, run on a GPU (their estimate with bf16 activations)
GPU_ONLY = {
    "plateau-scaling",
    "data-imbalance",
    "warmup-curriculum",
    "attention-patching",
    "fact-editing",
    "mixture-of-experts",
}


def one_line_error(capsys, *named: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert all(name in err for name in named), err
    return err


@pytest.mark.parametrize("study", sorted(api.STUDIES))
def test_no_preset_is_refused_on_the_machine_it_is_meant_for(study):
    for preset in api.get_study(study).presets:
        spec, cfg = api.resolve(study, preset=preset, device="cpu")
        if preset == "paper" and study in GPU_ONLY:
            assert resources.estimate(cfg) > LAPTOP_FREE  # documented as GPU-only: it is, by the estimate
            cfg = cfg.model_copy(update={"device": "cuda"})
            resources.check_memory(cfg, free=H200_FREE)
            continue
        resources.check_memory(cfg, free=LAPTOP_FREE)


ABSURD = [
    (["hard-negatives", "--set", "batch_size=100000000"], ["batch_size=100000000"]),
    (["hard-negatives", "--set", "hidden_size=1000000"], ["hidden_size=1000000"]),
    (["hard-negatives", "--set", "eval_size=1e9"], ["eval_size=1000000000"]),
    (["hard-negatives", "--seeds", "1000000"], ["seeds=1000000"]),
    (["model-collapse", "--set", "generations=1000000", "--set", "hidden_size=4096"], ["hidden_size=4096"]),
    (["inductive-bias", "--set", "d_model=100000"], ["d_model=100000"]),
    (["softmax-negatives", "--set", "batch_size=1e9"], ["batch_size=1000000000"]),
    (["softmax-negatives", "--set", "n_logits=10000000"], ["n_logits=10000000"]),
    (["subliminal", "--set", "hidden_size=1000000"], ["hidden_size=1000000"]),
    (["subliminal", "--set", "student_batch=1e9"], ["student_batch=1000000000"]),
    (["knowledge-acquisition", "--set", "batch_size=10000000"], ["batch_size=10000000"]),
    (["knowledge-acquisition", "--set", "d_model=1000000"], ["d_model=1000000"]),
    (["data-imbalance", "--set", "n_values=[10, 1000000000]"], ["n_values=[10,1000000000]"]),
    (["fine-tuning-forgetting", "--set", "toy_pairs=1e11"], ["toy_pairs=100000000000"]),
]


@pytest.mark.parametrize("argv, named", ABSURD, ids=[" ".join(a[1:]) for a, _ in ABSURD])
def test_an_absurd_value_is_refused_at_once_naming_its_key(in_tmp, capsys, argv, named):
    main(["list"])  # imports done: what is timed is the check
    capsys.readouterr()
    started = time.perf_counter()
    assert main(["run", argv[0], "--preset", "smoke", "--quiet", *argv[1:]]) == 2
    assert time.perf_counter() - started < 1.0
    err = one_line_error(capsys, *named, "of memory", "available on this machine", "lower ")
    assert "GiB" in err or "TiB" in err
    assert list(in_tmp.iterdir()) == []


def test_only_the_key_that_makes_it_too_big_is_named(in_tmp, capsys):
    argv = ["run", "hard-negatives", "--preset", "smoke", "--set", "lr=0.1", "--set", "batch_size=100000000"]
    assert main(argv) == 2
    err = one_line_error(capsys, "batch_size=100000000 needs about")
    assert "lr" not in err


def test_a_preset_too_big_for_the_machine_is_named_with_its_estimate(monkeypatch):
    monkeypatch.setattr(resources, "available", lambda device: 1 * GiB)
    spec, cfg = api.resolve("knowledge-acquisition", preset="laptop")
    needs = r"the laptop preset of knowledge-acquisition needs about [\d.]+ GiB.*> 1 GiB"
    with pytest.raises(LearnlabError, match=needs):
        api.check_resources(spec, cfg)


def test_a_sweep_point_too_big_is_refused_before_its_directory_exists(in_tmp, capsys):
    argv = ["sweep", "hard-negatives", "--preset", "smoke", "--grid", "batch_size=32,100000000", "--out", "s"]
    assert main(argv) == 2
    one_line_error(capsys, "batch_size=100000000")
    assert not (in_tmp / "s").exists()


def test_a_resume_without_the_memory_keeps_its_checkpoint(in_tmp, capsys, monkeypatch):
    out = in_tmp / "cut"
    work = in_tmp / ".cut.partial"
    work.mkdir()
    spec, cfg = api.resolve("hard-negatives", preset="smoke")
    (work / "config.yaml").write_text(api.config_to_yaml(cfg))
    (work / "train.ckpt").write_bytes(b"kept")
    monkeypatch.setattr(resources, "available", lambda device: 0.1 * GiB)
    assert main(["resume", str(out)]) == 2
    one_line_error(capsys, "smoke preset of hard-negatives", "of memory")
    assert (work / "train.ckpt").read_bytes() == b"kept" and not out.exists()


def test_available_memory_is_read_from_the_system_or_the_device(monkeypatch):
    free = resources.available("cpu")
    assert free is not None and 0 < free < 2**50
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * GiB, 80 * GiB))
    assert resources.available("cuda:0") == 3 * GiB
    spec, cfg = api.resolve("knowledge-acquisition", preset="smoke")
    cfg = cfg.model_copy(update={"device": "cuda:0"})
    with pytest.raises(LearnlabError, match="batch_size=100000 needs .* > 3 GiB available on cuda:0"):
        resources.check_memory(cfg.model_copy(update={"batch_size": 100_000}), cfg)


def test_bf16_on_a_gpu_counts_smaller_activations_and_the_same_weights():
    spec, cfg = api.resolve("knowledge-acquisition", preset="paper", device="cpu")
    cpu = {t.what: t.bytes for t in resources.terms(cfg)}
    gpu = {t.what: t.bytes for t in resources.terms(cfg.model_copy(update={"device": "cuda"}))}
    assert gpu["transformer activations"] < 0.9 * cpu["transformer activations"]
    assert gpu["transformer weights and Adam state"] == cpu["transformer weights and Adam state"]
