"""Fully connected encoder/decoder; with no hidden layer it is the linear autoencoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import activation, check_norm, initialise
from .registry import register_network

# Not an elementwise activation: each hidden layer becomes a GatedLinear.
GATED = "gated"


class GatedLinear(nn.Module):
    """h = (W x + b) * sigmoid(V x + c): the gated dense layer of Tomczak & Welling 2018's
    MNIST networks (gated linear units, Dauphin et al. 2017)."""

    def __init__(self, width_in: int, width_out: int):
        super().__init__()
        self.value = nn.Linear(width_in, width_out)
        self.gate = nn.Linear(width_in, width_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value(x) * torch.sigmoid(self.gate(x))


def _stack(sizes, activation_name, norm) -> list[nn.Module]:
    norm_class = check_norm(norm)
    gated = activation_name == GATED
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:]):
        layers.append(GatedLinear(width_in, width_out) if gated else nn.Linear(width_in, width_out))
        if norm_class is not None:
            layers.append(norm_class(width_out))
        if not gated:
            layers.append(activation(activation_name))
    return layers


class MLPEncoder(nn.Module):
    def __init__(self, input_shape, output_dim, hidden=(512,), activation="relu", norm=None,
                 init="default"):
        super().__init__()
        self.input_shape = tuple(input_shape)
        sizes = [math.prod(self.input_shape), *hidden]
        self.body = nn.Sequential(
            nn.Flatten(), *_stack(sizes, activation, norm), nn.Linear(sizes[-1], output_dim)
        )
        initialise(self, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MLPDecoder(nn.Module):
    def __init__(self, latent_dim, output_shape, hidden=(512,), activation="relu", norm=None,
                 init="default"):
        super().__init__()
        self.output_shape = tuple(output_shape)
        sizes = [latent_dim, *reversed(tuple(hidden))]
        self.body = nn.Sequential(
            *_stack(sizes, activation, norm), nn.Linear(sizes[-1], math.prod(self.output_shape))
        )
        initialise(self, init, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).view(z.shape[0], *self.output_shape)


def _linear_encoder(input_shape, output_dim, init="default", **_ignored):
    return MLPEncoder(input_shape, output_dim, hidden=(), init=init)


def _linear_decoder(latent_dim, output_shape, init="default", **_ignored):
    return MLPDecoder(latent_dim, output_shape, hidden=(), init=init)


register_network(
    "mlp",
    "fully connected: hidden widths, activation (or 'gated' layers), optional batch/layer "
    "norm, init",
    MLPEncoder,
    MLPDecoder,
)
register_network(
    "linear",
    "one affine map each way (linear AE: PCA / probabilistic PCA / factor analysis cases)",
    _linear_encoder,
    _linear_decoder,
    widths=lambda hidden: (),
)


# The fully connected networks of Locatello et al. (2019)'s disentanglement study, for 64x64
# images: encoder 1200-1200 ReLU, decoder 1200-1200-1200 tanh. Their conv networks are the
# "conv" entry at 64x64 (four 4x4 stride-2 convolutions of 32, 32, 64, 64 channels, 256 dense).
def _study_encoder(input_shape, output_dim, init="default", **_fixed):
    return MLPEncoder(input_shape, output_dim, hidden=(1200, 1200), activation="relu", init=init)


def _study_decoder(latent_dim, output_shape, init="default", **_fixed):
    return MLPDecoder(latent_dim, output_shape, hidden=(1200, 1200, 1200), activation="tanh",
                      init=init)


register_network(
    "locatello_mlp",
    "Locatello et al. (2019)'s fully connected networks: encoder 1200-1200 ReLU, decoder "
    "1200-1200-1200 tanh (fixed widths: hidden and activation do not apply)",
    _study_encoder,
    _study_decoder,
    widths=lambda hidden: (1200, 1200, 1200),
)
