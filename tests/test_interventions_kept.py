"""The interventions of issue 17 on a model loaded from a run directory (`learnlab.load_run`): causal tracing
of a biography prompt and a rank-one edit of its value, undone bit for bit."""

import pytest
import torch

import learnlab
from learnlab.interventions.editing import IGNORE, key_covariance, label_nll, mlp_keys, rome_edit
from learnlab.interventions.tracing import causal_trace
from learnlab.models.transformer import EnsembleTransformer
from learnlab.protocols import biography_lm as bl


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    out = tmp_path_factory.mktemp("kept") / "ka"
    learnlab.run(
        "knowledge-acquisition", preset="smoke", overrides={"steps": 10, "eval_every": 10}, out=out, progress=False
    )
    run = learnlab.load_run(out)
    batch = next(iter(bl.evaluation_sets(run.config, bl.world_of(run.config)).values()))
    return run.model.model, batch


def test_trace_and_edit_a_loaded_biography_model(kept):
    model, batch = kept
    assert isinstance(model, EnsembleTransformer)
    k = model.n_models
    value_at = int(batch.first_value[0].nonzero()[0])  # the first value token of the first biography
    prompt = batch.tokens[:1, :value_at].expand(k, -1, -1)  # its last position predicts the value
    target = batch.tokens[0, value_at].expand(k, 1)
    name = batch.name_mask[:1, :value_at]
    assert name.any()
    trace = causal_trace(model, prompt, name, target, n_samples=2, generator=torch.Generator().manual_seed(0))
    assert trace.restored.shape == (k, 1, model.n_layers, value_at) and trace.restored.isfinite().all()
    assert torch.allclose(trace.restored[..., -1, -1], trace.clean, atol=1e-5)  # last layer, read position

    before = {n: p.clone() for n, p in model.state_dict().items()}
    new = (model(prompt)[:, 0, -1].argmax(-1) + 1) % model.w_unembed.shape[-1]  # not what it predicts now
    labels = torch.full_like(prompt, IGNORE)
    labels[:, 0, -1] = new
    # a model trained 10 steps has a small MLP output and small logits: edit where the value is read, without
    # ROME's penalty (relative to the tiny |v0|), and ask only that the new value gains
    last = model.n_layers - 1
    cov = key_covariance(mlp_keys(model, batch.tokens[:16].expand(k, -1, -1), last), ridge=1e-3)
    nll = label_nll(model(prompt), labels)
    with rome_edit(model, prompt, labels, last, -1, cov, steps=30, weight_decay=0.0):
        assert (label_nll(model(prompt), labels) < nll - 0.3).all()
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())
