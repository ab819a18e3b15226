"""The named batch: x and what some models need beside it, travelling together.

``labels`` (int64, N) with ``label_known`` (bool, N) for conditional and semi-supervised models,
``observed`` (bool, x's shape) for training with missing entries, ``lengths`` (int64, N) for
padded sequences. The data layer builds it, the training loop moves it to the device and slices
it, and a model's ``batch_loss`` receives it; a model that needs only x never sees it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .errors import DataError

FIELDS = ("labels", "label_known", "observed", "lengths")


@dataclass
class Batch:
    x: torch.Tensor
    labels: torch.Tensor | None = None
    label_known: torch.Tensor | None = None
    observed: torch.Tensor | None = None
    lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def fields(self) -> dict[str, torch.Tensor]:
        """The fields present besides x."""
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}

    def take(self, index) -> Batch:
        """The examples at ``index`` (a slice or an index tensor), every field alike."""
        return Batch(self.x[index], **{name: value[index]
                                       for name, value in self.fields().items()})

    __getitem__ = take

    def to(self, device, non_blocking: bool = False) -> Batch:
        return Batch(self.x.to(device, non_blocking=non_blocking),
                     **{name: value.to(device, non_blocking=non_blocking)
                        for name, value in self.fields().items()})

    def pin_memory(self) -> Batch:
        """Page-locked copies, for asynchronous copies to a GPU."""
        return Batch(self.x.pin_memory(), **{name: value.pin_memory()
                                             for name, value in self.fields().items()})

    def replace(self, **changes) -> Batch:
        return dataclasses.replace(self, **changes)

    def step_mask(self) -> torch.Tensor:
        """(N, steps) float mask of the real steps of padded sequences (all ones without
        lengths): multiply per-step terms by it before summing."""
        steps = self.x.shape[1]
        if self.lengths is None:
            return torch.ones(len(self), steps, dtype=self.x.dtype, device=self.x.device)
        positions = torch.arange(steps, device=self.x.device)[None, :]
        return (positions < self.lengths[:, None]).to(self.x.dtype)


def _as_tensor(values, name: str, dtype) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected numbers, got values of type {array.dtype}")
    if array.dtype.kind == "f":  # read as whole numbers or true/false: say so, not truncate
        if not np.isfinite(array).all():
            raise DataError(f"{name}: holds values that are not finite")
        if dtype == torch.bool and not np.isin(array, (0.0, 1.0)).all():
            raise DataError(f"{name}: a mask holds 0 and 1 (or True and False), got other "
                            "values")
        if dtype != torch.bool and not (array == np.round(array)).all():
            raise DataError(f"{name}: expected whole numbers, got fractional values")
    elif dtype == torch.bool and array.dtype.kind in "iu" and not np.isin(array, (0, 1)).all():
        raise DataError(f"{name}: a mask holds 0 and 1 (or True and False), got other values")
    return torch.as_tensor(np.ascontiguousarray(array)).to(dtype)


def make_batch(x: torch.Tensor, fields: dict, name: str = "data") -> Batch:
    """A Batch from a checked float32 tensor x and raw field values (arrays or tensors), each
    field checked against x: one label or length per example, a mask shaped like x."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise DataError(f"{name}: unknown batch field(s) {', '.join(unknown)}; known: "
                        f"{', '.join(FIELDS)}")
    count = len(x)
    checked = {}
    for field, values in fields.items():
        if values is None:
            continue
        if field == "observed":
            tensor = _as_tensor(values, f"{name} observed", torch.bool)
            if tensor.numel() != x.numel():
                raise DataError(f"{name} observed: the mask needs one entry per value of x "
                                f"{tuple(x.shape)}, got {tuple(tensor.shape)}")
            checked[field] = tensor.reshape(x.shape)
            continue
        dtype = torch.bool if field == "label_known" else torch.int64
        tensor = _as_tensor(values, f"{name} {field}", dtype)
        if tensor.shape != (count,):
            raise DataError(f"{name} {field}: expected {count} values (one per example), got "
                            f"shape {tuple(tensor.shape)}")
        if field in ("labels", "lengths") and count and int(tensor.min()) < 0:
            raise DataError(f"{name} {field}: values must be non-negative")
        if field == "lengths" and count:
            steps = x.shape[1] if x.dim() >= 2 else 1
            if int(tensor.min()) < 1 or int(tensor.max()) > steps:
                raise DataError(f"{name} lengths: each must be in 1..{steps} (the padded "
                                "number of steps)")
        checked[field] = tensor
    if "label_known" in checked and "labels" not in checked:
        raise DataError(f"{name}: label_known needs labels")
    return Batch(x, **checked)
