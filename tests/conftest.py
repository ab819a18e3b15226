"""Shared fixtures: the real datasets beside the checkout, small data, no network."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


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
def rng():
    return np.random.default_rng(0)
