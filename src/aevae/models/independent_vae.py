"""The last rung of the "why not" ladder: a VAE whose encoder ignores its input.

q(z|x) = q(z) = N(m, diag(s^2)) with m and s learned constants. The ELBO is still a valid bound,
but z carries no information about x, so the optimum is q(z) = p(z) (KL = 0) and a decoder that
outputs the data's average. Everything else is the VAE's; comparing the two isolates what the
encoder's dependence on x buys.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model
from .vae import VAE


class InputFreeEncoder(nn.Module):
    """Returns the same learned parameters for every example, whatever x is."""

    def __init__(self, output_dim: int):
        super().__init__()
        self.values = nn.Parameter(torch.zeros(output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.values.repeat(len(x), 1)  # a copy: a view of a parameter keeps its grad


@register_model
class IndependentVAE(VAE):
    name = "independent_vae"
    description = "VAE whose encoder ignores x: q(z|x) = q(z), so z carries no information"

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        # Replaces the network the base built: the VAE's posterior reads self.encoder.
        self.encoder = InputFreeEncoder(2 * self.latent_dim)
