"""Shared helpers for the metric cores: seeds, array checks, chunked distances."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

SeedLike = int | np.random.Generator

# Largest number of float64 entries held in one distance block (64 MiB).
MAX_BLOCK_ENTRIES = 2**23


def make_generator(seed: SeedLike) -> np.random.Generator:
    """Return a numpy Generator from an int seed or pass a Generator through."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or numpy.random.Generator, got {type(seed)!r}")
    return np.random.default_rng(int(seed))


def seed_record(seed: SeedLike) -> int | str:
    """JSON-friendly echo of a seed ('generator' when a Generator was passed)."""
    if isinstance(seed, np.random.Generator):
        return "generator"
    return int(seed)


def sklearn_random_state(seed: SeedLike) -> int:
    """Deterministic int random_state for sklearn, derived from the seed."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**31 - 1))
    return int(seed)


def as_2d(array: np.ndarray, name: str) -> np.ndarray:
    """Float64 copy of an (N, D) array; (N,) becomes (N, 1), (N, ...) is flattened."""
    values = np.asarray(array, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    elif values.ndim > 2:
        values = values.reshape(values.shape[0], -1)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains non-finite values")
    return values


def subsample(values: np.ndarray, max_count: int | None, generator: np.random.Generator):
    """Random subset of rows (without replacement) when there are more than max_count."""
    if max_count is None or values.shape[0] <= max_count:
        return values
    index = np.sort(generator.choice(values.shape[0], size=max_count, replace=False))
    return values[index]


def chunk_rows(n_rows: int, n_columns: int) -> int:
    """Rows per block so that a block of n_columns distances stays bounded."""
    return max(1, min(n_rows, MAX_BLOCK_ENTRIES // max(1, n_columns)))


def squared_distance_blocks(
    a: np.ndarray, b: np.ndarray, chunk_size: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start_row, block) where block[i, j] = ||a[start + i] - b[j]||^2."""
    size = chunk_size or chunk_rows(a.shape[0], b.shape[0])
    b_norms = np.einsum("ij,ij->i", b, b)
    for start in range(0, a.shape[0], size):
        rows = a[start : start + size]
        row_norms = np.einsum("ij,ij->i", rows, rows)
        block = row_norms[:, None] + b_norms[None, :] - 2.0 * (rows @ b.T)
        np.maximum(block, 0.0, out=block)
        yield start, block


def neighbour_radii(values: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Distance from each row to its k-th nearest other row (self excluded), for every k in
    ``ks``, in one pass over the pairwise distances."""
    n_rows = values.shape[0]
    if not ks or min(ks) < 1 or max(ks) >= n_rows:
        raise ValueError(f"k must be in [1, {n_rows - 1}], got {sorted(ks)}")
    result = {k: np.empty(n_rows) for k in ks}
    for start, block in squared_distance_blocks(values, values):
        rows = np.arange(block.shape[0])
        block[rows, start + rows] = np.inf
        stop = start + block.shape[0]
        if max(ks) == 1:  # the row's minimum
            result[1][start:stop] = block.min(axis=1)
            continue
        # The k smallest of each row, in order: exact, and a few times quicker than np.partition.
        nearest = torch.topk(torch.from_numpy(block), max(ks), dim=1, largest=False).values
        for k in ks:
            result[k][start:stop] = nearest[:, k - 1].numpy()
    return {k: np.sqrt(value) for k, value in result.items()}


def distinct_rows(values: np.ndarray) -> np.ndarray:
    """``values`` without repeated rows (as given when none repeats). Spacings between data
    points are measured between distinct ones: a row repeated six times would otherwise make
    every nearest-neighbour distance zero, and figures divided by it some 1e7."""
    unique = np.unique(values, axis=0)
    return unique if len(unique) < len(values) else values


def mean_spacing(values: np.ndarray) -> float:
    """Mean distance from each distinct row to its nearest other one (0 with one row)."""
    distinct = distinct_rows(values)
    return float(kth_neighbour_distances(distinct, 1).mean()) if len(distinct) > 1 else 0.0


def kth_neighbour_distances(values: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (self excluded)."""
    return neighbour_radii(values, (k,))[k]


def nearest_distances(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Distance from each query row to its nearest reference row."""
    result = np.empty(queries.shape[0])
    for start, block in squared_distance_blocks(queries, reference):
        result[start : start + block.shape[0]] = block.min(axis=1)
    return np.sqrt(result)
