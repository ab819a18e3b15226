"""Priors p(z): each has ``log_prob(z)`` (summed over the latent dimension) and ``sample(n)``."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .distributions import standard_normal_log_prob

PRIORS: dict[str, type[Prior]] = {}


def register_prior(cls):
    PRIORS[cls.name] = cls
    return cls


class Prior(nn.Module):
    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = int(latent_dim)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def options(self) -> dict:
        return {}


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


def make_prior(name: str, latent_dim: int, **options) -> Prior:
    if name not in PRIORS:
        known = ", ".join(sorted(PRIORS))
        raise ValueError(f"unknown prior {name!r}; known: {known}")
    return PRIORS[name](latent_dim, **options)
