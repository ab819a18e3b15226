"""The Split and Dataset containers returned by load_dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import DataError

if TYPE_CHECKING:
    from .ground_truth import GroundTruthData


@dataclass(repr=False)
class Split:
    """Examples ``x`` (float32, shape (N, *shape)), optional int64 ``labels`` (N,), for
    ground-truth data optional int ``factors`` (N, n_factors): each example's factor indices,
    and for sequences (x shaped (N, steps, features), padded) optional int64 ``lengths`` (N,):
    how many steps of each are real."""

    x: np.ndarray
    labels: np.ndarray | None = None
    factors: np.ndarray | None = None
    lengths: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.x):
            raise DataError(
                f"labels have {len(self.labels)} entries but the data has {len(self.x)} examples"
            )
        if self.factors is not None and (
            self.factors.ndim != 2 or len(self.factors) != len(self.x)
        ):
            raise DataError(
                f"factors must have shape ({len(self.x)}, n_factors); got {self.factors.shape}"
            )
        if self.lengths is not None:
            steps = self.x.shape[1] if self.x.ndim >= 2 else 0
            if (self.lengths.shape != (len(self.x),) or len(self.x) and (
                    self.lengths.min() < 1 or self.lengths.max() > steps)):
                raise DataError(f"lengths must be {len(self.x)} step counts in 1..{steps}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, indices: np.ndarray | slice) -> Split:
        """The examples at ``indices`` (a copy for index arrays, a view for slices)."""
        def pick(values):
            return None if values is None else values[indices]

        return Split(x=self.x[indices], labels=pick(self.labels), factors=pick(self.factors),
                     lengths=pick(self.lengths))

    def __repr__(self) -> str:
        labels = "None" if self.labels is None else f"int64{tuple(self.labels.shape)}"
        factors = "" if self.factors is None else f", factors={tuple(self.factors.shape)}"
        lengths = "" if self.lengths is None else f", lengths={tuple(self.lengths.shape)}"
        return (f"Split(x={self.x.dtype}{tuple(self.x.shape)}, labels={labels}{factors}"
                f"{lengths})")


@dataclass(repr=False)
class Dataset:
    """A named dataset with its splits and what a model needs to know about it."""

    name: str
    train: Split
    validation: Split | None
    test: Split | None
    shape: tuple[int, ...]
    dynamic_binarization: bool
    value_range: tuple[float, float]
    description: str
    class_names: tuple[str, ...] | None = None
    # Ground-truth datasets (dSprites): the factors' names and sizes, and the object that
    # samples fresh observations from factors for the disentanglement metrics.
    factor_names: tuple[str, ...] | None = None
    factor_sizes: tuple[int, ...] | None = None
    ground_truth: GroundTruthData | None = None
    # Tabular user data: the name of each feature (a CSV file's header), in column order.
    feature_names: tuple[str, ...] | None = None
    # Values rescaled from the data's own units (standardised): log |d prepared / d x| of one
    # example, which a log-density of the prepared values adds to be one in the data's units.
    log_jacobian: float | None = None

    def binarize(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample pixel ~ Bernoulli(value) if the dataset is dynamically binarized, else x.

        Call it on every batch each time the batch is used. Already binary data (such as
        the fixed test split of mnist-dynamic) passes through unchanged. The generator
        must live on the same device as ``x``.
        """
        if not self.dynamic_binarization:
            return x
        return torch.bernoulli(x, generator=generator)

    def splits(self) -> dict[str, Split]:
        """The splits that exist, by name (train, validation, test)."""
        named = {"train": self.train, "validation": self.validation, "test": self.test}
        return {key: split for key, split in named.items() if split is not None}

    def __repr__(self) -> str:
        parts = ", ".join(f"{key}={len(split)}" for key, split in self.splits().items())
        low, high = self.value_range
        return (
            f"Dataset(name={self.name!r}, {parts}, shape={self.shape}, "
            f"dynamic_binarization={self.dynamic_binarization}, "
            f"value_range=({low:g}, {high:g}))"
        )


def observed_range(x: np.ndarray) -> tuple[float, float]:
    return float(x.min()), float(x.max())


def assemble_dataset(
    name: str,
    train: Split,
    validation: Split | None,
    test: Split | None,
    *,
    description: str,
    dynamic_binarization: bool = False,
    class_names: tuple[str, ...] | None = None,
    factor_names: tuple[str, ...] | None = None,
    factor_sizes: tuple[int, ...] | None = None,
    ground_truth: GroundTruthData | None = None,
    feature_names: tuple[str, ...] | None = None,
) -> Dataset:
    """A Dataset whose shape and value range are read off the train split."""
    return Dataset(
        name=name,
        train=train,
        validation=validation,
        test=test,
        shape=tuple(int(size) for size in train.x.shape[1:]),
        dynamic_binarization=dynamic_binarization,
        value_range=observed_range(train.x),
        description=description,
        class_names=class_names,
        factor_names=factor_names,
        factor_sizes=factor_sizes,
        ground_truth=ground_truth,
        feature_names=feature_names,
    )
