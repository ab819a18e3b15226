"""The diagonal Gaussian posterior q(z|x) and the few closed forms the models need."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)
# Outside training (no gradient), a log-variance is kept within +-this: beyond about 88 exp()
# overflows float32 (an infinite std, then NaN codes and figures) and below about -103 the
# variance is 0, which inputs far from the training data's scale reached. Training is left
# alone: there an overflow is a divergence, and must stop the run loudly.
LOG_VARIANCE_BOUND = 50.0


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


class DiagonalGaussian:
    """N(mean, diag(exp(log_variance))) over the last dimension."""

    def __init__(self, mean: torch.Tensor, log_variance: torch.Tensor):
        self.mean = mean
        if not torch.is_grad_enabled():
            log_variance = log_variance.clamp(-LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND)
        self.log_variance = log_variance

    @property
    def variance(self) -> torch.Tensor:
        return self.log_variance.exp()

    @property
    def std(self) -> torch.Tensor:
        return (0.5 * self.log_variance).exp()

    def rsample(self, n_samples: int | None = None) -> torch.Tensor:
        """Reparameterized sample z = mean + std * eps; shape (n_samples, *mean.shape) if given."""
        shape = self.mean.shape if n_samples is None else (n_samples, *self.mean.shape)
        eps = torch.randn(shape, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z), summed over the last dimension; z may carry leading sample dimensions."""
        return -0.5 * (
            (z - self.mean).pow(2) / self.variance + self.log_variance + LOG_2PI
        ).sum(-1)

    def kl_to_standard_normal_per_dimension(self) -> torch.Tensor:
        """KL(q || N(0, I)) in closed form, one value per latent dimension."""
        return 0.5 * (self.mean.pow(2) + self.variance - 1.0 - self.log_variance)

    def kl_to(self, other: DiagonalGaussian) -> torch.Tensor:
        """KL(self || other) in closed form, summed over the last dimension."""
        return 0.5 * (other.log_variance - self.log_variance
                      + (self.variance + (self.mean - other.mean).pow(2)) / other.variance
                      - 1.0).sum(-1)

    def kl_to_standard_normal(self) -> torch.Tensor:
        return self.kl_to_standard_normal_per_dimension().sum(-1)
