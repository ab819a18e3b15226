"""Conditioned networks: an encoder that sees x and a condition vector c (a one-hot label), and
a decoder that sees z and c (Sohn et al. 2015's conditional VAE; Kingma et al. 2014's M2).

The condition joins a fully connected network's flat input, or a conv network's image as
constant extra channels, so any registered network can be conditioned.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .registry import build_decoder, build_encoder


class ConditionedEncoder(nn.Module):
    def __init__(self, network: str, input_shape, condition_dim: int, output_dim: int,
                 **options):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.channels = network == "conv"
        if self.channels:
            inner_shape = (self.input_shape[0] + condition_dim, *self.input_shape[1:])
        else:
            inner_shape = (math.prod(self.input_shape) + condition_dim,)
        self.inner = build_encoder(network, inner_shape, output_dim, **options)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        if self.channels:
            planes = condition[:, :, None, None].expand(-1, -1, *x.shape[2:])
            return self.inner(torch.cat([x, planes], dim=1))
        return self.inner(torch.cat([x.flatten(1), condition], dim=1))


class ConditionedDecoder(nn.Module):
    def __init__(self, network: str, latent_dim: int, condition_dim: int, output_shape,
                 **options):
        super().__init__()
        self.inner = build_decoder(network, latent_dim + condition_dim, tuple(output_shape),
                                   **options)

    def forward(self, z: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        if z.dim() > 2:  # leading sample dimensions: the condition repeats along them
            condition = condition.expand(*z.shape[:-1], condition.shape[-1])
            leading = z.shape[:-1]
            output = self.inner(torch.cat([z, condition], dim=-1).reshape(-1, z.shape[-1]
                                                                          + condition.shape[-1]))
            return output.view(*leading, *output.shape[1:])
        return self.inner(torch.cat([z, condition], dim=-1))
