"""Reconstruction metrics: MSE, binary cross-entropy and PSNR, per example and averaged.

Inputs are arrays of shape (N, ...) (any trailing shape); each example is flattened.
"""

from __future__ import annotations

import numpy as np

# PSNR reported for a perfect reconstruction (infinite PSNR), and the cap for all values.
PSNR_CAP_DB = 100.0


def _pair(original: np.ndarray, reconstruction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(original, dtype=np.float64)
    b = np.asarray(reconstruction, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.ndim == 0 or a.shape[0] == 0:
        raise ValueError("inputs must have a non-empty leading example axis")
    return a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)


def mse_per_example(original: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """(N,) mean squared error over the features of each example."""
    a, b = _pair(original, reconstruction)
    return ((a - b) ** 2).mean(axis=1)


def mse(original: np.ndarray, reconstruction: np.ndarray) -> dict:
    """Mean squared error: {"value": mean over examples, "per_example": list}."""
    per_example = mse_per_example(original, reconstruction)
    return {"value": float(per_example.mean()), "per_example": per_example.tolist()}


def bce_per_example(
    original: np.ndarray, reconstruction: np.ndarray, eps: float = 1e-7
) -> np.ndarray:
    """(N,) binary cross-entropy summed over features (nats per example).

    original holds targets in [0, 1]; reconstruction holds probabilities, clipped to
    [eps, 1 - eps] so log(0) never occurs.
    """
    a, b = _pair(original, reconstruction)
    if np.any(a < 0.0) or np.any(a > 1.0):
        raise ValueError("BCE targets must lie in [0, 1]")
    p = np.clip(b, eps, 1.0 - eps)
    return -(a * np.log(p) + (1.0 - a) * np.log1p(-p)).sum(axis=1)


def bce(original: np.ndarray, reconstruction: np.ndarray, eps: float = 1e-7) -> dict:
    """Binary cross-entropy with clipping.

    Returns {"value": mean over examples of the per-example sum (nats/example),
    "per_feature": value / number of features, "per_example": list, "eps"}.
    """
    per_example = bce_per_example(original, reconstruction, eps=eps)
    n_features = int(np.prod(np.shape(original)[1:], dtype=np.int64))
    value = float(per_example.mean())
    return {
        "value": value,
        "per_feature": value / max(1, n_features),
        "per_example": per_example.tolist(),
        "eps": float(eps),
    }


def psnr(
    original: np.ndarray,
    reconstruction: np.ndarray,
    data_range: float = 1.0,
    max_db: float = PSNR_CAP_DB,
) -> dict:
    """Peak signal-to-noise ratio per example: 10 log10(data_range^2 / MSE).

    A perfect reconstruction has infinite PSNR; every per-example value is capped at
    max_db, and "n_capped" counts how many examples hit the cap ("capped" is True when
    any did), so the mean stays finite and the capping is visible.

    Returns {"value": mean capped PSNR (dB), "per_example": list, "n_capped", "capped",
    "max_db", "data_range"}.
    """
    errors = mse_per_example(original, reconstruction)
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(data_range**2 / errors)
    capped = values >= max_db
    values = np.where(capped, max_db, values)
    return {
        "value": float(values.mean()),
        "per_example": values.tolist(),
        "n_capped": int(capped.sum()),
        "capped": bool(capped.any()),
        "max_db": float(max_db),
        "data_range": float(data_range),
    }
