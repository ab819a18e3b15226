"""Sparse autoencoder: a deterministic AE whose codes are pushed towards sparsity.

Compared with ``ae.py`` one penalty joins the loss, either
- ``l1``: sum_j |z_j| per example, i.e. -log of a Laplace(0, 1) prior on each code up to a
  constant (Goodfellow et al. 2016, 14.2.1), so weight 1 is that prior in nats; or
- ``kl``: sum_j KL(rho || rho_hat_j), with rho_hat_j the batch mean of sigmoid(z_j) and rho the
  target activation (Ng's sparse autoencoder notes), a batch quantity shared by every example.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .ae import AE
from .base import AutoencoderConfig, LossOutput
from .registry import register_model


def l1_sparsity(z: torch.Tensor, target: float) -> torch.Tensor:
    return z.abs().sum(-1)


def kl_sparsity(z: torch.Tensor, target: float) -> torch.Tensor:
    # log rho_hat and log(1 - rho_hat) from log-sigmoids: finite even where sigmoid saturates.
    log_count = math.log(len(z))
    log_active = torch.logsumexp(F.logsigmoid(z), dim=0) - log_count
    log_inactive = torch.logsumexp(F.logsigmoid(-z), dim=0) - log_count
    kl = (target * (math.log(target) - log_active)
          + (1.0 - target) * (math.log(1.0 - target) - log_inactive))
    return kl.sum().expand(len(z))


SPARSITY_PENALTIES = {"l1": l1_sparsity, "kl": kl_sparsity}


@dataclass
class SparseAEConfig(AutoencoderConfig):
    # The penalty: l1 on the codes, or kl(rho || mean activation of each code unit).
    sparsity: str = "l1"
    # Weight 1: the Laplace(0, 1) prior for l1; for kl, one nat of penalty per nat of divergence.
    sparsity_weight: float = 1.0
    # rho for the kl penalty (0.05, the value of Ng's notes); unused by l1.
    sparsity_target: float = 0.05

    def __post_init__(self):
        super().__post_init__()
        if self.sparsity not in SPARSITY_PENALTIES:
            raise ValueError(f"unknown sparsity {self.sparsity!r}; known: "
                             f"{', '.join(SPARSITY_PENALTIES)}")
        if not self.sparsity_weight >= 0:
            raise ValueError(f"sparsity_weight must be non-negative, got {self.sparsity_weight}")
        if not 0.0 < self.sparsity_target < 1.0:
            raise ValueError(f"sparsity_target must be in (0, 1), got {self.sparsity_target}")


@register_model
class SparseAE(AE):
    name = "sparse_ae"
    description = "sparse AE: deterministic codes with an L1 or KL(rho || mean activation) penalty"
    Config = SparseAEConfig

    def loss(self, x, *, kl_weight=1.0, step=None):
        z = self.encoder(self.corrupt(x))
        reconstruction = -self.reconstruction_log_prob(x, z)
        penalty = SPARSITY_PENALTIES[self.config.sparsity]
        sparsity = penalty(z, self.config.sparsity_target)
        return LossOutput(loss=reconstruction + self.config.sparsity_weight * sparsity,
                          terms={"reconstruction": reconstruction, "sparsity": sparsity})
