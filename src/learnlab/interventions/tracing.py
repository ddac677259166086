"""Causal tracing (Meng et al. 2022, "Locating and Editing Factual Associations in GPT", ROME §2.1).

Three runs of the same prompts: clean; corrupted, the chosen (subject) tokens' embeddings plus Gaussian
noise; and corrupted-with-restoration, one hidden state put back to its clean value. The target token's
probability in the third run, against the first two, says how much that state alone carries:
total effect TE = p_clean - p_corrupt, indirect effect IE = p_restored - p_corrupt, and here
recovery = IE / TE.

Conventions, as ROME's code:
- The noise is added to the token embeddings (`hook_embed`, before the position embeddings are added),
  at the corrupted positions only; std = 3 x the embedding std (by default the std of the member's whole
  token-embedding matrix `w_embed`; ROME takes that of its subjects' embeddings: pass
  noise_std = 3 * subject_embedding_std(model, tokens, subject)). The same `n_samples`
  noise draws serve every restoration (common random numbers), and probabilities are averaged over them
  (the softmax of each draw, then the mean).
- "The state at (layer l, position t)": `residual` is block l's output `blocks.{l}.hook_resid_post`
  (a looped model's layers are its block applications, `loops.{t}.blocks.{l}`: `block_prefixes`);
  `mlp` and `attention` restore that sublayer's output (`blocks.{l}.hook_mlp_out`, `.hook_attn_out`) at
  position t, and, with `window` w > 1, at every layer of range(max(0, l - w // 2), min(L, l - (-w // 2)))
  (ROME used w = 10 of GPT-2 XL's 48 layers; w = 1, the default, restores layer l alone).
- Recovery where TE = 0 (the noise changed nothing, e.g. std 0): 1 where the restored probability is the
  clean one (within `tol`), NaN otherwise: nothing was lost, so nothing was left to recover.

Members: every tensor has the ensemble axis K first, and member k's numbers use only member k's model.
Hooks are passed to the forward call, never registered, so the model is left as it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from learnlab.models.transformer import EnsembleTransformer, Hooks

Kind = Literal["residual", "mlp", "attention"]
KIND_HOOK = {"residual": "hook_resid_post", "mlp": "hook_mlp_out", "attention": "hook_attn_out"}
NOISE_MULTIPLIER = 3.0
BLOCK = re.compile(r"(.+\.)?blocks\.\d+")


@dataclass(frozen=True)
class Trace:
    """Probabilities of the target token, per member and prompt: clean and corrupt [K, B]; restored
    [K, B, layers, positions], the state restored at (layers[i], positions[j])."""

    clean: Tensor
    corrupt: Tensor
    restored: Tensor
    layers: tuple[int, ...]
    positions: tuple[int, ...]
    kind: Kind
    window: int
    noise_std: Tensor  # [K]

    @property
    def total_effect(self) -> Tensor:
        return self.clean - self.corrupt

    @property
    def indirect_effect(self) -> Tensor:
        return self.restored - self.corrupt[..., None, None]

    def recovery(self, tol: float = 1e-6) -> Tensor:
        return recovery(self.clean[..., None, None], self.corrupt[..., None, None], self.restored, tol)


def recovery(clean: Tensor, corrupt: Tensor, restored: Tensor, tol: float = 1e-6) -> Tensor:
    """(restored - corrupt) / (clean - corrupt); where |clean - corrupt| <= tol: 1 if |restored - clean| <=
    tol, else NaN (the corruption moved nothing, so a restoration can only keep the clean value)."""
    den = clean - corrupt
    safe = torch.where(den.abs() > tol, den, torch.ones_like(den))
    ratio = (restored - corrupt) / safe
    same = torch.where((restored - clean).abs() <= tol, 1.0, float("nan")).to(ratio.dtype)
    return torch.where(den.abs() > tol, ratio, same)


def embedding_std(model: EnsembleTransformer) -> Tensor:
    """Each member's token-embedding std over its whole embedding matrix: [K]."""
    return model.w_embed.detach().flatten(1).std(dim=1)


def subject_embedding_std(model: EnsembleTransformer, tokens: Tensor, subject: Tensor) -> Tensor:
    """ROME's noise reference: the std of the token embeddings at the subject positions of a set of prompts
    (tokens [K, B, T], subject [B, T] or [K, B, T] bool), per member [K]; x 3 gives `noise_std`."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, ["hook_embed"], stop_at_layer=0)
    mask = subject.expand(tokens.shape).to(tokens.device)
    return torch.stack([cache["hook_embed"][k][mask[k]].std() for k in range(tokens.shape[0])])


def noise_scale(model: EnsembleTransformer, noise_std: float | Tensor | None = None) -> Tensor:
    """The noise std per member [K]: `noise_std` (a number or [K]), or 3 x each member's embedding std."""
    k = model.w_embed.shape[0]
    if noise_std is None:
        return NOISE_MULTIPLIER * embedding_std(model)
    return torch.as_tensor(noise_std, dtype=model.w_embed.dtype, device=model.w_embed.device).expand(k).clone()


def block_prefixes(model: EnsembleTransformer) -> list[str]:
    """The model's blocks in forward order, by hook prefix: "blocks.0", "blocks.1", ... (a looped model's
    "loops.0.blocks.0", ..., one per block application). Layer l of a trace is block_prefixes(model)[l]."""
    suffix = ".hook_resid_post"
    return [n[: -len(suffix)] for n in model.hook_names() if n.endswith(suffix) and BLOCK.fullmatch(n[: -len(suffix)])]


def n_layers(model: EnsembleTransformer) -> int:
    return len(block_prefixes(model))


def hook_name(kind: Kind, layer: int, prefixes: Sequence[str] | None = None) -> str:
    """The hook point of `kind` at trace layer `layer` (prefixes: `block_prefixes(model)`; default blocks.{l})."""
    return f"{f'blocks.{layer}' if prefixes is None else prefixes[layer]}.{KIND_HOOK[kind]}"


def window_layers(layer: int, window: int, layers: int) -> range:
    """ROME's window of `window` layers centred on `layer`, clipped to the model."""
    return range(max(0, layer - window // 2), min(layers, layer - (-window // 2)))


def embedding_noise(
    model: EnsembleTransformer,
    corrupt: Tensor,
    n_samples: int = 10,
    noise_std: float | Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Noise for the token embeddings: [S, K, B, T, d], zero outside `corrupt` ([B, T] or [K, B, T] bool).
    noise_std: a number or [K]; None for 3 x each member's embedding std."""
    k, d = model.w_embed.shape[0], model.w_embed.shape[-1]
    mask = corrupt.expand(k, *corrupt.shape[-2:]) if corrupt.dim() == 2 else corrupt
    std = noise_scale(model, noise_std)[None, :, None, None, None]
    shape = (n_samples, *mask.shape, d)
    noise = torch.randn(shape, generator=generator, dtype=model.w_embed.dtype).to(model.w_embed.device)
    return noise * std * mask[None, ..., None].to(noise.dtype)


def _per_member(x: Tensor | int, k: int, b: int) -> Tensor:
    t = torch.as_tensor(x)
    return t.expand(k, b) if t.dim() < 2 else t


def _target_prob(logits: Tensor, target: Tensor, read_at: Tensor) -> Tensor:
    """p(target) at position read_at: logits [K, N, T, V], target and read_at [K, N] -> [K, N]."""
    at = logits.gather(2, read_at[..., None, None].expand(-1, -1, 1, logits.shape[-1])).squeeze(2)
    return at.float().softmax(dim=-1).gather(2, target[..., None]).squeeze(-1)


def clean_run(
    model: EnsembleTransformer,
    tokens: Tensor,
    target: Tensor | int,
    read_at: Tensor | int = -1,
    names: Sequence[str] = (),
    attention_mask: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The clean probability of the target [K, B] and the clean activations at `names`."""
    k, b, t = tokens.shape
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, list(names), **_masked(attention_mask))
    read = _per_member(read_at, k, b) % t
    return _target_prob(logits, _per_member(target, k, b).to(tokens.device), read.to(tokens.device)), cache


def patched_probs(
    model: EnsembleTransformer,
    tokens: Tensor,
    target: Tensor | int,
    noise: Tensor,
    restore: Sequence[Mapping[str, Tensor]] = ({},),
    clean: Mapping[str, Tensor] | None = None,
    read_at: Tensor | int = -1,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """Corrupted runs, one per entry of `restore`, averaged over the noise samples: [K, B, len(restore)].

    tokens [K, B, T]; target, read_at: a token id / position, or [K, B]; noise [S, K, B, T, d]
    (`embedding_noise`). Each restore entry maps a hook name to the positions restored there ([T] bool, or
    [K, B, T]), put back from `clean` (the clean run's activations at those names, `clean_run`).
    All runs are one batched forward: R x S x B prompts per member."""
    k, b, t = tokens.shape
    s, r = noise.shape[0], len(restore)
    expand = (k, r, s, b, t)
    batch_tokens = tokens[:, None, None].expand(expand).reshape(k, r * s * b, t)
    mask = None if attention_mask is None else attention_mask[:, None, None].expand(expand).reshape(k, -1, t)
    hooks = _hooks(noise, restore, clean or {}, expand)
    with torch.no_grad():
        logits = model(batch_tokens, hooks=hooks, **_masked(mask))
    tgt = _per_member(target, k, b).to(tokens.device)[:, None, None].expand(k, r, s, b).reshape(k, -1)
    read = (_per_member(read_at, k, b).to(tokens.device) % t)[:, None, None].expand(k, r, s, b).reshape(k, -1)
    return _target_prob(logits, tgt, read).view(k, r, s, b).mean(dim=2).permute(0, 2, 1)


def _masked(attention_mask: Tensor | None) -> dict[str, Tensor]:
    """The forward's attention_mask kwarg, only when there is one (a looped model takes none)."""
    return {} if attention_mask is None else {"attention_mask": attention_mask}


def _hooks(noise: Tensor, restore: Sequence[Mapping[str, Tensor]], clean: Mapping[str, Tensor], expand: tuple) -> Hooks:
    """The embedding hook adds the noise; each restored hook point puts the clean values back where asked."""
    k, r, s, b, t = expand
    hooks: dict = {}

    def add_noise(x: Tensor, name: str) -> Tensor:
        return (x.view(k, r, s, b, t, -1) + noise.permute(1, 0, 2, 3, 4)[:, None]).view(x.shape)

    hooks["hook_embed"] = add_noise
    for name in {n for entry in restore for n in entry}:
        where = torch.zeros(k, r, 1, b, t, dtype=torch.bool, device=noise.device)
        for i, entry in enumerate(restore):
            if name in entry:
                where[:, i, 0] = entry[name].to(noise.device).expand(k, b, t)
        if name not in clean:
            raise KeyError(f"restoring {name!r} needs its clean activation (clean_run(..., names=[...]))")
        hooks[name] = _restorer(where, clean[name], expand)
    return hooks


def _restorer(where: Tensor, clean: Tensor, expand: tuple):
    k, r, s, b, t = expand

    def restore(x: Tensor, name: str) -> Tensor:
        shaped = x.view(k, r, s, b, t, *x.shape[3:])
        put = where.view(*where.shape, *([1] * (x.dim() - 3)))
        return torch.where(put, clean[:, None, None], shaped).view(x.shape)

    return restore


def causal_trace(
    model: EnsembleTransformer,
    tokens: Tensor,
    corrupt: Tensor,
    target: Tensor | int,
    *,
    kind: Kind = "residual",
    read_at: Tensor | int = -1,
    noise_std: float | Tensor | None = None,
    n_samples: int = 10,
    window: int = 1,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    attention_mask: Tensor | None = None,
) -> Trace:
    """ROME's causal trace of every (layer, position): the target's probability with that state restored.

    tokens [K, B, T] (every member its own prompts, or the same repeated); corrupt [B, T] or [K, B, T] bool,
    the positions whose embeddings get noise (the subject's tokens); target a token id or [K, B]; read_at
    the position whose next-token distribution is read (default the last; [K, B] for padded prompts).
    One forward per layer, all positions batched: memory ~ len(positions) x n_samples x B prompts."""
    if kind not in KIND_HOOK:
        raise ValueError(f"kind must be one of {sorted(KIND_HOOK)}, got {kind!r}")
    prefixes = block_prefixes(model)
    total = len(prefixes)
    layers = tuple(range(total)) if layers is None else tuple(layers)
    positions = tuple(range(tokens.shape[-1])) if positions is None else tuple(positions)
    width = window if kind != "residual" else 1
    names = sorted({hook_name(kind, m, prefixes) for layer in layers for m in window_layers(layer, width, total)})
    clean, cache = clean_run(model, tokens, target, read_at, names, attention_mask)
    std = noise_scale(model, noise_std)
    noise = embedding_noise(model, corrupt, n_samples, std, generator)
    corrupt_p = patched_probs(model, tokens, target, noise, [{}], None, read_at, attention_mask)[..., 0]
    per_layer = []
    for layer in layers:
        restore = [_at(pos, tokens.shape[-1], tokens.device, layer, kind, width, prefixes) for pos in positions]
        per_layer.append(patched_probs(model, tokens, target, noise, restore, cache, read_at, attention_mask))
    return Trace(clean, corrupt_p, torch.stack(per_layer, dim=2), layers, positions, kind, width, std)


def _at(pos: int, t: int, device: torch.device, layer: int, kind: Kind, window: int, prefixes: Sequence[str]) -> dict:
    where = torch.zeros(t, dtype=torch.bool, device=device)
    where[pos] = True
    return {hook_name(kind, m, prefixes): where for m in window_layers(layer, window, len(prefixes))}
