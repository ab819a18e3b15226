"""Where datasets live and where parsed copies may be cached."""

from __future__ import annotations

import os
import stat
from pathlib import Path

ENVIRONMENT_VARIABLE = "AEVAE_DATA_DIR"


def user_cache_directory() -> Path:
    """``$XDG_CACHE_HOME/aevae`` if that variable is set, else ``~/.cache/aevae``."""
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base).expanduser() / "aevae"
    return Path.home() / ".cache" / "aevae"


def data_directory(explicit: str | os.PathLike | None = None) -> Path:
    """The data directory: the explicit argument, else $AEVAE_DATA_DIR, else the user cache."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    from_environment = os.environ.get(ENVIRONMENT_VARIABLE)
    if from_environment:
        return Path(from_environment).expanduser()
    return user_cache_directory()


def describe_data_directory(explicit: str | os.PathLike | None = None) -> str:
    """Where :func:`data_directory` took its answer from, for error messages."""
    if explicit is not None and str(explicit) != "":
        return "data directory from the data_dir argument"
    if os.environ.get(ENVIRONMENT_VARIABLE):
        return f"data directory from ${ENVIRONMENT_VARIABLE}"
    return "data directory is the default user cache"


def is_writable_directory(path: Path) -> bool:
    """True if ``path`` is a directory we may write into.

    A directory without any write permission bit counts as read-only even for root,
    who could otherwise write there (the shared dataset folder relies on this).
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    if not stat.S_ISDIR(mode):
        return False
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return False
    return os.access(path, os.W_OK | os.X_OK)
