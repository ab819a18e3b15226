"""What kind of values a dataset holds, and the rescaling a study applies before training.

Bernoulli decoders need values in [0, 1]; real-valued data gets a Gaussian decoder, which trains
best on standardised values. The statistics come from the training split alone, and every
choice is recorded so a report can say what was done.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .containers import Dataset, Split, observed_range


def value_kind(x: np.ndarray) -> str:
    """"binary" (only 0 and 1), "unit-interval" (within [0, 1]) or "real"."""
    low, high = float(np.min(x)), float(np.max(x))
    if low >= 0.0 and high <= 1.0:
        if np.all((x == 0.0) | (x == 1.0)):
            return "binary"
        return "unit-interval"
    return "real"


def choose_likelihood(values: str, requested: str | None) -> tuple[str, str]:
    """(likelihood, why) for data of ``value_kind`` ``values``: ``requested`` when given, else
    Bernoulli for values in [0, 1] and a learned-variance Gaussian (on standardised values) for
    real ones. ``aevae compare`` and ``aevae train`` both choose with it."""
    if requested is not None:
        return requested, "chosen on the command line"
    if values == "binary":
        return "bernoulli", "the data is binary"
    if values == "unit-interval":
        return "bernoulli", ("values lie in [0, 1] (grey levels): the usual Bernoulli decoder, "
                             "whose log-likelihoods are then not those of a proper density")
    return "gaussian-learned", ("real-valued data: a Gaussian decoder with a learned variance, "
                                "on standardised values")


def data_kind(shape: tuple[int, ...]) -> str:
    """"images" for (C, H, W) examples, "tabular" for flat vectors, else "arrays"."""
    if len(shape) == 3:
        return "images"
    if len(shape) == 1:
        return "tabular"
    return "arrays"


def standardise(dataset: Dataset) -> tuple[Dataset, dict]:
    """Subtract the training mean and divide by the training standard deviation: per feature
    for tabular data, one pair of numbers for images (so pixels keep their relative scale).
    Constant features are left at scale 1. Returns the new dataset and a record of the
    statistics, which ``apply_preparation`` redoes on a freshly loaded copy."""
    train = dataset.train.x.astype(np.float64)
    per_feature = data_kind(dataset.shape) == "tabular"
    axis = 0 if per_feature else None
    mean = train.mean(axis=axis)
    scale = train.std(axis=axis)
    scale = np.where(scale > 0, scale, 1.0)
    record = {
        "transform": "standardised: (x - mean) / standard deviation of the training split, "
        + ("per feature" if per_feature else "over all values"),
        "mean": np.atleast_1d(mean).tolist(),
        "scale": np.atleast_1d(scale).tolist(),
    }
    return _rescaled(dataset, mean, scale), record


def apply_preparation(dataset: Dataset, record: dict) -> Dataset:
    """``dataset`` with the rescaling of a ``standardise`` record applied (unchanged for a
    record without one), so a study's model sees the values it was trained on."""
    if "mean" not in record:
        return dataset
    return _rescaled(dataset, *_rescaling(record, tuple(dataset.shape)))


def prepare_values(values: np.ndarray, record: dict) -> np.ndarray:
    """``values`` (examples in the data's own units; NaN stays NaN) on the scale a model was
    trained on: ``apply_preparation`` for an array, the inverse of ``undo_preparation``."""
    if "mean" not in record:
        return values
    mean, scale = _rescaling(record, values.shape[1:])
    return ((values - mean) / scale).astype(np.float32)


def undo_preparation(values: np.ndarray, record: dict) -> np.ndarray:
    """``values`` (examples the model produced, e.g. samples) back in the data's own units:
    the inverse of a ``standardise`` record's rescaling (unchanged for a record without one)."""
    if "mean" not in record:
        return values
    mean, scale = _rescaling(record, values.shape[1:])
    return (values * scale + mean).astype(np.float32)


def _rescaling(record: dict, shape: tuple[int, ...]):
    """A ``standardise`` record's (mean, scale), shaped for examples of ``shape``; a record
    that does not fit them is a ValueError saying so."""
    mean, scale = np.asarray(record["mean"], np.float64), np.asarray(record["scale"], np.float64)
    features = int(np.prod(shape))
    if mean.shape != scale.shape or mean.size not in (1, features):
        raise ValueError(f"the recorded rescaling has {mean.size} means and {scale.size} "
                         f"scales; the data has {features} features")
    if mean.size == 1:
        return mean[0], scale[0]
    return mean.reshape(shape), scale.reshape(shape)


def _rescaled(dataset: Dataset, mean, scale) -> Dataset:
    def rescale(split: Split | None) -> Split | None:
        if split is None:
            return None
        values = ((split.x - mean) / scale).astype(np.float32)
        return dataclasses.replace(split, x=values)

    splits = {name: rescale(getattr(dataset, name)) for name in ("train", "validation", "test")}
    # (x - mean) / scale: each value's density gains log(scale), one example's their sum.
    log_jacobian = -float(np.broadcast_to(np.log(scale), dataset.train.x.shape[1:]).sum())
    return dataclasses.replace(dataset, **splits, value_range=observed_range(splits["train"].x),
                               log_jacobian=(dataset.log_jacobian or 0.0) + log_jacobian)
