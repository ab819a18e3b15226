"""Atomic file writes and safetensors/JSON persistence. Nothing here unpickles anything."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as load_tensor_bytes
from safetensors.torch import save as save_tensor_bytes


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict | None = None) -> None:
    """Save tensors (and JSON metadata under the key ``json``) atomically as safetensors."""
    prepared = {name: value.detach().cpu().contiguous().clone() for name, value in tensors.items()}
    header = None if metadata is None else {"json": json.dumps(metadata)}
    atomic_write_bytes(path, save_tensor_bytes(prepared, metadata=header))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Load a file written by ``save_tensors``: (tensors, metadata or None)."""
    data = Path(path).read_bytes()
    tensors = load_tensor_bytes(data)
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_length])
    raw = header.get("__metadata__", {}).get("json")
    return tensors, (json.loads(raw) if raw is not None else None)
