"""load_dataset: a named dataset or user data from a path, checked and split."""

from __future__ import annotations

import dataclasses
import numbers
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..checks import is_whole
from .containers import Dataset, Split, assemble_dataset, observed_range
from .directories import data_directory, describe_data_directory
from .download import DataSource
from .errors import DataError
from .readers import (
    ArrayData,
    read_amat,
    read_csv,
    read_image_folder,
    read_labels_file,
    read_npy,
    read_npz,
)
from .registry import find_dataset, list_datasets
from .validation import to_example_layout, validate_array, validate_labels

# In a run directory, the record of the data it was trained on (written by `aevae train` and by
# a study's runs, read by the CLI's commands on a run).
DATA_FILE = "data.json"


def absolute_path(path: str | None) -> str | None:
    """A user path made absolute, so a run still finds it from another directory."""
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def recorded_data(data: str) -> str:
    """How a run records its data: a registered name as is, a path made absolute."""
    return data if find_dataset(data) is not None else absolute_path(data)


def recorded_labels(labels: str | None) -> str | None:
    """A labels file is recorded as an absolute path; a CSV column or .npz key as given."""
    if labels is not None and Path(labels).expanduser().is_file():
        return absolute_path(labels)
    return labels


def _read_npy_data(path: Path, labels: str | None) -> ArrayData:
    return ArrayData(read_npy(path), None if labels is None else read_labels_file(labels), None)


def _read_amat_data(path: Path, labels: str | None) -> ArrayData:
    values = read_amat(path, cache=False)
    return ArrayData(values, None if labels is None else read_labels_file(labels), None)


def parse_image_size(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """(height, width) from "HxW" (e.g. "64x64"), or a pair as is; None stays None."""
    if text is None:
        return None
    if isinstance(text, str):
        height, separator, width = text.lower().partition("x")
        if separator and height.strip().isdigit() and width.strip().isdigit():
            size = (int(height), int(width))
        else:
            size = None
    else:
        size = tuple(text) if len(text) == 2 and all(is_whole(value)
                                                     for value in text) else None
    if size is None or min(size) < 1 or max(size) > 4096:
        raise DataError(f"image size must be HEIGHTxWIDTH in pixels (1 to 4096 each), e.g. "
                        f"64x64; got {text!r}")
    return int(size[0]), int(size[1])


def _read_folder_data(path: Path, labels: str | None,
                      image_size: tuple[int, int] | None = None) -> ArrayData:
    if labels is not None:
        raise DataError(
            f"the labels option does not apply to the image folder {path}: "
            "labels come from subfolder names"
        )
    return read_image_folder(path, size=image_size)


# File suffix -> reader(path, labels option).
USER_READERS: dict[str, Callable[[Path, str | None], ArrayData]] = {
    ".npy": _read_npy_data,
    ".npz": read_npz,
    ".csv": read_csv,
    ".tsv": read_csv,
    ".txt": read_csv,
    ".amat": _read_amat_data,
}


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    labels: str | None = None,
    download: bool = True,
    validation_fraction: float = 0.0,
    test_fraction: float = 0.0,
    seed: int = 0,
    limit: int | None = None,
    image_size: str | tuple[int, int] | None = None,
) -> Dataset:
    """Load a named dataset (see :func:`list_datasets`) or user data from a path.

    User data: ``.npy`` (labels from ``labels="labels.npy"``), ``.npz`` (keys ``x``/``data``
    and ``y``/``labels``), ``.csv`` (``labels`` = column name, ``"last"`` or ``"first"``)
    or a folder of images (labels from subfolder names). uint8 data is scaled to [0, 1].
    2-D data is tabular (N, D); images become (N, C, H, W). User data has no test split.

    ``test_fraction`` > 0 first moves that fraction of train to a test split when the data has
    none (user data); datasets with their own test split keep it. ``validation_fraction`` > 0
    then moves that fraction of the rest, chosen by ``seed``, to a validation split (datasets
    with a predefined validation split keep theirs). ``limit`` then keeps the first ``limit``
    train examples. ``image_size`` ("HxW" or (height, width)) resizes the images of an image
    folder as they are read (folders with images of several sizes need it). Every problem
    raises DataError.
    """
    for name, fraction in (("validation_fraction", validation_fraction),
                           ("test_fraction", test_fraction)):
        if not _is_real(fraction) or not 0.0 <= fraction < 1.0:
            raise DataError(f"{name} must be in [0, 1); got {fraction!r}")
    if limit is not None and (not is_whole(limit) or limit < 1):
        raise DataError(f"limit must be a positive number of examples; got {limit!r}")
    # RandomState takes seeds in [0, 2**32).
    if not is_whole(seed) or not 0 <= seed < 2**32:
        raise DataError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    text = os.fspath(name_or_path)
    registered = find_dataset(text)
    size = parse_image_size(image_size)
    if size is not None and (registered is not None or not Path(text).expanduser().is_dir()):
        raise DataError(f"the image size option resizes the images of a folder; {text} is not "
                        "an image folder")
    if registered is not None:
        if labels is not None:
            raise DataError(
                f"the labels option is for user data; dataset {registered.name!r} has its own"
            )
        source = DataSource(
            root=data_directory(data_dir),
            download=download,
            origin=describe_data_directory(data_dir),
        )
        dataset = registered.builder(source)
    else:
        dataset = _load_user_data(text, labels, size)
    return _finish(dataset, validation_fraction, test_fraction, seed, limit)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _load_user_data(text: str, labels: str | None,
                    image_size: tuple[int, int] | None = None) -> Dataset:
    path = Path(text).expanduser()
    known = ", ".join(name for name, _ in list_datasets())
    if not path.exists():
        if path.suffix or os.sep in text or "/" in text:
            raise DataError(f"no such file or folder: {path} (named datasets: {known})")
        raise DataError(
            f"unknown dataset {text!r}: not a named dataset ({known}) nor an existing file"
        )
    if path.is_dir():
        reader = _read_folder_data
    else:
        reader = USER_READERS.get(path.suffix.lower())
        if reader is None:
            formats = ", ".join(sorted(USER_READERS))
            raise DataError(
                f"cannot read {path}: unsupported file type {path.suffix!r}; "
                f"use {formats} or a folder of images"
            )
    data = reader(path, labels, image_size) if image_size is not None else reader(path, labels)
    x = validate_array(data.x, name=str(path))
    if np.asarray(data.x).dtype == np.uint8:
        x /= 255.0
    if data.lengths is None:  # padded sequences keep their (N, steps, features) layout
        x = to_example_layout(x, name=str(path))
    label_values, class_names = None, data.class_names
    if data.labels is not None:
        label_values, names_from_values = validate_labels(
            data.labels, len(x), name=f"labels for {path}"
        )
        class_names = class_names or names_from_values
    name = path.name if path.is_dir() else path.stem
    shape = tuple(int(size) for size in x.shape[1:])
    feature_names = data.feature_names if shape == (len(data.feature_names or ()),) else None
    return assemble_dataset(
        name,
        Split(x, label_values, lengths=data.lengths),
        None,
        None,
        description=f"user data from {path}: {len(x)} examples of shape {shape}"
        + ("" if data.lengths is None else " (padded sequences with lengths)"),
        class_names=class_names,
        feature_names=feature_names,
    )


def _finish(dataset: Dataset, validation_fraction: float, test_fraction: float, seed: int,
            limit: int | None) -> Dataset:
    train, validation, test = dataset.train, dataset.validation, dataset.test
    if test_fraction > 0.0 and test is None:
        # Its own stream, so adding a test split does not reshuffle the validation choice.
        train, test = _carve_split(train, test_fraction, (seed + 1_000_003) % 2**32,
                                   "test_fraction")
    if validation_fraction > 0.0:
        if validation is not None:
            warnings.warn(
                f"dataset {dataset.name!r} has a predefined validation split; "
                "validation_fraction is ignored",
                stacklevel=3,
            )
        else:
            train, validation = _carve_split(train, validation_fraction, seed,
                                                  "validation_fraction")
    if limit is not None and limit < len(train):
        train = train.take(np.arange(limit))
    splits = {"train": train, "validation": validation, "test": test}
    checked = {
        key: None
        if split is None
        else dataclasses.replace(split, x=validate_array(split.x, name=f"{dataset.name} {key}"))
        for key, split in splits.items()
    }
    return dataclasses.replace(dataset, **checked, value_range=observed_range(checked["train"].x))


def carved_indices(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved) of ``count`` examples: a seeded random ``fraction`` carved out, the rest
    kept, each sorted so both keep the examples' order. Every split of a data set (a loaded
    one's, a stream's) is carved by this."""
    carved = max(1, round(fraction * count))
    order = np.random.RandomState(seed).permutation(count)
    return np.sort(order[carved:]), np.sort(order[:carved])


def some_of(indices: np.ndarray, most: int, seed: int) -> np.ndarray:
    """At most ``most`` of sorted ``indices``, drawn at random (not the first ones: a file's
    order may follow a factor), still sorted."""
    if len(indices) <= most:
        return indices
    return np.sort(np.random.RandomState(seed).choice(indices, most, replace=False))


def _carve_split(train: Split, fraction: float, seed: int, name: str
                      ) -> tuple[Split, Split]:
    """(rest, carved): a seeded random ``fraction`` of train moved to a new split."""
    kept, carved = carved_indices(len(train), fraction, seed)
    if not len(kept):
        raise DataError(f"{name} {fraction} of {len(train)} examples leaves none for training")
    return train.take(kept), train.take(carved)
