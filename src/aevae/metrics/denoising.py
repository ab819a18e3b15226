"""Corruptions for denoising and inpainting tests, and the PSNR of the restored data."""

from __future__ import annotations

import numpy as np

from ._utils import SeedLike, make_generator
from .reconstruction import PSNR_CAP_DB, psnr


def add_gaussian_noise(x: np.ndarray, std: float, seed: SeedLike = 0) -> np.ndarray:
    """x + N(0, std^2) noise, clipped to [0, 1]; same dtype as x (float)."""
    values = np.asarray(x)
    dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64
    noise = make_generator(seed).standard_normal(values.shape)
    return np.clip(values + std * noise, 0.0, 1.0).astype(dtype)


def random_mask(
    x: np.ndarray, fraction: float, seed: SeedLike = 0, fill_value: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Replace a random fraction of the entries of each example with fill_value.

    Exactly round(fraction * features) entries per example are masked. Returns
    (corrupted clipped to [0, 1], mask) where mask is a bool array shaped like x, True
    where an entry was replaced.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must lie in [0, 1]")
    values = np.asarray(x)
    dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64
    flat = values.reshape(values.shape[0], -1)
    n_masked = int(round(fraction * flat.shape[1]))
    keys = make_generator(seed).random(flat.shape)
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    mask = ranks < n_masked
    corrupted = np.where(mask, fill_value, flat)
    corrupted = np.clip(corrupted, 0.0, 1.0).astype(dtype).reshape(values.shape)
    return corrupted, mask.reshape(values.shape)


def denoising_psnr(
    clean: np.ndarray,
    reconstructed: np.ndarray,
    corrupted: np.ndarray | None = None,
    data_range: float = 1.0,
    max_db: float = PSNR_CAP_DB,
) -> dict:
    """PSNR of the restored data against the clean data (per example, capped at max_db).

    With corrupted given, also the PSNR of the corrupted input and the gain in dB.
    Returns {"value", "n_capped", "capped", "corrupted_psnr", "gain", "max_db",
    "data_range"}.
    """
    restored = psnr(clean, reconstructed, data_range=data_range, max_db=max_db)
    baseline = None
    if corrupted is not None:
        baseline = psnr(clean, corrupted, data_range=data_range, max_db=max_db)["value"]
    return {
        "value": restored["value"],
        "n_capped": restored["n_capped"],
        "capped": restored["capped"],
        "corrupted_psnr": baseline,
        "gain": None if baseline is None else restored["value"] - baseline,
        "max_db": float(max_db),
        "data_range": float(data_range),
    }
