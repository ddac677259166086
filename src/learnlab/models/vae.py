"""An ensemble of K small conditional VAEs (label-conditioned), trained as one model: the digits chains.

Encoder [x, onehot(y)] -> hidden -> (μ, log σ²) of a `latent`-dimensional Gaussian; decoder [z, onehot(y)]
-> hidden -> pixel logits (Bernoulli likelihood on pixels in [0, 1]). Conditioning on the digit makes a
sample's intended class known, so a classifier trained on real digits can score samples by accuracy.
Both halves are `EnsembleMLP`s (stacked weights, one batched matmul per layer): member k's weights,
batches and noise come only from its own generators, so a member trains as it would alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from learnlab.models.mlp import EnsembleMLP


class EnsembleCVAE(nn.Module):
    def __init__(self, k: int, pixels: int, classes: int, hidden: int = 128, latent: int = 8):
        super().__init__()
        self.k, self.pixels, self.classes, self.latent = k, pixels, classes, latent
        self.encoder = EnsembleMLP(k, [pixels + classes, hidden, 2 * latent])
        self.decoder = EnsembleMLP(k, [latent + classes, hidden, pixels])

    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        self.encoder.reset_parameters(generators)
        self.decoder.reset_parameters(generators)

    def _onehot(self, y: Tensor) -> Tensor:
        return F.one_hot(y, self.classes).to(torch.float32)

    def loss(self, x: Tensor, y: Tensor, noise: Tensor) -> Tensor:
        """Negative ELBO per member, nats per image, [K]: x [K, B, pixels] in [0, 1], y [K, B], noise
        [K, B, latent] ~ N(0, 1) (the reparameterisation's draw, from the members' generators)."""
        c = self._onehot(y)
        mu, logvar = self.encoder(torch.cat([x, c], -1)).chunk(2, -1)
        z = mu + torch.exp(0.5 * logvar) * noise
        logits = self.decoder(torch.cat([z, c], -1))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
        return (rec + kl).mean(-1)

    @torch.no_grad()
    def sample(self, y: Tensor, noise: Tensor) -> Tensor:
        """Decoder means (pixel probabilities) for labels y [K, B] from latent draws noise [K, B, latent]."""
        return torch.sigmoid(self.decoder(torch.cat([noise, self._onehot(y)], -1)))
