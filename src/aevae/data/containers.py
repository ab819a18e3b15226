"""The Split and Dataset containers returned by load_dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import DataError


@dataclass(repr=False)
class Split:
    """Examples ``x`` (float32, shape (N, *shape)) and optional int64 ``labels`` (N,)."""

    x: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.x):
            raise DataError(
                f"labels have {len(self.labels)} entries but the data has {len(self.x)} examples"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, indices: np.ndarray | slice) -> Split:
        """The examples at ``indices`` (a copy for index arrays, a view for slices)."""
        labels = None if self.labels is None else self.labels[indices]
        return Split(x=self.x[indices], labels=labels)

    def __repr__(self) -> str:
        labels = "None" if self.labels is None else f"int64{tuple(self.labels.shape)}"
        return f"Split(x={self.x.dtype}{tuple(self.x.shape)}, labels={labels})"


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
    )
