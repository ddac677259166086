"""Self-consistency (Wang et al. 2022): decode many answers by sampling and take the majority vote.

`decode` writes a continuation of prompts with an ensemble language model (outputs [K, B, T, vocab]),
greedily or by sampling at a temperature, one token at a time, restricted at each position to a set of
allowed tokens (the answer format). Sampling is the Gumbel-max trick, argmax(logits / T + G), with
G drawn from each member's own generators: a member's samples depend on its seed alone, never on the
other members.

`sample_answers` draws S samples per prompt, sample s of member k from the generator of (seed_k,
purpose, s): the first k samples of a run of 40 are the samples of a run of k, so accuracies at several k
come from one draw (prefixes) and are paired.

`vote_credit` scores the majority vote over the first k samples. A tie for the most votes is broken
uniformly at random in expectation: the vote earns 1/m when the truth is one of m tied answers. That is
the mean accuracy of a uniformly random tie-break, with none of its noise, and favours no answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from learnlab.engine.rng import generator


def gumbel(shape: tuple[int, ...], gen: torch.Generator, device: str | torch.device = "cpu") -> Tensor:
    """Standard Gumbel noise drawn from `gen` (uniforms clamped away from 0 and 1)."""
    u = torch.rand(shape, generator=gen, device=device).clamp_(1e-12, 1 - 1e-7)
    return -torch.log(-torch.log(u))


@torch.no_grad()
def decode(
    model: nn.Module,
    prompts: Tensor,
    allowed: Tensor,
    temperature: float | None = None,
    generators: Sequence[Sequence[torch.Generator]] | None = None,
) -> Tensor:
    """Continue prompts [K, R, P] by allowed.shape[0] tokens: token t from the tokens where allowed[t]
    [vocab] is True; greedy when `temperature` is None, else sampled at it, member k's rows split into
    len(generators[k]) equal blocks, block j's noise from generators[k][j]. Returns [K, R, L]."""
    k, r, p = prompts.shape
    length = allowed.shape[0]
    tokens = torch.cat([prompts, prompts.new_zeros(k, r, length)], dim=-1)
    blocked = ~allowed.to(prompts.device)
    for t in range(length):
        logits = model(tokens[:, :, : p + t])[:, :, -1].float()
        logits = logits.masked_fill(blocked[t], float("-inf"))
        if temperature is not None:
            logits = logits / temperature + _noise(generators, logits.shape, logits.device)
        tokens[:, :, p + t] = logits.argmax(-1)
    return tokens[:, :, p:]


def _noise(generators: Sequence[Sequence[torch.Generator]] | None, shape: torch.Size, device: torch.device) -> Tensor:
    """Gumbel noise [K, R, V]: member k's R rows in len(generators[k]) blocks, each from its own generator."""
    if generators is None or len(generators) != shape[0]:
        raise ValueError("sampling needs one list of generators per member")
    k, r, v = shape
    blocks = len(generators[0])
    if r % blocks:
        raise ValueError(f"{r} rows do not split into {blocks} equal blocks")
    return torch.stack([torch.cat([gumbel((r // blocks, v), g, device) for g in gens]) for gens in generators])


def sample_answers(
    model: nn.Module,
    prompts: Tensor,
    allowed: Tensor,
    temperature: float,
    seeds: Sequence[int],
    samples: int,
    purpose: str,
    chunk: int = 8,
) -> Tensor:
    """`samples` sampled continuations per prompt [K, S, B, L]; sample s of member k from the stream
    (seeds[k], f"{purpose}-{s}"): its noise is the same whatever the number of samples drawn or `chunk`
    (how many samples are decoded together; a different chunk changes the batch shape, which can move the
    logits by float rounding)."""
    device, b = prompts.device, prompts.shape[1]
    draws = []
    for start in range(0, samples, chunk):
        block = range(start, min(start + chunk, samples))
        gens = [[generator(seed, f"{purpose}-{s}", device) for s in block] for seed in seeds]
        rows = prompts.repeat(1, len(block), 1)  # sample-major: rows j·B … (j+1)·B − 1 are sample start + j
        out = decode(model, rows, allowed, temperature, gens)
        draws.append(out.view(out.shape[0], len(block), b, -1))
    return torch.cat(draws, dim=1)


def vote_credit(answers: np.ndarray, truth: np.ndarray, k: int, classes: int) -> np.ndarray:
    """The majority vote's credit over the first k samples: answers [..., S] (ints in 0 … classes − 1),
    truth [...]: 1 if the truth has the most votes alone, 1/m if it is one of m answers tied for the most,
    else 0 — the expected accuracy of a uniformly random tie-break."""
    if not 1 <= k <= answers.shape[-1]:
        raise ValueError(f"k={k}: a vote needs 1 <= k <= {answers.shape[-1]} samples")
    counts = np.stack([(answers[..., :k] == c).sum(-1) for c in range(classes)], axis=-1)
    top = counts == counts.max(-1, keepdims=True)
    return np.take_along_axis(top, truth[..., None], axis=-1)[..., 0] / top.sum(-1)


def vote_accuracies(answers: np.ndarray, truth: np.ndarray, ks: Sequence[int], classes: int) -> dict[int, np.ndarray]:
    """{k: per-item credit [...]} for every k, from prefixes of the same samples."""
    return {k: vote_credit(answers, truth, k, classes) for k in ks}
