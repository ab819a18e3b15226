"""The importance weighted autoencoder (Burda et al. 2016).

Same networks as ``vae.py``; only the objective differs. With k draws z_i ~ q(z|x) and weights
w_i = p(x, z_i) / q(z_i|x), the loss is minus the IWAE bound log (1/k) sum_i w_i, which is the
ELBO at k = 1 and tightens towards log p(x) as k grows. Trained with the plain reparameterized
gradient of that bound (not the DReG estimator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..priors import StandardNormal
from .base import LossOutput
from .registry import register_model
from .vae import VAE, VAEConfig


def importance_weighted_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """log (1/k) sum_i exp(log_weights_i) over the leading dimension: (k, N) -> (N,)."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


def importance_weighted_output(log_likelihood: torch.Tensor, log_ratio: torch.Tensor,
                               kl: torch.Tensor, weight: float) -> LossOutput:
    """The IWAE loss from per-sample pieces, each shaped (k, N): ``log_likelihood`` = log p(x|z)
    and ``log_ratio`` = log p(z) - log q(z|x); ``kl`` is the first sample's KL as the ELBO model
    reports it. ``weight`` (KL schedule x beta) scales log_ratio inside every weight, so a KL
    warm-up anneals the bound as it anneals the ELBO.

    At k = 1 the bound is the ELBO and the loss is the ELBO model's own estimate from the same
    sample, so a one-sample IWAE trains exactly as the VAE does.
    """
    reconstruction = -log_likelihood[0]
    elbo = -(reconstruction + kl)
    if log_likelihood.shape[0] == 1:
        bound, loss = elbo, reconstruction + weight * kl
    else:
        bound = importance_weighted_bound(log_likelihood + log_ratio)
        loss = -bound if weight == 1.0 else -importance_weighted_bound(
            log_likelihood + weight * log_ratio
        )
    return LossOutput(
        loss=loss,
        terms={"reconstruction": reconstruction, "kl": kl, "iwae_bound": bound},
        elbo=elbo,
    )


def check_importance_samples(config) -> None:
    """Validation shared by the IWAE configurations."""
    if int(config.importance_samples) < 1:
        raise ValueError(f"importance_samples must be at least 1, got {config.importance_samples}")
    config.importance_samples = int(config.importance_samples)
    if config.samples != 1:
        raise ValueError("an IWAE draws importance_samples per example; leave samples at 1")
    if getattr(config, "free_bits", 0.0):
        raise ValueError("free bits floor a KL term, which the IWAE bound does not have")


@dataclass
class IWAEConfig(VAEConfig):
    # k: importance samples per example in the training bound (k = 1 is the VAE).
    importance_samples: int = 5

    def __post_init__(self):
        super().__post_init__()
        check_importance_samples(self)


@register_model
class IWAE(VAE):
    name = "iwae"
    description = "importance weighted autoencoder: trains the IWAE_k bound (importance_samples)"
    Config = IWAEConfig

    def loss(self, x, *, kl_weight=1.0, step=None):
        q = self.posterior(self.corrupt(x))
        # (k, N, D); at k = 1 these are the very numbers the VAE's single sample draws.
        z = q.rsample(self.config.importance_samples)
        log_likelihood = self.reconstruction_log_prob(x, z)
        log_ratio = self.prior.log_prob(z) - q.log_prob(z)
        # The KL as VAE.kl reports it, reusing the prior density already computed.
        kl = q.kl_to_standard_normal() if isinstance(self.prior, StandardNormal) else -log_ratio[0]
        return importance_weighted_output(log_likelihood, log_ratio, kl,
                                          kl_weight * self.config.beta)
