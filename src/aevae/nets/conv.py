"""Convolutional encoder/decoder for square images of 28x28 or 64x64 pixels.

Smaller images are zero-padded up to the next supported size and the decoder's output is cropped
back, so an 8x8 or 20x20 image works too; larger than 64x64 is a clear error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import activation as make_activation
from .layers import check_norm, initialise
from .registry import register_network

SUPPORTED_SIZES = {28: (32, 64), 64: (32, 32, 64, 64)}


def _canvas(shape) -> tuple[int, int, int, int]:
    """(channels, canvas size, pad before, pad after) for an image shape (C, H, W)."""
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(
            f"conv network needs square images shaped (channels, height, width), got {shape}"
        )
    channels, size = shape[0], shape[1]
    fitting = [s for s in sorted(SUPPORTED_SIZES) if s >= size]
    if not fitting:
        raise ValueError(f"conv network supports images up to 64x64, got {size}x{size}")
    canvas = fitting[0]
    before = (canvas - size) // 2
    return channels, canvas, before, canvas - size - before


def _norm2d(norm):
    check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm2d
    if norm == "layer":
        return lambda c: nn.GroupNorm(1, c)
    return None


class ConvEncoder(nn.Module):
    def __init__(self, input_shape, output_dim, hidden=(256,), activation="relu", norm=None,
                 init="default", channels=None):
        super().__init__()
        in_channels, canvas, before, after = _canvas(tuple(input_shape))
        self.padding = (before, after, before, after)
        channels = tuple(channels or SUPPORTED_SIZES[canvas])
        norm2d = _norm2d(norm)
        layers: list[nn.Module] = []
        for width in channels:
            layers.append(nn.Conv2d(in_channels, width, kernel_size=4, stride=2, padding=1))
            if norm2d is not None:
                layers.append(norm2d(width))
            layers.append(make_activation(activation))
            in_channels = width
        side = canvas // 2 ** len(channels)
        width = hidden[0] if hidden else 256
        self.body = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(in_channels * side * side, width),
            make_activation(activation),
            nn.Linear(width, output_dim),
        )
        initialise(self, init, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.padding):
            x = F.pad(x, self.padding)
        return self.body(x)


class ConvDecoder(nn.Module):
    def __init__(self, latent_dim, output_shape, hidden=(256,), activation="relu", norm=None,
                 init="default", channels=None):
        super().__init__()
        out_channels, canvas, before, _ = _canvas(tuple(output_shape))
        self.output_shape = tuple(output_shape)
        self.crop = before
        channels = tuple(reversed(tuple(channels or SUPPORTED_SIZES[canvas])))
        self.side = canvas // 2 ** len(channels)
        self.first_channels = channels[0]
        width = hidden[0] if hidden else 256
        norm2d = _norm2d(norm)
        layers: list[nn.Module] = []
        for width_in, width_out in zip(channels, channels[1:]):
            layers.append(nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1))
            if norm2d is not None:
                layers.append(norm2d(width_out))
            layers.append(make_activation(activation))
        layers.append(nn.ConvTranspose2d(channels[-1], out_channels, 4, stride=2, padding=1))
        self.project = nn.Sequential(
            nn.Linear(latent_dim, width),
            make_activation(activation),
            nn.Linear(width, channels[0] * self.side * self.side),
            make_activation(activation),
        )
        self.body = nn.Sequential(*layers)
        initialise(self, init, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], self.first_channels, self.side, self.side)
        image = self.body(h)
        if self.crop or image.shape[-1] != self.output_shape[-1]:
            size = self.output_shape[-1]
            image = image[..., self.crop:self.crop + size, self.crop:self.crop + size]
        return image


register_network(
    "conv",
    "convolutional, for square images up to 64x64 (28x28 and 64x64 native, smaller padded)",
    ConvEncoder,
    ConvDecoder,
    widths=lambda hidden: hidden[:1] or (256,),  # one dense layer beside small convolutions
)
