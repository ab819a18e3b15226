"""The built-in named datasets. Each registers itself with a one-line description."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .containers import Dataset, Split, assemble_dataset
from .download import DataSource
from .errors import DataError
from .readers import read_amat, read_idx
from .registry import DATASETS, register_dataset
from .validation import validate_array

# Fixed seeds: changing them changes published splits, so don't.
DIGITS_SPLIT_SEED = 0
DIGITS_TRAIN_FRACTION = 0.8
MNIST_DYNAMIC_TEST_SEED = 0

DIGIT_CLASSES = tuple(str(digit) for digit in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@register_dataset(
    "digits",
    "scikit-learn's bundled 8x8 digits: 1,797 grey images in [0, 1], labels 0-9, "
    "fixed 80/20 train/test split; no download",
)
def build_digits(source: DataSource) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
    # RandomState streams are frozen across numpy versions, so the split is stable.
    order = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(images))
    train_count = int(DIGITS_TRAIN_FRACTION * len(images))
    train_indices, test_indices = order[:train_count], order[train_count:]
    return assemble_dataset(
        "digits",
        Split(images[train_indices], labels[train_indices]),
        None,
        Split(images[test_indices], labels[test_indices]),
        description=_description("digits"),
        class_names=DIGIT_CLASSES,
    )


def _read_idx_split(folder: Path, prefix: str) -> Split:
    images_path = folder / f"{prefix}-images-idx3-ubyte.gz"
    labels_path = folder / f"{prefix}-labels-idx1-ubyte.gz"
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{images_path} should hold uint8 images (N, H, W); found {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{labels_path} should hold {len(images)} labels; found shape {labels.shape}"
        )
    x = images.astype(np.float32)[:, None, :, :]
    x /= 255.0
    return Split(x, labels.astype(np.int64))


def _read_idx_dataset(source: DataSource, folder_name: str, dataset: str) -> tuple[Split, Split]:
    folder = source.folder(folder_name, dataset)
    return _read_idx_split(folder, "train"), _read_idx_split(folder, "t10k")


@register_dataset(
    "mnist",
    "MNIST handwritten digits: 60k train / 10k test, 28x28 grey levels in [0, 1], labels 0-9",
    folder="mnist",
)
def build_mnist(source: DataSource) -> Dataset:
    train, test = _read_idx_dataset(source, "mnist", "mnist")
    return assemble_dataset(
        "mnist", train, None, test, description=_description("mnist"), class_names=DIGIT_CLASSES
    )


@register_dataset(
    "fashion-mnist",
    "Fashion-MNIST clothing images: 60k train / 10k test, 28x28 grey levels in [0, 1], 10 classes",
    folder="fashion-mnist",
)
def build_fashion_mnist(source: DataSource) -> Dataset:
    train, test = _read_idx_dataset(source, "fashion-mnist", "fashion-mnist")
    return assemble_dataset(
        "fashion-mnist",
        train,
        None,
        test,
        description=_description("fashion-mnist"),
        class_names=FASHION_CLASSES,
    )


@register_dataset(
    "mnist-dynamic",
    "MNIST binarized anew each time a batch is used (pixel ~ Bernoulli(grey level), IWAE "
    "setting); the test split is binarized once with a fixed seed so evaluation is stable",
    folder="mnist",
)
def build_mnist_dynamic(source: DataSource) -> Dataset:
    train, test = _read_idx_dataset(source, "mnist", "mnist-dynamic")
    random = np.random.RandomState(MNIST_DYNAMIC_TEST_SEED)
    fixed = (random.random_sample(test.x.shape) < test.x).astype(np.float32)
    return assemble_dataset(
        "mnist-dynamic",
        train,
        None,
        Split(fixed, test.labels),
        description=_description("mnist-dynamic"),
        dynamic_binarization=True,
        class_names=DIGIT_CLASSES,
    )


@register_dataset(
    "binarized-mnist",
    "statically binarized MNIST of Larochelle & Murray (2011): 50k train / 10k validation / "
    "10k test, 28x28 pixels in {0, 1}, no labels",
    folder="binarized-mnist",
)
def build_binarized_mnist(source: DataSource) -> Dataset:
    folder = source.folder("binarized-mnist", "binarized-mnist")
    splits = []
    for part in ("train", "valid", "test"):
        path = folder / f"binarized_mnist_{part}.amat"
        values = validate_array(read_amat(path), name=str(path), likelihood="bernoulli")
        if values.shape[1] != 784:
            raise DataError(f"{path} should have 784 values per line; found {values.shape[1]}")
        splits.append(Split(values.reshape(-1, 1, 28, 28), None))
    train, validation, test = splits
    return assemble_dataset(
        "binarized-mnist", train, validation, test, description=_description("binarized-mnist")
    )


def _description(name: str) -> str:
    return DATASETS[name].description
