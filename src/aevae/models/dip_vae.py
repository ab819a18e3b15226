"""DIP-VAE-I and DIP-VAE-II (Kumar et al. 2018): the VAE plus a penalty that pushes the
covariance of the aggregate posterior q(z) towards the identity, for decorrelated
(disentangled) codes.

The penalty is lambda_offdiagonal * sum_{i != j} C_ij^2 + lambda_diagonal * sum_i (C_ii - 1)^2
on a covariance C estimated on the batch:
- DIP-VAE-I:  C = Cov_x[mu(x)], the covariance of the posterior means;
- DIP-VAE-II: C = E_x[Sigma(x)] + Cov_x[mu(x)], the covariance of q(z) itself.
It is a batch quantity; every example of the batch carries it, so the mean loss counts it once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .registry import register_model
from .vae import VAE, VAEConfig


@dataclass
class DIPVAEConfig(VAEConfig):
    # Locatello et al. (2019): lambda_od in 1, 2, 5, 10, 20, 50; lambda_d = 10 lambda_od for
    # DIP-VAE-I and lambda_d = lambda_od for DIP-VAE-II.
    lambda_offdiagonal: float = 10.0
    lambda_diagonal: float = 100.0

    def __post_init__(self):
        super().__post_init__()
        for name in ("lambda_offdiagonal", "lambda_diagonal"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")


@dataclass
class DIPVAEIIConfig(DIPVAEConfig):
    lambda_diagonal: float = 10.0


def covariance_penalty(covariance: torch.Tensor, offdiagonal: float, diagonal: float
                       ) -> torch.Tensor:
    """lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2."""
    diagonal_values = torch.diagonal(covariance)
    off = covariance - torch.diag_embed(diagonal_values)
    return offdiagonal * off.pow(2).sum() + diagonal * (diagonal_values - 1.0).pow(2).sum()


@register_model
class DIPVAEI(VAE):
    name = "dip_vae_i"
    description = "DIP-VAE-I: the VAE plus a penalty pushing Cov[mu(x)] towards the identity"
    Config = DIPVAEConfig

    def code_covariance(self, q) -> torch.Tensor:
        centred = q.mean - q.mean.mean(0, keepdim=True)
        return centred.T @ centred / len(centred)

    def loss(self, x, *, kl_weight=1.0, step=None):
        q, _, reconstruction, kl = self.elbo_terms(x)
        output = self.elbo_loss(q, reconstruction, kl, kl_weight)
        penalty = covariance_penalty(self.code_covariance(q), self.config.lambda_offdiagonal,
                                     self.config.lambda_diagonal).expand(len(x))
        output.loss = output.loss + penalty
        output.terms["covariance_penalty"] = penalty
        return output


@register_model
class DIPVAEII(DIPVAEI):
    name = "dip_vae_ii"
    description = "DIP-VAE-II: the VAE plus a penalty pushing Cov[q(z)] towards the identity"
    Config = DIPVAEIIConfig

    def code_covariance(self, q) -> torch.Tensor:
        return super().code_covariance(q) + torch.diag(q.variance.mean(0))
