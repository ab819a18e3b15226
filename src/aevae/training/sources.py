"""Where training batches come from: data in memory (a ``Batch`` carrying x and its fields), a
``torch.utils.data.Dataset``, or a chunked ``.npy`` stream. Each knows its size and steps per
epoch, and yields this process's share of every global batch, on the device."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.batch import Batch
from ..data.streaming import NpyStream
from . import batches as batching
from .devices import fits_on_device


class InMemory:
    """A checked ``Batch``; it lives on the device when it fits, else batches travel there
    from page-locked memory."""

    def __init__(self, model, data, labelled_per_batch: int | None):
        self.batch = batching.as_training_batch(model, data, "training data")
        if labelled_per_batch is not None and self.batch.label_known is None:
            raise ValueError("labelled_per_batch needs label_known in the training data")
        self.labelled_per_batch = labelled_per_batch
        self.resident = True

    def __len__(self) -> int:
        return len(self.batch)

    def steps_per_epoch(self, batch_size: int) -> int:
        return batching.count_batches(self.batch, None, batch_size, self.labelled_per_batch)

    def place(self, device: torch.device) -> None:
        x = self.batch.x
        self.resident = fits_on_device(x.element_size() * x.numel(), device)
        if self.resident:
            self.batch = self.batch.to(device)

    def epoch(self, state) -> Iterator[Batch]:
        if self.resident:
            for indices in self.epoch_indices(state):
                yield self.batch.take(indices)
        else:
            for indices in self._index_batches(state):
                share = state.processes.share(indices)
                yield self.batch.take(share).pin_memory().to(state.device, non_blocking=True)

    def epoch_indices(self, state) -> Iterator[torch.Tensor]:
        """This process's share of each batch, as indices on the device (resident data)."""
        batches = self._index_batches(state)
        if batches:
            # The epoch's order goes to the device once and is cut there: no copy per step.
            order = torch.cat(batches).to(state.device, non_blocking=True)
            for indices in order.split([len(indices) for indices in batches]):
                yield state.processes.share(indices)

    def _index_batches(self, state) -> list[torch.Tensor]:
        # A last batch too small to give every process an example (two with batch norm) is
        # left out.
        fewest = state.processes.world * batching.smallest_share(state.model)
        return [indices for indices in batching.index_batches(
            self.batch, state.config.batch_size, state.generator, self.labelled_per_batch)
            if len(indices) >= fewest]


class Streamed:
    """Data read as it is needed (never all in memory): no Batch to show the model, nothing to
    place on the device beforehand."""

    batch = None

    def __init__(self, model, data):
        self.model, self.data = model, data

    def __len__(self) -> int:
        return len(self.data)

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.data) // batch_size)

    def place(self, device: torch.device) -> None:
        pass


class TorchDataset(Streamed):
    """A ``torch.utils.data.Dataset`` of x (or (x, ...) tuples), read through a DataLoader."""

    loader = None

    def epoch(self, state) -> Iterator[Batch]:
        processes = state.processes
        if self.loader is None:
            sampler = None
            if processes.enabled:
                sampler = DistributedSampler(self.data, processes.world, processes.rank,
                                             seed=state.config.seed)
            self.loader = DataLoader(
                self.data, batch_size=max(1, state.config.batch_size // processes.world),
                shuffle=sampler is None, sampler=sampler, generator=state.generator,
                pin_memory=state.device.type == "cuda")
        if self.loader.sampler is not None and hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(state.epoch)
        return batching.streamed(self.loader, self.model, state.device)


class ChunkedStream(Streamed):
    """An ``NpyStream``: a file read in shuffled chunks."""

    def __init__(self, model, stream: NpyStream):
        batching.check_stream_shape(model, stream)
        if model.likelihood.needs_unit_interval and stream.likelihood is None:
            # Every chunk is checked against the model's own likelihood as it arrives (a
            # Bernoulli decoder trained silently on 0-255 values before).
            stream.likelihood = "bernoulli"
        super().__init__(model, stream)

    def epoch(self, state) -> Iterator[Batch]:
        return batching.chunked(self.data, state.config.batch_size, state.generator,
                                state.processes, self.model, state.device)


def data_source(model, data, labelled_per_batch: int | None = None):
    """The source for ``data``: a Dataset, an NpyStream, or anything in memory (array, tensor,
    ``Batch``)."""
    if isinstance(data, (Dataset, NpyStream)):
        if "labels" in model.uses:  # a Dataset's (x, y) tuples would lose y: it would train
            # without them (masks and lengths default to complete, full-length examples)
            raise ValueError(f"{model.name} reads labels beside x, which streamed data does "
                             "not carry (x only): train it from arrays in memory")
        if labelled_per_batch is not None:
            raise ValueError("labelled_per_batch needs in-memory data with label_known")
        if isinstance(data, NpyStream):
            return ChunkedStream(model, data)
        return TorchDataset(model, data)
    return InMemory(model, data, labelled_per_batch)
