"""Networks by name: each entry builds an encoder and a decoder from shapes and options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class NetworkEntry:
    name: str
    description: str
    encoder: Callable[..., nn.Module]
    decoder: Callable[..., nn.Module]
    # The hidden widths its dense layers have, given the hidden option (None: those widths).
    widths: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None


NETWORKS: dict[str, NetworkEntry] = {}


def register_network(name: str, description: str, encoder, decoder, widths=None) -> None:
    NETWORKS[name] = NetworkEntry(name, description, encoder, decoder, widths)


def _entry(name: str) -> NetworkEntry:
    if name not in NETWORKS:
        known = ", ".join(sorted(NETWORKS))
        raise ValueError(f"unknown network {name!r}; known: {known}")
    return NETWORKS[name]


def build_encoder(name: str, input_shape, output_dim: int, **options) -> nn.Module:
    return _entry(name).encoder(tuple(input_shape), int(output_dim), **options)


def build_decoder(name: str, latent_dim: int, output_shape, **options) -> nn.Module:
    return _entry(name).decoder(int(latent_dim), tuple(output_shape), **options)


def estimated_parameters(name: str, input_shape, latent_dim: int, hidden=(512,),
                         activation: str = "relu") -> int:
    """About how many numbers an encoder (emitting up to two per latent dimension) and its
    decoder hold, from the shapes alone: the dense layers' weights and biases, which dominate.
    Cheap, so that a model too large to build is refused before any tensor is allocated."""
    entry = _entry(name)
    widths = tuple(entry.widths(tuple(hidden)) if entry.widths else hidden)
    size = 1
    for side in input_shape:
        size *= int(side)
    gates = 2 if activation == "gated" else 1  # a gated layer is two linear maps
    total = 0
    for chain in ([size, *widths, 2 * latent_dim], [latent_dim, *reversed(widths), size]):
        for index, (width_in, width_out) in enumerate(zip(chain[:-1], chain[1:])):
            last = index == len(chain) - 2
            total += (1 if last else gates) * (width_in + 1) * width_out
    return total
