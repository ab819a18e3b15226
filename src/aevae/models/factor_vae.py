"""FactorVAE (Kim & Mnih 2018): the VAE plus gamma times a discriminator's estimate of the total
correlation of the codes.

A discriminator D(z) learns to tell draws of q(z) (the batch's samples) from draws of the product
of its marginals (each dimension shuffled across the batch separately). By the density-ratio
trick, TC(z) = KL(q(z) || prod_d q(z_d)) ~= E[logit D(z)], which the encoder is trained to shrink.
The discriminator has its own optimizer on ``auxiliary_loss``, as the adversarial AE's does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import MLPEncoder
from .registry import register_model
from .vae import VAE, VAEConfig


@dataclass
class FactorVAEConfig(VAEConfig):
    # gamma on the TC estimate. Kim & Mnih's dSprites runs used 10 to 100 (40 among the best);
    # Locatello et al.'s grid is 10, 20, 30, 40, 50, 100.
    gamma: float = 40.0
    # The paper's discriminator: 6 hidden layers of 1000 units, leaky ReLU (slope 0.2).
    discriminator_hidden: tuple[int, ...] = (1000,) * 6

    def __post_init__(self):
        super().__post_init__()
        if self.samples != 1:
            raise ValueError("factor_vae's discriminator scores one z per example: samples=1")
        self.discriminator_hidden = tuple(int(width) for width in self.discriminator_hidden)
        if not self.gamma >= 0:
            raise ValueError(f"gamma must be non-negative, got {self.gamma}")
        if not self.discriminator_hidden or min(self.discriminator_hidden) < 1:
            raise ValueError("discriminator_hidden needs at least one positive width")


def permute_dimensions(z: torch.Tensor) -> torch.Tensor:
    """Each latent dimension shuffled across the batch on its own: a draw of prod_d q(z_d)."""
    order = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return torch.gather(z, 0, order)


@register_model
class FactorVAE(VAE):
    name = "factor_vae"
    description = "FactorVAE: the VAE plus gamma x total correlation estimated by a discriminator"
    Config = FactorVAEConfig

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        # D(z) -> logit of "z is a draw of q(z)" (not of the product of its marginals).
        with self.seeded_initialisation(3):
            self.discriminator = MLPEncoder(
                (self.latent_dim,), 1, hidden=self.config.discriminator_hidden,
                activation="leaky_relu")
        for layer in self.discriminator.modules():
            if isinstance(layer, nn.LeakyReLU):
                layer.negative_slope = 0.2  # the paper's (torch's default is 0.01)

    def discriminator_logit(self, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(z).squeeze(-1)

    def loss(self, x, *, kl_weight=1.0, step=None):
        q, z, reconstruction, kl = self.elbo_terms(x)
        output = self.elbo_loss(q, reconstruction, kl, kl_weight)
        total_correlation = self.discriminator_logit(z)  # the density-ratio estimate
        output.loss = output.loss + (kl_weight * self.config.gamma) * total_correlation
        output.terms["total_correlation"] = total_correlation
        return output

    def auxiliary_parameters(self):
        return list(self.discriminator.parameters())

    def auxiliary_loss(self, x):
        """Cross-entropy of D: q(z) draws labelled 1, dimension-shuffled draws labelled 0."""
        with torch.no_grad():
            z = self.posterior(self.corrupt(x)).rsample()
        shuffled = permute_dimensions(z)
        return (F.softplus(-self.discriminator_logit(z)).mean()
                + F.softplus(self.discriminator_logit(shuffled)).mean())
