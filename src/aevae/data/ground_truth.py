"""The ground-truth data protocol that the disentanglement metrics sample from.

A ground-truth dataset is a grid of discrete factors of variation (shape, scale, ...) and a
way to turn factor values into observations. The metrics only ever call the methods below, so
any dataset that implements ``sample_observations_from_factors`` (and sets the three
attributes) can be scored; nothing in the metrics knows about dSprites. The names follow
disentanglement_lib's ``GroundTruthData``, so its protocols read the same here.

Factors are always integer indices into each factor's values, an (N, n_factors) int64 array.
Grid points are numbered in mixed radix with the first factor slowest and the last fastest
(the order of the dSprites file: shape slowest, y position fastest).
"""

from __future__ import annotations

import numpy as np


class GroundTruthData:
    """Base class: factors sampled uniformly and independently, observations from factors.

    Subclasses set ``factor_names``, ``factor_sizes`` and ``observation_shape`` and implement
    :meth:`sample_observations_from_factors`. ``random_state`` is a numpy Generator; a dataset
    whose observations are a fixed function of the factors ignores it (and says so through
    ``deterministic = True``, which lets a metric encode each grid point once).
    """

    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    observation_shape: tuple[int, ...] = ()
    deterministic: bool = False

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def num_combinations(self) -> int:
        """Number of grid points (product of the factor sizes)."""
        return int(np.prod(self.factor_sizes, dtype=np.int64))

    def sample_factors(self, n: int, random_state: np.random.Generator) -> np.ndarray:
        """(n, n_factors) int64 factor indices, each factor uniform over its values."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        factors = np.empty((int(n), self.num_factors), dtype=np.int64)
        for column, size in enumerate(self.factor_sizes):
            factors[:, column] = random_state.integers(0, size, size=int(n))
        return factors

    def sample_observations_from_factors(
        self, factors: np.ndarray, random_state: np.random.Generator | None = None
    ) -> np.ndarray:
        """(N, *observation_shape) float32 observations for (N, n_factors) factor indices."""
        raise NotImplementedError

    def sample(
        self, n: int, random_state: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(factors, observations) for n grid points drawn uniformly."""
        factors = self.sample_factors(n, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def index_to_factors(self, indices) -> np.ndarray:
        """(N, n_factors) int64 factor indices of grid points ``indices`` (mixed radix)."""
        index = np.asarray(indices, dtype=np.int64)
        if index.ndim != 1:
            index = index.reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= self.num_combinations):
            raise ValueError(f"grid indices must lie in [0, {self.num_combinations})")
        factors = np.empty((index.size, self.num_factors), dtype=np.int64)
        rest = index.copy()
        for column in range(self.num_factors - 1, -1, -1):
            rest, factors[:, column] = np.divmod(rest, self.factor_sizes[column])
        return factors

    def factors_to_index(self, factors) -> np.ndarray:
        """(N,) int64 grid indices of (N, n_factors) factor indices; inverse of the above."""
        values = np.asarray(factors)
        if values.ndim == 1:
            values = values[None, :]
        values = self.check_factors(values)
        index = np.zeros(values.shape[0], dtype=np.int64)
        for column, size in enumerate(self.factor_sizes):
            index = index * size + values[:, column]
        return index

    def check_factors(self, factors: np.ndarray) -> np.ndarray:
        """``factors`` as int64 after checking its shape and ranges (ValueError otherwise)."""
        values = np.asarray(factors)
        if values.ndim != 2 or values.shape[1] != self.num_factors:
            raise ValueError(
                f"factors must have shape (N, {self.num_factors}), got {values.shape}"
            )
        if values.size and values.dtype.kind not in "iu":
            raise ValueError(f"factors must be integer indices, got dtype {values.dtype}")
        values = values.astype(np.int64, copy=False)
        if values.size:
            sizes = np.asarray(self.factor_sizes)
            if (values < 0).any() or (values >= sizes).any():
                raise ValueError(f"factor indices must lie in [0, size) for sizes {sizes.tolist()}")
        return values

    def describe(self) -> dict:
        """JSON-ready description of the grid (what the metrics echo in their results)."""
        return {
            "class": type(self).__name__,
            "factor_names": list(self.factor_names),
            "factor_sizes": [int(size) for size in self.factor_sizes],
            "observation_shape": [int(size) for size in self.observation_shape],
            "deterministic": bool(self.deterministic),
        }
