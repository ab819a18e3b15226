"""Atomic file writes and safetensors/JSON persistence. Nothing here unpickles anything."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensor_bytes
from safetensors.torch import save as save_tensor_bytes

# The files of a saved model, written by models.base and read by the training's run directory.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CorruptFileError(ValueError):
    """A file aevae reads is unreadable or has the wrong content. The message is one line that
    starts with the file's path; the command line prints it and exits with status 2."""


def new_file_mode(path: str | os.PathLike) -> int:
    """The mode a plain ``open(path, "w")`` would leave: the old file's, else 0o666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except OSError:
        pass
    # The umask can only be read by setting it; put it straight back.
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
        with os.fdopen(handle, "wb") as file:
            # mkstemp creates 0600; give the file the mode it would get without the rename.
            os.fchmod(file.fileno(), new_file_mode(path))
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:
            # Name the file being written (a full disk or a read-only folder), not the
            # temporary one; OSError(errno, ...) keeps the subclass (PermissionError, ...).
            reason = error.strerror or os.strerror(error.errno)
            raise OSError(error.errno, reason, os.fspath(path)) from None
        raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike):
    """A temporary file beside ``path`` to fill at leisure (a memory map, rows written in
    chunks): renamed over ``path`` when the block ends, removed if it raises. Yields its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
    os.close(handle)
    try:
        os.chmod(temporary, new_file_mode(path))
        yield Path(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:
            reason = error.strerror or os.strerror(error.errno)
            raise OSError(error.errno, reason, os.fspath(path)) from None
        raise


# atomic_write_bytes's temporary files: ".NAME." + mkstemp's 8 random characters + ".tmp".
TEMPORARY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` (absolute) or its closest ancestor that exists: where its folders would be
    made."""
    existing = Path(path).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def folders_to_make(path: str | os.PathLike) -> list[Path]:
    """The folders of ``path`` (absolute) that do not exist yet, innermost first: what
    making it creates, and what undoing that removes."""
    target, existing = Path(path).absolute(), nearest_existing(path)
    return [folder for folder in (target, *target.parents)
            if folder.is_relative_to(existing) and folder != existing]


def remove_temporary_files(directory: str | os.PathLike) -> int:
    """Delete the temporary files that writes killed half-way (SIGKILL, power loss) left in
    ``directory``; only call it where no other process is writing. Returns how many."""
    removed = 0
    for path in Path(directory).iterdir() if Path(directory).is_dir() else ():
        if TEMPORARY_NAME.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike):
    """Parse a JSON file; unreadable content raises CorruptFileError naming the file."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except RecursionError:
        raise CorruptFileError(f"{path}: not valid JSON (nested too deeply)") from None
    # ValueError also covers integers too long to convert, which json.JSONDecodeError does not.
    except ValueError as error:
        raise CorruptFileError(f"{path}: not valid JSON ({one_line(error, 200)})") from None


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict | None = None) -> None:
    """Save tensors (and JSON metadata under the key ``json``) atomically as safetensors."""
    prepared = {name: value.detach().cpu().contiguous().clone() for name, value in tensors.items()}
    header = None if metadata is None else {"json": json.dumps(metadata)}
    atomic_write_bytes(path, save_tensor_bytes(prepared, metadata=header))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Load a file written by ``save_tensors``: (tensors, metadata or None).

    A truncated or corrupt file raises CorruptFileError naming the file."""
    data = Path(path).read_bytes()
    try:
        tensors = load_tensor_bytes(data)
        header_length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_length])
        raw = (header.get("__metadata__") or {}).get("json")
        metadata = json.loads(raw) if raw is not None else None
    # Hostile bytes reach safetensors, torch and json: any failure there means a bad file (a
    # dtype safetensors knows but torch lacks is a KeyError, deep metadata a RecursionError).
    except (SafetensorError, ValueError, AttributeError, KeyError, TypeError, RuntimeError,
            OverflowError, RecursionError, MemoryError) as error:
        detail = one_line(error, 200) or type(error).__name__
        raise CorruptFileError(
            f"{path}: not a valid safetensors file (truncated or corrupt: {detail})"
        ) from None
    return tensors, metadata


def one_line(error: BaseException | str, limit: int | None = None) -> str:
    """An error message as one line (for ``aevae: error: ...``), cut to about ``limit``."""
    text = " ".join(str(error).split())
    if limit is not None and len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return text


def read_toml(path: str | os.PathLike) -> dict:
    """A TOML file as a dict; CorruptFileError (one line, naming the file) if it is not TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        raise CorruptFileError(f"{path}: not valid TOML ({one_line(error)})") from None
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path}: not valid TOML (not UTF-8 text)") from None


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {_toml_value(item)}"
                               for key, item in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def write_toml(path: str | os.PathLike, values: dict, comment: str | None = None) -> None:
    """Write a flat dict (values: bool, number, string, list, inline table) as TOML,
    atomically; None values are left out."""
    lines = [f"# {line}" for line in (comment or "").splitlines()]
    lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()
              if value is not None]
    atomic_write_text(path, "\n".join(lines) + "\n")
