"""The deterministic autoencoder: z = g(x), x' = f(z) (non-linear PCA).

Its loss is the decoder likelihood's negative log-likelihood of x given z = g(x), in nats per
example, so it is directly comparable with a VAE's reconstruction term.
"""

from __future__ import annotations

from .base import Autoencoder, LossOutput
from .registry import register_model


@register_model
class AE(Autoencoder):
    name = "ae"
    weighs_kl = False  # reconstruction alone
    description = "deterministic autoencoder z = g(x): reconstruction loss only, no likelihood"

    def encode_tensor(self, x, sample=False):
        return self.encoder(x), None

    def loss(self, x, *, kl_weight=1.0, step=None):
        z = self.encoder(self.corrupt(x))
        reconstruction = -self.reconstruction_log_prob(x, z)
        return LossOutput(loss=reconstruction, terms={"reconstruction": reconstruction})
