"""Training data: checked once, then served as batches of indices or streamed.

In-memory data is batched straight from tensors: one permutation per epoch, gathered batch by
batch (a whole shuffled copy per epoch costs more memory traffic). Under ``torchrun`` every
process draws the same permutation and takes its share of each global batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data import DataError, validate_array
from ..data.batch import Batch, make_batch
from ..data.validation import example_shape_problem

if TYPE_CHECKING:  # training does not import models: models call training
    from ..models.base import Autoencoder


def as_training_batch(model: Autoencoder, x, name: str) -> Batch:
    """A checked Batch of x (array, tensor, or a Batch whose fields the model uses)."""
    fields = {}
    if isinstance(x, Batch):
        fields, x = x.fields(), x.x  # arrays or tensors: make_batch checks either
    unused = sorted(key for key in fields if key not in model.uses)
    if unused:
        raise ValueError(f"{model.name} does not use {', '.join(unused)}")
    if fields.get("observed") is not None:
        # Missing entries may hold anything (NaN, typically): they are never read.
        values = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        observed = np.asarray(fields["observed"], dtype=bool)
        if observed.shape != values.shape:
            raise DataError(f"{name} observed: the mask must be shaped like x {values.shape}, "
                            f"got {observed.shape}")
        x = np.where(observed, values, 0).astype(np.float32)
    return make_batch(as_training_tensor(model, x, name), fields, name)


def as_training_tensor(model: Autoencoder, x, name: str) -> torch.Tensor:
    """Validate shape, finiteness and the value range the likelihood needs; return float32."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    likelihood = "bernoulli" if model.likelihood.needs_unit_interval else None
    array = validate_array(array, name=name, likelihood=likelihood)
    expected = model.input_shape
    if tuple(array.shape[1:]) != expected:
        if problem := example_shape_problem(array.shape[1:], expected):
            raise DataError(f"{name}: {problem}")
        array = array.reshape(len(array), *expected)
    return torch.from_numpy(np.ascontiguousarray(array))


def shuffled(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches of one random permutation of ``range(count)``."""
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, batch_size):
        yield order[start:start + batch_size]


def mixed_parts(train: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    known = train.label_known.cpu()
    return torch.nonzero(known).squeeze(1), torch.nonzero(~known).squeeze(1)


def mixed(train: Batch, batch_size: int, labelled_per_batch: int,
          generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches of ``labelled_per_batch`` labelled examples (cycling through a fresh
    shuffle of them each epoch) and ``batch_size`` minus that many unlabelled ones; plain
    shuffled batches when either part is empty."""
    labelled, unlabelled = mixed_parts(train)
    if len(labelled) == 0 or len(unlabelled) == 0:
        yield from shuffled(len(train), batch_size, generator)
        return
    rest = batch_size - labelled_per_batch
    order = unlabelled[torch.randperm(len(unlabelled), generator=generator)]
    batches = math.ceil(len(unlabelled) / rest)
    needed = batches * labelled_per_batch
    cycles = [torch.randperm(len(labelled), generator=generator)
              for _ in range(math.ceil(needed / len(labelled)))]
    labelled_order = labelled[torch.cat(cycles)]
    for index in range(batches):
        picked = labelled_order[index * labelled_per_batch:(index + 1) * labelled_per_batch]
        yield torch.cat([picked, order[index * rest:(index + 1) * rest]])


def index_batches(train: Batch, batch_size: int, generator: torch.Generator,
                  labelled_per_batch: int | None) -> Iterator[torch.Tensor]:
    if labelled_per_batch is not None:
        return mixed(train, batch_size, labelled_per_batch, generator)
    return shuffled(len(train), batch_size, generator)


def count_batches(train: Batch | None, loader: DataLoader | None, batch_size: int,
                  labelled_per_batch: int | None = None) -> int:
    if loader is not None:
        return len(loader)
    if labelled_per_batch is not None:
        labelled, unlabelled = mixed_parts(train)
        if len(labelled) and len(unlabelled):
            return math.ceil(len(unlabelled) / (batch_size - labelled_per_batch))
    return math.ceil(len(train) / batch_size)


def smallest_share(model: Autoencoder) -> int:
    """The fewest examples a process may step on: batch norm needs two (one example has no
    batch statistics), anything else one."""
    batch_norm = torch.nn.modules.batchnorm._BatchNorm
    return 2 if any(isinstance(module, batch_norm) for module in model.modules()) else 1


def _plausible(batch: torch.Tensor, likelihood: str | None) -> bool:
    """Finite, and within [0, 1] when the likelihood needs it."""
    values = batch if batch.is_floating_point() else batch.float()
    if not bool(torch.isfinite(values).all()):
        return False
    return likelihood is None or (values.numel() == 0 or (
        float(values.min()) >= 0.0 and float(values.max()) <= 1.0))


def check_transformed(model: Autoencoder, x) -> None:
    """An epoch's first batch after the user's ``batch_transform``: still a batch of the
    model's input shape and, for a likelihood that needs it, within [0, 1]. A transform that
    rescales to 0-255 trained a Bernoulli decoder on a wrong loss with no error; NaN is left to
    the divergence check, which keeps the last good checkpoint."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1 \
            or tuple(x.shape[1:]) != tuple(model.input_shape):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"batch_transform returned {got}, not a batch of examples shaped "
                        f"{tuple(model.input_shape)}")
    if model.likelihood.needs_unit_interval:
        values = x.detach().float()
        values = values[~torch.isnan(values)]
        if values.numel() and not (float(values.min()) >= 0.0 and float(values.max()) <= 1.0):
            raise DataError(f"batch_transform returned values in [{float(values.min()):.4g}, "
                            f"{float(values.max()):.4g}]; the {model.likelihood.name} "
                            "likelihood needs them in [0, 1]")


def streamed(loader: DataLoader, model: Autoencoder, device: torch.device) -> Iterator[Batch]:
    """Batches of a ``torch.utils.data.Dataset`` (data that does not fit in memory), each
    checked as arrays are (finite; in [0, 1] for a Bernoulli decoder) before it is used."""
    likelihood = "bernoulli" if model.likelihood.needs_unit_interval else None
    fewest = smallest_share(model)
    for item in loader:
        batch = item[0] if isinstance(item, (tuple, list)) else item
        if len(batch) < fewest:
            continue  # a last batch of one example: batch norm cannot step on it
        if batch.device.type == "cpu" and not _plausible(batch, likelihood):
            # Checked before it travels, in place (a copy would lose pinned memory); the
            # array check says what is wrong. (A Dataset's own device tensors are the
            # caller's to check: copying them back would cost every step.)
            validate_array(batch, name="a batch of the training dataset", likelihood=likelihood)
        batch = batch.to(device, torch.float32, non_blocking=True)
        if tuple(batch.shape[1:]) != model.input_shape:
            if problem := example_shape_problem(batch.shape[1:], model.input_shape):
                raise DataError(f"the dataset's {problem}")
            batch = batch.reshape(len(batch), *model.input_shape)
        yield Batch(batch)


def check_stream_shape(model: Autoencoder, stream) -> None:
    if problem := example_shape_problem(stream.example_shape, model.input_shape):
        raise DataError(f"{stream.path}: {problem}")


def chunked(stream, batch_size: int, generator: torch.Generator, processes,
            model: Autoencoder, device: torch.device) -> Iterator[Batch]:
    """Batches of an ``NpyStream`` (a file read in shuffled chunks), this process's share."""
    fewest = processes.world * smallest_share(model)
    for values in stream.batches(batch_size, generator):
        if len(values) < fewest:
            continue  # a last batch too small to give every process its fewest examples
        x = torch.from_numpy(values).reshape(len(values), *model.input_shape)
        yield Batch(x[processes.share(torch.arange(len(x)))].to(device, non_blocking=True))
