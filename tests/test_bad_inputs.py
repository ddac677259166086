"""Bad input across the whole command line (issue 12): every case below exits with code 2 and prints one
line on stderr that names the bad key, value or file, never a traceback, and leaves the directory it ran in
exactly as it was (every file's bytes compared before and after).

The cases run in this process through click's CliRunner isolation (`main`, as the `learnlab` command
calls it), each in an empty working directory that its setup fills (a finished smoke run, damaged files,
an interrupted run's hidden directory ...)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import cli

from learnlab import api

Setup = Callable[[Path, Path], None]  # (working directory, a finished smoke run to copy from)
HN = ["run", "hard-negatives", "--preset", "smoke", "--quiet"]
LOOPED = ["run", "looped-introspection", "--preset", "smoke", "--quiet"]


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


# --- setups ---------------------------------------------------------------------------------------------


def done(tmp: Path, finished: Path) -> None:
    """A finished run directory `done`."""
    shutil.copytree(finished, tmp / "done")


def damaged(file: str, content: bytes) -> Setup:
    """A finished run `done` whose `file` holds `content`."""

    def setup(tmp: Path, finished: Path) -> None:
        done(tmp, finished)
        (tmp / "done" / file).write_bytes(content)

    return setup


def without(file: str) -> Setup:
    def setup(tmp: Path, finished: Path) -> None:
        done(tmp, finished)
        (tmp / "done" / file).unlink()

    return setup


def a_file(name: str, content: bytes = b"") -> Setup:
    def setup(tmp: Path, finished: Path) -> None:
        (tmp / name).write_bytes(content)

    return setup


def a_config(text: str) -> Setup:
    """A finished run's config.yaml, edited: `text` replaces its line of the same key, or is added."""

    def setup(tmp: Path, finished: Path) -> None:
        key = text.split(":")[0]
        lines = [line for line in (finished / "config.yaml").read_text().splitlines() if not line.startswith(key + ":")]
        (tmp / "c.yaml").write_text("\n".join([*lines, text]) + "\n")

    return setup


def interrupted(config: str | None = None, checkpoint: bytes | None = None) -> Setup:
    """The hidden directory of an interrupted run `cut`: the finished run's config (or `config`) and a
    checkpoint with `checkpoint`'s bytes."""

    def setup(tmp: Path, finished: Path) -> None:
        work = tmp / ".cut.partial"
        work.mkdir()
        text = (finished / "config.yaml").read_text() if config is None else config
        (work / "config.yaml").write_text(text)
        if checkpoint is not None:
            (work / "train.ckpt").write_bytes(checkpoint)

    return setup


def a_sweep_of(study: str | None) -> Setup:
    def setup(tmp: Path, finished: Path) -> None:
        (tmp / "sw").mkdir()
        marker = "{not json" if study is None else json.dumps({"study": study})
        (tmp / "sw" / "sweep.json").write_text(marker)

    return setup


def a_directory_with_a_file(tmp: Path, finished: Path) -> None:
    (tmp / "busy").mkdir()
    (tmp / "busy" / "notes.txt").write_text("mine")


def without_models(tmp: Path, finished: Path) -> None:
    """A finished run `done` as made before runs kept their models."""
    done(tmp, finished)
    shutil.rmtree(tmp / "done" / "models")


def a_transformer_run(tmp: Path, finished: Path) -> None:
    """A finished run `lm` keeping a small two-member transformer (its LSTM's models replaced)."""
    from learnlab.models.transformer import EnsembleTransformer
    from learnlab.store.models import ModelKeeper

    shutil.copytree(finished, tmp / "lm")
    shutil.rmtree(tmp / "lm" / "models")
    model = EnsembleTransformer(2, 30, 8, d_model=8, n_layers=1, n_heads=2, d_mlp=16, n_out=30)
    model.reset_parameters([torch.Generator().manual_seed(k) for k in range(2)])
    keeper = ModelKeeper("final")
    keeper.keep("lm", model, [("concept", 0), ("concept", 1)])
    keeper.result().write(tmp / "lm")


def a_transformer_run_and_a_directory(tmp: Path, finished: Path) -> None:
    a_transformer_run(tmp, finished)
    (tmp / "busy").mkdir()


MARKS = {
    "device: no CUDA": pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here: --device cuda is valid")
}

# (id, argv, strings the error must name, setup)
CASES: list[tuple[str, list[str], tuple[str, ...], Setup | None]] = [
    # run: unknown names
    ("unknown study", ["run", "no-such-study"], ("'no-such-study'",), None),
    ("unknown arm", [*HN, "--arms", "baseline,nope"], ("'nope'",), None),
    ("arm twice", [*HN, "--arms", "concept,concept"], ("'arms'", "twice"), None),
    ("no arm named", [*HN, "--arms", ","], ("--arms ','",), None),
    ("unknown preset", [*HN, "--preset", "huge"], ("'huge'",), None),
    ("unknown key", [*HN, "--set", "no_such_key=1"], ("'no_such_key'",), None),
    ("--set without =", [*HN, "--set", "steps"], ("'steps'", "key=value"), None),
    ("--set without key", [*HN, "--set", "=3"], ("'=3'",), None),
    ("unknown command", ["frobnicate"], ("frobnicate",), None),
    ("unknown option", [*HN, "--frobnicate"], ("--frobnicate",), None),
    ("missing study", ["run"], ("STUDY",), None),
    # run: bad values of every type
    ("int: a bool", [*HN, "--set", "steps=true"], ("'steps'",), None),
    ("int: a string", [*HN, "--set", 'steps="10"'], ("'steps'",), None),
    ("int: a fraction", [*HN, "--set", "steps=1.5"], ("'steps'",), None),
    ("int: negative", [*HN, "--set", "steps=-3"], ("'steps'",), None),
    ("int: zero", [*HN, "--set", "steps=0"], ("'steps'",), None),
    ("int: null", [*HN, "--set", "steps=null"], ("'steps'",), None),
    ("int: infinite", [*HN, "--set", "steps=1e400"], ("'steps'",), None),
    ("int: a list", [*HN, "--set", "steps=[10]"], ("'steps'",), None),
    ("int: too big a seed", [*HN, "--set", "seed=99999999999999999999"], ("'seed'",), None),
    ("int: negative seed", [*HN, "--set", "seed=-1"], ("'seed'",), None),
    ("int: above its bound", ["run", "knowledge-acquisition", "--set", "n_days=29"], ("'n_days'",), None),
    ("float: nan", [*HN, "--set", "lr=.nan"], ("'lr'",), None),
    ("float: inf", [*HN, "--set", "lr=.inf"], ("'lr'",), None),
    ("float: a bool", [*HN, "--set", "lr=true"], ("'lr'",), None),
    ("float: a string", [*HN, "--set", 'lr="0.001"'], ("'lr'",), None),
    ("float: a list", [*HN, "--set", "lr=[0.1]"], ("'lr'",), None),
    ("float: negative", [*HN, "--set", "lr=-1"], ("'lr'",), None),
    ("float: at an open bound", ["run", "knowledge-acquisition", "--set", "beta2=1"], ("'beta2'",), None),
    ("float: out of range", ["run", "softmax-negatives", "--set", "hard_threshold=1"], ("'hard_threshold'",), None),
    ("bool: a number", ["run", "fine-tuning-forgetting", "--set", "frozen_attention=1"], ("'frozen_attention'",), None),
    ("bool: a string", ["run", "knowledge-acquisition", "--set", 'bf16="yes"'], ("'bf16'",), None),
    ("choice: unknown", ["run", "subliminal", "--set", "distill_loss=l2"], ("'distill_loss'",), None),
    ("choice: a number", ["run", "subliminal", "--set", "init=0"], ("'init'",), None),
    ("choice: backend", ["run", "plateau-scaling", "--set", "backend=spark"], ("'backend'",), None),
    ("str: a number", ["run", "plateau-scaling", "--set", "address=5"], ("'address'",), None),
    ("list: too short", ["run", "plateau-scaling", "--set", "n_values=[10]"], ("n_values",), None),
    ("list: empty", ["run", "robustness", "--set", "bits=[]"], ("'bits'",), None),
    ("list: out of range", ["run", "robustness", "--set", "bits=[1]"], ("bits",), None),
    ("list: a bool item", ["run", "data-imbalance", "--set", "alphas=[0, true]"], ("alphas",), None),
    ("list: a fraction item", ["run", "data-imbalance", "--set", "n_values=[100, 1.5]"], ("n_values",), None),
    ("list: a scalar", [*HN, "--set", "arms=5"], ("'arms'",), None),
    ("list: an unknown arm", [*HN, "--set", "arms=[nope]"], ("'nope'",), None),
    ("across keys: lengths", [*HN, "--set", "min_len=9", "--set", "max_len=7"], ("max_len",), None),
    ("across keys: vocabulary", [*HN, "--set", "max_len=60"], ("vocab_size >= 60",), None),
    ("across keys: generations", ["run", "model-collapse", "--set", "generations=1"], ("'generations'",), None),
    ("device: unknown", [*HN, "--device", "tpu"], ("'tpu'", "'device'"), None),
    ("device: bad index", [*HN, "--set", "device=cuda:x"], ("'cuda:x'",), None),
    ("device: no CUDA", [*HN, "--device", "cuda"], ("cuda",), None),
    # run: seeds and sizes
    ("--seeds 0", [*HN, "--seeds", "0"], ("'seeds'",), None),
    ("--seeds negative", [*HN, "--seeds", "-2"], ("'seeds'",), None),
    ("--seeds a word", [*HN, "--seeds", "many"], ("--seeds", "'many'"), None),
    ("--seeds 1e6", [*HN, "--seeds", "1000000"], ("seeds=1000000", "of memory"), None),
    ("memory: batch_size", [*HN, "--set", "batch_size=100000000"], ("batch_size=100000000", "of memory"), None),
    ("memory: hidden_size", [*HN, "--set", "hidden_size=1000000"], ("hidden_size=1000000", "of memory"), None),
    ("memory: eval_size", [*HN, "--set", "eval_size=1e9"], ("eval_size=1000000000", "of memory"), None),
    (
        "memory: d_model",
        ["run", "knowledge-acquisition", "--preset", "smoke", "--set", "d_model=1000000"],
        ("d_model=1000000", "of memory"),
        None,
    ),
    ("--checkpoint-every 0", [*HN, "--checkpoint-every", "0"], ("--checkpoint-every",), None),
    ("--checkpoint-every a word", [*HN, "--checkpoint-every", "often"], ("--checkpoint-every", "'often'"), None),
    # run: backends
    ("--backend on a study without", [*HN, "--backend", "ray"], ("--backend", "'hard-negatives'"), None),
    ("--backend unknown", [*HN, "--backend", "spark"], ("'spark'",), None),
    (
        "--address nothing answers",
        ["run", "plateau-scaling", "--preset", "smoke", "--backend", "ray", "--address", "127.0.0.1:1"],
        ("'127.0.0.1:1'",),
        None,
    ),
    (
        "--address alone, nothing answers",
        ["run", "data-imbalance", "--preset", "smoke", "--address", "127.0.0.1:1"],
        ("'127.0.0.1:1'",),
        None,
    ),
    # run: files and directories
    ("--config missing", [*HN, "--config", "missing.yaml"], ("missing.yaml",), None),
    ("--config malformed", [*HN, "--config", "bad.yaml"], ("bad.yaml",), a_file("bad.yaml", b"steps: [1,\n  : :")),
    ("--config a list", [*HN, "--config", "list.yaml"], ("list.yaml",), a_file("list.yaml", b"- 1\n- 2\n")),
    ("--config not utf-8", [*HN, "--config", "bin.yaml"], ("bin.yaml",), a_file("bin.yaml", b"\xff\xfe\x00steps")),
    ("--config a directory", [*HN, "--config", "done"], ("done",), done),
    ("--config unknown key", [*HN, "--config", "c.yaml"], ("'no_such_key'",), a_config("no_such_key: 1")),
    ("--config bad value", [*HN, "--config", "c.yaml"], ("'steps'",), a_config("steps: -1")),
    (
        "--config relabelled preset",
        ["run", "hard-negatives", "--config", "done/config.yaml", "--preset", "laptop"],
        ("'smoke'", "'laptop'"),
        done,
    ),
    (
        "--config of another study",
        ["run", "model-collapse", "--config", "done/config.yaml"],
        ("'hard-negatives'", "'model-collapse'"),
        done,
    ),
    ("--out under a file", [*HN, "--out", "/dev/null/x"], ("/dev/null/x",), None),
    ("--out a file", [*HN, "--out", "afile"], ("'afile'",), a_file("afile", b"mine")),
    ("--out a finished run", [*HN, "--out", "done"], ("'done'",), done),
    ("--out a directory in use", [*HN, "--out", "busy"], ("'busy'",), a_directory_with_a_file),
    ("--out an interrupted run", [*HN, "--out", "cut"], ("'cut'", "learnlab resume"), interrupted()),
    ("--resume nothing there", [*HN, "--resume", "nowhere"], ("'nowhere'",), None),
    ("--resume a finished run", [*HN, "--resume", "done"], ("'done'",), done),
    ("--resume another study", ["run", "model-collapse", "--resume", "cut"], ("'hard-negatives'",), interrupted()),
    # resume
    ("resume nothing there", ["resume", "nowhere"], ("'nowhere'",), None),
    ("resume a finished run", ["resume", "done"], ("'done'",), done),
    ("resume a malformed config", ["resume", "cut"], ("config.yaml",), interrupted(config="steps: [1,\n  : :")),
    ("resume a config of no study", ["resume", "cut"], ("config.yaml", "unknown study"), interrupted(config="a: 1\n")),
    (
        "resume a bad value",
        ["resume", "cut"],
        ("config.yaml", "'steps'"),
        interrupted(config="study: hard-negatives\nsteps: -1\n"),
    ),
    (
        "resume a damaged checkpoint",
        ["resume", "cut"],
        ("train.ckpt",),
        interrupted(checkpoint=b"PK\x03\x04 not a zip"),
    ),
    ("resume without a directory", ["resume"], ("RUN_DIR",), None),
    # report
    ("report nothing there", ["report", "nowhere"], ("nowhere",), None),
    ("report a file", ["report", "afile"], ("'afile'",), a_file("afile")),
    ("report a truncated summary", ["report", "done"], ("summary.json",), damaged("summary.json", b'{"study": "hard-')),
    ("report an empty summary", ["report", "done"], ("summary.json",), damaged("summary.json", b"")),
    ("report a summary list", ["report", "done"], ("summary.json",), damaged("summary.json", b"[1, 2]")),
    ("report a summary of no table", ["report", "done"], ("summary.json",), damaged("summary.json", b'{"study": "x"}')),
    ("report a corrupt parquet", ["report", "done"], ("metrics.parquet",), damaged("metrics.parquet", b"PAR1 junk")),
    ("report no parquet", ["report", "done"], ("metrics.parquet",), without("metrics.parquet")),
    # run: models kept
    ("save-models unknown", [*HN, "--save-models", "some"], ("'some'",), None),
    ("snapshot-every zero", [*HN, "--snapshot-every", "0"], ("--snapshot-every",), None),
    ("snapshot-every a word", [*HN, "--snapshot-every", "often"], ("--snapshot-every", "'often'"), None),
    (
        "snapshots, no models",
        [*HN, "--save-models", "none", "--snapshot-every", "5"],
        ("--snapshot-every", "none"),
        None,
    ),
    (
        "resume, other models",
        ["run", "hard-negatives", "--resume", "cut", "--save-models", "all"],
        ("--save-models",),
        interrupted(),
    ),
    # export
    ("export not a run", ["export", "nowhere", "x", "--member", "0", "--to", "hf"], ("'nowhere'",), None),
    (
        "export no models",
        ["export", "done", "x", "--member", "0", "--to", "hf"],
        ("'done'", "no trained models"),
        without_models,
    ),
    ("export an LSTM", ["export", "done", "x", "--member", "0", "--to", "hf"], ("EnsembleLSTMClassifier",), done),
    (
        "export an LSTM by name",
        ["export", "done", "x", "--member", "0", "--to", "transformer-lens", "--model", "train"],
        ("'train'", "EnsembleLSTMClassifier"),
        done,
    ),
    (
        "export member too big",
        ["export", "lm", "x", "--member", "2", "--to", "hf"],
        ("--member 2", "0..1"),
        a_transformer_run,
    ),
    (
        "export member negative",
        ["export", "lm", "x", "--member", "-1", "--to", "hf"],
        ("--member -1",),
        a_transformer_run,
    ),
    (
        "export member a word",
        ["export", "lm", "x", "--member", "one", "--to", "hf"],
        ("--member", "'one'"),
        a_transformer_run,
    ),
    ("export no member", ["export", "lm", "x", "--to", "hf"], ("--member",), a_transformer_run),
    ("export unknown format", ["export", "lm", "x", "--member", "0", "--to", "onnx"], ("'onnx'",), a_transformer_run),
    (
        "export unknown model",
        ["export", "lm", "x", "--member", "0", "--to", "hf", "--model", "nope"],
        ("'nope'",),
        a_transformer_run,
    ),
    (
        "export into a directory",
        ["export", "lm", "busy", "--member", "0", "--to", "hf"],
        ("'busy'", "exists"),
        a_transformer_run_and_a_directory,
    ),
    ("export into a file", ["export", "lm", "afile", "--member", "0", "--to", "hf"], ("'afile'",), a_file("afile")),
    (
        "export damaged weights",
        ["export", "done", "x", "--member", "0", "--to", "hf"],
        ("models/train.safetensors",),
        damaged("models/train.safetensors", b"junk"),
    ),
    (
        "export no description",
        ["export", "done", "x", "--member", "0", "--to", "hf"],
        ("models/train.json",),
        without("models/train.json"),
    ),
    (
        "export damaged description",
        ["export", "done", "x", "--member", "0", "--to", "hf"],
        ("models/train.json",),
        damaged("models/train.json", b'{"class": "os:system"}'),
    ),
    # runs, show, top level
    ("runs: unknown option", ["runs", "--frobnicate"], ("--frobnicate",), None),
    ("runs: extra argument", ["runs", "extra"], ("extra",), None),
    ("show unknown study", ["show", "no-such-study"], ("'no-such-study'",), None),
    ("show without a study", ["show"], ("STUDY",), None),
    ("show two studies", ["show", "hard-negatives", "model-collapse"], ("model-collapse",), None),
    ("top: unknown option", ["--frobnicate"], ("--frobnicate",), None),
    # sweep
    ("sweep without --grid", ["sweep", "hard-negatives"], ("--grid",), None),
    ("sweep --grid no values", ["sweep", "hard-negatives", "--grid", "lr"], ("'lr'", "--grid"), None),
    ("sweep --grid empty", ["sweep", "hard-negatives", "--grid", "lr=,"], ("'lr=,'",), None),
    ("sweep --grid unknown key", ["sweep", "hard-negatives", "--grid", "nope=1,2"], ("'nope'",), None),
    ("sweep --grid bad value", ["sweep", "hard-negatives", "--grid", "lr=0.1,-1"], ("'lr'",), None),
    ("sweep --grid axis twice", ["sweep", "hard-negatives", "--grid", "lr=0.1", "--grid", "lr=0.2"], ("'lr'",), None),
    (
        "sweep --grid and --seeds",
        ["sweep", "hard-negatives", "--grid", "seeds=1,2", "--seeds", "3"],
        ("'seeds'",),
        None,
    ),
    ("sweep unknown study", ["sweep", "nope", "--grid", "lr=0.1"], ("'nope'",), None),
    (
        "sweep unknown backend",
        ["sweep", "hard-negatives", "--grid", "lr=0.1", "--backend", "spark"],
        ("'spark'",),
        None,
    ),
    (
        "sweep too big a point",
        ["sweep", "hard-negatives", "--preset", "smoke", "--grid", "batch_size=32,100000000"],
        ("batch_size=100000000",),
        None,
    ),
    ("sweep into a run", ["sweep", "hard-negatives", "--grid", "lr=0.1", "--out", "done"], ("'done'",), done),
    (
        "sweep into a file",
        ["sweep", "hard-negatives", "--grid", "lr=0.1", "--out", "afile"],
        ("'afile'",),
        a_file("afile"),
    ),
    (
        "sweep into another's sweep",
        ["sweep", "hard-negatives", "--grid", "lr=0.1", "--out", "sw"],
        ("'model-collapse'",),
        a_sweep_of("model-collapse"),
    ),
    (
        "sweep a damaged marker",
        ["sweep", "hard-negatives", "--grid", "lr=0.1", "--out", "sw"],
        ("sweep.json",),
        a_sweep_of(None),
    ),
    (
        "sweep into a used directory",
        ["sweep", "hard-negatives", "--grid", "lr=0.1", "--out", "busy"],
        ("'busy'",),
        a_directory_with_a_file,
    ),
    (
        "sweep Ray, nothing answers",
        [
            "sweep",
            "hard-negatives",
            "--preset",
            "smoke",
            "--grid",
            "lr=0.1",
            "--backend",
            "ray",
            "--address",
            "127.0.0.1:1",
            "--out",
            "sw2",
        ],
        ("'127.0.0.1:1'",),
        None,
    ),
    # looped-introspection (issue 14): no loops; more nodes than the vocabulary has node tokens
    ("looped: zero loops", [*LOOPED, "--set", "loops=0"], ("'loops'",), None),
    ("looped: nodes past the vocabulary", [*LOOPED, "--set", "n_nodes=25"], ("n_nodes=25",), None),
]


PARAMS = [pytest.param(*values, id=ident, marks=MARKS.get(ident, ())) for ident, *values in CASES]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    api.run("hard-negatives", preset="smoke", arms=["concept"], overrides={"steps": 20}, out=out, progress=False)
    return out


def test_there_are_at_least_60_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize("argv, named, setup", PARAMS)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(in_tmp, finished, argv, named, setup):
    if setup is not None:
        setup(in_tmp, finished)
    before = tree(in_tmp)
    code, out, err = cli(argv)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert all(name in err for name in named), err
    assert tree(in_tmp) == before
