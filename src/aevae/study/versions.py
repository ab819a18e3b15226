"""Which code trained a run. A run store outlives the code that filled it, so each run records
the versions that trained it, and a study compares them with its own install's.

Plain Python at import (no torch), so the report's text can compare versions cheaply."""

from __future__ import annotations

import functools
import hashlib
import platform
from pathlib import Path

# The versions that decide a run's numbers: another of any of these can train other weights
# from the same seed. Python and the platform are recorded but not compared (a shared store on
# a cluster mixes nodes).
REPRODUCING_VERSIONS = ("aevae", "aevae source", "torch", "numpy", "scikit-learn")


def versions() -> dict:
    """This install's versions, as a run records them (a copy: the caller may keep it)."""
    return dict(_installed())


@functools.cache
def _installed() -> dict:
    """Fixed for a process; platform.platform() alone reads the interpreter's binary, and a
    study compares every run it reuses against these."""
    import numpy as np
    import sklearn
    import torch

    from .. import __version__

    return {"aevae": __version__, "aevae source": source_fingerprint(),
            "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version(),
            "platform": platform.platform(terse=True)}


def other_versions(recorded: dict | None, current: dict | None = None) -> list[str]:
    """The reproducing versions in which a run's record differs from ``current`` (default:
    this install); a version the record lacks (runs older than the key) counts as different."""
    current = versions() if current is None else current
    recorded = recorded or {}
    return [key for key in REPRODUCING_VERSIONS
            if key in current and recorded.get(key) != current[key]]


@functools.cache
def source_fingerprint() -> str:
    """A hash of aevae's own Python files: between releases (a checkout, an edited install) the
    version number alone does not say which code trained a run."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
