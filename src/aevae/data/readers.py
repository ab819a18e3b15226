"""File readers: IDX (optionally gzipped), .amat text, .npy, .npz, .csv and image folders.

Every reader raises DataError, with the file name in the message, on unreadable input.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import struct
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .directories import is_writable_directory, user_cache_directory
from .errors import DataError

IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
GREYSCALE_MODES = frozenset({"1", "L", "LA", "La"})

SPACE, NEWLINE, ZERO = ord(" "), ord("\n"), ord("0")


class ArrayData(NamedTuple):
    """What a user-data reader returns: raw examples, optional labels and class names."""

    x: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...] | None
    lengths: np.ndarray | None = None  # padded sequences: the real steps of each
    feature_names: tuple[str, ...] | None = None  # a table's column names (its header)


# ---------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` is decompressed) into a native-endian array."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                raw = stream.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is corrupt or truncated (gzip: {error})") from None
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, *, source: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes: magic (0, 0, type code, number of dims), big-endian dims, data."""
    if len(raw) < 4:
        raise DataError(f"{source} is truncated: {len(raw)} bytes, shorter than the IDX header")
    first, second, type_code, dimension_count = raw[:4]
    if first != 0 or second != 0 or type_code not in IDX_TYPES or dimension_count == 0:
        magic = int.from_bytes(raw[:4], "big")
        raise DataError(f"{source} is not an IDX file (bad magic number 0x{magic:08x})")
    header_size = 4 + 4 * dimension_count
    if len(raw) < header_size:
        raise DataError(f"{source} is truncated inside the IDX header")
    dimensions = struct.unpack(f">{dimension_count}I", raw[4:header_size])
    dtype = IDX_TYPES[type_code]
    # An empty array may still declare other dimensions too large for any array to have.
    if math.prod(size for size in dimensions if size) * dtype.itemsize > np.iinfo(np.intp).max:
        raise DataError(f"{source} is corrupt: its header declares shape {dimensions}, larger "
                        "than any array can be")
    expected = math.prod(dimensions) * dtype.itemsize
    actual = len(raw) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise DataError(
            f"{source} is {problem}: shape {dimensions} needs {expected} data bytes, found {actual}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(dimensions)
    return array.astype(dtype.newbyteorder("="), copy=True)


# ---------------------------------------------------------------- AMAT


def parse_amat(raw: bytes, *, source: str = "amat data") -> np.ndarray:
    """Parse whitespace-separated numbers, one example per line, into (N, D).

    Single-digit 0/1 files (binarized MNIST) take a vectorised path and come back as
    uint8; anything else is parsed generally into float32.
    """
    buffer = np.frombuffer(raw, dtype=np.uint8)
    binary = _parse_binary_amat(buffer)
    if binary is not None:
        return binary
    return _parse_general_amat(raw, source)


def _parse_binary_amat(buffer: np.ndarray) -> np.ndarray | None:
    """Fast path for "d d d ...\\n" with one-character digits 0/1 and single separators."""
    if buffer.size < 2 or buffer.size % 2:
        return None
    separators = buffer[1::2]
    is_newline = separators == NEWLINE
    if not np.all(is_newline | (separators == SPACE)):
        return None
    values = buffer[0::2] - np.uint8(ZERO)  # non-digits wrap around to large values
    if values.max() > 1:
        return None
    newline_positions = np.flatnonzero(is_newline)
    if separators[-1] != NEWLINE:
        newline_positions = np.append(newline_positions, separators.size - 1)
    row_count = newline_positions.size
    if values.size % row_count:
        return None
    column_count = values.size // row_count
    expected_positions = np.arange(1, row_count + 1) * column_count - 1
    if not np.array_equal(newline_positions, expected_positions):
        return None  # ragged rows: the general path reports where
    return values.reshape(row_count, column_count)


def _parse_general_amat(raw: bytes, source: str) -> np.ndarray:
    rows = [line.split() for line in raw.splitlines()]
    numbered = [(number, row) for number, row in enumerate(rows, start=1) if row]
    if not numbered:
        raise DataError(f"{source} holds no data")
    width = len(numbered[0][1])
    for number, row in numbered:
        if len(row) != width:
            raise DataError(f"{source}: line {number} has {len(row)} values, expected {width}")
    try:
        return np.array([row for _, row in numbered], dtype=np.float32)
    except ValueError:
        for number, row in numbered:
            for token in row:
                try:
                    float(token)
                except ValueError:
                    value = token.decode(errors="replace")
                    raise DataError(
                        f"{source}: line {number} has a non-numeric value {value!r}"
                    ) from None
        raise


def read_amat(path: str | os.PathLike, *, cache: bool = True) -> np.ndarray:
    """Read an .amat text file into a float32 (N, D) array.

    With ``cache``, the parsed array is stored under the user cache directory (never beside
    the file: aevae does not write into data folders), with a record of the source it came
    from; a cache whose record does not match the source exactly is ignored, and an
    unwritable cache means no cache.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    candidate = _amat_cache_path(path) if cache else None
    stamp = None
    if candidate is not None:
        try:
            stamp = _source_stamp(path)  # before reading: a change while parsing misses later
        except OSError:
            candidate = None
    if candidate is not None:
        cached = _load_fresh_cache(candidate, stamp)
        if cached is not None:
            return cached.astype(np.float32)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from None
    array = parse_amat(raw, source=str(path))
    if candidate is not None:
        _save_cache(candidate, array, stamp)
    return array.astype(np.float32)


def _amat_cache_path(path: Path) -> Path:
    key = hashlib.md5(str(path.resolve()).encode()).hexdigest()[:12]
    return user_cache_directory() / "parsed" / f"{path.stem}-{key}.npy"


def _source_stamp(source: Path) -> dict:
    """What identifies this version of ``source``. Copies that keep an older mtime (cp -p,
    tar, rsync -a) still change the size or the ctime, which nobody can set back."""
    status = source.stat()
    return {"path": str(source.resolve()), "size": status.st_size,
            "mtime_ns": status.st_mtime_ns, "ctime_ns": status.st_ctime_ns}


def _cache_stamp(status: os.stat_result) -> dict:
    # Ties the record to one written array: another process may replace the array alone.
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "inode": status.st_ino}


def _load_fresh_cache(candidate: Path, stamp: dict) -> np.ndarray | None:
    """The cached array, only if its record matches ``stamp`` and the array file exactly;
    a cache without a record (older aevae) is stale."""
    try:
        record = json.loads(candidate.with_suffix(".json").read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("source") != stamp:
            return None
        if record.get("cache") != _cache_stamp(candidate.stat()):
            return None
        return np.load(candidate, allow_pickle=False)
    except NUMPY_FILE_ERRORS:
        return None


def _save_cache(candidate: Path, array: np.ndarray, stamp: dict) -> bool:
    """Write the array, then its record, each atomically; any failure (read-only, full disk)
    silently means no cache."""
    try:
        candidate.parent.mkdir(parents=True, exist_ok=True)
        if not is_writable_directory(candidate.parent):
            return False
        written = _replace(candidate, "wb", lambda stream: np.save(stream, array,
                                                                   allow_pickle=False))
        record = json.dumps({"source": stamp, "cache": _cache_stamp(written)})
        _replace(candidate.with_suffix(".json"), "w", lambda stream: stream.write(record))
        return True
    except OSError:
        return False


def _replace(target: Path, mode: str, write) -> os.stat_result:
    """``write(stream)`` into a temporary file beside ``target``, renamed over it; the written
    file's stat (a rename keeps its size, mtime and inode). A failure leaves no temporary."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as stream:
            write(stream)
        os.chmod(temporary, 0o644)
        written = os.stat(temporary)
        os.replace(temporary, target)
        return written
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- numpy files


NPY_MAGIC = b"\x93NUMPY"
NPZ_MAGIC = b"PK"  # a zip archive
PICKLE_START = b"\x80"  # every pickle of protocol 2 or later


def _pickle_refused(path: Path) -> DataError:
    return DataError(f"{path} holds Python objects (a pickle); aevae never unpickles data")


def _check_numpy_header(path: Path, magic: bytes, kind: str, header: str) -> None:
    """Refuse before np.load what it would only read as a pickle, saying what the file is."""
    try:
        with open(path, "rb") as stream:
            start = stream.read(len(magic))
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except OSError as error:
        raise DataError(f"cannot read {path}: {_one_line(error)}") from None
    if start == magic:
        return
    if start.startswith(PICKLE_START):
        raise _pickle_refused(path)
    raise DataError(f"{path}: not a readable {kind} (it does not start with a {header} header)")


def _numpy_error(path: Path, error: BaseException, kind: str) -> DataError:
    # With the header checked, numpy asks for allow_pickle only for arrays of Python objects.
    if "allow_pickle" in str(error):
        return _pickle_refused(path)
    if isinstance(error, MemoryError):
        return DataError(f"{path}: the {kind} is too large to load into memory")
    return DataError(f"{path}: not a readable {kind} ({_one_line(error) or type(error).__name__})")


# What numpy (its header parser tokenizes Python literals), zipfile and zlib raise on damaged or
# hostile files.
NUMPY_FILE_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error,
                     NotImplementedError, RuntimeError, MemoryError, struct.error, SyntaxError,
                     tokenize.TokenError, RecursionError)


def _check_declared_size(stream, available: int, where: str) -> None:
    """Compare the data size an .npy header declares with the bytes that follow it, before numpy
    allocates the array: a header claiming terabytes fails here, not in the allocator."""
    major, _ = np.lib.format.read_magic(stream)
    read_header = (np.lib.format.read_array_header_1_0 if major == 1
                   else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read_header(stream)
    if dtype.hasobject:
        return  # Python objects: np.load refuses the pickle itself
    declared = math.prod(shape) * dtype.itemsize
    held = available - stream.tell()
    if declared != held:
        problem = "truncated" if held < declared else "longer than its header says"
        raise ValueError(f"{where} is {problem}: shape {shape} of {dtype} needs {declared} "
                         f"data bytes, found {held}")


def read_npy(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    _check_numpy_header(path, NPY_MAGIC, ".npy array", ".npy")
    try:
        with open(path, "rb") as stream:
            _check_declared_size(stream, os.fstat(stream.fileno()).st_size, "the file")
        return np.load(path, allow_pickle=False)
    except NUMPY_FILE_ERRORS as error:
        raise _numpy_error(path, error, ".npy array") from None


def read_npz(path: str | os.PathLike, labels: str | None = None) -> ArrayData:
    """Examples from key ``x``, ``data`` or the only array; labels from ``y``/``labels``;
    for padded sequences (N, steps, features), their real lengths from ``lengths``.

    ``labels`` may name a key of the archive or a separate labels file.
    """
    path = Path(path)
    _check_numpy_header(path, NPZ_MAGIC, ".npz archive", "zip")
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.filename.endswith(".npy"):
                    with archive.open(member) as stream:
                        _check_declared_size(stream, member.file_size, member.filename)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except NUMPY_FILE_ERRORS as error:
        raise _numpy_error(path, error, ".npz archive") from None
    if labels is not None and labels not in arrays and not Path(labels).expanduser().is_file():
        raise DataError(f"{path} has no array named {labels!r}; its arrays: "
                        f"{', '.join(sorted(arrays))} (and no labels file {labels} exists)")
    label_keys = [key for key in ("y", "labels") if key in arrays]
    if labels is not None and labels in arrays:
        label_keys = [labels]
    data_keys = [key for key in ("x", "data") if key in arrays]
    others = [key for key in arrays if key not in label_keys and key != "lengths"]
    if data_keys:
        x = arrays[data_keys[0]]
    elif len(others) == 1:
        x = arrays[others[0]]
    else:
        raise DataError(
            f"{path}: cannot tell which array holds the data among keys {sorted(arrays)}; "
            "name it 'x' or 'data'"
        )
    if labels is not None and labels not in arrays:
        label_values = read_labels_file(Path(labels).expanduser())
    elif label_keys:
        label_values = arrays[label_keys[0]]
    else:
        label_values = None
    lengths = arrays.get("lengths")
    if lengths is not None:
        if np.asarray(x).ndim != 3:
            raise DataError(f"{path}: 'lengths' goes with sequences shaped (N, steps, "
                            f"features), but the data is shaped {np.shape(x)}")
        if lengths.dtype.kind not in "iu":
            raise DataError(f"{path}: 'lengths' must hold whole numbers, got {lengths.dtype}")
        lengths = lengths.astype(np.int64)
    return ArrayData(x, label_values, None, lengths)


def read_labels_file(path: str | os.PathLike) -> np.ndarray:
    """Labels from a .npy file or a text file with one label per line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels file not found: {path}")
    if path.suffix == ".npy":
        return read_npy(path)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read labels file {path}: {_one_line(error)}") from None
    values = [line for line in lines if line]
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        return np.array(values)


# ---------------------------------------------------------------- CSV


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _delimiter(first_line: str) -> str | None:
    """The most common of , ; and tab on a table's first line; None: split on whitespace."""
    counts = {delimiter: first_line.count(delimiter) for delimiter in (",", ";", "\t")}
    delimiter = max(counts, key=counts.get)
    return delimiter if counts[delimiter] else None


_LAYOUT_BYTES = 1 << 20  # what table_columns reads of a file


def table_columns(path: str | os.PathLike) -> tuple[list[str] | None, int]:
    """A table's header (None when it has none) and its number of columns, as ``read_csv``
    reads them; (None, 0) for a file it cannot read (reading it then says why)."""
    try:
        with open(path, "rb") as file:  # the layout shows in its first lines: not a whole file
            head = file.read(_LAYOUT_BYTES + 1)
        if len(head) > _LAYOUT_BYTES:
            head = head[:head.rfind(b"\n", 0, _LAYOUT_BYTES) + 1] or head[:_LAYOUT_BYTES]
        text = head.decode("utf-8-sig", errors="replace")
        header, rows = _table_layout(text, Path(path))
    except (OSError, DataError):
        return None, 0
    return header, len(header) if header is not None else len(rows[0][1])


def _table_layout(text: str, path: Path) -> tuple[list[str] | None, list[tuple[int, list[str]]]]:
    """A table's header (None: none) and its non-blank rows as (line number, stripped cells).

    Lines starting with '#' before the first row are comments. A first row without any number
    is the header; without one, the last comment is the header when it names every column
    (no number in it), as ``np.savetxt(header=...)`` writes it. A last column empty in every
    row because each row ends with the delimiter ("1,2,3,") is no column: it is dropped,
    unless the header names it (then its values are missing, and refused as such).
    """
    lines = text.splitlines()
    start = next((index for index, line in enumerate(lines)
                  if line.strip() and not line.lstrip().startswith("#")), len(lines))
    comments = [line.strip().lstrip("#") for line in lines[:start] if line.strip()]
    delimiter = _delimiter(lines[start] if start < len(lines) else "")

    def split(line: str) -> list[str]:
        if not delimiter:
            return line.split()
        return [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter), [])]

    if delimiter:
        # The comments blanked, not removed, so that line numbers stay those of the file.
        body = "\n" * start + "".join(text.splitlines(keepends=True)[start:])
        parsed = csv.reader(io.StringIO(body), delimiter=delimiter)
        try:
            rows = [(number, [cell.strip() for cell in row])
                    for number, row in enumerate(parsed, 1)]
        except csv.Error as error:
            raise DataError(f"{path}: line {parsed.line_num}: {_one_line(error)}") from None
    else:
        rows = [(number, line.split()) for number, line in enumerate(lines, start=1)
                if number > start]
    rows = [(number, row) for number, row in rows if any(row)]
    if not rows:
        raise DataError(f"{path} holds no data" + (" (only '#' comment lines)" if comments
                                                   else ""))

    header: list[str] | None = None
    # A header has no number in it: a first row with one is data, so its missing-value marker
    # or text label is read (or refused) as in any other row, not dropped as column names.
    if not any(_is_number(cell) for cell in rows[0][1]):
        header = rows[0][1]
        rows = rows[1:]
        if not rows:
            raise DataError(f"{path} has a header row but no data rows")
    width = len(rows[0][1])
    trailing = delimiter is not None and all(len(row) > 1 and not row[-1] for _, row in rows)
    if trailing and (header is None or len(header) == width - 1
                     or (len(header) == width and not header[-1])):
        rows = [(number, row[:-1]) for number, row in rows]
        if header is not None and len(header) == width:
            header = header[:-1]
        width -= 1
    if header is None and comments:
        # Only with one name per column, which prose seldom has; a header left a comment
        # shifts nothing (a row with a number is never taken for names).
        names = split(comments[-1])
        if trailing and len(names) == width + 1 and not names[-1]:
            names = names[:-1]
        if len(names) == width and any(names) and not any(_is_number(name) for name in names):
            header = names
    return header, rows


def read_csv(path: str | os.PathLike, labels: str | None = None) -> ArrayData:
    """A numeric table, one example per row; a first row without any number is a header.

    ``labels`` names the label column, or is ``"last"`` or ``"first"``; label values may
    be integers or class names. The delimiter is the most common of , ; and tab on the
    first row, else whitespace; a delimiter ending every row adds no column. Lines starting
    with '#' before the rows are comments (the last one may be the header: ``_table_layout``).
    A header's names of the feature columns are kept (``feature_names``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {_one_line(error)}") from None
    header, rows = _table_layout(text, path)
    width = len(header) if header is not None else len(rows[0][1])
    for number, row in rows:
        if row[0].startswith("#") and len(row) != width:
            raise _comment_among_rows(path, number)
        if len(row) != width:
            first, cells = rows[0]
            hint = (f" (line {first} ends with a delimiter, an empty last field; this line "
                    "does not)" if len(row) == width - 1 and not cells[-1] else "")
            raise DataError(
                f"{path}: line {number} has {len(row)} fields, expected {width}{hint}")

    label_values = None
    if (labels not in (None, "first", "last") and (header is None or labels not in header)
            and Path(labels).expanduser().is_file()):
        # Not a column but a labels file beside the table, as for .npy data.
        label_values, labels = read_labels_file(Path(labels).expanduser()), None
    label_column = _label_column(labels, header, width, path)
    if label_column is not None:
        for number, row in rows:
            if not row[label_column]:
                where = (f"column {header[label_column]!r}" if header
                         else f"column {label_column + 1}")
                raise DataError(f"{path}: line {number} has no label (its {where} is empty)")
        label_values = np.array([row[label_column] for _, row in rows])
        if all(_is_number(value) for value in label_values.tolist()):
            label_values = label_values.astype(np.float64)
        rows = [(number, row[:label_column] + row[label_column + 1 :]) for number, row in rows]
        if header is not None:
            header = header[:label_column] + header[label_column + 1 :]
    if not rows[0][1]:
        raise DataError(f"{path} has no feature columns besides the labels")
    cells = [[cell if cell else "nan" for cell in row] for _, row in rows]
    try:
        x = np.array(cells, dtype=np.float64)
    except ValueError:
        for number, row in rows:
            for column, cell in enumerate(row):
                if cell and not _is_number(cell):
                    if column == 0 and label_column != 0 and cell.startswith("#"):
                        raise _comment_among_rows(path, number) from None
                    where = f"column {header[column]!r}" if header else f"column {column + 1}"
                    hint = ("" if header or number != rows[0][0] else
                            "; a first row with a number in it is data, not a header")
                    raise DataError(
                        f"{path}: line {number}, {where} has a non-numeric value {cell!r}{hint}"
                    ) from None
        raise
    names = None if header is None else tuple(
        cell or f"feature {index + 1}" for index, cell in enumerate(header))
    return ArrayData(x, label_values, None, feature_names=names)


def _comment_among_rows(path: Path, number: int) -> DataError:
    return DataError(f"{path}: line {number} is a comment ('#') among the data rows; comments "
                     "are read only before the data")


def _label_column(
    labels: str | None, header: list[str] | None, width: int, path: Path
) -> int | None:
    if labels is None:
        return None
    if labels == "last":
        return width - 1
    if labels == "first":
        return 0
    if header is None:
        raise DataError(
            f"{path} has no header row, so there is no column named {labels!r}; "
            f"use labels='last' or labels='first' (and no labels file {labels} exists)"
        )
    if labels not in header:
        raise DataError(f"{path} has no column named {labels!r}; columns: {', '.join(header)} "
                        f"(and no labels file {labels} exists)")
    return header.index(labels)


# ---------------------------------------------------------------- image folders


def image_files(folder: Path) -> tuple[list[Path], tuple[str, ...] | None, np.ndarray | None]:
    """The images of an image folder in reading order, with their class names and labels
    (None when they lie at the top level): what both loading and streaming read. Hidden
    files and folders (".thumbs", macOS's "._a.png") are not images of the data."""

    def images_in(directory: Path, recursive: bool) -> list[Path]:
        found = directory.rglob("*") if recursive else directory.iterdir()
        return sorted(
            path for path in found
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in path.relative_to(directory).parts)
        )

    top_level = images_in(folder, recursive=False)
    class_folders = sorted(
        path for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")
    )
    by_class = {path.name: images_in(path, recursive=True) for path in class_folders}
    by_class = {name: files for name, files in by_class.items() if files}
    if top_level and by_class:
        raise DataError(
            f"{folder} mixes images at the top level with class subfolders "
            f"({', '.join(by_class)}); put all images in subfolders or none"
        )
    if not top_level and not by_class:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(f"no images ({suffixes}) found in {folder}")
    if not by_class:
        return top_level, None, None
    class_names = tuple(by_class)
    files = [file for name in class_names for file in by_class[name]]
    labels = np.concatenate(
        [np.full(len(by_class[name]), index) for index, name in enumerate(class_names)]
    ).astype(np.int64)
    return files, class_names, labels


def read_image_folder(folder: str | os.PathLike,
                      size: tuple[int, int] | None = None) -> ArrayData:
    """All images in ``folder``, as uint8 (N, H, W) grey or (N, H, W, 3) colour.

    Images in subfolders are labelled by subfolder name (sorted, index 0 first); images
    directly in ``folder`` have no labels. All images must have the same size, unless ``size``
    = (height, width) is given: each is then resized to it (bilinear) as it is read.
    """
    folder = Path(folder)
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            f"reading the image folder {folder} needs pillow: pip install pillow"
        ) from None

    files, class_names, labels = image_files(folder)

    pixels: list[np.ndarray] = []
    size, resize_to = None, None if size is None else (int(size[0]), int(size[1]))
    for file in files:
        try:
            with Image.open(file) as image:
                values = _eight_bit_pixels(image, file)
        except DataError:
            raise
        # Image decoders fail on hostile bytes in many ways (OSError, SyntaxError, struct.error,
        # a decompression bomb's own error, ...): any of them means this file is unreadable.
        except Exception as error:
            raise DataError(
                f"cannot read image {file}: {_one_line(error) or type(error).__name__}"
            ) from None
        if resize_to is not None and values.shape[:2] != resize_to:
            values = np.asarray(Image.fromarray(values).resize(
                (resize_to[1], resize_to[0]), Image.Resampling.BILINEAR), dtype=np.uint8)
        height, width = values.shape[:2]
        if size is None:
            size, first_file = (width, height), file
        elif (width, height) != size:
            raise DataError(
                f"images differ in size: {file} is {width}x{height} "
                f"but {first_file} is {size[0]}x{size[1]} (width x height); resize them "
                "all as they are read (--image-size HxW of train, evaluate and compare; "
                "image_size= in load_dataset), or to one size beforehand"
            )
        pixels.append(values)
    if any(array.ndim == 3 for array in pixels):
        pixels = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in pixels]
    return ArrayData(np.stack(pixels), labels, class_names)


def _eight_bit_pixels(image, file: Path) -> np.ndarray:
    """uint8 pixels, (H, W) grey or (H, W, 3) colour."""
    if image.mode.startswith("I;16"):
        # PIL's conversion to 8 bits clips 16-bit grey at 255; scale the whole range instead.
        return np.round(np.asarray(image, dtype=np.float64) / 257.0).astype(np.uint8)
    if image.mode in ("I", "F"):
        kind = "integer" if image.mode == "I" else "floating-point"
        raise DataError(f"cannot read image {file}: its 32-bit {kind} pixels (mode "
                        f"{image.mode}) have no 8-bit scale; save it with 8 or 16 bits")
    grey = image.mode in GREYSCALE_MODES
    return np.asarray(image.convert("L" if grey else "RGB"), dtype=np.uint8)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
