"""Latent-structure metrics on codes with labels: linear probe, k-NN, clustering, silhouette."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._utils import SeedLike, as_2d, make_generator, seed_record, sklearn_random_state

LabelBudgets = Sequence[int | None]


def select_per_class(
    labels: np.ndarray, per_class: int | None, generator: np.random.Generator
) -> np.ndarray:
    """Sorted indices of per_class random examples of each class (all if None or fewer)."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(labels.shape[0])
    chosen = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        count = min(per_class, members.size)
        chosen.append(generator.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen))


def _budget_name(per_class: int | None) -> str:
    return "all" if per_class is None else str(int(per_class))


def _labels_for(labels, codes: np.ndarray, name: str) -> np.ndarray:
    """One label per code, as a 1-D array (a column of labels broadcast against the codes,
    and a shorter list trained on a prefix, silently)."""
    values = np.asarray(labels)
    if values.ndim != 1 or len(values) != len(codes):
        raise ValueError(f"{name}_labels: expected one label per code ({len(codes)}), got "
                         f"shape {values.shape}")
    return values


def _probe(
    make_model,
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    labels_per_class: LabelBudgets,
    seed: SeedLike,
) -> tuple[dict, dict, dict]:
    """(accuracy, examples used, unmet) per label budget; a budget some class cannot meet
    has None figures and its reason in ``unmet``."""
    generator = make_generator(seed)
    train_values = as_2d(train_codes, "train_codes")
    test_values = as_2d(test_codes, "test_codes")
    train_targets = _labels_for(train_labels, train_values, "train")
    test_targets = _labels_for(test_labels, test_values, "test")
    accuracy, n_train, unmet = {}, {}, {}
    smallest = int(np.unique(train_targets, return_counts=True)[1].min())
    for per_class in labels_per_class:
        name = _budget_name(per_class)
        if per_class is not None and smallest < per_class:
            # "100 labels per class" measured with fewer would be another figure under its name.
            accuracy[name] = n_train[name] = None
            unmet[name] = (f"a class has only {smallest} labelled training example(s), fewer "
                           f"than {per_class}")
            continue
        index = select_per_class(train_targets, per_class, generator)
        model = make_pipeline(StandardScaler(), make_model(index.size))
        model.fit(train_values[index], train_targets[index])
        accuracy[name] = float(np.mean(model.predict(test_values) == test_targets))
        n_train[name] = int(index.size)
    return accuracy, n_train, unmet


def linear_probe_accuracy(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    labels_per_class: LabelBudgets = (10, 100, None),
    seed: SeedLike = 0,
    max_iter: int = 1000,
    regularisation: float = 1.0,
) -> dict:
    """Test accuracy of logistic regression on standardised codes, per label budget.

    For each budget, that many random training examples per class (None = all) are used;
    the scaler is fitted on those examples only. regularisation is sklearn's C. A budget some
    class has too few examples for is not measured: its figures are None and "unmet" says why.

    Returns {"accuracy": {"10": .., "100": .., "all": ..}, "n_train": {...},
    "labels_per_class", "max_iter", "regularisation", "seed"}.
    """
    random_state = sklearn_random_state(seed)

    def make_model(_: int) -> LogisticRegression:
        return LogisticRegression(C=regularisation, max_iter=max_iter, random_state=random_state)

    accuracy, n_train, unmet = _probe(
        make_model, train_codes, train_labels, test_codes, test_labels, labels_per_class, seed
    )
    return {
        "accuracy": accuracy,
        "n_train": n_train,
        **({"unmet": unmet} if unmet else {}),
        "labels_per_class": list(labels_per_class),
        "max_iter": int(max_iter),
        "regularisation": float(regularisation),
        "seed": seed_record(seed),
    }


def knn_accuracy(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    labels_per_class: LabelBudgets = (10, 100, None),
    seed: SeedLike = 0,
    k: int = 5,
) -> dict:
    """Test accuracy of a k-NN classifier on standardised codes, per label budget.

    Same protocol as linear_probe_accuracy; k is lowered to the number of selected
    training examples when fewer are available ("k_used" reports it).
    """
    used = {}

    def make_model(n_available: int) -> KNeighborsClassifier:
        return KNeighborsClassifier(n_neighbors=min(k, n_available))

    accuracy, n_train, unmet = _probe(
        make_model, train_codes, train_labels, test_codes, test_labels, labels_per_class, seed
    )
    for name, count in n_train.items():
        used[name] = None if count is None else min(k, count)
    return {
        "accuracy": accuracy,
        "n_train": n_train,
        **({"unmet": unmet} if unmet else {}),
        "labels_per_class": list(labels_per_class),
        "k": int(k),
        "k_used": used,
        "seed": seed_record(seed),
    }


def hungarian_accuracy(labels: np.ndarray, assignments: np.ndarray) -> float:
    """Accuracy of cluster assignments under the best one-to-one cluster-to-class mapping.

    Clusters left unmatched (more clusters than classes) count as errors.
    """
    labels, assignments = np.asarray(labels), np.asarray(assignments)
    if labels.ndim != 1 or labels.shape != assignments.shape or len(labels) == 0:
        raise ValueError(f"hungarian_accuracy needs one assignment per label (at least one), "
                         f"got {labels.shape} labels and {assignments.shape} assignments")
    _, label_index = np.unique(labels, return_inverse=True)
    _, cluster_index = np.unique(assignments, return_inverse=True)
    table = np.zeros((cluster_index.max() + 1, label_index.max() + 1), dtype=np.int64)
    np.add.at(table, (cluster_index, label_index), 1)
    rows, columns = linear_sum_assignment(table, maximize=True)
    return float(table[rows, columns].sum() / labels.shape[0])


def clustering(
    codes: np.ndarray,
    labels: np.ndarray,
    n_clusters: int | None = None,
    seed: SeedLike = 0,
    n_init: int = 10,
) -> dict:
    """k-means on the codes compared with the labels.

    n_clusters defaults to the number of classes. Returns {"accuracy" (Hungarian-matched),
    "nmi", "ari", "n_clusters", "n_init", "seed"}.
    """
    values = as_2d(codes, "codes")
    targets = _labels_for(labels, values, "clustering")
    clusters = int(np.unique(targets).size) if n_clusters is None else int(n_clusters)
    model = KMeans(n_clusters=clusters, n_init=n_init, random_state=sklearn_random_state(seed))
    assignments = model.fit_predict(values)
    return {
        "accuracy": hungarian_accuracy(targets, assignments),
        "nmi": float(normalized_mutual_info_score(targets, assignments)),
        "ari": float(adjusted_rand_score(targets, assignments)),
        "n_clusters": clusters,
        "n_init": int(n_init),
        "seed": seed_record(seed),
    }


def silhouette(
    codes: np.ndarray, labels: np.ndarray, sample_size: int | None = 5000, seed: SeedLike = 0
) -> dict:
    """Silhouette score of the label partition in code space (Euclidean), in [-1, 1].

    Uses a random subset of sample_size examples when there are more (None = all).
    """
    values = as_2d(codes, "codes")
    targets = np.asarray(labels)
    size = None if sample_size is None or sample_size >= values.shape[0] else int(sample_size)
    value = silhouette_score(
        values, targets, sample_size=size, random_state=sklearn_random_state(seed)
    )
    return {"value": float(value), "sample_size": sample_size, "seed": seed_record(seed)}
