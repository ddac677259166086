"""Rank-one model editing (ROME, Meng et al. 2022 §3) and a constrained fine-tuning baseline.

ROME treats an MLP's output projection W as a linear associative memory from keys k (the MLP's hidden
activations after the nonlinearity, `blocks.{l}.mlp.hook_post`) to values (its output,
`blocks.{l}.hook_mlp_out`). To make the key k* (the subject's last token) give the value v* (one that
makes the model emit the new fact) while disturbing the other keys least, in closed form:

    W' = W + (v* - W k* - b) (C^-1 k*)^T / (k*^T C^-1 k*),

C = E[k k^T] the keys' uncentred second moment over the training distribution (ROME: 100k Wikipedia
tokens). Then W' k* + b = v* exactly, and a key k with k^T C^-1 k* = 0 keeps its value. learnlab stores
W transposed, members first (`MLP.w_out` [K, d_mlp, d_model], out = k @ w_out + b_out): the update is
w_out' = w_out + (C^-1 k*) (v* - k* @ w_out - b_out)^T / (k*^T C^-1 k*), per member.

v* is found as ROME does: a vector delta added to the MLP output at the subject's last token of each
prompt, optimised by gradient steps so that the model emits the target (mean negative log-likelihood of the
labelled tokens), with a norm penalty, its norm clamped to `clamp_norm` x that of the original value, and
optionally ROME's KL term on "essence" prompts; v* = the prompts' mean original value + delta.

Every edit returns an `Edit` handle (also a context manager) holding the edited members' original weights:
`undo()` restores them bit for bit. Members not edited are never written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learnlab.models.transformer import EnsembleTransformer

IGNORE = -100  # the label of positions that are not part of the target


@dataclass
class Edit:
    """An in-place change to some members of one parameter; `undo()` (or leaving the `with`) restores them."""

    model: nn.Module
    name: str
    members: tuple[int, ...]
    original: Tensor  # the edited members' weights before the edit [len(members), ...]

    @property
    def param(self) -> nn.Parameter:
        return self.model.get_parameter(self.name)

    def undo(self) -> None:
        with torch.no_grad():
            self.param[list(self.members)] = self.original

    def __enter__(self) -> Edit:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None):
        self.undo()


def _begin(model: nn.Module, name: str, members: Sequence[int] | None) -> Edit:
    param = model.get_parameter(name)
    chosen = tuple(range(param.shape[0])) if members is None else tuple(members)
    return Edit(model, name, chosen, param.detach()[list(chosen)].clone())


def out_weight_name(layer: int) -> str:
    return f"blocks.{layer}.mlp.w_out"


# --- keys, their covariance, the closed form ------------------------------------------------------------


def mlp_keys(model: EnsembleTransformer, tokens: Tensor, layer: int, attention_mask: Tensor | None = None) -> Tensor:
    """The MLP keys (its hidden activations after the GELU) at every position: [K, B*T, d_mlp]."""
    name = f"blocks.{layer}.mlp.hook_post"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, [name], attention_mask=attention_mask, stop_at_layer=layer + 1)
    return cache[name].flatten(1, 2)


def key_covariance(keys: Tensor, mask: Tensor | None = None, ridge: float = 0.0) -> Tensor:
    """C = mean of k k^T over keys [..., N, d] (uncentred, as ROME): [..., d, d]; mask [..., N] keeps some
    keys (padding out). ridge adds ridge x mean(diag C) to the diagonal, for few keys."""
    keys = keys.double()
    weight = torch.ones(keys.shape[:-1], dtype=keys.dtype, device=keys.device) if mask is None else mask.double()
    cov = torch.einsum("...n,...ni,...nj->...ij", weight, keys, keys) / weight.sum(-1)[..., None, None]
    if ridge:
        scale = ridge * cov.diagonal(dim1=-2, dim2=-1).mean(-1)[..., None, None]
        cov = cov + scale * torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return cov


def corpus_covariance(
    model: EnsembleTransformer,
    batches: Iterable[Tensor],
    layer: int,
    pad_id: int | None = None,
    ridge: float = 0.0,
) -> Tensor:
    """C over a corpus too large for one batch: keys of every non-padding token of `batches` (tokens
    [K, B, T] or [B, T], the same for every member), summed in float64 batch by batch: [K, d_mlp, d_mlp].
    Padding (pad_id) is left out; keys at real tokens do not see it (causal attention, right padding)."""
    total: Tensor | None = None
    count: Tensor | None = None
    k = model.n_models
    for tokens in batches:
        tokens = tokens.expand(k, *tokens.shape[-2:]) if tokens.dim() == 2 else tokens
        keys = mlp_keys(model, tokens, layer).double()
        weight = torch.ones(keys.shape[:-1], dtype=keys.dtype, device=keys.device)
        if pad_id is not None:
            weight = (tokens != pad_id).flatten(1).to(keys.dtype)
        part = torch.einsum("kn,kni,knj->kij", weight, keys, keys)
        total = part if total is None else total + part
        count = weight.sum(1) if count is None else count + weight.sum(1)
    if total is None or count is None:
        raise ValueError("corpus_covariance needs at least one batch")
    cov = total / count[:, None, None]
    if ridge:
        cov = cov + ridge * cov.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None] * torch.eye(cov.shape[-1]).to(cov)
    return cov


def spd_solve(cov: Tensor, rhs: Tensor) -> Tensor:
    """C^-1 x for a symmetric positive-definite C [..., d, d] and x [..., d], by Cholesky; a C that is not
    positive definite (no ridge, fewer keys than dimensions) goes through its pseudo-inverse. Not LU
    (torch.linalg.solve): inside a learnlab run (deterministic kernels, after training) its batched
    float64 LU failed with "Pivots given to lu_solve must all be greater or equal to 1" on a finite,
    well-conditioned C that it solved outside one."""
    factor, info = torch.linalg.cholesky_ex(cov)
    if bool((info == 0).all()):
        return torch.cholesky_solve(rhs[..., None], factor)[..., 0]
    return (torch.linalg.pinv(cov, hermitian=True) @ rhs[..., None])[..., 0]


def rank_one_update(w: Tensor, k_star: Tensor, v_star: Tensor, cov: Tensor, bias: Tensor | None = None) -> Tensor:
    """ROME's W' in learnlab's layout (out = k @ w + bias): w [..., d_in, d_out], k_star [..., d_in],
    v_star [..., d_out], cov [..., d_in, d_in]. Computed in float64, returned in w's dtype."""
    w64, k64 = w.double(), k_star.double()
    u = spd_solve(cov.double(), k64)  # C^-1 k*
    current = (k64[..., None, :] @ w64)[..., 0, :] + (0.0 if bias is None else bias.double())
    residual = (v_star.double() - current) / (k64 * u).sum(-1, keepdim=True)
    return (w64 + u[..., :, None] * residual[..., None, :]).to(w.dtype)


def apply_rank_one(
    model: EnsembleTransformer,
    layer: int,
    k_star: Tensor,
    v_star: Tensor,
    cov: Tensor,
    members: Sequence[int] | None = None,
) -> Edit:
    """Edit `blocks.{layer}.mlp.w_out` of the chosen members (default all) so that k_star [K, d_mlp] maps to
    v_star [K, d_model]; cov [K, d_mlp, d_mlp]. Returns the handle that undoes it."""
    name = out_weight_name(layer)
    w, b = model.get_parameter(name), model.get_parameter(f"blocks.{layer}.mlp.b_out")
    if w.dim() != 3:
        raise ValueError(f"{name} has shape {tuple(w.shape)}: a rank-one edit needs a dense MLP [K, d_mlp, d]")
    edit = _begin(model, name, members)
    idx = list(edit.members)
    with torch.no_grad():
        w[idx] = rank_one_update(w[idx], k_star[idx], v_star[idx], cov[idx], b[idx])
    return edit


# --- the subject's key and the value to write ------------------------------------------------------------


def _at_position(position: Tensor | int, shape: tuple[int, int, int], device: torch.device) -> Tensor:
    """A one-hot [K, B, T, 1] of each prompt's position (an int, or [K, B]; negative from the end)."""
    k, b, t = shape
    pos = torch.as_tensor(position, device=device).expand(k, b) % t
    return F.one_hot(pos, t).bool()[..., None]


def subject_key(
    model: EnsembleTransformer,
    tokens: Tensor,
    layer: int,
    position: Tensor | int,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """k*: the MLP key at the subject's last token (`position`, an int or [K, B]), mean over the B prompts
    (ROME averages over prompts with different prefixes): [K, d_mlp]."""
    name = f"blocks.{layer}.mlp.hook_post"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, [name], attention_mask=attention_mask, stop_at_layer=layer + 1)
    at = _at_position(position, tokens.shape, tokens.device)
    return (cache[name] * at).sum(2).mean(1)


def label_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-member mean negative log-likelihood of the labelled positions: logits [K, B, T, V], labels
    [K, B, T] (the token expected from each position's output; IGNORE elsewhere) -> [K]."""
    nll = F.cross_entropy(logits.float().flatten(0, 2), labels.flatten(), ignore_index=IGNORE, reduction="none")
    real = (labels != IGNORE).float()
    return (nll.view(labels.shape) * real).sum(dim=(1, 2)) / real.sum(dim=(1, 2)).clamp(min=1)


def optimise_value(
    model: EnsembleTransformer,
    tokens: Tensor,
    labels: Tensor,
    layer: int,
    position: Tensor | int,
    *,
    steps: int = 30,
    lr: float = 0.5,
    weight_decay: float = 0.5,
    clamp_norm: float = 4.0,
    stop_below: float = 0.05,
    essence: tuple[Tensor, Tensor | int] | None = None,
    kl_factor: float = 0.0625,
    attention_mask: Tensor | None = None,
) -> Tensor:
    """v* [K, d_model]: the MLP output at the subject's last token that makes the model emit `labels`.

    tokens [K, B, T] (prompts with the target appended); labels [K, B, T] the target tokens at the positions
    that predict them (IGNORE elsewhere); position the subject's last token (int or [K, B]). Adam on a delta
    added to `blocks.{layer}.hook_mlp_out` there, loss = mean NLL + weight_decay x |delta| / |v0|^2 (ROME's
    code's form), |delta| <= clamp_norm x |v0| (ROME's GPT-2 XL values: 0.5 and 4), v0 the mean original
    value; stops early once every member's NLL is below stop_below (ROME: 0.05). essence = (tokens
    [K, B2, T2], the subject's last position there): ROME's essence prompts ("{subject} is a"), whose next-token
    distribution at the subject is held near the unedited one by + kl_factor x KL(unedited || edited)."""
    name = f"blocks.{layer}.hook_mlp_out"
    at = _at_position(position, tokens.shape, tokens.device)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, [name], attention_mask=attention_mask, stop_at_layer=layer + 1)
    v0 = (cache[name] * at).sum(2).mean(1)  # [K, d]
    scale = v0.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    delta = torch.zeros_like(v0, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    hooks = {name: lambda x, _: x + at * delta[:, None, None]}
    kl = _essence_kl(model, name, delta, essence)
    for _ in range(steps):
        logits = model(tokens, attention_mask=attention_mask, hooks=hooks)
        nll = label_nll(logits, labels)
        if (nll < stop_below).all():
            break
        loss = nll + weight_decay * delta.norm(dim=-1) / scale[:, 0] ** 2 + kl_factor * kl()
        (delta.grad,) = torch.autograd.grad(loss.sum(), [delta])
        opt.step()
        with torch.no_grad():
            norm = delta.norm(dim=-1, keepdim=True)
            delta.mul_(torch.where(norm > clamp_norm * scale, clamp_norm * scale / norm, torch.ones_like(norm)))
    return (v0 + delta).detach()


def value_hooks(
    model: EnsembleTransformer,
    tokens: Tensor,
    layer: int,
    position: Tensor | int,
    v_star: Tensor,
    attention_mask: Tensor | None = None,
) -> dict[str, Callable[[Tensor, str], Tensor]]:
    """The forward hooks that put v* [K, d_model] where `optimise_value` found it: v* minus the prompts' mean
    original value added to the MLP output at each prompt's `position`. The model run with them scores
    the site itself, without the weight edit: what v* written at the subject's last token gives these
    prompts, the ceiling of a rank-one edit there (exact at the mean key k* only, and it moves other keys)."""
    name = f"blocks.{layer}.hook_mlp_out"
    at = _at_position(position, tokens.shape, tokens.device)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, [name], attention_mask=attention_mask, stop_at_layer=layer + 1)
    delta = v_star - (cache[name] * at).sum(2).mean(1)
    return {name: lambda x, _: x + at * delta[:, None, None]}


def _essence_kl(
    model: EnsembleTransformer, name: str, delta: Tensor, essence: tuple[Tensor, Tensor | int] | None
) -> Callable[[], Tensor]:
    """KL(unedited || edited) [K] of the next-token distribution at the essence prompts' subject position,
    mean over those prompts (zero without essence prompts)."""
    if essence is None:
        return lambda: torch.zeros(delta.shape[0], device=delta.device)
    tokens, position = essence
    at = _at_position(position, tokens.shape, tokens.device)

    def read(logits: Tensor) -> Tensor:
        return ((logits * at).sum(2)).float().log_softmax(dim=-1)  # [K, B2, V]

    with torch.no_grad():
        before = read(model(tokens))
    hooks = {name: lambda x, _: x + at * delta[:, None, None]}

    def kl() -> Tensor:
        after = read(model(tokens, hooks=hooks))
        return (before.exp() * (before - after)).sum(-1).mean(-1)

    return kl


def rome_edit(
    model: EnsembleTransformer,
    tokens: Tensor,
    labels: Tensor,
    layer: int,
    position: Tensor | int,
    cov: Tensor,
    members: Sequence[int] | None = None,
    key_tokens: Tensor | None = None,
    key_position: Tensor | int | None = None,
    attention_mask: Tensor | None = None,
    **optimiser: Any,
) -> Edit:
    """ROME end to end: k* from `key_tokens` (default the prompts) at `key_position` (default `position`),
    v* by `optimise_value` on (tokens, labels), then `apply_rank_one`. Returns the undo handle."""
    key_tokens = tokens if key_tokens is None else key_tokens
    key_mask = attention_mask if key_tokens is tokens else None
    key_at = position if key_position is None else key_position
    k_star = subject_key(model, key_tokens, layer, key_at, key_mask)
    v_star = optimise_value(model, tokens, labels, layer, position, attention_mask=attention_mask, **optimiser)
    return apply_rank_one(model, layer, k_star, v_star, cov, members)


# --- the baseline: fine-tune the same matrix --------------------------------------------------------------


def finetune_layer(
    model: EnsembleTransformer,
    tokens: Tensor,
    labels: Tensor,
    layer: int,
    members: Sequence[int] | None = None,
    *,
    steps: int = 30,
    lr: float = 1e-2,
    max_change: float | None = None,
    attention_mask: Tensor | None = None,
) -> Edit:
    """Fine-tune only `blocks.{layer}.mlp.w_out` of the chosen members on (tokens, labels) (Adam, mean NLL);
    max_change bounds every weight's change (ROME's "FT+L", after Zhu et al. 2020: an L-infinity ball).
    The other members and parameters are not written. Returns the undo handle."""
    name = out_weight_name(layer)
    param = model.get_parameter(name)
    edit = _begin(model, name, members)
    idx = list(edit.members)
    original = param.detach()[idx].clone()
    delta = torch.zeros_like(original, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr)
    for _ in range(steps):
        with torch.no_grad():
            param[idx] = original + delta
        grad = torch.autograd.grad(label_nll(model(tokens, attention_mask=attention_mask), labels).sum(), [param])[0]
        delta.grad = grad[idx]
        opt.step()
        if max_change is not None:
            with torch.no_grad():
                delta.clamp_(-max_change, max_change)
    with torch.no_grad():
        param[idx] = original + delta.detach()
    return edit
