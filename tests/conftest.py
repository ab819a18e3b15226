"""Shared fixtures: the real datasets beside the checkout, small data, no network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The tests use small tensors: on shared cores a second OpenMP/BLAS thread mostly
    # busy-waits (measured up to 10x slower), and one thread keeps results reproducible.
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Point the user cache at a temporary folder; the data directory at the shared datasets.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    if "AEVAE_DATA_DIR" not in os.environ and SHARED_DATASETS.is_dir():
        monkeypatch.setenv("AEVAE_DATA_DIR", str(SHARED_DATASETS))


@pytest.fixture(scope="session")
def digits():
    from aevae.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def poison_loss():
    """``poison_loss(model)``: from then on the model's loss is NaN, so training diverges."""

    def poison(model):
        original = model.loss

        def poisoned(*args, **kwargs):
            output = original(*args, **kwargs)
            output.loss = output.loss * float("nan")
            return output

        model.loss = poisoned
        return model

    return poison


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_budget():
    """A study budget for tests: two epochs, small evaluation samples."""
    from aevae.study.settings import Budget

    return Budget(
        "tiny", "for tests", epochs=2, batch_size=128, learning_rate=1e-3, patience=5,
        evaluation={
            "importance_samples": 20, "likelihood_examples": 100, "bound_samples": (1,),
            "generated_samples": 300, "max_examples": 200, "reference_images": 300,
            "interpolation_pairs": 20, "anomaly_training_epochs": 1,
            "anomaly_training_examples": 50, "anomaly_importance_samples": 5,
            "anomaly_classes": 2, "silhouette_examples": 200,
            "disentanglement_train_points": 200, "disentanglement_test_points": 100,
            "disentanglement_dci_trees": 5, "manipulation_examples": 100,
            "variation_examples": 20, "variations": 4,
        },
    )


class Campaign:
    """What the reliability campaign counts: one JSON line per case tried, appended to the file
    AEVAE_CAMPAIGN_LOG names (scripts/reliability_report.py reads it); nothing without it."""

    def __init__(self, path: str | None):
        self.path = path

    def record(self, group: str, target: str, outcome: str, **details) -> None:
        if not self.path:
            return
        line = json.dumps({"group": group, "target": target, "outcome": outcome, **details})
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


@pytest.fixture(scope="session")
def campaign() -> Campaign:
    return Campaign(os.environ.get("AEVAE_CAMPAIGN_LOG"))


@pytest.fixture
def load_benchmark():
    """A script of benchmarks/ as a module: ``load_benchmark("labels")``."""
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def isolated_data_environment(monkeypatch, tmp_path):
    """No network, no $AEVAE_DATA_DIR, and a private user cache (for the data tests)."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.delenv("AEVAE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
