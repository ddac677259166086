"""Will a run fit in memory? Its peak, estimated from the resolved config before anything is written.

A run that cannot fit would otherwise die with an allocation traceback seconds to minutes in (or take the
machine into swap). The estimate is a few lines per family of models, each a sum of terms (model state,
activations, data, evaluation), each counted as the bytes of the tensors the family's code makes. It is
for the order of magnitude and errs high: against the peak resident size measured on a CPU it was 1.0 to
2.0 times it (hard-negatives at batch_size 4096, eval_size 1e5 or hidden_size 1024; knowledge-acquisition
at d_model 256 or batch_size 512; subliminal at hidden_size 2048; softmax-negatives at batch_size 2e4).
`check_memory` refuses a run whose estimate exceeds the memory available now (CPU: MemAvailable and a
cgroup's limit; CUDA: the device's free memory) with one line naming the config keys that make it too big.
Every smoke and laptop preset fits in a few GiB; the paper presets of the biography grid studies
(plateau-scaling, data-imbalance, warmup-curriculum, attention-patching) need 75-120 GiB: GPU-only.

Families, told apart by their config fields:
- sortedness LSTMs (`hidden_size`, `max_len`: hard-negatives, model-collapse, robustness, inductive-bias,
  whose transformer arms also count `d_model`, `n_layers`, ...);
- skip-gram (`sentences`: softmax-negatives);
- digit MLPs (`student_batch`: subliminal);
- biography transformers (`n_individuals`, `d_model`: knowledge-acquisition and the studies on its
  protocol), with fine-tuning-forgetting's toy memory (`toy_pairs`).
A config of none of these is not estimated (nothing is refused).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learnlab.errors import LearnlabError

GiB = 2**30
F32, I64 = 4, 8
ADAM = 4  # a parameter, its gradient and Adam's two moments
BASE = 0.4 * GiB  # Python, torch, pandas and matplotlib loaded: the resident size of an empty run
BIOGRAPHY_LENGTH = 160  # tokens of the longest biography at vocab_size >= 2048 (139 measured), seq_len=0
SHORT_VOCAB_LENGTH = 400  # ... and at a smaller vocabulary (a BPE of 300 pieces splits words more)


@dataclass(frozen=True)
class Term:
    """Bytes one part of a run holds at its peak, and the keys that make it grow."""

    what: str
    bytes: float
    keys: tuple[str, ...]


def _get(cfg: Any, key: str, default: Any = 0) -> Any:
    return getattr(cfg, key, default)


def _members(cfg: Any) -> tuple[int, int]:
    """(seeds, arms × seeds): the models trained side by side as one ensemble."""
    seeds = int(_get(cfg, "seeds", 1))
    return seeds, max(len(_get(cfg, "arms", []) or []), 1) * seeds


def transformer_terms(
    k: float, batch: float, length: float, vocab: float, cfg: Any, out: float | None = None, context: float = 0
) -> list[Term]:
    """K transformers (d_model, n_layers, n_heads, d_mlp; `context` positions) trained on batches of
    `batch` sequences of `length` tokens; bfloat16 activations under autocast on a GPU."""
    d, layers, heads, mlp = (float(_get(cfg, key, 1)) for key in ("d_model", "n_layers", "n_heads", "d_mlp"))
    out = vocab if out is None else out
    act = 2 if _get(cfg, "bf16", False) and str(_get(cfg, "device", "cpu")).startswith("cuda") else F32
    params = vocab * d + max(context, length) * d + layers * (4 * d * d + 2 * d * mlp + 9 * d + mlp) + d * out
    # saved for backward per token: each layer's inputs, q k v, attention, MLP (12 d + 2 d_mlp + one
    # attention row per head); the logits (and their float copy for the loss under bfloat16), the loss's
    # log-softmax and the logits' gradient
    per_token = act * layers * (12 * d + 2 * mlp + heads * length) + out * ((act if act < F32 else 0) + 3 * F32)
    return [
        Term("transformer weights and Adam state", F32 * ADAM * k * params, ("d_model", "n_layers", "d_mlp", "seeds")),
        Term(
            "transformer activations",
            k * batch * length * per_token,
            ("batch_size", "d_model", "n_layers", "d_mlp", "vocab_size", "seeds"),
        ),
    ]


def sortedness_terms(cfg: Any) -> list[Term]:
    """TinyLSTM ensembles (hard_negatives.train): K = arms × seeds members, all trained at once."""
    seeds, k = _members(cfg)
    h, vocab, batch, length = (float(_get(cfg, key)) for key in ("hidden_size", "vocab_size", "batch_size", "max_len"))
    embed = float(max(_get(cfg, "embed_dim", 1), _get(cfg, "zigzag_standard_embed_dim", 0)))
    eval_len, extrap = float(_get(cfg, "eval_len", length)), float(_get(cfg, "extrap_len", 0))
    size = float(_get(cfg, "eval_size"))
    generations = float(_get(cfg, "generations", 1))  # model-collapse keeps every generation's models
    params = vocab * embed + 4 * h * (embed + h + vocab) + 6 * h + 1  # embedding, LSTM, its input table, head
    test_tokens = 2 * size * (5 * eval_len + max(extrap, eval_len))  # A1's six test sets per member
    terms = [
        Term(
            "LSTM weights and Adam state",
            F32 * (ADAM + generations) * k * params,
            ("hidden_size", "vocab_size", "seeds"),
        ),
        # gates, their saved partners, hidden states and the backward's buffers: ~14 H floats per token
        Term("LSTM activations", F32 * k * batch * length * 14 * h, ("batch_size", "hidden_size", "max_len", "seeds")),
        # a chunk of 100 steps of tokens: per seed (drawn, swapped, random, assembled) and per member
        Term("training data", I64 * 100 * batch * length * (5 * seeds + 2 * k), ("batch_size", "max_len", "seeds")),
        Term("test sets", I64 * (k + seeds) * test_tokens, ("eval_size", "eval_len", "extrap_len", "seeds")),
        Term(
            "evaluation activations",
            F32 * k * min(2 * size, 500) * 12 * h,  # no backward: one step's gates and states at a time
            ("hidden_size", "eval_size", "seeds"),
        ),
    ]
    if hasattr(cfg, "d_model"):  # inductive-bias's transformer arms (every member, if none is named so)
        named = sum("transformer" in arm for arm in _get(cfg, "arms", []) or [])
        t_k = seeds * named if named else k
        terms += transformer_terms(t_k, batch, length, vocab + 1, cfg, out=1, context=eval_len)
        terms.append(
            Term(
                "transformer evaluation",
                F32 * t_k * 2 * size * eval_len * (12 * float(cfg.d_model) + 2 * float(cfg.d_mlp)),
                ("eval_size", "eval_len", "d_model", "seeds"),
            )
        )
    return terms


def skipgram_terms(cfg: Any) -> list[Term]:
    """softmax-negatives: one skip-gram per seed, its corpus, probe, blanks and Jacobian checks."""
    seeds = float(cfg.seeds)
    vocab = 8 * float(cfg.cluster_size) + 5
    d, batch, negatives = float(cfg.embed_dim), float(cfg.batch_size), float(cfg.negatives)
    return [
        Term("embeddings and Adam state", F32 * ADAM * seeds * 2 * vocab * d, ("embed_dim", "cluster_size", "seeds")),
        Term(
            "training pairs and activations",
            seeds * batch * (negatives + 2) * (I64 * 100 * 2 + F32 * 4 * d),
            ("batch_size", "negatives", "embed_dim", "seeds"),
        ),
        Term("corpora", I64 * seeds * float(cfg.sentences) * 12 * (1 + 4 * float(cfg.window)), ("sentences", "window")),
        Term(
            "probe",
            F32 * 4 * seeds * float(cfg.probe_pairs) * (negatives + 2) * d,
            ("probe_pairs", "negatives", "embed_dim"),
        ),
        Term(
            "fill-in-the-blank samples",
            I64 * float(cfg.blanks) * (4 * vocab + 4 * float(cfg.samples)),
            ("blanks", "samples", "cluster_size"),
        ),
        Term("Jacobians", I64 * 4 * float(cfg.n_vectors) * float(cfg.n_logits) ** 2, ("n_logits", "n_vectors")),
    ]


def mlp_terms(cfg: Any) -> list[Term]:
    """subliminal: an MLP teacher per seed, students per (student arm, seed), on digits and noise."""
    seeds, k = _members(cfg)
    h, out = float(cfg.hidden_size), 10 + float(cfg.aux_logits)
    params = 64 * h + h * h + h * out + 2 * h + out
    widths = 64 + 4 * h + 2 * out  # saved per row: inputs, two hidden layers before and after, outputs
    return [
        Term("MLP weights and Adam state", F32 * (ADAM + 1) * (seeds + k) * params, ("hidden_size", "seeds")),
        Term(
            "teacher batches",
            I64 * float(cfg.teacher_steps) * seeds * float(cfg.teacher_batch),
            ("teacher_steps", "teacher_batch"),
        ),
        Term(
            "activations",
            F32 * 2 * (seeds * float(cfg.teacher_batch) + k * float(cfg.student_batch)) * widths,
            ("teacher_batch", "student_batch", "hidden_size", "seeds"),
        ),
        Term("noise", F32 * (k + seeds) * 50 * float(cfg.student_batch) * 64, ("student_batch", "seeds")),
    ]


def biography_terms(cfg: Any) -> list[Term]:
    """knowledge-acquisition's transformers on biographies; a grid study trains one job at a time."""
    k = float(min(cfg.seeds, _get(cfg, "seeds_per_job", cfg.seeds)))
    vocab, batch = float(cfg.vocab_size), float(cfg.batch_size)
    longest = float(BIOGRAPHY_LENGTH if vocab >= 2048 else SHORT_VOCAB_LENGTH)
    context = float(cfg.seq_len or longest)
    length = min(context, longest)  # a batch is cut after its longest biography
    individuals = float(max([cfg.n_individuals, *(_get(cfg, "n_values", None) or [])]))
    evaluated = float(cfg.eval_individuals)
    terms = transformer_terms(k, batch, length, vocab, cfg, context=context)
    terms += [
        Term("training data", I64 * 2 * k * 20 * batch * context, ("batch_size", "seq_len", "seeds")),
        Term("the world", 2048 * individuals + I64 * 4 * individuals * length, ("n_individuals", "n_values")),
        Term(
            "evaluation",
            F32 * 3 * k * 32 * length * vocab + I64 * 4 * 8 * evaluated * length,
            ("eval_individuals", "vocab_size", "seeds"),
        ),
    ]
    if hasattr(cfg, "snapshot_every"):  # attention-patching keeps the reference's weights (on the CPU)
        every = cfg.snapshot_every or cfg.eval_every
        weights = terms[0].bytes / ADAM
        terms.append(
            Term("weight snapshots", (cfg.steps / every + 2) * weights, ("snapshot_every", "steps", "d_model"))
        )
    if hasattr(cfg, "toy_pairs"):
        toy_k, dim, hidden = k, float(cfg.toy_dim), float(cfg.toy_hidden)
        pairs = float(cfg.toy_pairs) + float(max([cfg.toy_new_pairs, *cfg.toy_new_sweep]))
        terms += [
            Term("toy memory", F32 * toy_k * pairs * (dim + 2), ("toy_pairs", "toy_new_pairs", "toy_dim")),
            Term(
                "toy model",
                F32 * toy_k * (ADAM * (dim * hidden + hidden * cfg.toy_classes) + 4 * cfg.toy_batch * hidden),
                ("toy_hidden", "toy_dim", "toy_batch"),
            ),
        ]
    return terms


FAMILIES: list[tuple[str, Callable[[Any], list[Term]]]] = [
    ("n_individuals", biography_terms),
    ("max_len", sortedness_terms),
    ("sentences", skipgram_terms),
    ("student_batch", mlp_terms),
]


def terms(cfg: Any) -> list[Term]:
    """The parts of a run's peak memory; [] for a config of no known family."""
    for field, family in FAMILIES:
        if hasattr(cfg, field):
            return family(cfg)
    return []


def estimate(cfg: Any) -> float:
    """A run's peak memory in bytes (its terms and the process itself)."""
    return BASE + sum(t.bytes for t in terms(cfg))


def available(device: str) -> float | None:
    """Bytes free for a run on `device` now; None where this cannot be told."""
    if device.startswith("cuda"):
        import torch

        try:
            return float(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, AssertionError, ValueError):
            return None
    limits = [x for x in (_meminfo_available(), _cgroup_available()) if x is not None]
    return min(limits) if limits else None


def _meminfo_available() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # not Linux: physical memory (free pages where the platform counts them)
        pages = os.sysconf("SC_AVPHYS_PAGES") if "SC_AVPHYS_PAGES" in os.sysconf_names else os.sysconf("SC_PHYS_PAGES")
        return float(pages * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError):
        return None


def _cgroup_available() -> float | None:
    """What a cgroup v2 memory limit (a container's) leaves, if one is set."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return float(int(limit) - int((root / "memory.current").read_text()))
    except (OSError, ValueError):
        return None


def gib(n: float) -> str:
    """Bytes in GiB (TiB from 1024 GiB), three digits."""
    value, unit = (n / 1024 / GiB, "TiB") if n >= 1024 * GiB else (n / GiB, "GiB")
    return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"


def check_memory(cfg: Any, baseline: Any | None = None, free: float | None = None) -> float:
    """The run's estimate; a LearnlabError naming the keys that make it too big for `free` bytes (default:
    what `available` says for the config's device). `baseline` is the config the study's preset gives
    without the user's values: the keys whose own value, put back, lowers the estimate most are named."""
    need = estimate(cfg)
    free = available(cfg.device) if free is None else free
    if free is None or need <= free:
        return need
    parts = terms(cfg)
    biggest = max(parts, key=lambda t: t.bytes)
    culprits = _culprits(cfg, baseline, need)
    where = f"on {cfg.device}" if cfg.device.startswith("cuda") else "on this machine"
    lower = list(dict.fromkeys([*culprits, *(k for k in biggest.keys if hasattr(cfg, k))]))
    hint = f"lower {', '.join(lower[:-1])} or {lower[-1]}" if len(lower) > 1 else f"lower {lower[0]}"
    if culprits:
        named = ", ".join(f"{key}={_show(_get(cfg, key))}" for key in culprits)
        subject = f"{named} need{'s' if len(culprits) == 1 else ''}"
    else:
        subject = f"the {cfg.preset} preset of {cfg.study} needs"
        if cfg.device == "cpu":
            hint = f"it is meant for a GPU (--device cuda), or {hint}"
    raise LearnlabError(
        f"{subject} about {gib(need)} of memory, > {gib(free)} available {where} "
        f"({biggest.what} alone: {gib(biggest.bytes)}); {hint}"
    )


def _show(value: Any) -> str:
    return str(value) if not isinstance(value, list) else "[" + ",".join(map(str, value)) + "]"


def _culprits(cfg: Any, baseline: Any | None, need: float) -> list[str]:
    """The keys set away from `baseline` that raise the estimate most (each at least 10% of it)."""
    if baseline is None:
        return []
    gains = {}
    for key in type(cfg).model_fields:
        if key in ("study", "preset", "arms", "device") or getattr(cfg, key) == getattr(baseline, key):
            continue
        try:
            back = cfg.model_copy(update={key: getattr(baseline, key)})
            gains[key] = need - estimate(back)
        except (ValueError, TypeError, ArithmeticError):
            continue
    ranked = sorted((k for k, g in gains.items() if g > 0.1 * need), key=lambda k: -gains[k])
    return ranked[:3]
