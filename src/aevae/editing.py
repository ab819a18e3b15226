"""Editing data by moving in latent space, and drawing variations of one input.

An attribute vector is the mean code of the examples that have an attribute minus the mean code
of those that do not ("glasses" in faces, a class in digits); adding it to an example's code and
decoding moves the example towards the attribute (``edit``). Variations of one input decode
several draws z ~ q(z|x) (``vary``); a deterministic autoencoder has one code per input, so all
its variants are the same point unless its input is perturbed.
"""

from __future__ import annotations

import numpy as np

from .models.base import Autoencoder


def _codes(model: Autoencoder, x) -> np.ndarray:
    return np.asarray(model.encode(x), dtype=np.float64)


def attribute_vector(model: Autoencoder, x, mask) -> np.ndarray:
    """Mean code of the examples where ``mask`` is true minus the mean code of the others."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (len(x),):
        raise ValueError(f"mask must hold one boolean per example ({len(x)}), got shape "
                         f"{mask.shape}")
    if mask.all() or not mask.any():
        raise ValueError("the mask must select some examples and leave some out")
    codes = _codes(model, x)
    return (codes[mask].mean(axis=0) - codes[~mask].mean(axis=0)).astype(np.float32)


def class_vector(model: Autoencoder, x, labels, source: int, target: int) -> np.ndarray:
    """Mean code of class ``target`` minus mean code of class ``source``: the move that turns
    one class into the other."""
    labels = np.asarray(labels)
    for value in (source, target):
        if not np.any(labels == value):
            raise ValueError(f"no example of class {value}")
    codes = _codes(model, x)
    return (codes[labels == target].mean(axis=0)
            - codes[labels == source].mean(axis=0)).astype(np.float32)


def edit(model: Autoencoder, x, vector, strength: float = 1.0):
    """Decode the codes of x moved by ``strength`` times ``vector``."""
    vector = np.asarray(vector, dtype=np.float32)
    if vector.shape != (model.latent_dim,):
        raise ValueError(f"the vector must have {model.latent_dim} entries, got shape "
                         f"{vector.shape}")
    codes = np.asarray(model.encode(x), dtype=np.float32)
    return model.decode(codes + float(strength) * vector)


def vary(model: Autoencoder, x, n: int, *, sample_likelihood: bool = False,
         seed: int | None = 0):
    """``model.vary(x, n)``: see ``Autoencoder.vary``."""
    return model.vary(x, n, sample_likelihood=sample_likelihood, seed=seed)
