"""Issue 13's acceptance, end to end: `learnlab run knowledge-acquisition --preset smoke`, then `learnlab
export RUN --member 1 --to hf|transformer-lens OUT`, and the exported model reproduces learnlab's logits
(max |Δ| ≤ 1e-5) and activations on biographies of the run's world, encoded by the exported tokenizer; the
README's probe example runs on the same kind of run, as written there."""

import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import cli

import learnlab
from learnlab.errors import LearnlabError
from learnlab.protocols import biography_lm as bl

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformer_lens")

from learnlab import interop  # noqa: E402

TOL = 1e-5
MEMBER = 1
README = Path(__file__).parents[1] / "README.md"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "ka"
    code, _, err = cli(["run", "knowledge-acquisition", "--preset", "smoke", "--out", str(out), "--quiet"])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def texts(run_dir) -> list[str]:
    """Biographies of the run's world (held-out templates) as text, and one the world never saw."""
    cfg = learnlab.load_run(run_dir).config
    enc = bl.world_of(cfg)
    batch = enc.eval_batch(range(6), "heldout", seed=0, seq_len=bl.context_length(cfg, enc))
    return [enc.decode(row) for row in batch.tokens] + ["Ada Lovelace was born on 10 December 1815 in London."]


def learnlab_member(run_dir: Path, ids: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Member MEMBER's logits [T, vocab] and activations on one sequence, as learnlab computes them."""
    kept = learnlab.load_run(run_dir).models["train"]
    tokens = torch.tensor(ids).expand(kept.n_models, 1, -1)
    with torch.no_grad():
        logits, cache = kept.run_with_cache(tokens)
    return logits[MEMBER, 0], {name: value[MEMBER, 0] for name, value in cache.items()}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def test_hf_export_reproduces_the_members_logits(run_dir, texts, tmp_path):
    out = tmp_path / "hf"
    code, stdout, err = cli(["export", str(run_dir), "--member", str(MEMBER), "--to", "hf", str(out)])
    assert code == 0, err
    assert str(out) in stdout
    hf = transformers.GPT2LMHeadModel.from_pretrained(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    kept = learnlab.load_run(run_dir).models["train"]
    for text in texts:
        ids = tokenizer(text)["input_ids"]  # <bos> and the run's tokenizer's ids, as learnlab trains on them
        assert ids == [tokenizer.bos_token_id, *kept.tokenizer.encode(text).ids]
        expected, _ = learnlab_member(run_dir, ids)
        with torch.no_grad():
            logits = hf(torch.tensor([ids])).logits[0]
        assert max_diff(logits, expected) <= TOL
        other = kept.model(torch.tensor(ids).expand(kept.n_models, 1, -1))[1 - MEMBER, 0]
        assert max_diff(logits, other.detach()) > 1e-3  # the member asked for, not the other one
    alone = kept.member(MEMBER)  # the same member as a one-member ensemble, with the same hook points
    assert alone.n_models == 1 and alone.hook_names() == kept.hook_names()
    with torch.no_grad():
        assert max_diff(alone(torch.tensor([[ids]]))[0, 0], expected) <= TOL  # float rounding: K changes the split


def test_transformer_lens_export_reproduces_logits_and_activations(run_dir, texts, tmp_path):
    out = tmp_path / "tl"
    code, _, err = cli(["export", str(run_dir), "--member", str(MEMBER), "--to", "transformer-lens", str(out)])
    assert code == 0, err
    tl = interop.load_transformer_lens(out)
    for text in texts:
        tokens = tl.to_tokens(text, truncate=False)
        expected, cache = learnlab_member(run_dir, tokens[0].tolist())
        logits, tl_cache = tl.run_with_cache(tokens)
        assert max_diff(logits[0], expected) <= TOL
        for layer in range(2):
            for point in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "attn.hook_pattern", "mlp.hook_post"):
                name = f"blocks.{layer}.{point}"
                assert max_diff(tl_cache[name][0], cache[name]) <= TOL, name


def test_the_readme_probe_example_runs_as_written(run_dir, capsys):
    """The README's notebook-style example, executed on a smoke run: it loads the run, caches
    blocks.1.hook_resid_post on biographies and fits a scikit-learn probe, without training anything."""
    text = README.read_text()
    code = re.search(r"<!-- probe example -->\s*```python\n(.*?)```", text, re.S)
    assert code, "README.md lost its probe example"
    source = code.group(1).replace('"runs/ka-smoke"', repr(str(run_dir)))
    assert repr(str(run_dir)) in source
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    namespace: dict = {}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    printed = capsys.readouterr().out
    assert re.search(r"probe accuracy on held-out templates: \d+%", printed), printed
    probe = namespace["probe"]
    assert probe.coef_.shape[1] == 32  # fitted on the residual stream (d_model of the smoke preset)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before  # nothing retrained or rewritten


def test_bad_exports_are_refused_before_writing(run_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(LearnlabError, match=r"--member 2: model 'train' has members 0\.\.1 \(0: default seed 0"):
        learnlab.export(run_dir, member=2, to="hf", out=out)
    with pytest.raises(LearnlabError, match="--to 'onnx'"):
        learnlab.export(run_dir, member=0, to="onnx", out=out)
    with pytest.raises(LearnlabError, match="--model 'nope'"):
        learnlab.export(run_dir, member=0, to="hf", out=out, model="nope")
    out.mkdir()
    with pytest.raises(LearnlabError, match="already exists"):
        learnlab.export(run_dir, member=0, to="hf", out=out)
    assert list(tmp_path.iterdir()) == [out] and not list(out.iterdir())

    twice = shutil.copytree(run_dir, tmp_path / "twice")
    for file in list((twice / "models").glob("train.*")):
        shutil.copy(file, file.with_name(file.name.replace("train", "again", 1)))
    (twice / "models" / "again.json").write_text(
        (twice / "models" / "again.json").read_text().replace("train.", "again.")
    )
    with pytest.raises(LearnlabError, match=r"several transformers \(again, train\): name one with --model"):
        learnlab.export(twice, member=0, to="hf", out=tmp_path / "x")
    learnlab.export(twice, member=0, to="transformer-lens", out=tmp_path / "x", model="again")
    assert (tmp_path / "x" / interop.TL_WEIGHTS).is_file()
