"""Where training runs and in what precision."""

from __future__ import annotations

import contextlib
import os

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` (a GPU if one is visible, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
    ``"mps"``; a device this machine cannot use raises ValueError saying why."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in DEVICE_TYPES:
        raise ValueError(f"unknown device {str(device)!r}; use auto, cpu, cuda, cuda:N or mps")
    if resolved.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ValueError(f"device {str(device)!r}: this PyTorch has no CUDA support")
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise ValueError(f"device {str(device)!r}: no CUDA GPU is visible")
        if resolved.index is not None and resolved.index >= visible:
            raise ValueError(f"device {str(device)!r}: only {visible} CUDA GPU(s) are visible")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available on this machine")
    return resolved


def usable_cores() -> int:
    """CPU cores this process may run on: ``os.cpu_count()``, fewer where the scheduler's
    affinity mask (``os.sched_getaffinity``, Linux: taskset, cgroup cpusets) allows fewer."""
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)))
    return max(1, cores)


def available_memory() -> int | None:
    """Bytes of memory the system could give this process now (Linux's MemAvailable), or None
    where it does not say."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether data of ``nbytes`` may live on ``device`` for the whole run: always on the CPU;
    on a GPU when it takes at most half of the free memory (the rest is for the model)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= free // 2


class Precision:
    """Mixed precision: ``fp32`` (off), ``bf16`` (autocast to bfloat16, CPU or GPU) or ``fp16``
    (autocast to float16 with loss scaling, GPU only). Parameters and optimizer state stay in
    float32 either way."""

    def __init__(self, name: str, device: torch.device):
        if name not in PRECISIONS:
            raise ValueError(f"unknown precision {name!r}; use {', '.join(PRECISIONS)}")
        if name == "fp16" and device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA GPU (its loss scaling is for GPUs); "
                             "use bf16 on the CPU")
        self.name, self.device = name, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name)
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None

    def autocast(self, cache: bool = True):
        """cache=False for a step captured in a CUDA graph: autocast's cache of cast weights
        must not outlive the capture."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=cache)

    def __repr__(self) -> str:
        return self.name
