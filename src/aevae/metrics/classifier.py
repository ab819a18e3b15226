"""A small classifier trained on a dataset's labels, used as a feature extractor for
sample-quality metrics (Fréchet distance, precision/recall, ...) and for classifier
statistics of generated samples.

Architectures (version ARCHITECTURE_VERSION):
  * "mlp" for flat vectors and small images (e.g. 8x8 digits):
    flatten -> 256 -> ReLU -> 128 -> ReLU -> classes,
  * "cnn" for images of side >= 16 (e.g. 28x28 MNIST):
    conv 16 -> pool -> conv 32 -> pool -> 128 -> ReLU -> classes.
The features are the 128 activations feeding the last linear layer.

Weights are cached as safetensors plus a JSON config (never pickle), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import atomic_write_text, load_tensors, read_json, save_tensors

ARCHITECTURE_VERSION = 1
FEATURE_DIM = 128


def choose_architecture(input_shape: tuple[int, ...]) -> str:
    """ "cnn" for (C, H, W) images with H, W >= 16, otherwise "mlp"."""
    if len(input_shape) == 3 and min(input_shape[1:]) >= 16:
        return "cnn"
    return "mlp"


def _normalise_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-example shape; a 2-D (H, W) image gets a channel axis."""
    return (1, *shape) if len(shape) == 2 else tuple(shape)


class _Network(nn.Module):
    def __init__(self, architecture: str, input_shape: tuple[int, ...], n_classes: int):
        super().__init__()
        if architecture == "mlp":
            self.body = nn.Sequential(
                nn.Flatten(),
                nn.Linear(math.prod(input_shape), 256),
                nn.ReLU(),
                nn.Linear(256, FEATURE_DIM),
                nn.ReLU(),
            )
        elif architecture == "cnn":
            channels, height, width = input_shape
            self.body = nn.Sequential(
                nn.Conv2d(channels, 16, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(32 * (height // 4) * (width // 4), FEATURE_DIM),
                nn.ReLU(),
            )
        else:
            raise ValueError(f"unknown architecture {architecture!r}")
        self.head = nn.Linear(FEATURE_DIM, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class FeatureClassifier:
    """A trained classifier: .features(x), .probabilities(x), .test_accuracy, .config."""

    def __init__(self, network: _Network, config: dict):
        self.network = network.eval()
        self.config = dict(config)

    @property
    def test_accuracy(self) -> float | None:
        return self.config.get("test_accuracy")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config["input_shape"])

    def _batches(self, x: np.ndarray, batch_size: int):
        values = np.asarray(x, dtype=np.float32)
        values = values.reshape(values.shape[0], *self.input_shape)
        with torch.no_grad():
            for start in range(0, values.shape[0], batch_size):
                yield torch.from_numpy(np.ascontiguousarray(values[start : start + batch_size]))

    def features(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """(N, 128) penultimate-layer activations as float32 numpy."""
        parts = [self.network.body(batch).numpy() for batch in self._batches(x, batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, FEATURE_DIM), np.float32)

    def logits(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """(N, C) logits as float32 numpy."""
        parts = [self.network(batch).numpy() for batch in self._batches(x, batch_size)]
        return np.concatenate(parts)

    def probabilities(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """(N, C) softmax class probabilities as float64 numpy (rows sum to 1)."""
        return _softmax(self.logits(x, batch_size))

    def features_and_probabilities(self, x: np.ndarray,
                                   batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """``features(x)`` and ``probabilities(x)`` from one pass through the network (the
        same numbers: the head reads the features batch by batch, as ``forward`` does)."""
        features, logits = [], []
        for batch in self._batches(x, batch_size):
            hidden = self.network.body(batch)
            features.append(hidden.numpy())
            logits.append(self.network.head(hidden).numpy())
        if not features:
            return (np.zeros((0, FEATURE_DIM), np.float32),
                    np.zeros((0, self.network.head.out_features)))
        return np.concatenate(features), _softmax(np.concatenate(logits))

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        predictions = self.logits(x).argmax(axis=1)
        return float(np.mean(predictions == np.asarray(labels)))

    def save(self, weights_path: str | os.PathLike, config_path: str | os.PathLike) -> None:
        """Write weights (safetensors) then config (JSON), each atomically."""
        save_tensors(weights_path, self.network.state_dict())
        atomic_write_text(config_path, json.dumps(self.config, indent=2, sort_keys=True))

    @classmethod
    def load(
        cls, weights_path: str | os.PathLike, config_path: str | os.PathLike
    ) -> FeatureClassifier:
        config = read_json(config_path)
        if config.get("version") != ARCHITECTURE_VERSION:
            raise ValueError(f"classifier version {config.get('version')} is not supported")
        network = _Network(
            config["architecture"], tuple(config["input_shape"]), config["n_classes"]
        )
        network.load_state_dict(load_tensors(weights_path)[0], strict=True)
        return cls(network, config)


def _softmax(logits: np.ndarray) -> np.ndarray:
    values = logits.astype(np.float64)
    values -= values.max(axis=1, keepdims=True)
    exponentials = np.exp(values)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def _prepare(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(x, dtype=np.float32)
    targets = np.asarray(labels)
    if values.ndim < 2 or values.shape[0] != targets.shape[0]:
        raise ValueError("x must be (N, ...) with one label per example")
    if not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0:
        raise ValueError("labels must be non-negative integers")
    return values, targets.astype(np.int64)


def train_feature_classifier(
    x: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    epochs: int | None = None,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    test_x: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    holdout_fraction: float = 0.1,
    n_classes: int | None = None,
    min_steps: int = 600,
    architecture: str | None = None,
) -> FeatureClassifier:
    """Train a small classifier on (x, labels), deterministically from seed (CPU).

    Args:
        x: (N, *shape) float inputs in [0, 1]; (N, H, W) images get a channel axis.
        labels: (N,) integer class labels in [0, n_classes).
        seed: seeds weight initialisation, shuffling and the holdout split.
        epochs: passes over the data; None = enough for at least min_steps Adam steps
            (at least 3 epochs): about 3 epochs on MNIST, about 86 on 1.6k digits.
        batch_size, learning_rate: Adam settings.
        test_x, test_labels: held-out set for .test_accuracy; if absent, a random
            holdout_fraction of x is kept out of training and used instead (0 = none).
        n_classes: number of classes; None = max label + 1.
        architecture: "mlp" or "cnn"; None = choose_architecture(shape).
    """
    values, targets = _prepare(x, labels)
    input_shape = _normalise_shape(values.shape[1:])
    values = values.reshape(values.shape[0], *input_shape)
    classes = int(targets.max()) + 1 if n_classes is None else int(n_classes)
    chosen = architecture or choose_architecture(input_shape)

    test_source = None
    if test_x is not None and test_labels is not None:
        evaluation_x, evaluation_labels = _prepare(test_x, test_labels)
        test_source = "given"
    elif holdout_fraction > 0.0:
        order = np.random.default_rng(seed).permutation(values.shape[0])
        n_holdout = max(1, int(round(holdout_fraction * values.shape[0])))
        evaluation_x, evaluation_labels = values[order[:n_holdout]], targets[order[:n_holdout]]
        values, targets = values[order[n_holdout:]], targets[order[n_holdout:]]
        test_source = "holdout"

    n_train = values.shape[0]
    steps_per_epoch = math.ceil(n_train / batch_size)
    n_epochs = epochs if epochs is not None else max(3, math.ceil(min_steps / steps_per_epoch))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = _Network(chosen, input_shape, classes)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    inputs = torch.from_numpy(np.ascontiguousarray(values))
    outputs = torch.from_numpy(targets)
    network.train()
    for _ in range(n_epochs):
        order = torch.randperm(n_train, generator=generator)
        for start in range(0, n_train, batch_size):
            index = order[start : start + batch_size]
            loss = nn.functional.cross_entropy(network(inputs[index]), outputs[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    config = {
        "version": ARCHITECTURE_VERSION,
        "architecture": chosen,
        "input_shape": list(input_shape),
        "n_classes": classes,
        "feature_dim": FEATURE_DIM,
        "seed": int(seed),
        "epochs": int(n_epochs),
        "batch_size": int(batch_size),
        "learning_rate": float(learning_rate),
        "n_train": int(n_train),
        "test_source": test_source,
        "test_accuracy": None,
    }
    classifier = FeatureClassifier(network, config)
    if test_source is not None:
        classifier.config["test_accuracy"] = classifier.accuracy(evaluation_x, evaluation_labels)
    return classifier


def _array_digest(array: np.ndarray | None) -> str | None:
    if array is None:
        return None
    values = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(json.dumps([list(values.shape), values.dtype.str]).encode())
    digest.update(memoryview(values.reshape(-1)).cast("B"))
    return digest.hexdigest()


def classifier_cache_key(
    dataset_key: str, x: np.ndarray, labels: np.ndarray, seed: int, **settings
) -> str:
    """File stem: sanitised dataset key + hash of data, labels, settings and version."""
    payload = {
        "dataset_key": dataset_key,
        "x": _array_digest(np.asarray(x, dtype=np.float32)),
        "labels": _array_digest(np.asarray(labels, dtype=np.int64)),
        "version": ARCHITECTURE_VERSION,
        "seed": int(seed),
        "settings": {
            name: _array_digest(np.asarray(value)) if isinstance(value, np.ndarray) else value
            for name, value in sorted(settings.items())
        },
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    safe_key = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset_key)
    return f"{safe_key}-v{ARCHITECTURE_VERSION}-{digest[:16]}"


def load_or_train_feature_classifier(
    dataset_key: str,
    x: np.ndarray,
    labels: np.ndarray,
    cache_dir: str | os.PathLike,
    seed: int = 0,
    **training,
) -> FeatureClassifier:
    """Load a cached classifier for this data, or train one and cache it.

    Files are cache_dir/<key>.safetensors and cache_dir/<key>.json, where <key> is from
    classifier_cache_key (dataset key, hashes of x and labels, training settings including
    any test set, seed, architecture version). The JSON config is written last, so a
    present config marks a complete entry; unreadable entries are retrained.
    training: keyword arguments of train_feature_classifier.
    """
    stem = classifier_cache_key(dataset_key, x, labels, seed, **training)
    weights_path = Path(cache_dir) / f"{stem}.safetensors"
    config_path = Path(cache_dir) / f"{stem}.json"
    if weights_path.exists() and config_path.exists():
        try:
            classifier = FeatureClassifier.load(weights_path, config_path)
            if classifier.config.get("cache_key") == stem:
                return classifier
        except Exception:  # corrupt or incompatible entry: retrain and overwrite
            pass
    classifier = train_feature_classifier(x, labels, seed=seed, **training)
    classifier.config["cache_key"] = stem
    classifier.config["dataset_key"] = dataset_key
    classifier.save(weights_path, config_path)
    return classifier
