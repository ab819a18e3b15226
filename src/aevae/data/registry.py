"""Named datasets, registered with a one-line description by a decorator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .containers import Dataset
from .download import DataSource
from .errors import DataError

# A builder gets where its files are (and whether it may download them).
Builder = Callable[[DataSource], Dataset]


@dataclass(frozen=True)
class RegisteredDataset:
    name: str
    description: str
    builder: Builder
    # The folder of the data directory its files live in; None for data made in memory.
    folder: str | None = None


DATASETS: dict[str, RegisteredDataset] = {}


def canonical_name(name: str) -> str:
    """Names are case-insensitive and treat "_" like "-"."""
    return name.strip().lower().replace("_", "-")


def register_dataset(name: str, description: str,
                     folder: str | None = None) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``name``; descriptions are one line. ``folder``:
    where in the data directory its files are (None for embedded or procedural data)."""
    key = canonical_name(name)
    if "\n" in description:
        raise ValueError(f"description of {name!r} must be one line")

    def decorate(builder: Builder) -> Builder:
        if key in DATASETS:
            raise ValueError(f"dataset {key!r} is already registered")
        DATASETS[key] = RegisteredDataset(key, description, builder, folder)
        return builder

    return decorate


def list_datasets() -> list[tuple[str, str]]:
    """(name, one-line description) of every named dataset, sorted by name."""
    return [(name, DATASETS[name].description) for name in sorted(DATASETS)]


def find_dataset(name: str) -> RegisteredDataset | None:
    return DATASETS.get(canonical_name(name))


def get_dataset(name: str) -> RegisteredDataset:
    found = find_dataset(name)
    if found is None:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    return found
