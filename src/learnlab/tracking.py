"""Live tracking: every training evaluation streamed, as it happens, to MLflow, TensorBoard or W&B (offline).

The run directory stays the source of truth (nothing in it changes with tracking); a tracker is a view
for the dashboards people already use. Each sink is an optional extra imported only when asked for
(`pip install 'learnlab[track]'`), and a missing one is refused before a run writes anything.

How the curves are named: `train_ensemble` reports each evaluation here (`evaluated`); the training's
name is the description of the progress bar it runs under (RunContext.progress, which every study
uses), so no study is edited. A metric goes out as `SECTION/METRIC/mean`, the mean over the ensemble's
members (the finite ones), and, for ensembles of at most MEMBERS_MAX members, `SECTION/METRIC/memberK`
(member k of the ensemble, in the study's member order) too; the training loss at that step is
`SECTION/train_loss/...`. SECTION is the bar's description made a safe key ("hard-negatives · 8 models"
-> "hard-negatives/8_models"; a repeated one gets "#2", "#3"). At the end the final table's means go
out as `final/ARM/METRIC` and each claim's verdict as the tag `verdict/N` (its sentence: `claim/N`).
A resumed run is a new tracked run that gets the checkpoint's evaluations too. Grid studies on
--backend ray train in other processes and stream nothing. A sink that fails mid-run is dropped with
one warning; the run goes on.

Where it goes (`--track-uri`, default beside the run directory, shared by the runs of that root):
mlflow: ROOT/mlruns (a file store; any MLflow tracking URI is taken, e.g. sqlite:///...), experiment =
the study, run name = the run directory's name (MLflow 3 opens a file store only with
MLFLOW_ALLOW_FILE_STORE=true, which the sink sets for its process: set it for `mlflow ui` too);
tensorboard: ROOT/tensorboard/RUN_NAME; wandb: ROOT/wandb (offline, project "learnlab", group = the
study; `wandb sync` uploads it later).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

from learnlab.errors import LearnlabError

KINDS = ("mlflow", "tensorboard", "wandb")
# the module each sink imports, and what to install for it
_NEEDS = {
    "mlflow": ("mlflow", "mlflow-skinny"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
}
MEMBERS_MAX = 16  # larger ensembles log only the mean over members


class Sink(Protocol):
    """Where metrics stream to: `log` per evaluation, `close` once (summary None: the run failed)."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self, summary: Mapping[str, Any] | None) -> None: ...


def check(kind: str | None, uri: str | None = None) -> None:
    """Before a run starts: an unknown kind, a missing extra or a URI without a kind is a LearnlabError."""
    if kind is None:
        if uri is not None:
            raise LearnlabError("--track-uri needs --track mlflow|tensorboard|wandb")
        return
    if kind not in KINDS:
        raise LearnlabError(f"--track {kind!r}: choose one of {', '.join(KINDS)}")
    module, package = _NEEDS[kind]
    if importlib.util.find_spec(module) is None:
        raise LearnlabError(f"--track {kind}: {package} is not installed (pip install 'learnlab[track]')")


def default_uri(kind: str, run_dir: Path) -> str:
    """Beside the run directory: one store per root, so its runs compare side by side."""
    return str(run_dir.parent / {"mlflow": "mlruns", "tensorboard": "tensorboard", "wandb": "."}[kind])


def open_sink(kind: str, run_name: str, config: Mapping[str, Any], uri: str) -> Sink:
    """The sink of `kind` for one run (check(kind) first); `config` becomes its params."""
    check(kind)
    opener: Callable[[str, Mapping[str, Any], str], Sink] = {
        "mlflow": MlflowSink,
        "tensorboard": TensorBoardSink,
        "wandb": WandbSink,
    }[kind]
    try:
        return opener(run_name, config, uri)
    except Exception as err:  # noqa: BLE001 - each library has its own errors: one line naming the store
        problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LearnlabError(f"--track {kind}: cannot open {uri!r} ({problem})") from None


class MlflowSink:
    """An MLflow run in the store at `uri` (a path: a local file store), experiment = the study."""

    def __init__(self, run_name: str, config: Mapping[str, Any], uri: str):
        if "://" not in uri and not uri.startswith("file:"):
            Path(uri).mkdir(parents=True, exist_ok=True)
            uri = Path(uri).resolve().as_uri()
        if uri.startswith("file:"):  # MLflow 3 keeps its file store only for those who opt in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        study = str(config.get("study", "learnlab"))
        experiment = self.client.get_experiment_by_name(study)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(study)
        tags = {"learnlab.study": study, "learnlab.preset": str(config.get("preset", ""))}
        self.run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        from mlflow.entities import Param

        params = [Param(key, _param(value)) for key, value in _flat(config).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in metrics.items()]
        for start in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics a batch
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def close(self, summary: Mapping[str, Any] | None) -> None:
        if summary is not None:
            self.log(final_means(summary), 0)
            for key, value in verdicts(summary).items():
                self.client.set_tag(self.run_id, key, value)
        self.client.set_terminated(self.run_id, "FINISHED" if summary is not None else "FAILED")


class TensorBoardSink:
    """Event files in `uri`/RUN_NAME (torch's SummaryWriter, which needs the tensorboard package)."""

    def __init__(self, run_name: str, config: Mapping[str, Any], uri: str):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(uri) / run_name))
        rows = "\n".join(f"| {key} | {_param(value)} |" for key, value in _flat(config).items())
        self.writer.add_text("config", "| key | value |\n| --- | --- |\n" + rows, 0)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self, summary: Mapping[str, Any] | None) -> None:
        if summary is not None:
            self.log(final_means(summary), 0)
            rows = "\n".join(f"| {key} | {value} |" for key, value in verdicts(summary).items())
            self.writer.add_text("verdicts", "| key | value |\n| --- | --- |\n" + rows, 0)
        self.writer.close()


class WandbSink:
    """An offline W&B run under `uri`/wandb (nothing leaves the machine; `wandb sync` uploads it)."""

    def __init__(self, run_name: str, config: Mapping[str, Any], uri: str):
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        Path(uri).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            mode="offline",
            dir=uri,
            project="learnlab",
            group=str(config.get("study", "")),
            name=run_name,
            config=dict(config),
            reinit="create_new",
        )
        # trainings restart at step 0 while W&B's own step only grows: their step is a metric of its own
        self.run.define_metric("train/step")
        self.run.define_metric("*", step_metric="train/step")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({**metrics, "train/step": step})

    def close(self, summary: Mapping[str, Any] | None) -> None:
        if summary is not None:
            self.run.summary.update({**final_means(summary), **verdicts(summary)})
        self.run.finish(exit_code=0 if summary is not None else 1)


def final_means(summary: Mapping[str, Any]) -> dict[str, float]:
    """The final table's means: {"final/ARM/METRIC": mean}."""
    return {
        f"final/{_key(arm)}/{_key(metric)}": float(cell["mean"])
        for arm, cells in summary.get("table", {}).items()
        for metric, cell in cells.items()
        if isinstance(cell, Mapping) and isinstance(cell.get("mean"), int | float)
    }


def verdicts(summary: Mapping[str, Any]) -> dict[str, str]:
    """Each claim's verdict and its text, numbered as in the report: {"verdict/1": "reproduced",
    "claim/1": "the claim's sentence", ...}."""
    out = {}
    for i, claim in enumerate(summary.get("claims", []), start=1):
        out[f"verdict/{i}"] = str(claim.get("verdict"))
        out[f"claim/{i}"] = str(claim.get("claim", ""))[:500]
    return out


class Tracker:
    """Turns train_ensemble's evaluations into a sink's metrics, named after the progress bar they run under."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.section = ""
        self._seen: Counter[str] = Counter()
        self.failed = False  # a sink that failed once is left alone: the run goes on without it

    def progress(self, progress: Callable[[str, int], AbstractContextManager[Any]]) -> Callable[..., Any]:
        """`progress` that also names the trainings run under each bar."""

        @contextmanager
        def named(desc: str, total: int) -> Iterator[Any]:
            outer = self.section
            section = _key(desc.replace("·", "/"))
            self._seen[section] += 1
            self.section = section if self._seen[section] == 1 else f"{section}#{self._seen[section]}"
            try:
                with progress(desc, total) as update:
                    yield update
            finally:
                self.section = outer

        return named

    def evaluation(self, step: int, metrics: Mapping[str, Any], loss: Any = None) -> None:
        values = dict(metrics) if loss is None else {**metrics, "train_loss": loss}
        out: dict[str, float] = {}
        prefix = f"{self.section}/" if self.section else ""
        for name, value in values.items():
            members = _members(value)
            if not members:
                continue
            finite = [v for v in members if math.isfinite(v)]
            out[f"{prefix}{_key(name)}/mean"] = sum(finite) / len(finite) if finite else math.nan
            if 1 < len(members) <= MEMBERS_MAX:
                out.update({f"{prefix}{_key(name)}/member{k}": v for k, v in enumerate(members)})
        if out and not self.failed:
            try:
                self.sink.log(out, step)
            except Exception as err:  # noqa: BLE001 - the run directory, not the tracker, is the record
                self.failed = True
                problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
                warnings.warn(f"tracking stopped ({type(err).__name__}: {problem}); the run goes on", stacklevel=2)

    def close(self, summary: Mapping[str, Any] | None) -> None:
        self.sink.close(summary if not self.failed else None)


_ACTIVE: ContextVar[Tracker | None] = ContextVar("learnlab_tracker", default=None)


@contextmanager
def active(tracker: Tracker | None) -> Iterator[None]:
    """Within the block, train_ensemble's evaluations go to `tracker` (None: nowhere)."""
    token = _ACTIVE.set(tracker)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def evaluated(step: int, metrics: Mapping[str, Any], loss: Any = None) -> None:
    """Called by train_ensemble after each evaluation: {metric: [K] tensor}, the training loss [K] or None."""
    tracker = _ACTIVE.get()
    if tracker is not None:
        tracker.evaluation(step, metrics, loss)


def _members(value: Any) -> list[float]:
    """A metric's value per member: a [K] tensor (other dims averaged), or a number (one value)."""
    if hasattr(value, "detach"):
        value = value.detach().float().cpu()
        if value.ndim == 0:
            return [float(value)]
        return value.reshape(value.shape[0], -1).mean(1).tolist()
    if isinstance(value, int | float):
        return [float(value)]
    return []


def _key(text: str) -> str:
    """A name every sink takes: letters, digits, _ - . and /."""
    text = re.sub(r"[^A-Za-z0-9_\-./]+", "_", text.strip())
    return re.sub(r"_*/_*", "/", text).strip("_/") or "_"


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _param(value: Any) -> str:
    return str(value)[:500]
