"""Data larger than memory: ``.npy`` files read from disk in shuffled chunks, image folders
decoded one image at a time.

``NpyStream`` never holds more than a chunk (64 MiB by default) and one batch of carry-over:
each epoch visits the file's chunks in a fresh random order and shuffles the rows within each,
so peak memory does not grow with the file. Chunks are read with positioned reads rather than
through a memory map, whose touched pages would count against the process's resident memory.
Every chunk is checked as it arrives (finite values, the likelihood's range), so a bad value
deep in a file stops training with the rows it sits in.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .errors import DataError
from .readers import (
    NPY_MAGIC,
    NUMPY_FILE_ERRORS,
    _check_numpy_header,
    _eight_bit_pixels,
    _numpy_error,
    image_files,
)
from .validation import check_float32_rounding, to_example_layout, validate_array

CHUNK_BYTES = 64 << 20
VALIDATION_LIMIT = 10_000  # held-out rows kept in memory when streaming


class NpyStream:
    """A ``.npy`` file of examples (first axis), read in chunks; pass it to ``fit`` as x.

    likelihood: ``"bernoulli"`` checks every chunk lies in [0, 1] (uint8 files are scaled by
    1/255 first, as ``load_dataset`` does). ``rows``: the file rows this stream serves (all by
    default; ``hold_out`` makes a stream without its validation rows)."""

    def __init__(self, path: str | os.PathLike, *, likelihood: str | None = None,
                 chunk_bytes: int = CHUNK_BYTES, limit: int | None = None):
        from ..likelihoods import LIKELIHOODS

        if likelihood is not None and str(likelihood).lower() not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; known: "
                             f"{', '.join(sorted(LIKELIHOODS))}")
        self.path = Path(path)
        _check_numpy_header(self.path, NPY_MAGIC, ".npy array", ".npy")
        try:
            with open(self.path, "rb") as stream:
                major, _ = np.lib.format.read_magic(stream)
                read_header = (np.lib.format.read_array_header_1_0 if major == 1
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(stream)
                self.offset = stream.tell()
                size = os.fstat(stream.fileno()).st_size
        except NUMPY_FILE_ERRORS as error:
            raise _numpy_error(self.path, error, ".npy array") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise DataError(f"{self.path} holds {dtype} values; expected numbers")
        if fortran and len(shape) > 1:
            raise DataError(f"{self.path} is stored column-major (Fortran order), which cannot "
                            "be read by rows; save it with np.save(np.ascontiguousarray(x))")
        if len(shape) < 2 or shape[0] == 0:
            raise DataError(f"{self.path} has shape {shape}; expected examples along the first "
                            "axis: (N, D) tabular, (N, H, W) or (N, C, H, W) images")
        self.file_shape, self.dtype = tuple(int(n) for n in shape), dtype
        self.row_bytes = math.prod(self.file_shape[1:]) * dtype.itemsize
        if size - self.offset < self.file_shape[0] * self.row_bytes:
            raise DataError(f"{self.path} is truncated: its header declares "
                            f"{self.file_shape[0]} rows that the file does not hold")
        self.likelihood = likelihood
        self.chunk_rows = max(1, chunk_bytes // self.row_bytes)
        count = self.file_shape[0] if limit is None else min(limit, self.file_shape[0])
        self.rows = np.arange(count)
        if dtype.itemsize > 2 and dtype != np.float32:
            # What float32 rounds away, judged on rows spread over the whole file (a chunk of
            # sorted timestamps spreads less than the file, and would be refused): up to 4,096
            # of them, within a chunk's memory.
            sampled = min(count, 4096, max(2, chunk_bytes // self.row_bytes))
            sample = np.unique(np.linspace(0, count - 1, sampled).astype(np.int64))
            check_float32_rounding(self._read_each(sample), str(self.path))
        probe = self._prepare(self._read(0, 1), 0, 1)
        self.example_shape = tuple(probe.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return len(self.rows) * self.row_bytes

    def __repr__(self) -> str:
        return (f"NpyStream({str(self.path)!r}: {len(self)} examples of shape "
                f"{self.example_shape}, chunks of {self.chunk_rows})")

    # ----- reading ---------------------------------------------------------------------
    def _read(self, start: int, stop: int) -> np.ndarray:
        """File rows [start, stop), with one positioned read into a fresh buffer."""
        buffer = np.empty((stop - start, *self.file_shape[1:]), dtype=self.dtype)
        view = memoryview(buffer.reshape(-1).view(np.uint8))
        with open(self.path, "rb") as stream:
            got = os.preadv(stream.fileno(), [view], self.offset + start * self.row_bytes)
        if got != view.nbytes:
            raise DataError(f"{self.path}: rows {start}-{stop - 1} could not be read (the file "
                            "changed or is truncated)")
        return buffer

    def _read_each(self, rows: np.ndarray) -> np.ndarray:
        """The given file rows, in their order, through one open file."""
        buffer = np.empty((len(rows), *self.file_shape[1:]), dtype=self.dtype)
        with open(self.path, "rb") as stream:
            for index, row in enumerate(rows):
                view = memoryview(buffer[index].reshape(-1).view(np.uint8))
                if os.preadv(stream.fileno(), [view],
                             self.offset + int(row) * self.row_bytes) != view.nbytes:
                    raise DataError(f"{self.path}: row {int(row)} could not be read (the file "
                                    "changed or is truncated)")
        return buffer

    def _prepare(self, values: np.ndarray, start: int, stop: int) -> np.ndarray:
        name = f"{self.path} rows {start}-{stop - 1}"
        x = validate_array(values, name=name, check_rounding=False)  # the file's, at opening
        if values.dtype == np.uint8:
            x /= 255.0
        if self.likelihood is not None:
            x = validate_array(x, name=name, likelihood=self.likelihood, check_rounding=False)
        return to_example_layout(x, name=str(self.path))

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """The examples at the given file rows (sorted or not), as float32."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.empty((0, *self.example_shape), np.float32)
        values = self._read_each(rows)
        try:
            return self._prepare(values, int(rows.min()), int(rows.max()) + 1)
        except DataError:  # name the file row at fault, not its place among these
            for row, one in zip(rows, values):
                self._prepare(one[None], int(row), int(row) + 1)
            raise

    def hold_out(self, fraction: float, seed: int,
                 limit: int = VALIDATION_LIMIT) -> tuple[NpyStream, np.ndarray]:
        """A stream without a random ``fraction`` of its rows, and (at most ``limit`` of) those
        rows, read into memory for validation. The rows are those ``load_dataset`` carves with
        the same fraction and seed, so that a streamed run and the commands that later load
        the file (evaluate, reconstruct) agree on which rows were held out."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
        from .loading import carved_indices, some_of

        kept, held = carved_indices(len(self.rows), fraction, seed)
        if not len(kept):
            raise DataError(f"{self.path}: too few rows ({len(self.rows)}) to hold out "
                            "validation data")
        return self._with_rows(self.rows[kept]), self.read_rows(
            self.rows[some_of(held, limit, seed)])  # what fits

    def first(self, count: int) -> NpyStream:
        """A stream of this one's first ``count`` rows (``--limit``, after the hold-out)."""
        return self._with_rows(self.rows[:count])

    def _with_rows(self, rows: np.ndarray) -> NpyStream:
        """This stream serving ``rows`` of the file (no new header read)."""
        rest = copy.copy(self)
        rest.rows = rows
        return rest

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[np.ndarray]:
        """One epoch of shuffled batches: chunks in random order, rows shuffled within each,
        leftovers carried into the next chunk so every batch but the last is full. Batches are
        gathered through a permutation rather than a shuffled copy of the chunk, and a chunk is
        let go before the next is read, so at most one chunk is held at a time."""
        chunks = [(start, min(start + self.chunk_rows, int(self.rows[-1]) + 1))
                  for start in range(int(self.rows[0]), int(self.rows[-1]) + 1,
                                     self.chunk_rows)]
        carried = None  # fewer than batch_size rows left over from earlier chunks
        for index in torch.randperm(len(chunks), generator=generator).tolist():
            start, stop = chunks[index]
            keep = self.rows[np.searchsorted(self.rows, start):
                             np.searchsorted(self.rows, stop)] - start
            if len(keep) == 0:
                continue
            values = self._prepare(self._read(start, stop), start, stop)
            if len(keep) < stop - start:
                values = values[keep]
            order = torch.randperm(len(values), generator=generator).numpy()
            begin = 0
            if carried is not None:
                begin = min(len(order), batch_size - len(carried))
                carried = np.concatenate([carried, values[order[:begin]]])
                if len(carried) == batch_size:
                    yield carried
                    carried = None
            whole = begin + (len(order) - begin) // batch_size * batch_size
            for first in range(begin, whole, batch_size):
                yield values[order[first:first + batch_size]]
            if whole < len(order):
                rest = values[order[whole:]]
                carried = rest if carried is None else np.concatenate([carried, rest])
            del values, order
        if carried is not None:
            yield carried


class ImageFolderStream(torch.utils.data.Dataset):
    """A folder of same-sized images decoded on demand (uint8 scaled to [0, 1], channel
    first); pass it to ``fit`` as x. Class subfolders give ``labels``."""

    def __init__(self, folder: str | os.PathLike):
        try:
            from PIL import Image
        except ImportError:
            raise DataError(f"reading the image folder {folder} needs pillow: "
                            "pip install pillow") from None
        self._image = Image
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"no such folder: {self.folder}")
        self.files, _, _ = image_files(self.folder)  # the rows load_dataset reads, in order
        first = self._pixels(0)
        self.example_shape = tuple(first.shape)

    def __len__(self) -> int:
        return len(self.files)

    def _pixels(self, index: int) -> np.ndarray:
        file = self.files[index]
        try:
            with self._image.open(file) as image:
                values = _eight_bit_pixels(image, file)
        except DataError:
            raise
        except Exception as error:  # decoders fail on bad bytes in many ways
            raise DataError(f"cannot read image {file}: {type(error).__name__}") from None
        values = values[None] if values.ndim == 2 else values.transpose(2, 0, 1)
        return np.ascontiguousarray(values, dtype=np.float32) / 255.0

    def __getitem__(self, index: int) -> torch.Tensor:
        values = self._pixels(index)
        if hasattr(self, "example_shape") and values.shape != self.example_shape:
            raise DataError(f"images differ in size: {self.files[index]} is shaped "
                            f"{values.shape}, {self.files[0]} {self.example_shape}")
        return torch.from_numpy(values)
