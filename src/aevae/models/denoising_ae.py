"""Denoising autoencoder (Vincent et al. 2008): the AE trained to reconstruct x from a corrupted
copy. Corruption is an option of every model; this is the AE with it on by default."""

from __future__ import annotations

from dataclasses import dataclass

from .ae import AE
from .base import AutoencoderConfig
from .registry import register_model


@dataclass
class DenoisingAEConfig(AutoencoderConfig):
    # Additive Gaussian noise on the encoder's input while training (data in [0, 1]).
    input_noise_std: float = 0.3


@register_model
class DenoisingAE(AE):
    name = "denoising_ae"
    description = "denoising AE: reconstructs x from x + N(0, 0.3^2) noise on the encoder input"
    Config = DenoisingAEConfig
