"""A mixture-of-experts MLP for the ensemble transformer: top-k routing over E experts, members first.

Each expert has the dense `MLP`'s shape (d_model -> d_mlp -> d_model, GELU), so a top-1 MoE has the dense
MLP's active parameters (plus a d_model x E router) and E times its total. Weights are stacked
[K, E, ...] (members first, then experts); `Block` takes the component through its `mlp=` factory:
`EnsembleTransformer(..., mlp=moe(n_experts=4))`.

Routing (Switch Transformer, Fedus et al. 2022; top-k as in GShard): router probabilities p = softmax(x W_r)
per token; each token goes to its top_k experts and gets sum_j g_j E_j(x). Top-1 keeps the raw
probability as the gate (Switch: the router learns through it); top_k > 1 renormalises the gates over the
chosen experts. No token is dropped (no capacity factor): tokens are dispatched into a [K*E, C, d]
buffer, C the largest load of any (member, expert), so the work is ~top_k dense MLPs when the load is
balanced, and one batched matmul per projection whatever E is.

Load balancing (Switch, eq. 4): aux = alpha * E * sum_i f_i P_i, f_i the fraction of routed assignments
that went to expert i, P_i the mean router probability of expert i over the batch's tokens; alpha = 0.01.
It equals alpha when routing is uniform and grows as it concentrates. After each forward the component
keeps `aux_loss` [K] (differentiable: add `moe_aux_loss(model)` to a training loss) and `load` [K, E]
(f, detached; `expert_load(model)`). They are over every position of the batch, padding included: the
MLP does not see the attention mask.

Members are independent: member k's routing and outputs use only its own weights and tokens (within float
rounding: the shared buffer's length C is the largest load over members).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learnlab.models.transformer import EnsembleTransformer, Hooks, MLPFactory, _apply

SWITCH_ALPHA = 0.01


class MoEMLP(nn.Module):
    """E GELU experts of the dense MLP's shape behind a top-k router; forward(x [K, B, T, d], hooks, prefix)."""

    init_roles: ClassVar[dict[str, str]] = {"b_in": "zeros", "b_out": "zeros", "w_out": "residual"}

    def __init__(
        self, n_models: int, d_model: int, d_mlp: int, n_experts: int = 4, top_k: int = 1, alpha: float = SWITCH_ALPHA
    ):
        super().__init__()
        if n_experts < 1 or not 1 <= top_k <= n_experts:
            raise ValueError(f"need 1 <= top_k <= n_experts, got top_k={top_k}, n_experts={n_experts}")
        k, d, e = n_models, d_model, n_experts
        self.n_experts, self.top_k, self.alpha = n_experts, top_k, alpha
        self.w_router = nn.Parameter(torch.empty(k, d, e))
        self.w_in, self.b_in = nn.Parameter(torch.empty(k, e, d, d_mlp)), nn.Parameter(torch.empty(k, e, d_mlp))
        self.w_out, self.b_out = nn.Parameter(torch.empty(k, e, d_mlp, d)), nn.Parameter(torch.empty(k, e, d))
        self.aux_loss: Tensor | None = None
        self.load: Tensor | None = None

    def hook_names(self) -> list[str]:
        return ["hook_router"]  # the router's logits [K, B, T, E]

    def __getstate__(self) -> dict[str, Any]:
        """Without the last forward's loss (part of a graph, which deepcopy and pickle refuse)."""
        return {**super().__getstate__(), "aux_loss": None, "load": None}

    def forward(self, x: Tensor, hooks: Hooks | None, prefix: str) -> Tensor:
        k, b, t, d = x.shape
        n, e, top = b * t, self.n_experts, self.top_k
        flat = x.reshape(k, n, d)
        logits = _apply(hooks, f"{prefix}.hook_router", torch.bmm(flat, self.w_router).view(k, b, t, e))
        probs = logits.reshape(k, n, e).softmax(dim=-1)
        gates, chosen = probs.topk(top, dim=-1)  # [K, N, top]
        if top > 1:
            gates = gates / gates.sum(dim=-1, keepdim=True)
        out = self._experts(flat, chosen.reshape(k, n * top))  # [K, N*top, d]
        out = (out * gates.reshape(k, n * top, 1)).view(k, n, top, d).sum(dim=2)
        counts = F.one_hot(chosen.reshape(k, -1), e).sum(dim=1)  # [K, E]
        self.load = (counts.float() / (n * top)).detach()
        self.aux_loss = self.alpha * e * (self.load * probs.float().mean(dim=1)).sum(dim=-1)
        return out.view(k, b, t, d)

    def _experts(self, flat: Tensor, expert: Tensor) -> Tensor:
        """Each assignment (token n // top to expert[k, a]) through its expert: [K, N*top, d]."""
        k, n, d = flat.shape
        e, top = self.n_experts, self.top_k
        onehot = F.one_hot(expert, e)  # [K, A, E]
        slot = ((onehot.cumsum(dim=1) - 1) * onehot).sum(dim=-1)  # the assignment's place in its expert's queue
        cap = int(onehot.sum(dim=1).max())
        members = torch.arange(k, device=flat.device)[:, None]
        rows = ((members * e + expert) * cap + slot).reshape(-1)  # [K*A] rows of the [K*E*cap] buffer
        src = flat.repeat_interleave(top, dim=1) if top > 1 else flat  # [K, A, d]
        buf = flat.new_zeros(k * e * cap, d).index_copy(0, rows, src.reshape(-1, d)).view(k * e, cap, d)
        dm = self.w_in.shape[-1]
        hidden = F.gelu(torch.baddbmm(self.b_in.reshape(k * e, 1, dm), buf, self.w_in.reshape(k * e, d, dm)))
        y = torch.baddbmm(self.b_out.reshape(k * e, 1, d), hidden, self.w_out.reshape(k * e, dm, d))
        return y.reshape(-1, d).index_select(0, rows).view(k, n * top, d)


def moe(n_experts: int = 4, top_k: int = 1, alpha: float = SWITCH_ALPHA) -> MLPFactory:
    """The `mlp=` factory of an `EnsembleTransformer` whose MLPs are `MoEMLP`s."""

    def factory(n_models: int, d_model: int, d_mlp: int) -> nn.Module:
        return MoEMLP(n_models, d_model, d_mlp, n_experts=n_experts, top_k=top_k, alpha=alpha)

    return factory


class MoETransformer(EnsembleTransformer):
    """An `EnsembleTransformer` whose every MLP is an `MoEMLP`, built from plain kwargs (`self.kwargs`), so a
    run keeps it and `learnlab.load_run` rebuilds it: `ctx.keep_model(name, model, members, kwargs=model.kwargs)`.
    d_mlp is each expert's width."""

    def __init__(
        self,
        n_models: int,
        vocab_size: int,
        n_ctx: int,
        d_model: int = 32,
        n_layers: int = 2,
        n_heads: int = 2,
        d_mlp: int = 128,
        n_out: int = 1,
        n_experts: int = 4,
        top_k: int = 1,
        alpha: float = SWITCH_ALPHA,
    ):
        factory = moe(n_experts, top_k, alpha)
        super().__init__(n_models, vocab_size, n_ctx, d_model, n_layers, n_heads, d_mlp, n_out, factory)
        self.kwargs: dict[str, Any] = {
            "n_models": n_models, "vocab_size": vocab_size, "n_ctx": n_ctx, "d_model": d_model,
            "n_layers": n_layers, "n_heads": n_heads, "d_mlp": d_mlp, "n_out": n_out, "n_experts": n_experts,
            "top_k": top_k, "alpha": alpha,
        }  # fmt: skip


def moe_layers(model: nn.Module) -> dict[str, MoEMLP]:
    """Every MoE component of a model, by module name (e.g. "blocks.0.mlp")."""
    return {name: m for name, m in model.named_modules() if isinstance(m, MoEMLP)}


def moe_aux_loss(model: nn.Module) -> Tensor:
    """The load-balancing losses of the model's last forward, summed over its MoE layers: [K] (0 if none)."""
    losses = [m.aux_loss for m in moe_layers(model).values() if m.aux_loss is not None]
    if not losses:
        return torch.zeros(())
    return torch.stack(losses).sum(dim=0)


def expert_load(model: nn.Module) -> dict[str, Tensor]:
    """Each MoE layer's expert load in the last forward: fraction of routed assignments per expert [K, E]."""
    return {name: m.load for name, m in moe_layers(model).items() if m.load is not None}
