"""The linear references: PCA (the linear AE) and probabilistic PCA (its exact-likelihood twin).

Both are fitted in closed form from the eigen-decomposition of the training data's covariance
(scikit-learn's PCA), then written into a linear encoder and decoder, so every metric, the
ex-post sampler and persistence treat them like any other model.

- ``pca``: z = U^T (x - m), x' = U z + m. The best linear code of its size in squared error.
- ``ppca`` (Tipping & Bishop 1999): x = W z + m + e, z ~ N(0, I), e ~ N(0, s^2 I), with the
  maximum-likelihood W = U (L - s^2 I)^(1/2) and s^2 the mean of the discarded eigenvalues. Its
  posterior p(z|x) = N(L^-1 W^T (x - m), s^2 L^-1) is exactly the diagonal Gaussian a VAE's
  encoder emits, so importance sampling with it returns the exact log p(x)
  (``exact_log_likelihood`` computes it directly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..likelihoods import make_likelihood
from .ae import AE
from .base import AutoencoderConfig
from .registry import register_model
from .vae import VAE, VAEConfig

LINEAR_GAUSSIAN = {"network": "linear", "likelihood": "gaussian"}


def _check_linear_gaussian(config: AutoencoderConfig, name: str) -> None:
    for option, required in LINEAR_GAUSSIAN.items():
        if getattr(config, option) != required:
            raise ValueError(f"{name} is a linear model with a Gaussian likelihood: {option} must "
                             f"be {required!r}, got {getattr(config, option)!r}")


@dataclass
class PCAConfig(AutoencoderConfig):
    network: str = "linear"
    hidden: tuple[int, ...] = ()
    likelihood: str = "gaussian"

    def __post_init__(self):
        super().__post_init__()
        _check_linear_gaussian(self, "pca")


@dataclass
class PPCAConfig(VAEConfig):
    network: str = "linear"
    hidden: tuple[int, ...] = ()
    likelihood: str = "gaussian"

    def __post_init__(self):
        super().__post_init__()
        _check_linear_gaussian(self, "ppca")


def _principal_components(x, latent_dim: int, seed: int):
    """(mean, components U^T (k, D), eigenvalues L (k,), noise variance s^2) of the data."""
    from sklearn.decomposition import PCA as ScikitPCA

    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if latent_dim > min(flat.shape):
        raise ValueError(f"latent_dim {latent_dim} exceeds min(examples, dimensions) = "
                         f"{min(flat.shape)}: PCA cannot find that many components in "
                         f"{len(flat)} example(s) of {flat.shape[1]} feature(s)")
    fitted = ScikitPCA(n_components=latent_dim, svd_solver="full", random_state=seed).fit(flat)
    noise = float(fitted.noise_variance_)
    return fitted.mean_, fitted.components_, fitted.explained_variance_, noise


class ClosedForm:
    """The trainer calls ``solve`` once instead of running epochs. The training options
    (epochs, learning rate, ...) do not apply and are ignored; the run directory gets the same
    files a trained model writes, and TensorBoard the final losses at epoch 1."""

    closed_form = True
    # The study's matched settings (network, likelihood) do not apply to a closed-form model.
    shares_network = False

    def solve_record(self, examples: int, validation_examples: int | None, seed: int) -> dict:
        """training.json of a solve: what was done in place of training."""
        return {"fit": "closed form: eigen-decomposition of the training data's covariance (no "
                "epochs, no optimizer; training options are ignored)",
                "epochs": None, "seed": seed, "examples": int(examples),
                "validation_examples": validation_examples}

    def _linear_layers(self):
        encoder = self.encoder.body[-1]
        decoder = self.decoder.body[-1]
        return encoder, decoder


@register_model
class PCA(ClosedForm, AE):
    name = "pca"
    description = "PCA as the linear AE: z = U^T (x - m), x' = U z + m, fitted in closed form"
    Config = PCAConfig

    def solve(self, x: np.ndarray, seed: int) -> None:
        mean, components, _, _ = _principal_components(x, self.latent_dim, seed)
        encoder, decoder = self._linear_layers()
        with torch.no_grad():
            encoder.weight.copy_(torch.from_numpy(components))
            encoder.bias.copy_(torch.from_numpy(-components @ mean))
            decoder.weight.copy_(torch.from_numpy(components.T))
            decoder.bias.copy_(torch.from_numpy(mean))


@register_model
class PPCA(ClosedForm, VAE):
    name = "ppca"
    description = ("probabilistic PCA: linear-Gaussian model with its exact posterior and exact "
                   "log p(x), fitted in closed form")
    Config = PPCAConfig

    def training_refusal(self) -> str | None:
        if self.config.prior != "standard-normal":
            return "ppca's closed-form solution is for the standard-normal prior"
        return super().training_refusal()

    def solve(self, x: np.ndarray, seed: int) -> None:
        mean, components, eigenvalues, noise = _principal_components(x, self.latent_dim, seed)
        # A noise variance of 0 (data inside a k-dimensional subspace) has no density. The
        # floor is relative to the data's scale (an absolute 1e-12 was most of the noise of
        # data at scale 1e-6, and cost its exact log p(x) 5 nats); 1e-30 only for all-equal data.
        noise = max(noise, 1e-6 * float(eigenvalues.max()), 1e-30)
        eigenvalues = np.maximum(eigenvalues, noise)
        scale = np.sqrt(eigenvalues - noise)  # W = U diag(scale)
        encoder, decoder = self._linear_layers()
        posterior_map = (scale / eigenvalues)[:, None] * components  # L^-1 W^T
        with torch.no_grad():
            encoder.weight.zero_()
            encoder.bias.zero_()
            encoder.weight[: self.latent_dim].copy_(torch.from_numpy(posterior_map))
            encoder.bias[: self.latent_dim].copy_(torch.from_numpy(-posterior_map @ mean))
            # The posterior variance s^2 / L does not depend on x: a bias alone.
            encoder.bias[self.latent_dim:].copy_(torch.from_numpy(np.log(noise / eigenvalues)))
            decoder.weight.copy_(torch.from_numpy(components.T * scale[None, :]))
            decoder.bias.copy_(torch.from_numpy(mean))
        self.config.likelihood_options = {"sigma": math.sqrt(noise)}
        self.likelihood = make_likelihood("gaussian", self.input_shape, sigma=math.sqrt(noise))

    def exact_log_likelihood(self, x) -> np.ndarray:
        """log N(x; m, W W^T + s^2 I) per example, in nats (float64)."""
        from scipy.linalg import solve_triangular  # here: scipy.linalg costs every make() 0.1 s

        tensor, _ = self._prepare(x)
        flat = tensor.reshape(len(tensor), -1).double().cpu().numpy()
        decoder = self._linear_layers()[1]
        weight = decoder.weight.detach().double().cpu().numpy()
        mean = decoder.bias.detach().double().cpu().numpy()
        covariance = weight @ weight.T + self.likelihood.sigma ** 2 * np.eye(len(mean))
        cholesky = np.linalg.cholesky(covariance)
        whitened = solve_triangular(cholesky, (flat - mean).T, lower=True)
        log_determinant = 2.0 * np.log(np.diag(cholesky)).sum()
        return -0.5 * ((whitened ** 2).sum(0) + log_determinant + len(mean) * math.log(2 * math.pi))
