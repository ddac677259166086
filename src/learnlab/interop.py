"""Export one member of an `EnsembleTransformer` to Hugging Face GPT-2 and to TransformerLens.

`to_hf` gives a plain `transformers.GPT2LMHeadModel` (and, with `out`, a checkpoint + tokenizer that
`GPT2LMHeadModel.from_pretrained` / `AutoModelForCausalLM.from_pretrained` load with no custom code) whose
logits equal the member's. `to_transformer_lens` gives a `HookedTransformer` with the member's weights
unprocessed (no LayerNorm folding or centring), so its `run_with_cache` activations equal learnlab's at the
same hook names (learnlab's carry a leading member axis: compare `cache[name][k]`).

The unembedding bias. learnlab's unembedding has a bias; GPT-2's `lm_head` has none and `from_pretrained`
drops any extra weight, so the bias is folded in exactly by widening the residual stream with
`bias carriers`: n_heads extra dimensions (one per head keeps n_embd divisible by n_head) that every
writer (embeddings, attention and MLP outputs) sets to the mean of what it writes, so each carrier holds
the mean of the residual stream at every point. A LayerNorm over the widened stream then has the same mean
and a variance scaled by d/D (D = d + n_heads): its gains are scaled by √(d/D) and its epsilon by d/D, which
makes every normalised value of the first d dimensions equal learnlab's in exact arithmetic, while a
carrier normalises to 0. The final LayerNorm's bias sets the first carrier to 1, and the `lm_head` column
there is the bias. Queries, keys and values gain one zero dimension per head (n_embd / n_head = d_head + 1),
and the queries are scaled by √((d_head + 1) / d_head) so attention scores keep learnlab's 1/√d_head.
So in the HF model `hidden_states[l][..., :d_model]` is learnlab's residual stream; the layout is recorded
as `config.learnlab`. TransformerLens carries the bias natively (`unembed.b_U`): its model is not widened.

transformers and transformer-lens are the `interop` extra (`pip install 'learnlab[interop]'`), imported
here lazily. TransformerLens 4 removed `HookedTransformer`; the extra pins 3.x, where it is deprecated.
"""

from __future__ import annotations

import importlib
import json
import math
import operator
import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from learnlab.errors import LearnlabError
from learnlab.models.transformer import MLP, EnsembleTransformer

if TYPE_CHECKING:
    import tokenizers
    from transformer_lens import HookedTransformer
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

BOS, PAD = "<bos>", "<pad>"  # learnlab's special tokens (tasks/biographies.py)
TL_CONFIG = "transformer_lens_config.json"
TL_WEIGHTS = "transformer_lens.safetensors"


class InteropError(LearnlabError, ValueError):
    """A model, member or output path that cannot be exported."""


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise InteropError(f"{module} is not installed: pip install 'learnlab[interop]' ({err})") from None


def _member(model: EnsembleTransformer, member: int) -> int:
    """`member` as an index of `model`, which must be an EnsembleTransformer with the standard MLP."""
    if not isinstance(model, EnsembleTransformer):
        raise InteropError(f"can only export an EnsembleTransformer, got {type(model).__name__}")
    try:
        index = operator.index(member) if not isinstance(member, bool) else -1
    except TypeError:
        index = -1
    if not 0 <= index < model.n_models:
        raise InteropError(f"member must be an integer in 0..{model.n_models - 1}, got {member!r}")
    for layer, block in enumerate(model.blocks):
        if type(block.mlp) is not MLP:
            raise InteropError(f"blocks.{layer}.mlp is a {type(block.mlp).__name__}: only the GELU MLP exports")
    return index


def _dims(model: EnsembleTransformer) -> dict[str, int]:
    block = model.blocks[0]
    k, vocab, d = model.w_embed.shape
    n_heads = block.attn.n_heads
    return {
        "n_layers": model.n_layers, "d_model": d, "n_heads": n_heads, "d_head": d // n_heads,
        "d_mlp": block.mlp.w_in.shape[-1], "n_ctx": model.n_ctx, "d_vocab": vocab,
        "d_vocab_out": model.w_unembed.shape[-1],
    }  # fmt: skip


def member_weights(model: EnsembleTransformer, member: int) -> dict[str, Tensor]:
    """Member `member`'s parameters without the model axis (detached copies), by learnlab's names."""
    index = _member(model, member)
    return {name: p.detach()[index].clone() for name, p in model.named_parameters()}


# ---------------------------------------------------------------- Hugging Face


def hf_tokenizer(tokenizer: tokenizers.Tokenizer) -> PreTrainedTokenizerFast:
    """The biography tokenizer as a `PreTrainedTokenizerFast`: same ids with `add_special_tokens=False`;
    by default it prepends <bos>, as learnlab's training rows start with it. No eos: biographies have none."""
    transformers = _require("transformers")
    for token in (BOS, PAD):
        if tokenizer.token_to_id(token) is None:
            raise InteropError(f"the tokenizer lacks the special token {token}")
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, pad_token=PAD, add_bos_token=True
    )


def _matching_tokenizer(tokenizer: tokenizers.Tokenizer | None, dims: dict[str, int]) -> Any:
    if tokenizer is None:
        return None
    hf_tok = hf_tokenizer(tokenizer)
    if len(hf_tok) != dims["d_vocab"]:
        raise InteropError(f"the tokenizer has {len(hf_tok)} tokens, the model's embedding {dims['d_vocab']}")
    return hf_tok


def _with_carriers(w: Tensor, n: int) -> Tensor:
    """w [..., d] -> [..., d + n]: n columns holding the mean of each row, the bias carriers."""
    return torch.cat([w, w.mean(-1, keepdim=True).expand(*w.shape[:-1], n)], dim=-1)


def _pad_heads(w: Tensor, n_heads: int) -> Tensor:
    """w [..., heads·d_head] -> [..., heads·(d_head + 1)]: a zero dimension after each head's."""
    return torch.nn.functional.pad(w.unflatten(-1, (n_heads, -1)), (0, 1)).flatten(-2)


def _hf_state(weights: dict[str, Tensor], dims: dict[str, int]) -> dict[str, Tensor]:
    d, h, dh = dims["d_model"], dims["n_heads"], dims["d_head"]
    gain = math.sqrt(d / (d + h))

    def norm(w: Tensor, b: Tensor, carrier_bias: float = 0.0) -> tuple[Tensor, Tensor]:
        bias = torch.cat([b, b.new_zeros(h)])
        bias[d] = carrier_bias
        return torch.cat([w * gain, w.new_zeros(h)]), bias

    def rows(w: Tensor) -> Tensor:  # input rows from the residual stream: none from the carriers
        return torch.cat([w, w.new_zeros(h, w.shape[-1])])

    state = {
        "transformer.wte.weight": _with_carriers(weights["w_embed"], h),
        "transformer.wpe.weight": _with_carriers(weights["w_pos"], h),
    }
    for layer in range(dims["n_layers"]):
        src, dst = f"blocks.{layer}.", f"transformer.h.{layer}."
        q, k, v = weights[src + "attn.w_qkv"].chunk(3, dim=-1)
        bq, bk, bv = weights[src + "attn.b_qkv"].chunk(3, dim=-1)
        scale = math.sqrt((dh + 1) / dh)  # GPT-2 divides scores by √(d_head + 1), learnlab by √d_head
        w_o, b_o = weights[src + "attn.w_o"], weights[src + "attn.b_o"]
        ln_1, ln_2 = (norm(weights[f"{src}ln{i}_w"], weights[f"{src}ln{i}_b"]) for i in (1, 2))
        state |= {
            dst + "ln_1.weight": ln_1[0],
            dst + "ln_1.bias": ln_1[1],
            dst + "attn.c_attn.weight": rows(torch.cat([_pad_heads(x, h) for x in (q * scale, k, v)], dim=-1)),
            dst + "attn.c_attn.bias": torch.cat([_pad_heads(x, h) for x in (bq * scale, bk, bv)]),
            dst + "attn.c_proj.weight": _pad_heads(_with_carriers(w_o, h).T, h).T,
            dst + "attn.c_proj.bias": _with_carriers(b_o, h),
            dst + "ln_2.weight": ln_2[0],
            dst + "ln_2.bias": ln_2[1],
            dst + "mlp.c_fc.weight": rows(weights[src + "mlp.w_in"]),
            dst + "mlp.c_fc.bias": weights[src + "mlp.b_in"],
            dst + "mlp.c_proj.weight": _with_carriers(weights[src + "mlp.w_out"], h),
            dst + "mlp.c_proj.bias": _with_carriers(weights[src + "mlp.b_out"], h),
        }
    ln_w, ln_b = norm(weights["ln_final_w"], weights["ln_final_b"], carrier_bias=1.0)
    head = torch.cat([weights["w_unembed"], weights["w_unembed"].new_zeros(h, dims["d_vocab_out"])])
    head[d] = weights["b_unembed"]
    return state | {"transformer.ln_f.weight": ln_w, "transformer.ln_f.bias": ln_b, "lm_head.weight": head.T}


def to_hf(
    model: EnsembleTransformer,
    member: int,
    tokenizer: tokenizers.Tokenizer | None = None,
    out: str | os.PathLike[str] | None = None,
) -> GPT2LMHeadModel:
    """Member `member` as a GPT-2 whose logits equal learnlab's (the bias folded as the module doc says).

    With `out`, also writes the checkpoint (safetensors + config.json) and, given `tokenizer`, the
    `PreTrainedTokenizerFast`, into the directory `out`, which must not exist or be empty: written
    beside it and moved into place, so a failure leaves nothing half-written."""
    transformers = _require("transformers")
    member = _member(model, member)
    weights, dims = member_weights(model, member), _dims(model)
    if dims["d_vocab_out"] != dims["d_vocab"]:
        raise InteropError(
            f"the model has {dims['d_vocab_out']} outputs for {dims['d_vocab']} tokens: only a language "
            "model exports to GPT-2 (to_transformer_lens takes any)"
        )
    target = _check_out(out)
    d, h = dims["d_model"], dims["n_heads"]
    hf_tok = _matching_tokenizer(tokenizer, dims)
    special = {"bos_token_id": None, "pad_token_id": None, "eos_token_id": None}  # not GPT-2's 50256
    if hf_tok is not None:
        special |= {"bos_token_id": hf_tok.bos_token_id, "pad_token_id": hf_tok.pad_token_id}
    config = transformers.GPT2Config(
        vocab_size=dims["d_vocab"], n_positions=dims["n_ctx"], n_embd=d + h, n_layer=dims["n_layers"],
        n_head=h, n_inner=dims["d_mlp"], activation_function="gelu",  # learnlab's F.gelu: exact, not tanh
        layer_norm_epsilon=1e-5 * d / (d + h),  # F.layer_norm's 1e-5, scaled with the variance (module doc)
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, scale_attn_weights=True,
        scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False, tie_word_embeddings=False,
        **special,
        learnlab={"member": member, "d_model": d, "bias_carriers": h, "d_head": dims["d_head"],
                  "layout": "hidden_states[..., :d_model] is learnlab's residual stream; the rest carry "
                            "the unembedding bias (learnlab.interop)"},
    )  # fmt: skip
    hf = transformers.GPT2LMHeadModel(config).to(device=model.w_embed.device, dtype=model.w_embed.dtype)
    hf.load_state_dict(_hf_state(weights, dims), strict=True)
    hf.eval()
    if target is not None:

        def write(tmp: Path) -> None:
            hf.save_pretrained(tmp)
            if hf_tok is not None:
                hf_tok.save_pretrained(tmp)

        _write_dir(target, write)
    return hf


# ---------------------------------------------------------------- TransformerLens


def _tl_config(model: EnsembleTransformer) -> dict[str, Any]:
    """HookedTransformerConfig arguments (JSON-able) describing every member of `model`."""
    return _dims(model) | {
        "act_fn": "gelu", "normalization_type": "LN", "eps": 1e-5, "positional_embedding_type": "standard",
        "original_architecture": "learnlab.EnsembleTransformer", "default_prepend_bos": True,
    }  # fmt: skip


_TL_KEYS = (
    "n_layers", "d_model", "n_heads", "d_head", "d_mlp", "n_ctx", "d_vocab", "d_vocab_out", "act_fn",
    "normalization_type", "eps", "positional_embedding_type", "original_architecture", "default_prepend_bos",
)  # fmt: skip


def _tl_state(weights: dict[str, Tensor], dims: dict[str, int]) -> dict[str, Tensor]:
    h = dims["n_heads"]
    state = {"embed.W_E": weights["w_embed"], "pos_embed.W_pos": weights["w_pos"]}
    for layer in range(dims["n_layers"]):
        src = f"blocks.{layer}."
        qkv = weights[src + "attn.w_qkv"].unflatten(-1, (3, h, -1)).permute(1, 2, 0, 3)  # [3, heads, d, d_head]
        b_qkv = weights[src + "attn.b_qkv"].unflatten(-1, (3, h, -1))
        state |= {
            src + "ln1.w": weights[src + "ln1_w"], src + "ln1.b": weights[src + "ln1_b"],
            src + "ln2.w": weights[src + "ln2_w"], src + "ln2.b": weights[src + "ln2_b"],
            **{f"{src}attn.W_{x}": qkv[i] for i, x in enumerate("QKV")},
            **{f"{src}attn.b_{x}": b_qkv[i] for i, x in enumerate("QKV")},
            src + "attn.W_O": weights[src + "attn.w_o"].unflatten(0, (h, -1)),
            src + "attn.b_O": weights[src + "attn.b_o"],
            src + "mlp.W_in": weights[src + "mlp.w_in"], src + "mlp.b_in": weights[src + "mlp.b_in"],
            src + "mlp.W_out": weights[src + "mlp.w_out"], src + "mlp.b_out": weights[src + "mlp.b_out"],
        }  # fmt: skip
    return state | {
        "ln_final.w": weights["ln_final_w"], "ln_final.b": weights["ln_final_b"],
        "unembed.W_U": weights["w_unembed"], "unembed.b_U": weights["b_unembed"],
    }  # fmt: skip


def _hooked(config: dict[str, Any], state: dict[str, Tensor], tokenizer: Any) -> HookedTransformer:
    transformer_lens = _require("transformer_lens")
    if tokenizer is not None:  # TransformerLens reads it, and it is unset on a tokenizer built in memory
        tokenizer.init_kwargs.setdefault("name_or_path", tokenizer.name_or_path)
    device = next(iter(state.values())).device
    cfg = transformer_lens.HookedTransformerConfig(**config, dtype=next(iter(state.values())).dtype, device=str(device))
    with warnings.catch_warnings():  # HookedTransformer is deprecated in TransformerLens 3 (module doc)
        warnings.simplefilter("ignore", DeprecationWarning)
        tl = transformer_lens.HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=True)
    full = tl.state_dict()  # the attention masks are buffers of its own: keep them
    unknown = set(state) - set(full)
    if unknown:
        raise InteropError(f"TransformerLens has no parameters {sorted(unknown)}")
    tl.load_state_dict(full | {name: w.to(device) for name, w in state.items()}, strict=True)
    return tl.eval()


def to_transformer_lens(
    model: EnsembleTransformer,
    member: int,
    tokenizer: tokenizers.Tokenizer | None = None,
    out: str | os.PathLike[str] | None = None,
) -> HookedTransformer:
    """Member `member` as a TransformerLens `HookedTransformer`, weights as they are (no LayerNorm folding,
    no centring), so activations equal learnlab's at the same hook names. Any output width (classifiers too).

    With `out`, writes the config, weights (safetensors) and tokenizer into the directory `out` (not
    existing or empty); `load_transformer_lens(out)` rebuilds the model."""
    member = _member(model, member)
    weights, dims = member_weights(model, member), _dims(model)
    target = _check_out(out)
    config = _tl_config(model)
    tl = _hooked(config, _tl_state(weights, dims), _matching_tokenizer(tokenizer, dims))
    if target is not None:
        safetensors_torch = _require("safetensors.torch")

        def write(tmp: Path) -> None:
            (tmp / TL_CONFIG).write_text(json.dumps(config | {"member": member}, indent=2))
            state = {name: w.contiguous() for name, w in _tl_state(weights, dims).items()}
            safetensors_torch.save_file(state, str(tmp / TL_WEIGHTS))
            if tokenizer is not None:  # a fresh one: TransformerLens sets an eos on the one it holds
                hf_tokenizer(tokenizer).save_pretrained(tmp)

        _write_dir(target, write)
    return tl


def load_transformer_lens(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> HookedTransformer:
    """The `HookedTransformer` that `to_transformer_lens(..., out=path)` wrote."""
    safetensors = _require("safetensors")
    safetensors_torch = _require("safetensors.torch")
    transformers = _require("transformers")
    path = Path(path)
    try:
        config = json.loads((path / TL_CONFIG).read_text())
        state = safetensors_torch.load_file(str(path / TL_WEIGHTS), device=str(device))
    except (OSError, ValueError, safetensors.SafetensorError) as err:
        raise InteropError(f"{str(path)!r} is not a learnlab TransformerLens export: {err}") from None
    missing = sorted(set(_TL_KEYS) - set(config)) if isinstance(config, dict) else list(_TL_KEYS)
    if missing:
        raise InteropError(f"{str(path / TL_CONFIG)!r} lacks the keys {missing}")
    config = {key: config[key] for key in _TL_KEYS}
    tok = transformers.AutoTokenizer.from_pretrained(path) if (path / "tokenizer.json").exists() else None
    return _hooked(config, state, tok)


# ---------------------------------------------------------------- output directories


def _check_out(out: str | os.PathLike[str] | None) -> Path | None:
    """The output directory, refused before anything is written if it holds files or is not a directory."""
    if out is None:
        return None
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InteropError(f"output {str(target)!r} exists and is not an empty directory")
    if not target.parent.is_dir():
        raise InteropError(f"output {str(target)!r}: its parent directory does not exist")
    return target


def _write_dir(target: Path, write: Callable[[Path], None]) -> None:
    """Write into a temporary directory beside `target`, then rename it into place."""
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would stay on the export
    try:
        write(tmp)
        os.replace(tmp, target)  # onto an empty directory too
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
