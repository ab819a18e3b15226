"""Decoder likelihoods p(x|z): the decoder outputs their parameters, they score the data.

Every ``log_prob`` returns one value per example in nats (summed over all data dimensions), so an
AE and a VAE with the same likelihood report comparable numbers.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .distributions import LOG_2PI

LIKELIHOODS: dict[str, type[Likelihood]] = {}


def _register(cls):
    LIKELIHOODS[cls.name] = cls
    return cls


class Likelihood(nn.Module):
    """Base class. ``output`` is the decoder's raw output, shaped like the data."""

    name: ClassVar[str]
    description: ClassVar[str]
    needs_unit_interval: ClassVar[bool] = False
    # Decoder outputs per data value: more than one when the likelihood's parameters besides
    # the mean depend on z (stacked along the first data axis).
    parameters_per_value: ClassVar[int] = 1

    @classmethod
    def output_shape(cls, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The decoder's output shape for data of ``data_shape``."""
        data_shape = tuple(data_shape)
        return (cls.parameters_per_value * data_shape[0], *data_shape[1:])

    def __init__(self, data_shape: tuple[int, ...]):
        super().__init__()
        self.data_shape = tuple(data_shape)

    def _sum(self, values: torch.Tensor) -> torch.Tensor:
        return values.flatten(start_dim=values.dim() - len(self.data_shape)).sum(-1)

    def elementwise_log_prob(self, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """log p(x_j | z) for every data value j, shaped like ``output``."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, output: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x|z) per example, summed over the data values (only where ``mask`` is true,
        for data with missing entries)."""
        values = self.elementwise_log_prob(x, output)
        if mask is not None:
            values = values * mask.to(values.dtype)
        return self._sum(values)

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def options(self) -> dict:
        return {}


@_register
class Bernoulli(Likelihood):
    name = "bernoulli"
    description = "Bernoulli on logits (binary or [0,1] data; cross-entropy)"
    needs_unit_interval = True

    def elementwise_log_prob(self, x, output):
        if x.shape != output.shape:  # leading Monte-Carlo sample dimensions on the output
            x = x.expand_as(output)
        return -F.binary_cross_entropy_with_logits(output, x, reduction="none")

    def mean(self, output):
        return torch.sigmoid(output)

    def sample(self, output):
        return torch.bernoulli(torch.sigmoid(output))


@_register
class Gaussian(Likelihood):
    name = "gaussian"
    description = "Gaussian with fixed sigma (sigma=1: squared error / 2 plus a constant)"

    def __init__(self, data_shape, sigma: float = 1.0):
        super().__init__(data_shape)
        if not sigma > 0:
            raise ValueError(f"gaussian likelihood: sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self._log_sigma = math.log(self.sigma)

    def elementwise_log_prob(self, x, output):
        squared = ((x - output) / self.sigma).pow(2)
        return -0.5 * (squared + (2.0 * self._log_sigma + LOG_2PI))

    def mean(self, output):
        return output

    def sample(self, output):
        return output + self.sigma * torch.randn_like(output)

    def options(self):
        return {"sigma": self.sigma}


@_register
class LearnedGaussian(Likelihood):
    name = "gaussian-learned"
    description = "Gaussian with learned sigma, one shared or one per data dimension"

    def __init__(self, data_shape, per_dimension: bool = False, initial_sigma: float = 1.0):
        super().__init__(data_shape)
        if not initial_sigma > 0:
            raise ValueError(f"gaussian-learned likelihood: initial_sigma must be positive, got "
                             f"{initial_sigma}")
        self.per_dimension = bool(per_dimension)
        shape = self.data_shape if self.per_dimension else ()
        self.log_sigma = nn.Parameter(torch.full(shape, math.log(initial_sigma)))

    def elementwise_log_prob(self, x, output):
        log_sigma = self.log_sigma
        squared = ((x - output) * torch.exp(-log_sigma)).pow(2)
        return -0.5 * (squared + 2.0 * log_sigma + LOG_2PI)

    def mean(self, output):
        return output

    def sample(self, output):
        return output + self.log_sigma.exp() * torch.randn_like(output)

    def options(self):
        return {"per_dimension": self.per_dimension}


@_register
class StudentT(Likelihood):
    name = "student-t"
    description = ("Student t whose location, scale and degrees of freedom all depend on z "
                   "(heavy tails; Mattei & Frellsen's MIWAE decoder)")
    parameters_per_value = 3
    # scale = softplus + min_scale (no singular likelihood); df = softplus + min_df (df > 2:
    # the variance exists, df > 1: the mean exists).
    min_scale: ClassVar[float] = 1e-3
    min_df: ClassVar[float] = 3.0

    def distribution_parameters(self, output: torch.Tensor):
        """(location, scale, degrees of freedom), each shaped like the data."""
        axis = output.dim() - len(self.data_shape)
        if output.shape[axis] != 3 * self.data_shape[0]:
            raise ValueError(
                f"the student-t likelihood needs a decoder with 3 outputs per data value "
                f"({3 * self.data_shape[0]} along the first data axis), got {output.shape[axis]}; "
                "this model builds its own decoder, so use a gaussian likelihood with it")
        location, raw_scale, raw_df = output.chunk(3, dim=axis)
        return (location, F.softplus(raw_scale) + self.min_scale,
                F.softplus(raw_df) + self.min_df)

    def elementwise_log_prob(self, x, output):
        location, scale, df = self.distribution_parameters(output)
        half_df_plus = 0.5 * (df + 1.0)
        standardised = (x - location) / scale
        return (torch.lgamma(half_df_plus) - torch.lgamma(0.5 * df)
                - 0.5 * torch.log(df * math.pi) - torch.log(scale)
                - half_df_plus * torch.log1p(standardised.pow(2) / df))

    def mean(self, output):
        return self.distribution_parameters(output)[0]

    def sample(self, output):
        location, scale, df = self.distribution_parameters(output)
        return location + scale * torch.distributions.StudentT(df).sample()


def make_likelihood(name: str, data_shape: tuple[int, ...], **options) -> Likelihood:
    if name not in LIKELIHOODS:
        known = ", ".join(sorted(LIKELIHOODS))
        raise ValueError(f"unknown likelihood {name!r}; known: {known}")
    return LIKELIHOODS[name](data_shape, **options)
