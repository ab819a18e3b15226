"""Encoder and decoder networks, chosen by name. They know nothing of losses.

An encoder maps a batch shaped ``(N, *input_shape)`` to ``(N, output_dim)``; a decoder maps
``(N, latent_dim)`` to ``(N, *output_shape)``.
"""

from .conv import ConvDecoder, ConvEncoder
from .mlp import MLPDecoder, MLPEncoder
from .recurrent import AutoregressiveDecoder, RecurrentEncoder
from .registry import NETWORKS, build_decoder, build_encoder, register_network

__all__ = [
    "NETWORKS",
    "AutoregressiveDecoder",
    "RecurrentEncoder",
    "ConvDecoder",
    "ConvEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "build_decoder",
    "build_encoder",
    "register_network",
]
