"""A VAE whose encoder emits only the mean: q(z|x) = N(mu(x), I).

The "why not only mean?" ablation: z = mu + eps still injects noise, but the encoder cannot
shrink it, so the only channel is mu and the KL to N(0, I) reduces to 0.5 * ||mu||^2 per
example. Everything else (reparameterized sample, ELBO, importance weights) is the VAE's.
"""

from __future__ import annotations

import torch

from ..distributions import DiagonalGaussian
from .registry import register_model
from .vae import VAE


@register_model
class FixedVarianceVAE(VAE):
    name = "fixed_variance_vae"
    description = "VAE with q(z|x) = N(mu(x), I): the encoder emits only the mean, sigma fixed at 1"
    posterior_parameters = 1

    def posterior(self, x: torch.Tensor) -> DiagonalGaussian:
        mean = self.encoder(x)
        return DiagonalGaussian(mean, torch.zeros_like(mean))
