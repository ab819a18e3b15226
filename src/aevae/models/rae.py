"""Regularized autoencoder (Ghosh et al. 2020, "From variational to deterministic autoencoders").

Compared with ``ae.py``: the VAE's noise on z is read as a smoothness regulariser of the decoder
and replaced by an explicit one, plus a small penalty 0.5 * ||z||^2 that keeps the code space
bounded. Loss = reconstruction + beta * 0.5 * ||z||^2 + lambda * decoder regulariser, where the
regulariser is ||theta_decoder||^2 (RAE-L2, weight decay on the decoder only) or the squared
gradient of the decoder with respect to z (RAE-GP). To sample, fit a density to the codes
afterwards (``aevae.ex_post.ExPostSampler``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ae import AE
from .base import AutoencoderConfig, LossOutput
from .registry import register_model

# Decoder regulariser name -> the method returning (decoder output, per-example penalty).
DECODER_REGULARIZERS = {"l2": "decoder_weight_penalty",
                        "gradient_penalty": "decoder_gradient_penalty"}


@dataclass
class RAEConfig(AutoencoderConfig):
    # beta on 0.5 * ||z||^2 and lambda on the decoder regulariser: the paper's MNIST RAE-L2
    # values (1e-4, 1e-7; RAE-GP used 0.5e-7). Its reconstruction was a squared error, ours is
    # the likelihood's nats, so the balance carries over only roughly.
    code_penalty_weight: float = 1e-4
    decoder_penalty_weight: float = 1e-7
    # The decoder regulariser: l2 (weight decay on the decoder) or gradient_penalty.
    regularizer: str = "l2"

    def __post_init__(self):
        super().__post_init__()
        if self.regularizer not in DECODER_REGULARIZERS:
            raise ValueError(f"unknown regularizer {self.regularizer!r}; known: "
                             f"{', '.join(DECODER_REGULARIZERS)}")
        for name in ("code_penalty_weight", "decoder_penalty_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")


@register_model
class RAE(AE):
    name = "rae"
    description = "regularized AE: 0.5||z||^2 plus a decoder regulariser (L2 or gradient penalty)"
    Config = RAEConfig

    def decoder_weight_penalty(self, z: torch.Tensor):
        """||theta_decoder||^2, a batch quantity given to every example alike, so the mean loss
        carries it once."""
        squared_norm = sum(parameter.pow(2).sum() for parameter in self.decoder.parameters())
        return self.decoder(z), squared_norm.expand(len(z))

    def decoder_gradient_penalty(self, z: torch.Tensor):
        """||dD(z)/dz||_F^2 per example, estimated without the full Jacobian by one Gaussian
        probe v (E ||J^T v||^2 = ||J||_F^2), on the decoder's raw output."""
        training = torch.is_grad_enabled()
        with torch.enable_grad():  # evaluation runs under no_grad but still needs dD/dz
            if not z.requires_grad:
                z = z.detach().requires_grad_(True)
            output = self.decoder(z)
            probe = torch.randn_like(output)
            (gradient,) = torch.autograd.grad(output, z, grad_outputs=probe,
                                              create_graph=training)
        if not training:
            output = output.detach()
        return output, gradient.pow(2).sum(-1)

    def loss(self, x, *, kl_weight=1.0, step=None):
        z = self.encoder(self.corrupt(x))
        regularizer = getattr(self, DECODER_REGULARIZERS[self.config.regularizer])
        output, decoder_penalty = regularizer(z)
        reconstruction = -self.likelihood.log_prob(x, output)
        code_penalty = 0.5 * z.pow(2).sum(-1)
        loss = (reconstruction + self.config.code_penalty_weight * code_penalty
                + self.config.decoder_penalty_weight * decoder_penalty)
        return LossOutput(loss=loss, terms={"reconstruction": reconstruction,
                                            "code_penalty": code_penalty,
                                            "decoder_penalty": decoder_penalty})
