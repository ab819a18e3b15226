"""Ex-post density estimation (Ghosh et al. 2020): after training, fit a Gaussian mixture to a
model's codes and sample new data by decoding draws from it rather than from the prior.

A deterministic autoencoder has no prior to sample, and a VAE's aggregate posterior rarely fills
N(0, I); a density fitted to the codes serves both. Works on any model: it needs only ``encode``
and ``decode``. Saved as JSON (weights, means, covariances), never pickled.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from .io import CorruptFileError, atomic_write_json, one_line, read_json
from .models.base import CONFIG_FILE

EX_POST_FILE = "ex_post.json"
FORMAT = "aevae.ex_post"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _full_covariances(covariances: np.ndarray, covariance: str, components: int,
                      latent_dim: int) -> np.ndarray:
    """scikit-learn's per-type covariance arrays as one (components, D, D) stack; ValueError
    for arrays of another shape."""
    expected = {"full": (components, latent_dim, latent_dim), "tied": (latent_dim, latent_dim),
                "diag": (components, latent_dim), "spherical": (components,)}[covariance]
    if covariances.shape != expected:
        raise ValueError(f"{covariance} covariances must be shaped {expected}, got "
                         f"{covariances.shape}")
    if covariance == "full":
        return covariances
    if covariance == "tied":
        return np.broadcast_to(covariances, (components, latent_dim, latent_dim)).copy()
    if covariance == "diag":
        return np.stack([np.diag(row) for row in covariances])
    return covariances[:, None, None] * np.eye(latent_dim)


def covariance_floor(codes: np.ndarray) -> float:
    """The mixture's covariance floor (scikit-learn's ``reg_covar``): its default 1e-6 for
    codes of unit variance or more, scaled down with smaller codes (an absolute 1e-6 made the
    samples of codes at scale 1e-3 15-30% too wide, at 1e-6 300 times)."""
    return 1e-6 * float(np.clip(np.asarray(codes, np.float64).var(axis=0).mean(), 1e-24, 1.0))


class ExPostSampler:
    """A Gaussian mixture over a model's codes. ``fit`` learns ``weights_``, ``means_`` and
    ``covariances_`` (scikit-learn's shapes for the covariance type)."""

    def __init__(self, model=None):
        self.model = model

    # ----- fitting ---------------------------------------------------------------------
    def fit(self, model, x, *, components: int = 10, covariance: str = "full", seed: int = 0):
        """Fit to ``model.encode(x)`` (a VAE's posterior means). Ghosh et al. use 10 components
        with full covariances."""
        from sklearn.mixture import GaussianMixture

        if covariance not in COVARIANCE_TYPES:
            raise ValueError(f"unknown covariance {covariance!r}; known: "
                             f"{', '.join(COVARIANCE_TYPES)}")
        codes = model.encode(x)
        if isinstance(codes, torch.Tensor):
            codes = codes.cpu().numpy()
        codes = np.asarray(codes, dtype=np.float64)
        if len(codes) < components:
            raise ValueError(f"{components} components need at least as many codes, got "
                             f"{len(codes)}")
        mixture = GaussianMixture(components, covariance_type=covariance, random_state=seed,
                                  reg_covar=covariance_floor(codes))
        mixture.fit(codes)
        self.model = model
        self._set(mixture.weights_, mixture.means_, mixture.covariances_, covariance)
        return self

    def _set(self, weights, means, covariances, covariance: str) -> None:
        self.weights_ = np.asarray(weights, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.covariances_ = np.asarray(covariances, dtype=np.float64)
        self.covariance_ = covariance
        if self.means_.ndim != 2 or not self.means_.size:
            raise ValueError(f"means must be (components, latent_dim), got {self.means_.shape}")
        components, latent_dim = self.means_.shape
        weights = self.weights_
        if weights.shape != (components,) or not np.isfinite(weights).all() or (
                weights < 0).any() or abs(weights.sum() - 1.0) > 1e-6:
            raise ValueError(f"weights must be {components} non-negative numbers summing to 1")
        if not np.isfinite(self.means_).all() or not np.isfinite(self.covariances_).all():
            raise ValueError("means and covariances must be finite")
        full = _full_covariances(self.covariances_, covariance, components, latent_dim)
        self._cholesky = np.linalg.cholesky(full)

    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise RuntimeError("the sampler is not fitted: call fit(model, x) or load(directory)")

    @property
    def latent_dim(self) -> int:
        self._check_fitted()
        return self.means_.shape[1]

    # ----- using the density -----------------------------------------------------------------
    def sample_latent(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` codes drawn from the mixture, float32 (n, latent_dim); a seed repeats them."""
        self._check_fitted()
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        generator = np.random.default_rng(seed)
        component = generator.choice(len(self.weights_), size=n, p=self.weights_)
        noise = generator.standard_normal((n, self.latent_dim))
        codes = self.means_[component] + np.einsum("nij,nj->ni", self._cholesky[component], noise)
        return codes.astype(np.float32)

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Decode ``n`` draws from the mixture: the decoder means, shaped like the data."""
        if self.model is None:
            raise RuntimeError("no model attached: pass one to fit or load")
        decoded = self.model.decode(self.sample_latent(n, seed))
        return decoded.cpu().numpy() if isinstance(decoded, torch.Tensor) else decoded

    def log_density(self, codes) -> np.ndarray:
        """log of the mixture density at each code, in nats; shape (N,)."""
        self._check_fitted()
        if isinstance(codes, torch.Tensor):
            codes = codes.detach().cpu().numpy()
        codes = np.atleast_2d(np.asarray(codes, dtype=np.float64))
        if codes.shape[1] != self.latent_dim:
            raise ValueError(f"expected codes shaped (N, {self.latent_dim}), got {codes.shape}")
        per_component = []
        for weight, mean, cholesky in zip(self.weights_, self.means_, self._cholesky):
            whitened = solve_triangular(cholesky, (codes - mean).T, lower=True)
            log_determinant = 2.0 * np.log(np.diag(cholesky)).sum()
            per_component.append(math.log(weight) - 0.5 * (
                (whitened ** 2).sum(0) + log_determinant + self.latent_dim * math.log(2 * math.pi)
            ))
        return logsumexp(np.stack(per_component), axis=0)

    # ----- persistence -----------------------------------------------------------------
    def save(self, directory) -> Path:
        """Write ``ex_post.json`` into ``directory`` (beside a saved model, typically)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / EX_POST_FILE
        atomic_write_json(path, {
            "format": FORMAT,
            "covariance": self.covariance_,
            "weights": self.weights_.tolist(),
            "means": self.means_.tolist(),
            "covariances": self.covariances_.tolist(),
        })
        return path

    @classmethod
    def load(cls, directory, model=None) -> ExPostSampler:
        """Read ``ex_post.json``; the model is ``model`` or, if none is given, the one saved in
        the same directory (if any)."""
        directory = Path(directory)
        path = directory / EX_POST_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no ex-post density in {directory}: {EX_POST_FILE} is missing")
        values = read_json(path)
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise CorruptFileError(f"{path}: not an ex-post density file")
        if model is None and (directory / CONFIG_FILE).is_file():
            from .models import load

            model = load(directory)
        sampler = cls(model)
        try:
            if values.get("covariance") not in COVARIANCE_TYPES:
                raise ValueError(f"unknown covariance {values.get('covariance')!r}")
            sampler._set(values["weights"], values["means"], values["covariances"],
                         values["covariance"])
        except (KeyError, TypeError, ValueError) as error:  # LinAlgError is a ValueError
            detail = f"{error} is missing" if isinstance(error, KeyError) else one_line(error, 300)
            raise CorruptFileError(f"{path}: not a valid ex-post density ({detail})") from None
        if model is not None and model.latent_dim != sampler.latent_dim:
            raise ValueError(f"the density is over {sampler.latent_dim} dimensions but the model "
                             f"has {model.latent_dim}")
        return sampler
