"""Trained models kept with a run: the final weights of every trained ensemble, what rebuilds them, and
(if asked) snapshots along training.

A protocol calls `ctx.keep_model(name, model, members)` once an ensemble is trained, and
`ctx.snapshot(name, step, model)` along training; the run's `ModelKeeper` serialises the weights at
once, as safetensors (tensors only: loading one runs no code). It writes them into the run's work
directory when there is one, so a resumed run and a grid study's finished jobs still have what they kept
before an interruption; otherwise (`learnlab.execute`, a sweep's points on Ray) it holds them in memory.
The run directory gets them as `models/`:

    models/NAME.safetensors           the ensemble's state_dict; every tensor has the member axis first
    models/NAME.json                  how to rebuild it: class, constructor kwargs, member -> (arm, seed)
    models/NAME.tokenizer.json        a language model's tokenizer (the `tokenizers` JSON)
    models/snapshots/NAME/step-0000200.safetensors    the weights at that step (--snapshot-every)

A grid study's job keeps its models under its name: NAME = JOB/train.

What is kept (`--save-models`): `none`; `final`, the final weights of every trained ensemble; `all`, the
final weights and snapshots every `--snapshot-every` steps (default: every checkpoint, `--checkpoint-every`).
By default (no --save-models) a run keeps `final` when its weights take at most AUTO_LIMIT bytes, and
otherwise none, with a note in summary.json's "models"; a snapshot interval alone means `all`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from learnlab.errors import LearnlabError

SAVE_MODELS = ("none", "final", "all")
AUTO_LIMIT = 64_000_000  # bytes a run keeps by default (64 MB: every laptop preset, no paper one)
FORMAT = 1
STATE_FILE = "keeper.json"  # the keeper's options and notes, in the work directory only
SNAPSHOTS = "snapshots"
_NAME = re.compile(r"[A-Za-z0-9_=+-][A-Za-z0-9_.=+-]*")


def _safetensors() -> Any:
    try:
        return importlib.import_module("safetensors.torch")
    except ImportError:
        raise LearnlabError(
            "keeping models needs safetensors: pip install safetensors (or --save-models none)"
        ) from None


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


# --- what rebuilds a model ---------------------------------------------------------------------------------


def constructor(model: nn.Module) -> tuple[dict[str, Any], str]:
    """The constructor kwargs of learnlab's ensembles, read from the model, and the kwarg that holds the
    number of members. Other classes: pass `kwargs` (and `members_kwarg`) to `keep_model`."""
    from learnlab.models.lstm import EnsembleLSTMClassifier
    from learnlab.models.mlp import EnsembleMLP
    from learnlab.models.transformer import MLP, EnsembleTransformer

    kind = type(model)
    if kind is EnsembleTransformer:
        block = model.blocks[0]
        if any(type(b.mlp) is not MLP for b in model.blocks):
            raise ValueError("a transformer with another MLP than `MLP`: pass its constructor kwargs")
        return {
            "n_models": model.n_models, "vocab_size": model.w_embed.shape[1], "n_ctx": model.n_ctx,
            "d_model": model.w_embed.shape[-1], "n_layers": model.n_layers, "n_heads": block.attn.n_heads,
            "d_mlp": block.mlp.w_in.shape[-1], "n_out": model.w_unembed.shape[-1],
        }, "n_models"  # fmt: skip
    if kind is EnsembleLSTMClassifier:
        k, vocab, embed = model.embedding.shape
        return {"n_models": k, "vocab_size": vocab, "embed_dim": embed, "hidden_size": model.hidden_size}, "n_models"
    if kind is EnsembleMLP:
        return {"k": model.k, "sizes": list(model.sizes)}, "k"
    raise ValueError(f"{kind.__qualname__}: pass its constructor kwargs")


def _class_path(model: nn.Module) -> str:
    kind = type(model)
    if not kind.__module__.startswith("learnlab."):
        raise ValueError(f"only learnlab's model classes are kept, not {kind.__module__}.{kind.__qualname__}")
    return f"{kind.__module__}:{kind.__qualname__}"


def _cpu_state(model: nn.Module) -> dict[str, Tensor]:
    """The state_dict as CPU copies (no shared storage: safetensors refuses tensors that share memory)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


# --- keeping ------------------------------------------------------------------------------------------------


@dataclass
class KeptModels:
    """What a run kept: the files of its `models/` (contents, or the work directory's file holding them)
    and summary.json's "models"."""

    files: dict[str, bytes | Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def write(self, run_dir: Path) -> None:
        """Write `run_dir/models/` (nothing where no model was kept)."""
        for rel, content in self.files.items():
            target = run_dir / "models" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)

    def ensembles(self) -> dict[str, KeptEnsemble]:
        """The kept ensembles, rebuilt with their final weights (for `learnlab.execute`'s result)."""

        def read(rel: str) -> bytes:
            content = self.files[rel]
            return content.read_bytes() if isinstance(content, Path) else content

        return read_models(read, list(self.files), "models")


class _Files:
    """The kept files, shared by a keeper and its job-scoped views: in a directory, or in memory."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.memory: dict[str, bytes] = {}
        self.state_saved = False  # the keeper's options are in the directory

    def put(self, rel: str, data: bytes) -> None:
        if self.directory is None:
            self.memory[rel] = data
            return
        target = self.directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        try:  # whole or absent: a resume reads what is there
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError) and err.filename is None:
                err.filename = str(target)
            raise

    def listing(self) -> dict[str, bytes | Path]:
        if self.directory is None:
            return dict(sorted(self.memory.items()))
        if not self.directory.is_dir():
            return {}
        found = (p for p in self.directory.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
        files = {p.relative_to(self.directory).as_posix(): p for p in found}
        return dict(sorted((rel, p) for rel, p in files.items() if rel != STATE_FILE))

    def weights_bytes(self) -> int:
        """The size of the final weights kept so far (snapshots not counted)."""
        return sum(
            len(c) if isinstance(c, bytes) else c.stat().st_size
            for rel, c in self.listing().items()
            if rel.endswith(".safetensors") and not rel.startswith(SNAPSHOTS + "/")
        )

    def clear(self) -> None:
        self.memory.clear()
        if self.directory is not None:
            for path in self.listing().values():
                if isinstance(path, Path):
                    path.unlink(missing_ok=True)


class ModelKeeper:
    """Keeps a run's trained models (see the module doc). `mode`: none, final or all; `default`: the
    mode was not asked for, so the models are kept only while they take at most `limit` bytes."""

    def __init__(
        self,
        mode: str = "final",
        snapshot_every: int = 0,
        *,
        default: bool = False,
        limit: int = AUTO_LIMIT,
        directory: Path | None = None,
        _files: _Files | None = None,
        _state: dict[str, Any] | None = None,
        _prefix: str = "",
    ):
        if mode not in SAVE_MODELS:
            raise LearnlabError(f"--save-models {mode!r}: expected one of {', '.join(SAVE_MODELS)}")
        self._files = _files or _Files(directory)
        self._state = _state if _state is not None else {
            "save_models": mode, "snapshot_every": snapshot_every if mode == "all" else 0, "default": default,
            "limit": limit, "note": None,
        }  # fmt: skip
        self._prefix = _prefix

    @classmethod
    def open(
        cls,
        directory: Path | None,
        save_models: str | None = None,
        snapshot_every: int = 0,
        checkpoint_every: int = 200,
    ) -> ModelKeeper:
        """The keeper of a run: the options saved in `directory` by the run being resumed, else these
        (`save_models` None: the default; a snapshot interval alone means `all`)."""
        check_options(save_models, snapshot_every)
        if directory is not None and (directory / STATE_FILE).is_file():
            files = _Files(directory)
            files.state_saved = True
            try:
                state = json.loads((directory / STATE_FILE).read_text())
                return cls(state["save_models"], _files=files, _state=state)
            except (OSError, ValueError, KeyError, TypeError, LearnlabError):
                raise LearnlabError(
                    f"{str(directory / STATE_FILE)!r} is damaged: delete it to keep the default models"
                ) from None
        mode = save_models or ("all" if snapshot_every else "final")
        every = snapshot_every or (checkpoint_every if mode == "all" else 0)
        default = save_models is None and not snapshot_every
        return cls(mode, every, default=default, limit=AUTO_LIMIT, directory=directory)

    def save_state(self) -> None:
        """Write the options (and notes) into the directory, where a resumed run's keeper finds them: with
        the config when a run starts, and before anything is kept. Nothing to write in memory."""
        if self._files.directory is not None:
            self._files.put(STATE_FILE, json.dumps(self._state, indent=2).encode())
            self._files.state_saved = True

    def _put(self, rel: str, data: bytes) -> None:
        if not self._files.state_saved:
            self.save_state()
        self._files.put(rel, data)

    @property
    def mode(self) -> str:
        return "none" if self._state["note"] else self._state["save_models"]

    def scoped(self, job: str) -> ModelKeeper:
        """A view for a grid study's job: its models are kept under `job/` (other characters than
        letters, digits and _.=+- become _)."""
        job = re.sub(r"[^A-Za-z0-9_.=+-]", "_", job).lstrip(".") or "_"
        return ModelKeeper(self._state["save_models"], _files=self._files, _state=self._state,
                           _prefix=f"{self._prefix}{job}/")  # fmt: skip

    def keep(
        self,
        name: str,
        model: nn.Module,
        members: Iterable[tuple[str, int]],
        *,
        tokenizer: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
        members_kwarg: str = "n_models",
    ) -> None:
        """Keep `model`'s weights as `name`: member k is (arm, seed) members[k]; `tokenizer` is the
        tokenizers JSON of a language model; `kwargs` rebuild the model (default: read from the model)."""
        if self.mode == "none":
            return
        _check_name(name)
        if kwargs is None:
            kwargs, members_kwarg = constructor(model)
        members = [[str(arm), int(seed)] for arm, seed in members]
        state = _cpu_state(model)
        count = kwargs.get(members_kwarg)
        if count != len(members) or any(t.dim() == 0 or t.shape[0] != count for t in state.values()):
            raise ValueError(f"{name}: {len(members)} members named for {count} in the model's tensors")
        data = _safetensors().save(state, metadata={"format": f"learnlab-model/{FORMAT}"})
        if self._over_default_limit(len(data)):
            return
        name = self._prefix + name
        base = name.rsplit("/", 1)[-1]
        spec = {
            "format": FORMAT,
            "class": _class_path(model),
            "kwargs": dict(kwargs),
            "members_kwarg": members_kwarg,
            "members": [{"arm": arm, "seed": seed} for arm, seed in members],
            "weights": f"{base}.safetensors",
            "tokenizer": f"{base}.tokenizer.json" if tokenizer is not None else None,
            "parameters": sum(t.numel() for t in state.values()),
        }
        self._put(f"{name}.safetensors", data)
        if tokenizer is not None:
            self._put(f"{name}.tokenizer.json", tokenizer.encode())
        self._put(f"{name}.json", (json.dumps(spec, indent=2) + "\n").encode())

    def _over_default_limit(self, size: int) -> bool:
        """By default, past the limit nothing is kept (what was kept is dropped): True if so."""
        if not self._state["default"]:
            return False
        total = self._files.weights_bytes() + size
        if total <= self._state["limit"]:
            return False
        self._state["note"] = (
            f"the trained models take over {_mb(total)}, more than the {_mb(self._state['limit'])} a run keeps by "
            "default: none kept (--save-models final keeps them)"
        )
        self._files.clear()
        self.save_state()
        return True

    def snapshot(self, name: str, step: int, model: nn.Module) -> None:
        """Keep the weights at `step` when it is a multiple of the snapshot interval (step 0 included)."""
        every = self._state["snapshot_every"]
        if self.mode != "all" or not every or step % every:
            return
        _check_name(name)
        data = _safetensors().save(_cpu_state(model), metadata={"format": f"learnlab-model/{FORMAT}"})
        self._put(f"{SNAPSHOTS}/{self._prefix}{name}/step-{step:07d}.safetensors", data)

    def result(self) -> KeptModels:
        """The kept files and summary.json's "models": what was asked, what was kept, their size."""
        files = self._files.listing() if self.mode != "none" else {}
        weights = sorted(rel.removesuffix(".json") for rel in files if _is_spec(rel))
        size = sum(len(c) if isinstance(c, bytes) else c.stat().st_size for c in files.values())
        summary: dict[str, Any] = {
            "save_models": self.mode,
            "kept": weights,
            "snapshots": sum(rel.startswith(SNAPSHOTS + "/") for rel in files),
            "bytes": size,
        }
        if self.mode == "all":
            summary["snapshot_every"] = self._state["snapshot_every"]
        if self._state["note"]:
            summary["note"] = self._state["note"]
        return KeptModels(files, summary)


def check_options(save_models: str | None, snapshot_every: int) -> None:
    """--save-models and --snapshot-every, checked before a run writes anything."""
    if save_models is not None and save_models not in SAVE_MODELS:
        raise LearnlabError(f"--save-models {save_models!r}: expected one of {', '.join(SAVE_MODELS)}")
    if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 0:
        raise LearnlabError(f"--snapshot-every {snapshot_every!r}: expected a number of steps >= 1")
    if snapshot_every and save_models in ("none", "final"):
        raise LearnlabError(f"--snapshot-every keeps snapshots: not with --save-models {save_models} (use all)")


def _check_name(name: str) -> None:
    if not all(_NAME.fullmatch(part) for part in name.split("/")) or name.split("/")[0] == SNAPSHOTS:
        raise ValueError(f"{name!r} is not a model name (letters, digits, _.=+-, parts joined by /)")


def _is_spec(rel: str) -> bool:
    return rel.endswith(".json") and not rel.endswith(".tokenizer.json") and not rel.startswith(SNAPSHOTS + "/")


# --- reading ------------------------------------------------------------------------------------------------


@dataclass
class KeptEnsemble:
    """A kept ensemble, rebuilt: `model` (in eval mode, on the CPU) with its final weights; member k was
    trained as (arm, seed) `members[k]`. Attributes and calls go through to `model`, so
    `kept.run_with_cache(tokens)` works as on the ensemble itself."""

    name: str
    model: nn.Module
    members: list[tuple[str, int]]
    tokenizer: Any  # tokenizers.Tokenizer of a language model, else None
    spec: dict[str, Any]
    snapshot_steps: list[int] = field(default_factory=list)
    _read: Callable[[str], bytes] | None = field(default=None, repr=False)
    _where: str = field(default="", repr=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("model", "spec"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def __len__(self) -> int:
        return len(self.members)

    def index(self, arm: str, seed: int) -> int:
        """The member trained as (arm, seed)."""
        try:
            return self.members.index((arm, seed))
        except ValueError:
            raise LearnlabError(f"model {self.name!r} has no member ({arm!r}, {seed}): {self.members}") from None

    def member(self, k: int) -> nn.Module:
        """Member k alone: the same class with one member (for a transformer, a K=1 EnsembleTransformer with
        the same hook names; feed it tokens [1, B, T]), holding a copy of member k's weights."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(self.members):
            raise LearnlabError(f"member must be an integer in 0..{len(self.members) - 1}, got {k!r}")
        state = {name: t[k : k + 1].clone() for name, t in self.model.state_dict().items()}
        return _build(self.spec, state, self._where, n_members=1)

    def snapshot(self, step: int) -> nn.Module:
        """The whole ensemble with the weights it had at `step` (one of `snapshot_steps`)."""
        if step not in self.snapshot_steps or self._read is None:
            raise LearnlabError(f"model {self.name!r} has no snapshot at step {step} (it has {self.snapshot_steps})")
        rel = _snapshot_rel(self.name, step)
        return _build(self.spec, _load_weights(self._read, rel, self._where), f"{self._where}/{rel}")


def _snapshot_rel(name: str, step: int) -> str:
    return f"{SNAPSHOTS}/{name}/step-{step:07d}.safetensors"


def read_models(read: Callable[[str], bytes], files: list[str], where: str) -> dict[str, KeptEnsemble]:
    """Every kept ensemble among `files` (paths under models/, read with `read`), rebuilt; `where` names
    the models directory in errors. A missing, damaged or mismatched file is a LearnlabError naming it."""
    names = {rel.removesuffix(".json") for rel in files if _is_spec(rel)}
    weights = {
        rel.removesuffix(".safetensors")
        for rel in files
        if rel.endswith(".safetensors") and not rel.startswith(SNAPSHOTS + "/")
    }
    if orphans := sorted(weights - names):
        raise LearnlabError(
            f"{where + '/' + orphans[0] + '.json'!r} is missing: cannot rebuild {orphans[0]}.safetensors beside it"
        )
    snapshots: dict[str, list[int]] = {}
    for rel in files:
        if rel.startswith(SNAPSHOTS + "/") and (m := re.fullmatch(rf"{SNAPSHOTS}/(.+)/step-(\d+)\.safetensors", rel)):
            snapshots.setdefault(m.group(1), []).append(int(m.group(2)))
    out = {}
    for name in sorted(names):
        spec = _read_spec(read, f"{name}.json", where)
        folder = name.rpartition("/")[0]
        prefix = f"{folder}/" if folder else ""
        model = _build(spec, _load_weights(read, prefix + spec["weights"], where), f"{where}/{name}.json")
        tokenizer = _read_tokenizer(read, prefix + spec["tokenizer"], where) if spec.get("tokenizer") else None
        members = [(m["arm"], m["seed"]) for m in spec["members"]]
        out[name] = KeptEnsemble(name, model, members, tokenizer, spec, sorted(snapshots.get(name, [])), read, where)
    return out


def _read_spec(read: Callable[[str], bytes], rel: str, where: str) -> dict[str, Any]:
    file = f"{where}/{rel}"
    try:
        spec = json.loads(read(rel))
    except (OSError, KeyError) as err:
        raise LearnlabError(f"{file!r}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    except ValueError as err:
        raise LearnlabError(f"{file!r}: not valid JSON ({str(err).splitlines()[0]})") from None
    required = {"class": str, "kwargs": dict, "members_kwarg": str, "members": list, "weights": str}
    if not isinstance(spec, dict):
        raise LearnlabError(f"{file!r}: not a kept model's description (a JSON {type(spec).__name__})")
    for key, kind in required.items():
        if not isinstance(spec.get(key), kind):
            raise LearnlabError(f"{file!r}: not a kept model's description ({key!r} missing or not a {kind.__name__})")
    if spec.get("format", FORMAT) > FORMAT:
        raise LearnlabError(f"{file!r}: written by a newer learnlab (format {spec['format']}); upgrade to read it")
    members = spec["members"]
    if not all(isinstance(m, dict) and isinstance(m.get("arm"), str) and type(m.get("seed")) is int for m in members):
        raise LearnlabError(f"{file!r}: 'members' must be a list of {{arm, seed}}")
    if spec["kwargs"].get(spec["members_kwarg"]) != len(members):
        raise LearnlabError(f"{file!r}: {len(members)} members, but {spec['members_kwarg']} is "
                            f"{spec['kwargs'].get(spec['members_kwarg'])!r}")  # fmt: skip
    return spec


def _load_weights(read: Callable[[str], bytes], rel: str, where: str) -> dict[str, Tensor]:
    file = f"{where}/{rel}"
    try:
        data = read(rel)
    except (OSError, KeyError) as err:
        raise LearnlabError(f"{file!r}: cannot read it ({getattr(err, 'strerror', None) or 'missing'})") from None
    try:
        return _safetensors().load(data)
    except LearnlabError:
        raise
    except Exception as err:  # noqa: BLE001 - SafetensorError, or what a truncated header raises
        problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LearnlabError(f"{file!r}: not a readable safetensors file ({problem})") from None


def _read_tokenizer(read: Callable[[str], bytes], rel: str, where: str) -> Any:
    from tokenizers import Tokenizer

    file = f"{where}/{rel}"
    try:
        data = read(rel)
    except (OSError, KeyError):
        raise LearnlabError(f"{file!r}: the model's tokenizer is missing") from None
    try:
        return Tokenizer.from_str(data.decode())
    except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception for a bad JSON
        problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise LearnlabError(f"{file!r}: not a tokenizer ({problem})") from None


def _build(spec: dict[str, Any], state: dict[str, Tensor], file: str, n_members: int | None = None) -> nn.Module:
    """The model `spec` describes, with `state` loaded (strictly), in eval mode."""
    module, _, qualname = spec["class"].partition(":")
    if not module.startswith("learnlab.") or not qualname:
        raise LearnlabError(f"{file!r}: class {spec['class']!r} is not one of learnlab's models")
    try:
        kind: Any = importlib.import_module(module)
        for part in qualname.split("."):
            kind = getattr(kind, part)
    except (ImportError, AttributeError):
        raise LearnlabError(f"{file!r}: class {spec['class']!r} does not exist in this learnlab") from None
    if not (isinstance(kind, type) and issubclass(kind, nn.Module)):
        raise LearnlabError(f"{file!r}: {spec['class']!r} is not a model class")
    kwargs = dict(spec["kwargs"])
    if n_members is not None:
        kwargs[spec["members_kwarg"]] = n_members
    try:
        model = kind(**kwargs)
        model.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as err:
        problem = " ".join(str(err).split())[:300]
        raise LearnlabError(f"{file!r}: the weights do not fit {qualname}({kwargs}) ({problem})") from None
    return model.eval()


def read_run_models(run_dir: Path) -> dict[str, KeptEnsemble]:
    """The ensembles a run directory's models/ keeps, rebuilt ({} where it keeps none)."""
    root = Path(run_dir) / "models"
    if not root.exists():
        return {}
    if not root.is_dir():
        raise LearnlabError(f"{str(root)!r} is not a directory")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return read_models(lambda rel: (root / rel).read_bytes(), files, str(root))
