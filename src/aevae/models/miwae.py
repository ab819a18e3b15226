"""MIWAE (Mattei & Frellsen 2019): the importance-weighted autoencoder trained on data with
missing entries, and imputation by importance sampling.

Compared with ``iwae.py``: the batch carries a mask of the observed entries. The encoder sees
x with its missing entries filled (zeros, or a learned value per data dimension), and the
decoder's likelihood counts the observed entries only, so the bound is on log p(x_observed):

    log (1/K) sum_k p(x_obs | z_k) p(z_k) / q(z_k | x_obs),  z_k ~ q(z | x_obs).

Imputation reuses those weights: a single imputation is the self-normalised weighted mean of
E[x_missing | z_k]; multiple imputations resample the z_k by weight (sampling importance
resampling) and draw x_missing ~ p(x_missing | z). Observed entries are returned untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..checks import is_whole
from ..priors import StandardNormal
from .base import check_impute_options, check_sample_request, checked_missing
from .iwae import IWAE, IWAEConfig, importance_weighted_output
from .registry import register_model

FILLS = ("zero", "learned")


@dataclass
class MIWAEConfig(IWAEConfig):
    # K: importance samples of the training bound (Mattei & Frellsen used 20).
    importance_samples: int = 20
    # What the encoder sees at missing entries: zero, or a learned value per data dimension.
    fill: str = "zero"

    def __post_init__(self):
        super().__post_init__()
        if self.fill not in FILLS:
            raise ValueError(f"unknown fill {self.fill!r}; known: {', '.join(FILLS)}")


@register_model
class MIWAE(IWAE):
    name = "miwae"
    description = ("MIWAE: the IWAE bound on the observed entries of data with missing values; "
                   "imputes by importance sampling")
    Config = MIWAEConfig
    uses = ("observed",)

    def __init__(self, config=None, **options):
        super().__init__(config, **options)
        if not isinstance(self.prior, StandardNormal):
            raise ValueError("miwae uses the standard-normal prior")
        if self.config.fill == "learned":
            self.fill_values = nn.Parameter(torch.zeros(self.input_shape))

    def filled(self, x: torch.Tensor, observed: torch.Tensor | None) -> torch.Tensor:
        """x with its missing entries replaced by the fill (what the encoder sees)."""
        if observed is None:
            return x
        fill = self.fill_values if self.config.fill == "learned" else torch.zeros_like(x)
        return torch.where(observed, x, fill.expand_as(x))

    def observed_pieces(self, x, observed, k: int):
        """(q, z (k, N, D), log p(x_obs|z) (k, N), log p(z) - log q(z|x) (k, N))."""
        q = self.posterior(self.corrupt(self.filled(x, observed)))
        z = q.rsample(k)
        log_likelihood = self.likelihood.log_prob(x, self.decoder_output(z), observed)
        log_ratio = self.prior.log_prob(z) - q.log_prob(z)
        return q, z, log_likelihood, log_ratio

    def batch_loss(self, batch, *, kl_weight=1.0, step=None):
        x = batch.x if batch.observed is None else torch.where(batch.observed, batch.x, 0.0)
        q, _, log_likelihood, log_ratio = self.observed_pieces(
            x, batch.observed, self.config.importance_samples)
        kl = q.kl_to_standard_normal()
        return importance_weighted_output(log_likelihood, log_ratio, kl,
                                          kl_weight * self.config.beta)

    def impute(self, x, observed, *, samples: int = 1000, multiple: int | None = None,
               seed: int = 0, batch_size: int = 256, **options):
        """Fill the missing entries of x (``observed`` false; NaN there is fine).

        Single imputation (default): the importance-weighted mean of E[x_missing | z] over
        ``samples`` draws. ``multiple=m``: m imputations each, shaped (N, m, *shape), by
        resampling draws by weight and sampling p(x_missing | z). Observed entries are
        returned exactly as given."""
        check_impute_options(options, ignored=("iterations", "start"))
        for name, value in (("samples", samples), ("batch_size", batch_size),
                            ("multiple", 1 if multiple is None else multiple)):
            if not is_whole(value) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        check_sample_request(1, seed)
        if seed is None:
            raise ValueError("seed must be an integer in [0, 2**64), got None")
        values, observed = checked_missing(x, observed)
        clean = np.where(observed, values, 0.0).astype(np.float32)
        tensor, _ = self._prepare(clean)
        mask = torch.as_tensor(np.ascontiguousarray(observed).reshape(tensor.shape),
                               device=self.device)
        generator = torch.Generator().manual_seed(seed)
        pieces = []
        was_training = self.training
        self.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(seed)
                for start in range(0, len(tensor), batch_size):
                    part, part_mask = tensor[start:start + batch_size], mask[start:
                                                                              start + batch_size]
                    _, z, log_likelihood, log_ratio = self.observed_pieces(part, part_mask,
                                                                           samples)
                    weights = torch.softmax(log_likelihood + log_ratio, dim=0)  # (k, N)
                    output = self.decoder_output(z)
                    if multiple is None:
                        mean = self.likelihood.mean(output)
                        shape = (-1, len(part)) + (1,) * (mean.dim() - 2)
                        pieces.append((weights.view(shape) * mean).sum(0))
                        continue
                    picks = torch.multinomial(weights.T, multiple, replacement=True,
                                              generator=generator)  # (N, m)
                    chosen = output[picks.T, torch.arange(len(part))]  # (m, N, ...)
                    pieces.append(self.likelihood.sample(chosen).transpose(0, 1))
        finally:
            self.train(was_training)
        imputed = torch.cat(pieces, dim=0).cpu().numpy()
        if multiple is None:
            return np.where(observed, values, imputed.reshape(values.shape)).astype(np.float32)
        imputed = imputed.reshape(len(values), multiple, *values.shape[1:])
        return np.where(observed[:, None], values[:, None], imputed).astype(np.float32)
