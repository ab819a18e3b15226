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


NETWORKS: dict[str, NetworkEntry] = {}


def register_network(name: str, description: str, encoder, decoder) -> None:
    NETWORKS[name] = NetworkEntry(name, description, encoder, decoder)


def _entry(name: str) -> NetworkEntry:
    if name not in NETWORKS:
        known = ", ".join(sorted(NETWORKS))
        raise ValueError(f"unknown network {name!r}; known: {known}")
    return NETWORKS[name]


def build_encoder(name: str, input_shape, output_dim: int, **options) -> nn.Module:
    return _entry(name).encoder(tuple(input_shape), int(output_dim), **options)


def build_decoder(name: str, latent_dim: int, output_shape, **options) -> nn.Module:
    return _entry(name).decoder(int(latent_dim), tuple(output_shape), **options)
