"""The VAE with a VampPrior (Tomczak & Welling 2018).

Only the prior differs from ``vae.py``: p(z) = 1/K sum_k q(z|u_k), the encoder's own posterior
at K learned pseudo-inputs (``priors.VampPrior``). The KL has no closed form, so the VAE's
Monte-Carlo KL log q(z|x) - log p(z) is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import register_model
from .vae import VAE, VAEConfig


@dataclass
class VampPriorConfig(VAEConfig):
    prior: str = "vamp"
    prior_options: dict = field(default_factory=lambda: {"pseudo_inputs": 500})


@register_model
class VampPriorVAE(VAE):
    name = "vamp_prior"
    description = "VAE with the VampPrior: p(z) = mean of q(z|u_k) over learned pseudo-inputs"
    Config = VampPriorConfig

