"""Interpolation metrics: smoothness of decoded latent paths and realism of midpoints."""

from __future__ import annotations

import numpy as np

from ._utils import (
    SeedLike,
    as_2d,
    make_generator,
    mean_spacing,
    nearest_distances,
    seed_record,
    subsample,
)
from .generation import classifier_statistics


def interpolation_smoothness(decoded_paths: np.ndarray) -> dict:
    """Evenness of decoded interpolation paths.

    decoded_paths has shape (P, S, ...): P paths of S >= 2 decoded steps. For each path the
    L2 changes between consecutive decoded steps are computed; "value" is the mean over
    paths of (largest step / mean step), 1.0 meaning perfectly even steps (a sudden jump
    gives a large ratio). Paths with no change at all count as 1.0.

    Returns {"value", "max_ratio", "mean_path_length" (sum of steps), "mean_step",
    "mean_endpoint_distance", "mean_straightness" (path length / endpoint distance, 1.0 =
    straight line in data space, paths with equal endpoints skipped), "n_paths", "n_steps"}.
    """
    paths = np.asarray(decoded_paths, dtype=np.float64)
    if paths.ndim < 3 or paths.shape[1] < 2:
        raise ValueError("decoded_paths must have shape (P, S >= 2, ...)")
    flat = paths.reshape(paths.shape[0], paths.shape[1], -1)
    steps = np.linalg.norm(np.diff(flat, axis=1), axis=2)
    mean_step = steps.mean(axis=1)
    moving = mean_step > 0.0
    ratios = np.ones(paths.shape[0])
    ratios[moving] = steps[moving].max(axis=1) / mean_step[moving]
    lengths = steps.sum(axis=1)
    endpoints = np.linalg.norm(flat[:, -1] - flat[:, 0], axis=1)
    apart = endpoints > 0.0
    straightness = float(np.mean(lengths[apart] / endpoints[apart])) if apart.any() else None
    return {
        "value": float(ratios.mean()),
        "max_ratio": float(ratios.max()),
        "mean_path_length": float(lengths.mean()),
        "mean_step": float(mean_step.mean()),
        "mean_endpoint_distance": float(endpoints.mean()),
        "mean_straightness": straightness,
        "n_paths": int(paths.shape[0]),
        "n_steps": int(paths.shape[1]),
    }


def midpoint_realism(
    midpoint_features: np.ndarray,
    train_features: np.ndarray,
    midpoint_probabilities: np.ndarray | None = None,
    max_reference: int | None = 10000,
    seed: SeedLike = 0,
    train_distance: float | None = None,
) -> dict:
    """How far decoded interpolation midpoints lie from the training data, in feature space.

    "value" = mean distance from each midpoint to its nearest training feature divided by
    the mean nearest-neighbour distance among training features (self excluded); about 1
    for points like the training data, larger for off-manifold midpoints. The training
    features are first reduced to a random subset of max_reference rows (None = all),
    used for both distances. With midpoint_probabilities, "classifier" holds
    classifier_statistics of the midpoints (confidence, entropy). ``train_distance``: that mean
    nearest-neighbour distance, already computed for the same reference (several calls).
    """
    generator = make_generator(seed)
    midpoints = as_2d(midpoint_features, "midpoint_features")
    reference = subsample(as_2d(train_features, "train_features"), max_reference, generator)
    if reference.shape[0] < 2:
        raise ValueError("midpoint_realism needs at least two training features")
    midpoint_distance = float(nearest_distances(midpoints, reference).mean())
    typical_distance = (mean_spacing(reference) if train_distance is None
                        else float(train_distance))
    return {
        "value": midpoint_distance / typical_distance if typical_distance > 0 else None,
        "mean_midpoint_distance": midpoint_distance,
        "mean_train_distance": typical_distance,
        "classifier": None
        if midpoint_probabilities is None
        else classifier_statistics(midpoint_probabilities),
        "n_midpoints": int(midpoints.shape[0]),
        "n_reference": int(reference.shape[0]),
        "max_reference": max_reference,
        "seed": seed_record(seed),
    }
