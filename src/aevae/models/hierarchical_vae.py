"""A VAE with two stochastic layers, as in Burda et al. 2016's two-layer models.

Generative: p(z2) p(z1|z2) p(x|z1); inference: q(z1|x) q(z2|z1), all Gaussian but p(x|z1).
On MNIST the paper uses x -> 2 x 200 tanh -> z1 (100) -> 2 x 100 tanh -> z2 (50) and the mirror
image back, which are this model's defaults. The x <-> z1 maps are the configured ``network``
built from ``hidden``; the z1 <-> z2 maps are MLPs built from ``intermediate_hidden``.

Compared with ``vae.py``: z is sampled layer by layer, and the KL of the joint posterior to the
joint prior is the Monte-Carlo estimate log q(z1|x) + log q(z2|z1) - log p(z1|z2) - log p(z2).
``latent_dim`` and ``prior`` are the top layer's: ``encode`` returns E[z2 | E[z1|x]], the top
posterior at z1's posterior mean, and ``decode(z2)`` shows p(x|z1) at z1 = E[z1|z2].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..distributions import DiagonalGaussian
from ..nets import MLPDecoder, MLPEncoder, build_decoder, build_encoder
from .base import LossOutput, check_sample_request, seeded
from .registry import register_model
from .vae import VAE, VAEConfig


@dataclass
class HierarchicalVAEConfig(VAEConfig):
    # The top layer z2; the defaults are Burda et al.'s MNIST architecture.
    latent_dim: int = 50
    hidden: tuple[int, ...] = (200, 200)
    activation: str = "tanh"
    # The intermediate layer z1 and the widths of the z1 <-> z2 networks.
    intermediate_latent_dim: int = 100
    intermediate_hidden: tuple[int, ...] = (100, 100)

    def __post_init__(self):
        super().__post_init__()
        self.intermediate_latent_dim = int(self.intermediate_latent_dim)
        self.intermediate_hidden = tuple(int(width) for width in self.intermediate_hidden)
        if self.intermediate_latent_dim < 1:
            raise ValueError("intermediate_latent_dim must be at least 1, got "
                             f"{self.intermediate_latent_dim}")
        if any(width < 1 for width in self.intermediate_hidden):
            raise ValueError(f"intermediate_hidden widths must be positive, got "
                             f"{self.intermediate_hidden}")
        if getattr(self, "free_bits", 0.0):
            raise ValueError("free bits need a per-dimension KL, which the two layers lack")


def _apply(network: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Apply a network made for (N, features) to inputs with leading sample dimensions."""
    flat = network(inputs.reshape(-1, inputs.shape[-1]))
    return flat.view(*inputs.shape[:-1], *flat.shape[1:])


def _gaussian(parameters: torch.Tensor) -> DiagonalGaussian:
    mean, log_variance = parameters.chunk(2, dim=-1)
    return DiagonalGaussian(mean, log_variance)


class HierarchicalEncoder(nn.Module):
    """q(z1|x) and q(z2|z1); called on x it gives q(z2|.)'s parameters at z1's mean."""

    def __init__(self, to_intermediate: nn.Module, to_top: nn.Module):
        super().__init__()
        self.to_intermediate, self.to_top = to_intermediate, to_top

    def forward(self, x):
        return _apply(self.to_top, _gaussian(self.to_intermediate(x)).mean)


class HierarchicalDecoder(nn.Module):
    """p(z1|z2) and p(x|z1); called on z2 it gives p(x|.)'s parameters at z1's mean."""

    def __init__(self, from_top: nn.Module, from_intermediate: nn.Module):
        super().__init__()
        self.from_top, self.from_intermediate = from_top, from_intermediate

    def forward(self, z2):
        return self.from_intermediate(_gaussian(_apply(self.from_top, z2)).mean)


class LayerTerms(NamedTuple):
    """Per-sample log p(x|z1) and the two layers' log q - log p, each shaped like z's batch."""

    log_likelihood: torch.Tensor
    kl_intermediate: torch.Tensor  # log q(z1|x) - log p(z1|z2)
    kl_top: torch.Tensor  # log q(z2|z1) - log p(z2)


@register_model
class HierarchicalVAE(VAE):
    name = "hierarchical_vae"
    description = "VAE with two stochastic layers x -> z1 -> z2 (Burda et al. 2016's two-layer)"
    Config = HierarchicalVAEConfig

    def __init__(self, config=None, *, encoder: nn.Module | None = None,
                 decoder: nn.Module | None = None, **options):
        if config is None:
            config = self.Config.from_options(options)
        elif options:
            raise ValueError("pass either a config or keyword options, not both")
        network_options = {"activation": config.activation, "norm": config.norm,
                           "init": config.init}
        intermediate, top = config.intermediate_latent_dim, config.latent_dim
        # Given networks replace the x <-> z1 maps, which otherwise follow network and hidden.
        with seeded(config.seed, stream=0):
            to_intermediate = encoder if encoder is not None else build_encoder(
                config.network, config.input_shape, 2 * intermediate, hidden=config.hidden,
                **network_options)
            from_intermediate = decoder if decoder is not None else build_decoder(
                config.network, intermediate, config.input_shape, hidden=config.hidden,
                **network_options)
            to_top = MLPEncoder((intermediate,), 2 * top, hidden=config.intermediate_hidden,
                                **network_options)
            from_top = MLPDecoder(top, (2 * intermediate,), hidden=config.intermediate_hidden,
                                  **network_options)
        super().__init__(config, encoder=HierarchicalEncoder(to_intermediate, to_top),
                         decoder=HierarchicalDecoder(from_top, from_intermediate))
        # The base counts the wrappers as custom networks; only the caller's own ones are.
        self.custom_networks = encoder is not None or decoder is not None

    # ----- the four conditionals ---------------------------------------------------------------
    def intermediate_posterior(self, x: torch.Tensor) -> DiagonalGaussian:
        """q(z1|x)."""
        return _gaussian(self.encoder.to_intermediate(x))

    def top_posterior(self, z1: torch.Tensor) -> DiagonalGaussian:
        """q(z2|z1); z1 may have leading sample dimensions."""
        return _gaussian(_apply(self.encoder.to_top, z1))

    def intermediate_prior(self, z2: torch.Tensor) -> DiagonalGaussian:
        """p(z1|z2); z2 may have leading sample dimensions."""
        return _gaussian(_apply(self.decoder.from_top, z2))

    def likelihood_log_prob(self, x: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """log p(x|z1); z1 shaped (N, d1) or (S, N, d1)."""
        return self.likelihood.log_prob(x, _apply(self.decoder.from_intermediate, z1))

    def posterior(self, x: torch.Tensor) -> DiagonalGaussian:
        """q(z2 | E[z1|x]): the top layer's posterior at z1's posterior mean (what ``encode``
        reports and a VampPrior mixes)."""
        return self.top_posterior(self.intermediate_posterior(x).mean)

    # ----- sampling through both layers ---------------------------------------------------------
    def layer_terms(self, x_encoded: torch.Tensor, x: torch.Tensor,
                    n_samples: int | None = None) -> LayerTerms:
        """Draw z1 ~ q(z1|x_encoded), z2 ~ q(z2|z1) (``n_samples`` of each pair, or one) and
        score x under them."""
        q1 = self.intermediate_posterior(x_encoded)
        z1 = q1.rsample(n_samples)
        q2 = self.top_posterior(z1)
        z2 = q2.rsample()
        return LayerTerms(
            log_likelihood=self.likelihood_log_prob(x, z1),
            kl_intermediate=q1.log_prob(z1) - self.intermediate_prior(z2).log_prob(z1),
            kl_top=q2.log_prob(z2) - self.prior.log_prob(z2),
        )

    def loss(self, x, *, kl_weight=1.0, step=None):
        samples = self.config.samples
        terms = self.layer_terms(self.corrupt(x), x, None if samples == 1 else samples)
        if samples > 1:
            terms = LayerTerms(*(value.mean(0) for value in terms))
        reconstruction = -terms.log_likelihood
        kl = terms.kl_intermediate + terms.kl_top
        return LossOutput(
            loss=reconstruction + (kl_weight * self.config.beta) * kl,
            terms={"reconstruction": reconstruction, "kl": kl,
                   "kl_intermediate": terms.kl_intermediate, "kl_top": terms.kl_top},
            elbo=-(reconstruction + kl),
        )

    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z1, z2) - log q(z1, z2|x) for k draws of both layers; shape (k, N)."""
        terms = self.layer_terms(x, x, k)
        return terms.log_likelihood - terms.kl_intermediate - terms.kl_top

    def encode_tensor(self, x, sample=False):
        if sample:
            q1 = self.intermediate_posterior(x)
            q2 = self.top_posterior(q1.rsample())
            return q2.rsample(), q2.variance
        q2 = self.posterior(x)
        return q2.mean, q2.variance

    def sample(self, n: int, *, seed: int | None = None, as_numpy: bool = True):
        """Ancestral samples: z2 ~ p(z2), z1 ~ p(z1|z2), then the mean of p(x|z1)."""
        check_sample_request(n, seed)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        with torch.no_grad():
            top = self.prior.sample(n, generator=generator)

        def decode(z2):
            p1 = self.intermediate_prior(z2)
            noise = torch.randn(p1.mean.shape, generator=generator, dtype=p1.mean.dtype,
                                device="cpu" if generator is not None else p1.mean.device)
            z1 = p1.mean + p1.std * noise.to(p1.mean.device)
            return self.likelihood.mean(self.decoder.from_intermediate(z1))

        return self._output(self._in_batches(decode, top, 1024), as_numpy)
