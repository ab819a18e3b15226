"""Anomaly-detection metrics: AUROC of anomaly scores (higher score = more anomalous)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.metrics import roc_auc_score


def auroc(scores: np.ndarray, is_anomalous: np.ndarray) -> float:
    """Area under the ROC curve for detecting anomalies from scores (ties count half)."""
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.asarray(is_anomalous, dtype=bool).reshape(-1)
    if values.shape != targets.shape:
        raise ValueError("scores and is_anomalous must have the same length")
    if targets.all() or not targets.any():
        raise ValueError("AUROC needs both normal and anomalous examples")
    return float(roc_auc_score(targets, values))


def one_class_auroc(scores: np.ndarray, labels: np.ndarray, normal_class) -> dict:
    """One-class protocol: examples of normal_class are normal, all others anomalous.

    Returns {"value", "normal_class", "n_normal", "n_anomalous"}.
    """
    targets = np.asarray(labels).reshape(-1) != normal_class
    normal = normal_class.item() if isinstance(normal_class, np.generic) else normal_class
    return {
        "value": auroc(scores, targets),
        "normal_class": normal,
        "n_normal": int((~targets).sum()),
        "n_anomalous": int(targets.sum()),
    }


def per_class_auroc(results_by_class: Mapping) -> dict:
    """AUROC per normal class and their mean.

    results_by_class maps each normal class to (scores_test, is_anomalous) obtained from a
    model trained on that class. Returns {"value": mean AUROC, "per_class": {str(class):
    AUROC}, "n_classes"}.
    """
    per_class = {
        str(name): auroc(scores, is_anomalous)
        for name, (scores, is_anomalous) in results_by_class.items()
    }
    if not per_class:
        raise ValueError("results_by_class is empty")
    return {
        "value": float(np.mean(list(per_class.values()))),
        "per_class": per_class,
        "n_classes": len(per_class),
    }
