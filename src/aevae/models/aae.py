"""Adversarial autoencoder (Makhzani et al. 2016).

Compared with ``ae.py``: a discriminator D(z) learns to tell prior samples from codes, and the
encoder is also trained to fool it, which matches the aggregate posterior q(z) to p(z). The
discriminator is trained by its own optimizer on ``auxiliary_loss``; the main loss only moves
the encoder and decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nets import MLPEncoder
from .ae import AE
from .base import AutoencoderConfig, LossOutput
from .registry import register_model


@dataclass
class AdversarialAEConfig(AutoencoderConfig):
    # Hidden widths of the discriminator on z (the paper used 1000-1000 on MNIST; small codes
    # need less).
    discriminator_hidden: tuple[int, ...] = (256, 256)
    # Weight of the encoder's adversarial loss -log D(z) against the reconstruction.
    adversarial_weight: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        self.discriminator_hidden = tuple(int(width) for width in self.discriminator_hidden)
        if any(width < 1 for width in self.discriminator_hidden):
            raise ValueError(
                f"discriminator_hidden widths must be positive, got {self.discriminator_hidden}"
            )
        if not self.adversarial_weight >= 0:
            raise ValueError(f"adversarial_weight must be non-negative, got "
                             f"{self.adversarial_weight}")


@register_model
class AdversarialAE(AE):
    name = "adversarial_ae"
    weighs_kl = True  # its penalty in the KL's place
    description = "adversarial AE: deterministic codes pushed towards the prior by a discriminator"
    Config = AdversarialAEConfig
    trains_prior = True

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        # D(z) -> logit of "z was drawn from the prior".
        with self.seeded_initialisation():
            self.discriminator = MLPEncoder(
                (self.latent_dim,), 1, hidden=self.config.discriminator_hidden,
                activation=self.config.activation,
            )

    def discriminator_logit(self, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(z).squeeze(-1)

    def loss(self, x, *, kl_weight=1.0, step=None):
        z = self.encoder(self.corrupt(x))
        reconstruction = -self.reconstruction_log_prob(x, z)
        # Non-saturating generator loss -log D(z): the encoder passes its codes off as prior
        # draws. Like a VAE's KL it is a divergence to the prior, so it takes the schedule weight.
        adversarial = F.softplus(-self.discriminator_logit(z))
        return LossOutput(
            loss=reconstruction + (kl_weight * self.config.adversarial_weight) * adversarial,
            terms={"reconstruction": reconstruction, "adversarial": adversarial},
        )

    def auxiliary_parameters(self):
        return list(self.discriminator.parameters())

    def auxiliary_loss(self, x):
        """Binary cross-entropy of D: prior samples are real, the (fixed) codes are fake."""
        with torch.no_grad():
            codes = self.encoder(self.corrupt(x))
        real = self.prior.sample(len(x))
        return (F.softplus(-self.discriminator_logit(real)).mean()
                + F.softplus(self.discriminator_logit(codes)).mean())
