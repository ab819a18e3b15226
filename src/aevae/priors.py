"""Priors p(z): each has ``log_prob(z)`` (summed over the latent dimension) and ``sample(n)``."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from .distributions import LOG_2PI, standard_normal_log_prob

PRIORS: dict[str, type[Prior]] = {}


def register_prior(cls):
    PRIORS[cls.name] = cls
    return cls


class Prior(nn.Module):
    name: ClassVar[str]
    description: ClassVar[str]
    # True for priors that evaluate the model's own encoder (see ``bind``).
    uses_posterior: ClassVar[bool] = False

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = int(latent_dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def options(self) -> dict:
        return {}

    def bind(self, posterior, input_shape, *, unit_interval: bool = False) -> None:
        """Hook for priors built from the model's own posterior (the VampPrior); models call it
        with their posterior function whatever the prior, so most priors ignore it."""


@register_prior
class StandardNormal(Prior):
    name = "standard-normal"
    description = "N(0, I)"

    def __init__(self, latent_dim: int):
        super().__init__(latent_dim)
        # A buffer only to know the device and dtype the samples should live on.
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def log_prob(self, z):
        return standard_normal_log_prob(z)

    def sample(self, n, generator=None):
        anchor = self._anchor
        z = torch.randn((n, self.latent_dim), generator=generator, dtype=anchor.dtype,
                        device="cpu" if generator is not None else anchor.device)
        return z.to(anchor.device)


def diagonal_gaussian_mixture_log_prob(z: torch.Tensor, log_weights: torch.Tensor,
                                       means: torch.Tensor, log_variances: torch.Tensor
                                       ) -> torch.Tensor:
    """log sum_k w_k N(z; means_k, diag(exp(log_variances_k))) for z shaped (..., D).

    The squared distance is expanded into matrix products so memory grows with
    (points x components), not (points x components x D): evaluation scores thousands of
    importance samples against hundreds of components at once.
    """
    precisions = torch.exp(-log_variances)  # (K, D)
    flat = z.reshape(-1, z.shape[-1])
    squared = (flat.pow(2) @ precisions.T - 2.0 * flat @ (means * precisions).T
               + (means.pow(2) * precisions).sum(-1))
    log_normalisers = -0.5 * (log_variances.sum(-1) + means.shape[-1] * LOG_2PI)
    component = log_normalisers - 0.5 * squared  # (points, K)
    return torch.logsumexp(component + log_weights, dim=-1).reshape(z.shape[:-1])


def _draw(means: torch.Tensor, log_variances: torch.Tensor, log_weights: torch.Tensor, n: int,
          generator: torch.Generator | None) -> torch.Tensor:
    """n draws from a diagonal Gaussian mixture; a generator draws on the CPU, as
    ``StandardNormal`` does, so a seed gives the same samples on every device."""
    where = "cpu" if generator is not None else means.device
    probabilities = log_weights.detach().softmax(-1).to(where)
    components = torch.multinomial(probabilities, n, replacement=True, generator=generator)
    noise = torch.randn((n, means.shape[-1]), generator=generator, dtype=means.dtype,
                        device=where)
    components, noise = components.to(means.device), noise.to(means.device)
    return means[components] + (0.5 * log_variances[components]).exp() * noise


@register_prior
class MixtureOfGaussians(Prior):
    """A learned mixture of K diagonal Gaussians: weights (as logits), means, log-variances."""

    name = "mixture"
    description = "learned mixture of K diagonal Gaussians (option components, default 10)"

    def __init__(self, latent_dim: int, components: int = 10):
        super().__init__(latent_dim)
        if int(components) < 1:
            raise ValueError(f"mixture prior: components must be at least 1, got {components}")
        self.components = int(components)
        self.logits = nn.Parameter(torch.zeros(self.components))
        # Random means break the symmetry between components; unit variances cover N(0, I).
        self.means = nn.Parameter(torch.randn(self.components, self.latent_dim))
        self.log_variances = nn.Parameter(torch.zeros(self.components, self.latent_dim))

    def log_prob(self, z):
        return diagonal_gaussian_mixture_log_prob(
            z, self.logits.log_softmax(-1), self.means, self.log_variances
        )

    def sample(self, n, generator=None):
        return _draw(self.means, self.log_variances, self.logits, n, generator)

    def options(self):
        return {"components": self.components}


@register_prior
class VampPrior(Prior):
    """The VampPrior (Tomczak & Welling 2018): p(z) = 1/K sum_k q(z|u_k), the model's own
    posterior at K learned pseudo-inputs u_k in data space.

    The prior needs the model's encoder, which it reaches through ``bind``: the model passes
    its posterior function (a bound method), kept as a plain attribute so the encoder is not
    registered a second time (it appears once in ``state_dict``). The pseudo-inputs are made at
    bind time, when the data shape is known; a model that never binds gets a clear error.
    """

    name = "vamp"
    description = "VampPrior: mean of q(z|u_k) over K learned pseudo-inputs (option pseudo_inputs)"
    uses_posterior = True

    def __init__(self, latent_dim: int, pseudo_inputs: int = 500,
                 pseudo_input_mean: float = 0.5, pseudo_input_std: float = 0.01):
        super().__init__(latent_dim)
        if int(pseudo_inputs) < 1:
            raise ValueError(f"vamp prior: pseudo_inputs must be at least 1, got {pseudo_inputs}")
        if not pseudo_input_std >= 0:
            raise ValueError("vamp prior: pseudo_input_std must be non-negative")
        self.pseudo_input_count = int(pseudo_inputs)
        self.pseudo_input_mean = float(pseudo_input_mean)
        self.pseudo_input_std = float(pseudo_input_std)
        self.unit_interval = False
        self.posterior = None

    def bind(self, posterior, input_shape, *, unit_interval: bool = False) -> None:
        """Attach the model's posterior ``x -> DiagonalGaussian`` and make the pseudo-inputs.

        With ``unit_interval`` (a Bernoulli likelihood) the pseudo-inputs are clamped to [0, 1]
        by a hardtanh, as in the paper. Binding again only replaces the posterior function.
        """
        # A bound method is not a Module: nn.Module stores it without registering the encoder.
        self.posterior = posterior
        self.unit_interval = bool(unit_interval)
        shape = (self.pseudo_input_count, *tuple(input_shape))
        existing = getattr(self, "raw_pseudo_inputs", None)
        if existing is not None and tuple(existing.shape) == shape:
            return
        # The paper starts the pseudo-inputs as small random values around a constant.
        initial = self.pseudo_input_mean + self.pseudo_input_std * torch.randn(shape)
        self.raw_pseudo_inputs = nn.Parameter(initial)

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        self._require_bound()
        raw = self.raw_pseudo_inputs
        return torch.nn.functional.hardtanh(raw, 0.0, 1.0) if self.unit_interval else raw

    def _require_bound(self) -> None:
        if self.posterior is None:
            raise RuntimeError(
                "the vamp prior needs the model's encoder: use a model that binds it "
                "(vamp_prior, iwae, vae_flow, hierarchical_vae), e.g. make('vamp_prior', ...)"
            )

    def component_parameters(self):
        """(means, log-variances) of q(z|u_k), each (K, latent_dim)."""
        q = self.posterior(self.pseudo_inputs)
        return q.mean, q.log_variance

    def log_prob(self, z):
        means, log_variances = self.component_parameters()
        uniform = torch.full((len(means),), -math.log(len(means)), dtype=z.dtype,
                             device=z.device)
        return diagonal_gaussian_mixture_log_prob(z, uniform, means, log_variances)

    def sample(self, n, generator=None):
        means, log_variances = self.component_parameters()
        uniform = torch.zeros(len(means), dtype=means.dtype, device=means.device)
        return _draw(means, log_variances, uniform, n, generator)

    def options(self):
        return {"pseudo_inputs": self.pseudo_input_count,
                "pseudo_input_mean": self.pseudo_input_mean,
                "pseudo_input_std": self.pseudo_input_std}


def make_prior(name: str, latent_dim: int, **options) -> Prior:
    if name not in PRIORS:
        known = ", ".join(sorted(PRIORS))
        raise ValueError(f"unknown prior {name!r}; known: {known}")
    return PRIORS[name](latent_dim, **options)
