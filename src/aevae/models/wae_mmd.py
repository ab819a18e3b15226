"""Wasserstein autoencoder with the MMD penalty (Tolstikhin et al. 2018).

Compared with ``ae.py``: the encoder stays deterministic, and instead of a per-example KL the
loss adds lambda * MMD(codes of the batch, samples of the prior). The penalty matches the
aggregate posterior q(z) to p(z), not each q(z|x), so codes of different inputs need not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ae import AE
from .base import AutoencoderConfig, LossOutput
from .registry import register_model

# The kernel scales of the paper's code: a sum over scales needs no bandwidth tuning.
KERNEL_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The expanded form keeps gradients finite at zero distance (torch.cdist's are not).
    squared = a.pow(2).sum(-1)[:, None] + b.pow(2).sum(-1)[None, :] - 2.0 * a @ b.T
    return squared.clamp_min(0.0)


def _inverse_multiquadratic(squared_distances: torch.Tensor, latent_dim: int,
                            prior_variance: float, scales) -> torch.Tensor:
    """k(x, y) = sum_s C_s / (C_s + ||x - y||^2) with C_s = 2 * latent_dim * prior_variance * s."""
    kernel = torch.zeros_like(squared_distances)
    for scale in scales:
        c = 2.0 * latent_dim * prior_variance * scale
        kernel = kernel + c / (c + squared_distances)
    return kernel


def mmd_inverse_multiquadratic(a: torch.Tensor, b: torch.Tensor, *, scales=KERNEL_SCALES,
                               prior_variance: float = 1.0) -> torch.Tensor:
    """Unbiased (U-statistic) estimate of MMD^2 between the samples ``a`` (n, d) and ``b``
    (m, d) under the inverse multiquadratic kernel; ``prior_variance`` is sigma_z^2 of the
    prior the kernel is scaled for. Zero in expectation when both come from one distribution."""
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError("the unbiased MMD needs at least two points in each sample")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples differ in dimension: {a.shape[1]} and {b.shape[1]}")
    latent_dim = a.shape[1]

    def kernel(left, right):
        return _inverse_multiquadratic(_squared_distances(left, right), latent_dim,
                                       prior_variance, scales)

    k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    # The U-statistic leaves out each point's kernel with itself.
    within_a = (k_aa.sum() - k_aa.diagonal().sum()) / (n * (n - 1))
    within_b = (k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
    return within_a + within_b - 2.0 * k_ab.mean()


@dataclass
class WAEConfig(AutoencoderConfig):
    # lambda = 10: the paper's MNIST setting (with a squared-error cost; here the likelihood's).
    mmd_weight: float = 10.0

    def __post_init__(self):
        super().__post_init__()
        if not self.mmd_weight >= 0:
            raise ValueError(f"mmd_weight must be non-negative, got {self.mmd_weight}")


@register_model
class WAEMMD(AE):
    name = "wae_mmd"
    weighs_kl = True  # its penalty in the KL's place
    description = "Wasserstein AE: deterministic codes, lambda * MMD(codes, prior samples)"
    Config = WAEConfig
    trains_prior = True

    def loss(self, x, *, kl_weight=1.0, step=None):
        z = self.encoder(self.corrupt(x))
        reconstruction = -self.reconstruction_log_prob(x, z)
        if len(z) < 2:
            mmd = z.new_zeros(())  # one code says nothing about the aggregate posterior
        else:
            mmd = mmd_inverse_multiquadratic(z, self.prior.sample(len(z)))
        # A batch quantity, the same for every example: the mean loss is recon + lambda * MMD.
        # The divergence to the prior takes the schedule's weight, as a VAE's KL does.
        mmd = mmd.expand_as(reconstruction)
        return LossOutput(
            loss=reconstruction + (kl_weight * self.config.mmd_weight) * mmd,
            terms={"reconstruction": reconstruction, "mmd": mmd},
        )
