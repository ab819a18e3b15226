"""The variational autoencoder (Kingma & Welling 2014).

Compared with ``ae.py``, three things change: the encoder emits a diagonal Gaussian q(z|x)
instead of a point, z is drawn from it with the reparameterization trick, and the KL divergence
from q(z|x) to the prior joins the loss. ``loss`` is the negative ELBO in nats per example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..distributions import DiagonalGaussian
from ..priors import StandardNormal
from .base import Autoencoder, AutoencoderConfig, LossOutput
from .registry import register_model


@dataclass
class VAEConfig(AutoencoderConfig):
    # L: Monte-Carlo samples of z per example for the reconstruction term.
    samples: int = 1
    # beta weights the KL term (beta = 1 is the VAE; see beta_vae).
    beta: float = 1.0
    # Free bits (Kingma et al. 2016): nats per latent dimension the training loss grants for free.
    free_bits: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if int(self.samples) < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        self.samples = int(self.samples)
        if not self.beta >= 0:
            raise ValueError(f"beta must be non-negative, got {self.beta}")
        if not self.free_bits >= 0:
            raise ValueError(f"free_bits must be non-negative, got {self.free_bits}")


@register_model
class VAE(Autoencoder):
    name = "vae"
    description = "variational autoencoder: Gaussian q(z|x), reparameterized sample, KL to prior"
    Config = VAEConfig
    posterior_parameters = 2
    has_likelihood = True
    trains_prior = True
    binds_prior = True

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        if self.prior.uses_posterior and any(
                isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
                for module in self.encoder.modules()):
            raise ValueError(
                f"the {self.prior.name} prior passes its pseudo-inputs through the encoder, whose "
                "batch norm would then mix their statistics with the data's; use norm='layer' "
                "or no norm")
        # Priors built from the posterior itself (the VampPrior) are handed it here; a bound
        # method, so the encoder is not registered twice.
        with self.seeded_initialisation(2):
            self.prior.bind(self.posterior, self.input_shape,
                            unit_interval=self.likelihood.needs_unit_interval)

    def posterior(self, x: torch.Tensor) -> DiagonalGaussian:
        mean, log_variance = self.encoder(x).chunk(2, dim=-1)
        return DiagonalGaussian(mean, log_variance)

    def encode_tensor(self, x, sample=False):
        q = self.posterior(x)
        return (q.rsample() if sample else q.mean), q.variance

    def kl(self, q: DiagonalGaussian, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)): closed form for N(0, I), else a Monte-Carlo estimate from z."""
        if isinstance(self.prior, StandardNormal):
            return q.kl_to_standard_normal()
        monte_carlo = q.log_prob(z) - self.prior.log_prob(z)
        return monte_carlo if z.dim() == 2 else monte_carlo.mean(0)

    def loss(self, x, *, kl_weight=1.0, step=None):
        q, _, reconstruction, kl = self.elbo_terms(x)
        return self.elbo_loss(q, reconstruction, kl, kl_weight)

    def elbo_terms(self, x):
        """q(z|x), the reparameterized z, and the per-example reconstruction and KL terms."""
        q = self.posterior(self.corrupt(x))
        if self.config.samples == 1:
            z = q.rsample()
            reconstruction = -self.reconstruction_log_prob(x, z)
        else:
            z = q.rsample(self.config.samples)  # (L, N, D)
            reconstruction = -self.reconstruction_log_prob(x, z).mean(0)
        return q, z, reconstruction, self.kl(q, z)

    def kl_penalty(self, q, kl) -> torch.Tensor:
        """The KL as training counts it: with free bits when they are on."""
        return self.free_bits_kl(q, kl) if self.training and self.config.free_bits else kl

    def elbo_loss(self, q, reconstruction, kl, kl_weight) -> LossOutput:
        """The (beta-weighted, free-bits) negative ELBO from its terms."""
        penalty = self.kl_penalty(q, kl)
        return LossOutput(
            loss=reconstruction + (kl_weight * self.config.beta) * penalty,
            terms={"reconstruction": reconstruction, "kl": kl},
            elbo=-(reconstruction + kl),
        )

    def free_bits_kl(self, q: DiagonalGaussian, kl: torch.Tensor) -> torch.Tensor:
        """The KL as free bits trains it: sum_d max(free_bits, batch-mean KL_d), so a dimension
        gains nothing from going below the floor (against posterior collapse). Per example, a
        dimension above the floor keeps its own KL and one below counts the floor: the batch mean
        is the free-bits objective and so is its gradient. A prior that does not factorise over
        dimensions makes the whole code one group, floored at latent_dim * free_bits."""
        floor = self.config.free_bits
        if isinstance(self.prior, StandardNormal):
            per_dimension = q.kl_to_standard_normal_per_dimension()
        else:
            per_dimension, floor = kl[:, None], floor * self.latent_dim
        above = per_dimension.mean(0) > floor
        return torch.where(above, per_dimension, torch.full_like(per_dimension, floor)).sum(-1)

    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x|z) + log p(z) - log q(z|x) for k draws z ~ q(z|x); shape (k, N)."""
        q = self.posterior(x)
        z = q.rsample(k)
        return self.reconstruction_log_prob(x, z) + self.prior.log_prob(z) - q.log_prob(z)

    def importance_weighted_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The IWAE bound log (1/k) sum_i w_i (Burda et al. 2016); k = 1 is the ELBO."""
        return torch.logsumexp(self.log_importance_weights(x, k), dim=0) - math.log(k)
