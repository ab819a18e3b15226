"""beta-TCVAE (Chen et al. 2018): the VAE with its KL split and the total correlation weighted.

E_x KL(q(z|x) || p(z)) = I(x; z) + TC(z) + sum_d KL(q(z_d) || p(z_d)): the information the code
keeps, the total correlation between its dimensions, and each dimension's mismatch with the
prior. beta-TCVAE weighs the three by alpha, beta and gamma; with alpha = gamma = 1 its loss is
the VAE's plus (beta - 1) * TC, which is how it is computed here (the closed-form KL keeps the
other two terms exact). The aggregate densities q(z) and q(z_d) are estimated on the minibatch by
minibatch-weighted sampling:

    log q(z_i) ~= logsumexp_j log q(z_i | x_j) - log(N M)

for a batch of M examples from N training examples (N is told by the training loop; outside
training the last value is kept with the weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..distributions import LOG_2PI, DiagonalGaussian
from ..priors import StandardNormal
from .base import LossOutput
from .registry import register_model
from .vae import VAE, VAEConfig


@dataclass
class BetaTCVAEConfig(VAEConfig):
    # Weight of the total correlation; beta = 1 is the VAE. 6 sits in the middle of the grid of
    # Locatello et al. (2019): 1, 2, 4, 6, 8, 10.
    beta: float = 6.0

    def __post_init__(self):
        super().__post_init__()
        if self.samples != 1:
            raise ValueError("beta_tcvae estimates q(z) from one sample per example: samples=1")


def pairwise_log_density(z: torch.Tensor, q: DiagonalGaussian) -> torch.Tensor:
    """log q(z_i,d | x_j) for every pair (i, j) and dimension d: shape (M, M, D)."""
    mean, log_variance = q.mean[None], q.log_variance[None]
    return -0.5 * ((z[:, None] - mean).pow(2) * torch.exp(-log_variance) + log_variance + LOG_2PI)


def minibatch_total_correlation(z: torch.Tensor, q: DiagonalGaussian,
                                training_size: int) -> torch.Tensor:
    """TC per example, log q(z_i) - sum_d log q(z_i,d), by minibatch-weighted sampling."""
    batch = z.shape[0]
    pairs = pairwise_log_density(z, q)
    correction = math.log(max(training_size, batch) * batch)
    joint = torch.logsumexp(pairs.sum(-1), dim=1) - correction
    marginals = (torch.logsumexp(pairs, dim=1) - correction).sum(-1)
    return joint - marginals


@register_model
class BetaTCVAE(VAE):
    name = "beta_tcvae"
    description = "beta-TCVAE: the VAE plus (beta - 1) x total correlation (minibatch-weighted)"
    Config = BetaTCVAEConfig

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        if not isinstance(self.prior, StandardNormal):
            raise ValueError("beta_tcvae decomposes the KL to N(0, I): use the standard-normal "
                             "prior")
        # Saved with the weights, so a loaded model estimates TC with the same N.
        self.register_buffer("training_size", torch.tensor(0, dtype=torch.int64))
        # Its value, read once: reading a GPU buffer every step would wait for the device.
        self._training_size: int | None = None
        self.register_load_state_dict_post_hook(BetaTCVAE._forget_training_size)

    @staticmethod
    def _forget_training_size(module, incompatible_keys) -> None:
        module._training_size = None

    def training_refusal(self) -> str | None:
        if self.config.free_bits:
            return ("free bits floor the KL per dimension, which beta_tcvae splits into total "
                    "correlation and the rest: leave free_bits at 0")
        return super().training_refusal()

    def prepare_training(self, data, count: int, labelled_per_batch: int | None = None) -> None:
        self.training_size.fill_(int(count))
        self._training_size = int(count)

    def training_size_value(self) -> int:
        if self._training_size is None:
            self._training_size = int(self.training_size)
        return self._training_size

    def loss(self, x, *, kl_weight=1.0, step=None):
        q = self.posterior(self.corrupt(x))
        z = q.rsample()
        reconstruction = -self.reconstruction_log_prob(x, z)
        kl = q.kl_to_standard_normal()
        total_correlation = minibatch_total_correlation(z, q, self.training_size_value())
        penalty = kl + (self.config.beta - 1.0) * total_correlation
        return LossOutput(
            loss=reconstruction + kl_weight * penalty,
            terms={"reconstruction": reconstruction, "kl": kl,
                   "total_correlation": total_correlation},
            elbo=-(reconstruction + kl),
        )
