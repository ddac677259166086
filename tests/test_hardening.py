"""Hardening (issue 12): damaged run directories, running out of memory or disk, failed resumes,
concurrent processes on one directory, sweeps into existing directories, unreachable Ray addresses and
checkpoints that are damaged or pickle code. Each is one line on stderr, exit 2, and nothing lost."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings as warnings_module
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pandas as pd
import pytest
import torch

import learnlab
from learnlab import api
from learnlab.cli import main
from learnlab.engine.jobs import connect_ray
from learnlab.engine.train import Checkpoint
from learnlab.errors import Interrupted, LearnlabError

SMOKE = ["run", "hard-negatives", "--preset", "smoke", "--quiet", "--arms", "concept"]
# 130 steps, a checkpoint every 50: an interruption at step 120 leaves the checkpoint of step 100
STEPS = {"arms": ["concept"], "overrides": {"steps": 130}, "checkpoint_every": 50}


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for a directory): to see that nothing changed."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def one_line_error(capsys, *named: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert all(name in err for name in named), err
    return err


@contextmanager
def failing_at(step: int, error: BaseException):
    """Training raises `error` when it reports step `step` (through the progress bar's callback)."""
    real = api.progress_bar

    @contextmanager
    def bar(desc, total, enabled):
        with real(desc, total, False) as update:

            def report(done):
                if done == step:
                    raise error
                update(done)

            yield report

    api.progress_bar = bar
    try:
        yield
    finally:
        api.progress_bar = real


def raising(error: BaseException):
    def fail(*args, **kwargs):
        raise error

    return fail


def smoke(out: Path, **kw) -> dict:
    return learnlab.run("hard-negatives", preset="smoke", out=out, progress=False, **{**STEPS, **kw})


@pytest.fixture
def interrupted(tmp_path) -> Path:
    """A run interrupted at step 120: its hidden directory holds the checkpoint of step 100."""
    out = tmp_path / "cut"
    with failing_at(120, KeyboardInterrupt()), pytest.raises(Interrupted):
        smoke(out)
    assert (tmp_path / ".cut.partial" / "train.ckpt").is_file()
    return out


# --- 1. damaged run directories -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    learnlab.run("hard-negatives", preset="smoke", arms=["concept"], out=out, progress=False)
    return out


SUMMARY_DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "a list": lambda text: "[1, 2]",
    "a string": lambda text: '"summary"',
    "not utf-8": lambda text: "\udcff",
    "no table": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "table"}),
    "seeds not a list": lambda text: json.dumps({**json.loads(text), "seeds": 3}),
    "a cell without mean": lambda text: json.dumps(
        {**json.loads(text), "table": {"concept": {"hard": {"std": 0.1, "ci95": [0, 1]}}}}
    ),
}


@pytest.mark.parametrize("damage", sorted(SUMMARY_DAMAGE))
def test_report_of_a_damaged_summary_is_one_line_naming_it(finished, tmp_path, capsys, damage):
    run = shutil.copytree(finished, tmp_path / "run")
    text = SUMMARY_DAMAGE[damage]((run / "summary.json").read_text())
    (run / "summary.json").write_bytes(text.encode(errors="surrogateescape"))
    assert main(["report", str(run)]) == 2
    one_line_error(capsys, "summary.json")
    with pytest.raises(LearnlabError, match="summary.json"):
        learnlab.report(run)


METRICS_DAMAGE = {
    "truncated": lambda file: file.write_bytes(file.read_bytes()[: file.stat().st_size // 2]),
    "not parquet": lambda file: file.write_text("arm,seed\n"),
    "empty": lambda file: file.write_bytes(b""),
    "no value column": lambda file: pd.read_parquet(file).drop(columns="value").to_parquet(file),
    "value as text": lambda file: pd.read_parquet(file).astype({"value": str}).to_parquet(file),
    "a directory": lambda file: (file.unlink(), file.mkdir()),
}


@pytest.mark.parametrize("damage", sorted(METRICS_DAMAGE))
def test_report_of_damaged_metrics_is_one_line_naming_them(finished, tmp_path, capsys, damage):
    run = shutil.copytree(finished, tmp_path / "run")
    METRICS_DAMAGE[damage](run / "metrics.parquet")
    assert main(["report", str(run)]) == 2
    one_line_error(capsys, "metrics.parquet")


def test_report_of_a_summary_lacking_what_a_studys_figures_read_is_one_line(tmp_path, capsys):
    old = Path(__file__).parent / "data" / "runs-before-issue-11" / "fine-tuning-forgetting"
    run = shutil.copytree(old, tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    del summary["config"]["replay_new"]  # a fine-tuning-forgetting figure names its replay arm with it
    (run / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(run)]) == 2
    one_line_error(capsys, "summary.json", "replay_new")


def test_runs_skips_a_damaged_summary_with_a_warning_naming_it(finished, tmp_path, capsys):
    root = tmp_path / "runs"
    for name in ("good", "truncated", "a-list", "nested/deeper"):
        shutil.copytree(finished, root / name)
    (root / "truncated" / "summary.json").write_text('{"study": "hard-')
    (root / "a-list" / "summary.json").write_text("[]")
    assert main(["runs", "--root", str(root)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    warnings = captured.err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: ") and w.endswith("skipped") for w in warnings)
    assert any("truncated/summary.json" in w for w in warnings) and any("a-list/summary.json" in w for w in warnings)
    listed = [line.split()[0] for line in captured.out.splitlines()[1:]]
    assert listed == [str(root / "good"), str(root / "nested" / "deeper")]
    with warnings_module.catch_warnings(record=True) as caught:
        warnings_module.simplefilter("always")
        found = learnlab.runs(root)
    assert sorted(str(w.message) for w in caught) == sorted(line.removeprefix("warning: ") for line in warnings)
    assert [s["run_dir"] for s in found] == listed


def test_a_resume_whose_finished_job_file_is_damaged_names_it(tmp_path):
    from learnlab.engine.context import RunContext
    from learnlab.engine.jobs import GridConfig, Job, run_jobs

    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "a.parquet").write_text("half a parquet file")
    ctx = RunContext(lambda desc, total: nullcontext(lambda n: None), tmp_path)
    with pytest.raises(LearnlabError, match="jobs/a.parquet"):
        run_jobs([Job("a", lambda config, ctx: pd.DataFrame(), None)], GridConfig(), ctx, "test")
    assert (tmp_path / "jobs" / "a.parquet").read_text() == "half a parquet file"


# --- 2. out of memory, out of disk during a run ---------------------------------------------------------------

FULL_DISK = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "train.ckpt")
OVER_QUOTA = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
OUT_OF_MEMORY = {
    "torch.OutOfMemoryError": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    "MemoryError": MemoryError(),
    "CPU allocator": RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 400000000000 bytes. Error code 12 (Cannot allocate memory)"
    ),
}


@pytest.mark.parametrize("name", sorted(OUT_OF_MEMORY))
def test_out_of_memory_before_a_checkpoint_is_one_line_and_leaves_nothing(in_tmp, capsys, monkeypatch, name):
    monkeypatch.setattr(Checkpoint, "save", raising(OUT_OF_MEMORY[name]))
    assert main([*SMOKE, "--out", "r", "--checkpoint-every", "5"]) == 2
    one_line_error(capsys, "out of memory", "batch_size", "nothing was written")
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize("error", [FULL_DISK, OVER_QUOTA], ids=["ENOSPC", "EDQUOT"])
def test_a_full_disk_at_the_first_checkpoint_is_one_line_and_leaves_nothing(in_tmp, capsys, monkeypatch, error):
    monkeypatch.setattr(Checkpoint, "save", raising(error))
    assert main([*SMOKE, "--out", "r", "--checkpoint-every", "5"]) == 2
    one_line_error(capsys, "out of disk space", "nothing was written")
    assert list(in_tmp.iterdir()) == []


def test_a_checkpoint_that_cannot_be_written_keeps_the_previous_one(tmp_path, monkeypatch):
    """Checkpoint.save writes its bytes through Python: a full disk is an OSError naming the checkpoint,
    and the last whole checkpoint stays (no .tmp left beside it)."""
    checkpoint = Checkpoint(tmp_path / "train.ckpt")
    checkpoint.save({"step": 1})
    before = checkpoint.path.read_bytes()
    real = Path.write_bytes

    def full(self, data):
        real(self, bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as raised:
        checkpoint.save({"step": 2})
    assert raised.value.errno == errno.ENOSPC and "train.ckpt" in api.resource_problem(raised.value)
    assert checkpoint.path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["train.ckpt"]


def test_torchs_own_short_write_reads_as_a_full_disk():
    """torch.save to a path on a full disk raises a RuntimeError without the errno (seen on a tmpfs)."""
    err = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 525760 vs 525648")
    assert "disk full" in api.resource_problem(err)
    assert api.resource_problem(RuntimeError("a bug")) is None


def test_a_full_disk_when_writing_the_run_directory_keeps_the_checkpoints_to_resume(tmp_path, monkeypatch):
    real = api._write_contents

    def full(result, directory):
        (directory / "config.yaml").write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "metrics.parquet"))

    monkeypatch.setattr(api, "_write_contents", full)
    with pytest.raises(LearnlabError, match="out of disk space.*metrics.parquet.*learnlab resume"):
        smoke(tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.partial"]  # no half-written directory beside it
    monkeypatch.setattr(api, "_write_contents", real)
    resumed = learnlab.resume(tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "summary.json").is_file() and resumed["run_dir"] == str(tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_full_disk_in_a_sweep_keeps_its_finished_points(tmp_path, monkeypatch):
    from learnlab.sweeps import run_sweep

    real, calls = api._write_contents, []

    def full_on_the_second(result, directory):
        calls.append(directory)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(result, directory)

    monkeypatch.setattr(api, "_write_contents", full_on_the_second)
    kw = {"preset": "smoke", "arms": ["concept"], "out": tmp_path / "s", "progress": False}
    with pytest.raises(LearnlabError, match="out of disk space.*continues the sweep"):
        run_sweep("hard-negatives", ["lr=0.001,0.005"], **kw)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["000-lr=0.001", "sweep.json"]
    monkeypatch.setattr(api, "_write_contents", real)
    run_sweep("hard-negatives", ["lr=0.001,0.005"], **kw)
    assert (tmp_path / "s" / "001-lr=0.005" / "summary.json").is_file()


def test_a_full_disk_while_rewriting_a_report_is_one_line(finished, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(finished, tmp_path / "run")
    monkeypatch.setattr(api.reporting, "render", raising(FULL_DISK))
    assert main(["report", str(run)]) == 2
    one_line_error(capsys, "out of disk space")


# --- 3. a failed resume keeps what it started from ------------------------------------------------------------


@pytest.mark.parametrize(
    "error, message",
    [
        (FULL_DISK, "out of disk space"),
        (OUT_OF_MEMORY["torch.OutOfMemoryError"], "out of memory"),
        (RuntimeError("a bug"), "a bug"),
        (KeyboardInterrupt(), "learnlab resume"),
    ],
    ids=["ENOSPC", "OOM", "bug", "Ctrl-C"],
)
def test_a_failed_resume_leaves_the_interrupted_run_as_it_was(interrupted, error, message):
    partial = interrupted.parent / ".cut.partial"
    before = tree(partial)
    with failing_at(101, error), pytest.raises(type(error) if type(error) is RuntimeError else LearnlabError) as raised:
        learnlab.resume(interrupted, progress=False, checkpoint_every=50)  # fails before its next checkpoint
    assert message in str(raised.value)
    assert tree(partial) == before and not interrupted.exists()
    resumed = learnlab.resume(interrupted, progress=False, checkpoint_every=50)  # ... and can be retried
    assert resumed["run_dir"] == str(interrupted) and not partial.exists()


def test_a_run_that_saved_a_checkpoint_and_then_failed_can_be_resumed_to_the_same_result(tmp_path):
    whole = smoke(tmp_path / "whole")
    with failing_at(120, OSError(errno.ENOSPC, "No space left on device")), pytest.raises(LearnlabError):
        smoke(tmp_path / "cut")
    assert (tmp_path / ".cut.partial" / "train.ckpt").is_file()
    resumed = learnlab.resume(tmp_path / "cut", progress=False, checkpoint_every=50)
    assert resumed["table"] == whole["table"]


def test_the_cli_resume_of_a_full_disk_is_one_line_and_keeps_the_run(interrupted, capsys, monkeypatch):
    partial = interrupted.parent / ".cut.partial"
    before = tree(partial)
    monkeypatch.chdir(interrupted.parent)
    with failing_at(101, FULL_DISK):
        assert main(["resume", "cut", "--quiet"]) == 2
    one_line_error(capsys, "out of disk space", "learnlab resume cut")
    assert tree(partial) == before


# --- 4. one process per run directory -------------------------------------------------------------------------

HOLD = """
import sys
from pathlib import Path
from learnlab.store.rundir import locked
with locked(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""


@contextmanager
def held(path: Path):
    """Another process holding `path`'s lock, as a run or resume of it does; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_run_on_a_directory_in_use_is_refused_naming_the_pid(in_tmp, capsys):
    with held(in_tmp / "r") as holder:
        before = tree(in_tmp)
        assert main([*SMOKE, "--out", "r"]) == 2
        err = one_line_error(capsys, f"in use by pid {holder.pid}")
        assert "interrupted" not in err
        assert tree(in_tmp) == before  # nothing new (no partial directory), nothing removed
    assert main([*SMOKE, "--out", "r"]) == 0  # the holder died: the OS dropped its lock
    assert (in_tmp / "r" / "summary.json").is_file() and sorted(p.name for p in in_tmp.iterdir()) == ["r"]


def test_a_resume_of_a_directory_in_use_is_refused_and_touches_nothing(interrupted, capsys):
    with held(interrupted) as holder:
        before = tree(interrupted.parent)
        assert main(["resume", str(interrupted), "--quiet"]) == 2
        one_line_error(capsys, f"in use by pid {holder.pid}")
        assert main([*SMOKE, "--out", str(interrupted)]) == 2
        one_line_error(capsys, f"in use by pid {holder.pid}")
        assert tree(interrupted.parent) == before
    assert main(["resume", str(interrupted), "--quiet"]) == 0


def test_a_run_holds_its_lock_while_it_trains(tmp_path):
    """A real run in another process: while it trains, a second run and a resume are refused."""
    script = (
        "import learnlab, sys\n"
        "learnlab.run('hard-negatives', preset='smoke', arms=['concept'], overrides={'steps': 100000},"
        " out=sys.argv[1], progress=False, checkpoint_every=5)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "r")], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / ".r.partial" / "train.ckpt").is_file():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        for attempt in (lambda: smoke(tmp_path / "r"), lambda: learnlab.resume(tmp_path / "r", progress=False)):
            with pytest.raises(LearnlabError, match=f"in use by pid {proc.pid}"):
                attempt()
        assert proc.poll() is None  # the first run is unharmed
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / ".r.partial" / "train.ckpt").is_file()  # killed -9: resumable


# --- 5. sweeps into existing directories ----------------------------------------------------------------------

SWEEP = ["sweep", "hard-negatives", "--grid", "lr=0.001", "--preset", "smoke", "--arms", "concept", "--quiet"]


@pytest.mark.parametrize("kind", ["a finished run", "a non-empty directory", "another study's sweep", "a file"])
def test_a_sweep_into_an_existing_directory_that_is_not_its_sweep_is_refused(finished, in_tmp, capsys, kind):
    target = in_tmp / "target"
    if kind == "a finished run":
        shutil.copytree(finished, target)
    elif kind == "a non-empty directory":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    elif kind == "another study's sweep":
        target.mkdir()
        (target / "sweep.json").write_text(json.dumps({"study": "model-collapse"}))
    else:
        target.write_text("mine")
    before = tree(in_tmp)
    assert main([*SWEEP, "--out", "target"]) == 2
    one_line_error(capsys, "target")
    assert tree(in_tmp) == before


def test_a_sweep_into_an_empty_directory_or_its_own_runs(in_tmp, capsys):
    (in_tmp / "empty").mkdir()
    assert main([*SWEEP, "--out", "empty"]) == 0
    assert json.loads((in_tmp / "empty" / "sweep.json").read_text())["study"] == "hard-negatives"
    assert main([*SWEEP, "--out", "empty"]) == 0  # resumed: nothing to run again


def test_an_interrupted_sweep_is_marked_from_its_start_and_resumes(tmp_path, monkeypatch):
    from learnlab.sweeps import run_sweep

    kw = {"preset": "smoke", "arms": ["concept"], "out": tmp_path / "s", "progress": False}
    real, calls = api.write_run, []

    def interrupted_at_the_second(result, out):
        calls.append(out)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(result, out)

    monkeypatch.setattr(api, "write_run", interrupted_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_sweep("hard-negatives", ["lr=0.001,0.005"], **kw)
    assert (tmp_path / "s" / "sweep.json").is_file() and (tmp_path / "s" / "000-lr=0.001").is_dir()
    monkeypatch.setattr(api, "write_run", real)
    result = run_sweep("hard-negatives", ["lr=0.001,0.005"], **kw)
    assert set(result.table.run) == {"000-lr=0.001", "001-lr=0.005"}


# --- 6. an unreachable Ray address ------------------------------------------------------------------------------


@pytest.mark.ray
@pytest.mark.parametrize(
    "argv",
    [
        [*SWEEP, "--backend", "ray", "--address", "127.0.0.1:1", "--out", "s"],
        ["run", "plateau-scaling", "--preset", "smoke", "--quiet", "--backend", "ray", "--address", "127.0.0.1:1"],
    ],
    ids=["sweep", "grid study"],
)
def test_an_unreachable_ray_address_is_answered_at_once_and_creates_nothing(in_tmp, capsys, argv):
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    started = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - started < 30
    one_line_error(capsys, "127.0.0.1:1", "no Ray cluster answers")
    assert list(in_tmp.iterdir()) == [] and not ray.is_initialized()


@pytest.mark.ray
def test_a_port_that_accepts_but_never_answers_is_refused_within_seconds():
    pytest.importorskip("ray")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(LearnlabError, match="no Ray cluster answers there"):
            connect_ray(f"127.0.0.1:{silent.getsockname()[1]}")
        assert time.monotonic() - started < 30


@pytest.mark.ray
def test_a_real_ray_cluster_passes_the_probe():
    ray = pytest.importorskip("ray")
    from learnlab.engine.jobs import _probe

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        _probe(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.mark.parametrize("address", ["nohost", "host:port", "h:0", "h:99999", "ray://:10001"])
def test_a_malformed_ray_address_is_refused_before_ray_starts(address):
    pytest.importorskip("ray")
    with pytest.raises(LearnlabError, match="HOST:PORT"):
        connect_ray(address)


# --- 10. checkpoints are loaded as data only -------------------------------------------------------------------


class Payload:
    """Unpickling this runs a shell command: a checkpoint must never be loaded that way."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_pickles_code_is_refused_and_never_run(interrupted, capsys, tmp_path):
    partial = interrupted.parent / ".cut.partial"
    marker = tmp_path / "executed"
    state = torch.load(partial / "train.ckpt", weights_only=True)
    torch.save({**state, "evals": Payload(marker)}, partial / "train.ckpt")
    before = tree(partial)
    assert main(["resume", str(interrupted), "--quiet"]) == 2
    one_line_error(capsys, "train.ckpt", "could run code")
    assert not marker.exists() and tree(partial) == before


@pytest.mark.parametrize("damage", ["truncated", "empty", "not a checkpoint"])
def test_a_damaged_checkpoint_is_one_line_and_the_directory_stays(interrupted, capsys, damage):
    file = interrupted.parent / ".cut.partial" / "train.ckpt"
    if damage == "truncated":
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    elif damage == "empty":
        file.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(2)}, file)
    before = tree(file.parent)
    assert main(["resume", str(interrupted), "--quiet"]) == 2
    one_line_error(capsys, "train.ckpt")
    assert tree(file.parent) == before


def test_every_torch_load_in_the_package_is_weights_only():
    source = Path(learnlab.__file__).parent
    calls = [
        (file, line) for file in source.rglob("*.py") for line in file.read_text().splitlines() if "torch.load(" in line
    ]
    assert calls and all("weights_only=True" in line for _, line in calls), calls
