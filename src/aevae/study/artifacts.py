"""The arrays a study's figures are drawn from, computed once per run and kept in its directory.

Reconstructions, prior and ex-post samples, interpolation strips and latent traversals for image
data; a 2-D view of the codes for any data; for non-image data, samples and data projected onto
the data's first two principal components. ``aevae report`` redraws every figure from these
files without loading a model.
"""

from __future__ import annotations

import numpy as np

from ..io import load_tensors, save_tensors
from ..metrics.evaluate import EvaluationContext

FIGURES_FILE = "figures.safetensors"
SHOWN = 8  # examples per row of a grid
TRAVERSAL_DIMENSIONS = 6
TRAVERSAL_STEPS = 7
INTERPOLATION_PAIRS = 3
INTERPOLATION_STEPS = 8
SCATTER_POINTS = 1000


def _project(values: np.ndarray, basis: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    mean, components = basis
    return (values.reshape(len(values), -1) - mean) @ components.T


def _principal_plane(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the first two principal directions (fewer dimensions: padded with zeros)."""
    flat = values.reshape(len(values), -1).astype(np.float64)
    mean = flat.mean(axis=0)
    _, _, directions = np.linalg.svd(flat - mean, full_matrices=False)
    components = np.zeros((2, flat.shape[1]))
    components[: min(2, len(directions))] = directions[:2]
    return mean, components


def figure_arrays(context: EvaluationContext, images: bool) -> dict[str, np.ndarray]:
    """Everything the report draws for one run, as float32 arrays (labels as int64)."""
    model, seed = context.model, context.settings.seed
    x = context.evaluation_x()
    codes = context.codes()
    labels = context.evaluation_split.labels
    arrays: dict[str, np.ndarray] = {}

    order = np.linspace(0, len(codes) - 1, min(SCATTER_POINTS, len(codes))).astype(int)
    shown_codes = codes[order]
    if codes.shape[1] == 2:
        arrays["codes_2d"] = shown_codes
    else:
        arrays["codes_2d"] = _project(shown_codes, _principal_plane(codes))
    if labels is not None:
        arrays["codes_labels"] = labels[order].astype(np.int64)

    prior = model.sample(SCATTER_POINTS if not images else 2 * SHOWN, seed=seed)
    ex_post = context.ex_post_sampler().sample(SCATTER_POINTS if not images else 2 * SHOWN,
                                               seed=seed)
    if not images:
        plane = _principal_plane(context.train_x())
        arrays["data_2d"] = _project(x[order], plane)
        arrays["prior_2d"] = _project(prior, plane)
        arrays["ex_post_2d"] = _project(ex_post, plane)
        arrays["reconstruction_error_per_feature"] = (
            (model.reconstruct(x) - x).reshape(len(x), -1) ** 2).mean(axis=0)
        return {key: np.asarray(value) for key, value in arrays.items()}

    inputs = x[:SHOWN]
    arrays["inputs"] = inputs
    arrays["reconstructions"] = model.reconstruct(inputs)
    arrays["prior_samples"] = prior
    arrays["ex_post_samples"] = ex_post
    start = codes[:INTERPOLATION_PAIRS]
    end = codes[INTERPOLATION_PAIRS: 2 * INTERPOLATION_PAIRS]
    fractions = np.linspace(0.0, 1.0, INTERPOLATION_STEPS, dtype=np.float32)
    paths = start[:, None] + fractions[None, :, None] * (end - start)[:, None]
    arrays["interpolations"] = model.decode(paths.reshape(-1, model.latent_dim))

    traversals, dimensions = model.traverse(x, dimensions=TRAVERSAL_DIMENSIONS,
                                            steps=TRAVERSAL_STEPS)
    arrays["traversals"] = traversals.reshape(-1, *model.input_shape)
    arrays["traversal_dimensions"] = dimensions.astype(np.int64)
    return {key: np.asarray(value) for key, value in arrays.items()}


def save_figure_arrays(directory, arrays: dict[str, np.ndarray]) -> None:
    import torch

    tensors = {}
    for key, value in arrays.items():
        dtype = np.int64 if value.dtype.kind in "iu" else np.float32
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=dtype))
    save_tensors(f"{directory}/{FIGURES_FILE}", tensors)


def load_figure_arrays(directory) -> dict[str, np.ndarray]:
    tensors, _ = load_tensors(f"{directory}/{FIGURES_FILE}")
    return {key: value.numpy() for key, value in tensors.items()}
