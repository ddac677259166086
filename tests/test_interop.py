"""Export to Hugging Face GPT-2 and TransformerLens: logits and activations equal learnlab's (max |Δ| ≤ 1e-5).

Random weights prove the mapping: every parameter (LayerNorm gains and biases, the unembedding bias that
GPT-2 has no place for) is perturbed away from its initial value so a dropped or transposed one shows."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformer_lens")

from learnlab import interop  # noqa: E402
from learnlab.errors import LearnlabError  # noqa: E402
from learnlab.models.transformer import EnsembleTransformer  # noqa: E402
from learnlab.tasks import biographies as bio  # noqa: E402

TOL = 1e-5
K, MEMBER, VOCAB, N_CTX = 2, 1, 100, 16
# the hook points the issue names; learnlab's and TransformerLens's must agree at each of them
LISTED = ["hook_resid_pre", "hook_resid_mid", "hook_resid_post", "attn.hook_pattern", "attn.hook_q",
          "attn.hook_k", "attn.hook_v", "attn.hook_z", "mlp.hook_pre", "mlp.hook_post"]  # fmt: skip


def random_model(vocab: int = VOCAB, n_out: int | None = None, n_ctx: int = N_CTX) -> EnsembleTransformer:
    model = EnsembleTransformer(K, vocab, n_ctx, d_model=32, n_layers=2, n_heads=2, d_mlp=64, n_out=n_out or vocab)
    model.reset_parameters([torch.Generator().manual_seed(k) for k in range(K)])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def model() -> EnsembleTransformer:
    torch.manual_seed(0)
    return random_model()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (K, 3, N_CTX), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def learnlab_run(model, tokens):
    with torch.no_grad():
        return model.run_with_cache(tokens)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))  # masked attention scores: -inf at the same places
    finite = torch.isfinite(a)
    return (a[finite] - b[finite]).abs().max().item()


def test_the_smoke_model_has_a_bias_to_carry(model):
    """Otherwise the logit tests would pass with the unembedding bias dropped."""
    assert model.b_unembed[MEMBER].abs().max() > 0.1
    assert (model.b_unembed[MEMBER] - model.b_unembed[MEMBER].mean()).abs().max() > 0.1  # not a softmax no-op


def test_hf_logits_equal_learnlabs(model, tokens, learnlab_run):
    logits, cache = learnlab_run
    hf = interop.to_hf(model, MEMBER)
    assert isinstance(hf, transformers.GPT2LMHeadModel)
    with torch.no_grad():
        out = hf(tokens[MEMBER], output_hidden_states=True)
    assert max_diff(out.logits, logits[MEMBER]) <= TOL
    assert (out.logits - logits[1 - MEMBER]).abs().max() > 0.1  # the member asked for, not the other
    # the widened residual stream: its first d_model dimensions are learnlab's
    for layer in range(model.n_layers):
        hidden = out.hidden_states[layer][..., : hf.config.learnlab["d_model"]]
        assert max_diff(hidden, cache[f"blocks.{layer}.hook_resid_pre"][MEMBER]) <= TOL


def test_hf_config_matches_the_member(model):
    config = interop.to_hf(model, MEMBER).config
    assert config.activation_function == "gelu"  # learnlab's F.gelu is exact; "gelu_new" would be tanh
    assert (config.n_layer, config.n_head, config.n_inner, config.n_positions) == (2, 2, 64, N_CTX)
    assert config.vocab_size == VOCAB and not config.tie_word_embeddings
    assert config.resid_pdrop == config.embd_pdrop == config.attn_pdrop == 0.0
    assert config.learnlab["member"] == MEMBER and config.n_embd == 32 + config.learnlab["bias_carriers"]


@pytest.mark.parametrize("loader", ["GPT2LMHeadModel", "AutoModelForCausalLM"])
def test_hf_checkpoint_reloads_with_equal_logits(model, tokens, learnlab_run, tmp_path, loader):
    out = tmp_path / "hf"
    interop.to_hf(model, MEMBER, out=out)
    reloaded = getattr(transformers, loader).from_pretrained(out)
    assert type(reloaded) is transformers.GPT2LMHeadModel  # no custom code
    with torch.no_grad():
        assert max_diff(reloaded(tokens[MEMBER]).logits, learnlab_run[0][MEMBER]) <= TOL
    assert not list(tmp_path.glob(".hf.*"))  # the staging directory is gone


def test_biography_tokenizer_and_model_round_trip(tmp_path):
    """The real biography BPE: saved with the checkpoint it encodes as learnlab's does, and a real
    biography row (<bos>, text, <pad>) gets the same logits after reloading."""
    tokenizer = bio.load_tokenizer()
    before = tokenizer.to_str()
    enc = bio.BiographyEncoder(bio.World.generate(8, 0, seed=3), tokenizer)
    model = random_model(vocab=tokenizer.get_vocab_size(), n_ctx=enc.max_length)
    tokens = enc.eval_batch(range(4), "train", seed=0, seq_len=enc.max_length).tokens
    out = tmp_path / "hf"
    interop.to_hf(model, MEMBER, tokenizer, out)
    assert tokenizer.to_str() == before  # exporting leaves learnlab's tokenizer as it was

    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    assert (hf_tok.bos_token_id, hf_tok.pad_token_id) == (enc.bos_id, enc.pad_id)
    texts = [enc.decode(row) for row in tokens] + ["Ada Lovelace was born on 10 December 1815 in London."]
    for text in texts:
        ids = tokenizer.encode(text).ids
        assert hf_tok(text, add_special_tokens=False)["input_ids"] == ids
        assert hf_tok(text)["input_ids"] == [enc.bos_id, *ids]  # rows start with <bos>, as learnlab's do
        assert hf_tok.decode(hf_tok(text)["input_ids"], skip_special_tokens=True) == text

    hf = transformers.GPT2LMHeadModel.from_pretrained(out)
    assert (hf.config.bos_token_id, hf.config.pad_token_id) == (enc.bos_id, enc.pad_id)
    batch = torch.stack([tokens.flip(0)] * K)  # [K, B, T]: member MEMBER reads `tokens`, the others other rows
    batch[MEMBER] = tokens
    with torch.no_grad():
        assert max_diff(hf(tokens).logits, model(batch)[MEMBER]) <= TOL


def test_transformer_lens_logits_and_activations_equal_learnlabs(model, tokens, learnlab_run):
    logits, cache = learnlab_run
    tl = interop.to_transformer_lens(model, MEMBER)
    tl_logits, tl_cache = tl.run_with_cache(tokens[MEMBER])
    assert max_diff(tl_logits, logits[MEMBER]) <= TOL
    shared = [name for name in model.hook_names() if name in tl_cache]
    listed = [f"blocks.{layer}.{point}" for layer in range(model.n_layers) for point in LISTED]
    assert set(listed) <= set(shared)
    assert "blocks.0.attn.hook_attn_scores" in shared and "hook_embed" in shared
    final = "ln_final.hook_normalized"
    diffs = {name: max_diff(tl_cache[name], cache[name][MEMBER]) for name in shared if name != final}
    assert max(diffs.values()) <= TOL, diffs
    # TransformerLens's LayerNorm hooks `hook_normalized` before its weight and bias, learnlab's after them
    assert max_diff(tl_cache[final] * tl.ln_final.w + tl.ln_final.b, cache[final][MEMBER]) <= TOL


def test_transformer_lens_takes_a_classifier(tokens):
    classifier = random_model(n_out=3)
    with torch.no_grad():
        expected = classifier(tokens)[MEMBER]
    assert max_diff(interop.to_transformer_lens(classifier, MEMBER)(tokens[MEMBER]), expected) <= TOL
    with pytest.raises(interop.InteropError, match="3 outputs for 100 tokens"):
        interop.to_hf(classifier, MEMBER)


def test_transformer_lens_export_reloads(model, tokens, learnlab_run, tmp_path):
    tokenizer = bio.load_tokenizer(300)
    small = random_model(vocab=300)
    ids = torch.randint(0, 300, (K, 2, N_CTX))
    out = tmp_path / "tl"
    interop.to_transformer_lens(small, MEMBER, tokenizer, out)
    assert json.loads((out / interop.TL_CONFIG).read_text())["member"] == MEMBER
    assert not list(tmp_path.glob(".tl.*"))  # the staging directory is gone
    tl = interop.load_transformer_lens(out)
    with torch.no_grad():
        assert max_diff(tl(ids[MEMBER]), small(ids)[MEMBER]) <= TOL
    text = "Ada Lovelace was born on 10 December 1815."
    expected = [0, *tokenizer.encode(text).ids]  # <bos> then learnlab's ids
    assert tl.to_tokens(text, truncate=False)[0].tolist() == expected


def test_bad_exports_are_refused_before_writing(model, tmp_path):
    with pytest.raises(LearnlabError, match=r"member must be an integer in 0\.\.1, got 2"):
        interop.to_hf(model, 2)
    with pytest.raises(interop.InteropError, match="member"):
        interop.to_transformer_lens(model, True)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(interop.InteropError, match="not an empty directory"):
        interop.to_hf(model, MEMBER, out=full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    with pytest.raises(interop.InteropError, match="parent directory does not exist"):
        interop.to_hf(model, MEMBER, out=tmp_path / "missing" / "hf")
    with pytest.raises(interop.InteropError, match="tokenizer has 300 tokens"):
        interop.to_hf(model, MEMBER, bio.load_tokenizer(300), out=tmp_path / "hf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # nothing new on disk
    with pytest.raises(interop.InteropError, match="not a learnlab TransformerLens export"):
        interop.load_transformer_lens(full)
    (full / interop.TL_CONFIG).write_text("{}")
    (full / interop.TL_WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(interop.InteropError, match="not a learnlab TransformerLens export"):
        interop.load_transformer_lens(full)
    empty = tmp_path / "empty"
    empty.mkdir()
    interop.to_hf(model, MEMBER, out=empty)  # an empty directory is filled
    assert (empty / "model.safetensors").exists()
