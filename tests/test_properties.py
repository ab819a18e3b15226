"""Property-based tests (hypothesis) of every reader and of the public API's argument checks.

Whatever the input (random shapes and dtypes, NaN and infinities, empty or huge values, damaged
or garbage files), each call ends in either the correct result, computed here independently, or
one line of DataError / ValueError / CorruptFileError that names the problem (and the file).
Any other exception, a message over several lines or a wrong array fails the test.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import aevae
from aevae.data import DataError, load_dataset, validate_array
from aevae.data.readers import (
    parse_amat,
    parse_idx,
    read_csv,
    read_idx,
    read_image_folder,
    read_npy,
    read_npz,
)
from aevae.io import CorruptFileError

# The campaign script raises this for a longer run; the test suite keeps it small.
EXAMPLES = int(os.environ.get("AEVAE_PROPERTY_EXAMPLES", "25"))
# The suite draws the same examples on every run (a CI run that fails now and then is broken);
# the campaign (scripts/reliability_report.py) explores new ones each time.
EXPLORE = os.environ.get("AEVAE_PROPERTY_EXPLORE") == "1"
ALLOWED = (DataError, CorruptFileError, ValueError)


def properties(share: float = 1.0):
    return settings(max_examples=max(5, round(EXAMPLES * share)), deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), derandomize=not EXPLORE)


@pytest.fixture
def workspace():
    """A new empty folder for each call: hypothesis runs many examples in one test call."""
    with tempfile.TemporaryDirectory(prefix="aevae-property-") as name:
        yield lambda: Path(tempfile.mkdtemp(dir=name))


def attempt(campaign, target: str, call, *, names: str | None = None):
    """(result, None), or (None, error) for an allowed one-line error that contains ``names``.
    Any other exception propagates and fails the test. The outcome is counted."""
    try:
        result = call()
    except ALLOWED as error:
        message = str(error)
        assert message.strip() and "\n" not in message, repr(message)
        if names is not None:
            assert names in message, (names, message)
        campaign.record("properties", target, type(error).__name__)
        return None, error
    campaign.record("properties", target, "result")
    return result, None


def same(actual: np.ndarray, expected: np.ndarray) -> bool:
    return (actual.shape == expected.shape and actual.dtype == expected.dtype
            and np.array_equal(actual, expected, equal_nan=expected.dtype.kind in "fcmM"))


# ----- what a loaded array should be ------------------------------------------------------------
def expected_examples(array: np.ndarray) -> np.ndarray | None:
    """What load_dataset makes of raw user data: float32, 8-bit scaled to [0, 1], images as
    (N, C, H, W); None where it must refuse the data."""
    if array.dtype.kind not in "biuf" or array.size == 0 or array.ndim not in (2, 3, 4):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.array(array, dtype=np.float32)
    if not np.isfinite(x).all():
        return None
    if array.dtype == np.uint8:
        x /= 255.0
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def check_loaded(campaign, target: str, path: Path, expected: np.ndarray | None, **options):
    dataset, error = attempt(campaign, target, lambda: load_dataset(str(path), **options),
                             names=path.name)
    if expected is None:
        assert error is not None, f"{path.name} should have been refused"
    else:
        assert error is None, f"{path.name} should load: {error}"
        assert same(dataset.train.x, expected)
    return dataset


# ----- strategies -------------------------------------------------------------------------------
NUMERIC = ["?", "u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f2", "f4", "f8", ">f4", ">i2"]
OTHER = ["c8", "U3", "S2", "M8[s]", "m8[s]"]
shapes = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)
any_array = st.sampled_from(NUMERIC + OTHER).flatmap(lambda dtype: hnp.arrays(dtype, shapes))
numeric_array = st.sampled_from(NUMERIC).flatmap(lambda dtype: hnp.arrays(dtype, shapes))


MODEST = 1e30  # beyond this a float32 network may overflow: outputs are then not checked


def arrays_shaped(shapes):
    """Numeric arrays of these shapes: mostly modest values, sometimes any (NaN, inf, huge)."""
    dtypes = st.sampled_from(["f4", "f8", ">f4", "i8", "u1", "?"])
    small = st.tuples(dtypes, shapes).flatmap(lambda spec: hnp.arrays(
        spec[0], spec[1], elements=st.floats(-1e3, 1e3, width=32) if "f" in spec[0] else None))
    return st.one_of(small, small, st.tuples(dtypes, shapes).flatmap(
        lambda spec: hnp.arrays(*spec)))


def modest(array) -> bool:
    array = np.asarray(array)
    return array.size == 0 or float(np.abs(array.astype(np.float64)).max()) <= MODEST


def damaged(raw: bytes, data) -> tuple[str, bytes]:
    """A damaged copy of ``raw``: truncated, bytes overwritten, junk inserted, or replaced."""
    kind = data.draw(st.sampled_from(["truncate", "overwrite", "insert", "garbage"]))
    if kind == "truncate":
        return kind, raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)))]
    if kind == "garbage":
        return kind, data.draw(st.binary(max_size=300))
    position = data.draw(st.integers(0, len(raw)))
    junk = data.draw(st.binary(min_size=1, max_size=16))
    if kind == "overwrite":
        return kind, raw[:position] + junk + raw[position + len(junk):]
    return kind, raw[:position] + junk + raw[position:]


# ----- .npy ---------------------------------------------------------------------------------------
@properties()
@given(array=any_array)
def test_npy_files_load_exactly_or_are_refused(campaign, workspace, array):
    folder = workspace()
    path = folder / "data.npy"
    np.save(path, array, allow_pickle=False)
    read, _ = attempt(campaign, "npy", lambda: read_npy(path), names=str(path))
    assert read is not None and same(read, array)
    check_loaded(campaign, "npy", path, expected_examples(array))


@properties()
@given(array=numeric_array, data=st.data())
def test_damaged_npy_files_never_crash_nor_come_back_short(campaign, workspace, array, data):
    folder = workspace()
    buffer = io.BytesIO()
    np.save(buffer, array)
    kind, raw = damaged(buffer.getvalue(), data)
    path = folder / "damaged.npy"
    path.write_bytes(raw)
    read, error = attempt(campaign, "npy", lambda: read_npy(path), names=str(path))
    if kind == "truncate":
        assert error is not None, "a truncated .npy must not load"
    elif error is None:
        assert isinstance(read, np.ndarray)
    attempt(campaign, "npy", lambda: load_dataset(str(path)), names=path.name)


@properties()
@given(shape=st.lists(st.integers(0, 2**40), max_size=4).map(tuple),
       dtype=st.sampled_from(["<f4", "<f8", "|u1", "<i8"]),
       data_bytes=st.integers(0, 64))
def test_npy_header_claiming_a_huge_array_is_refused_without_allocating(campaign, workspace, shape,
                                                                        dtype, data_bytes):
    folder = workspace()
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    path = folder / "huge.npy"
    path.write_bytes(buffer.getvalue() + b"\x00" * data_bytes)
    read, error = attempt(campaign, "npy", lambda: read_npy(path), names=str(path))
    if math.prod(shape) * np.dtype(dtype).itemsize != data_bytes:
        assert error is not None
    elif error is None:  # numpy may still refuse an empty shape whose other sides overflow
        assert read.shape == shape


# ----- .npz ---------------------------------------------------------------------------------------
ARCHIVE_KEYS = ["x", "data", "y", "labels", "features", "target"]


@st.composite
def archives(draw):
    count = draw(st.integers(1, 6))
    keys = draw(st.lists(st.sampled_from(ARCHIVE_KEYS), unique=True, max_size=3))
    arrays = {}
    for key in keys:
        if key in ("y", "labels", "target"):
            arrays[key] = draw(hnp.arrays(st.sampled_from(["i8", "u1", "f8"]), (count,),
                                          elements=st.integers(0, 9)))
        else:
            arrays[key] = draw(hnp.arrays(st.sampled_from(NUMERIC), (count, 3)))
    return arrays, draw(st.booleans())


def expected_archive(arrays: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """read_npz's documented choice: data from x, data or the only array besides the labels;
    labels from y or labels."""
    label_keys = [key for key in ("y", "labels") if key in arrays]
    data_keys = [key for key in ("x", "data") if key in arrays]
    others = [key for key in arrays if key not in label_keys]
    if data_keys:
        x = arrays[data_keys[0]]
    elif len(others) == 1:
        x = arrays[others[0]]
    else:
        return None, None
    return x, arrays[label_keys[0]] if label_keys else None


@properties()
@given(archive=archives())
def test_npz_archives_pick_the_documented_arrays(campaign, workspace, archive):
    folder = workspace()
    arrays, compressed = archive
    path = folder / "data.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    x, labels = expected_archive(arrays)
    read, error = attempt(campaign, "npz", lambda: read_npz(path), names=str(path))
    assert (error is None) == (x is not None)
    if x is None:
        return
    assert same(read.x, x)
    assert (read.labels is None) == (labels is None)
    if labels is not None:
        assert same(read.labels, labels)
    dataset = check_loaded(campaign, "npz", path, expected_examples(x))
    if dataset is not None and labels is not None:
        assert dataset.train.labels.tolist() == labels.astype(np.int64).tolist()


@properties()
@given(archive=archives(), data=st.data())
def test_damaged_npz_archives_never_crash(campaign, workspace, archive, data):
    folder = workspace()
    arrays, compressed = archive
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    kind, raw = damaged(buffer.getvalue(), data)
    path = folder / "damaged.npz"
    path.write_bytes(raw)
    _, error = attempt(campaign, "npz", lambda: read_npz(path), names=str(path))
    if kind == "truncate":
        assert error is not None, "a truncated archive must not load"
    attempt(campaign, "npz", lambda: load_dataset(str(path)), names=path.name)


@properties(0.5)
@given(shape=st.lists(st.integers(0, 2**40), min_size=1, max_size=3).map(tuple),
       compressed=st.booleans())
def test_npz_member_claiming_a_huge_array_is_refused(campaign, workspace, shape, compressed):
    folder = workspace()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    path = folder / "huge.npz"
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("x.npy", header.getvalue() + b"\x00" * 16)
    _, error = attempt(campaign, "npz", lambda: read_npz(path), names=str(path))
    assert (error is None) == (math.prod(shape) * 8 == 16)


# ----- CSV ----------------------------------------------------------------------------------------
finite_or_not = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                          st.integers(-10**30, 10**30))


@st.composite
def tables(draw):
    rows = draw(st.integers(1, 5))
    columns = draw(st.integers(1, 4))
    values = [[draw(finite_or_not) for _ in range(columns)] for _ in range(rows)]
    header = draw(st.booleans())
    labels = draw(st.sampled_from(["none", "first", "last"] + (["named"] if header else [])))
    names = header and draw(st.booleans())  # class names as labels need a header row
    label_values = [draw(st.sampled_from(["cat", "dog", "emu"])) if names
                    else draw(st.integers(-3, 9)) for _ in range(rows)]
    delimiter = draw(st.sampled_from([",", ";", "\t", " "]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    blank = draw(st.sampled_from(["", newline]))  # a blank line between rows
    return values, header, labels, label_values, delimiter, newline, blank


def table_text(values, header, labels, label_values, delimiter, newline, blank) -> str:
    width = len(values[0])
    names = [f"c{index}" for index in range(width)]
    rows = [[repr(float(value)) if isinstance(value, float) else str(value) for value in row]
            for row in values]
    if labels != "none":
        position = 0 if labels == "first" else width
        names.insert(position, "kind")
        for row, label in zip(rows, label_values):
            row.insert(position, str(label))
    lines = ([delimiter.join(names)] if header else []) + [delimiter.join(row) for row in rows]
    return (newline + blank).join(lines) + newline


@properties(1.5)
@given(table=tables())
def test_csv_tables_load_exactly_or_are_refused(campaign, workspace, table):
    folder = workspace()
    values, header, labels, label_values, *_ = table
    path = folder / "table.csv"
    path.write_bytes(table_text(*table).encode())
    option = {"none": None, "named": "kind"}.get(labels, labels)
    x = np.array([[float(value) for value in row] for row in values], dtype=np.float64)
    expected = expected_examples(x)
    dataset = check_loaded(campaign, "csv", path, expected, labels=option)
    if dataset is None or option is None:
        return
    if isinstance(label_values[0], str):
        names = sorted(set(label_values))
        assert dataset.class_names == tuple(names)
        assert dataset.train.labels.tolist() == [names.index(name) for name in label_values]
    else:
        assert dataset.train.labels.tolist() == label_values


@properties()
@given(text=st.text(alphabet=st.sampled_from(list("0123456789.-+eEinfa ,;\t\r\n\"x\x00")),
                    max_size=80),
       labels=st.sampled_from([None, "last", "first", "x"]))
def test_garbage_csv_never_crashes(campaign, workspace, text, labels):
    folder = workspace()
    path = folder / "garbage.csv"
    path.write_text(text)
    dataset, _ = attempt(campaign, "csv", lambda: load_dataset(str(path), labels=labels),
                         names=path.name)
    if dataset is not None:
        assert np.isfinite(dataset.train.x).all()


# ----- .amat --------------------------------------------------------------------------------------
@st.composite
def amat_files(draw):
    rows, columns = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    if draw(st.booleans()):
        values = draw(hnp.arrays(np.uint8, (rows, columns), elements=st.integers(0, 1)))
        texts = [[str(value) for value in row] for row in values]
    else:
        values = draw(hnp.arrays(np.float64, (rows, columns), elements=st.floats(width=64)))
        texts = [[repr(float(value)) for value in row] for row in values]
    separator = draw(st.sampled_from([" ", "  ", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    trailing = draw(st.sampled_from(["", separator]))
    text = newline.join(separator.join(row) + trailing for row in texts)
    return values, text + draw(st.sampled_from(["", newline]))


@properties()
@given(amat=amat_files())
def test_amat_files_parse_exactly(campaign, workspace, amat):
    folder = workspace()
    values, text = amat
    parsed, _ = attempt(campaign, "amat", lambda: parse_amat(text.encode(), source="x.amat"))
    expected = values.astype(np.float32)
    assert parsed is not None and np.array_equal(parsed.astype(np.float32), expected,
                                                 equal_nan=True)
    path = folder / "values.amat"
    path.write_text(text)
    check_loaded(campaign, "amat", path, expected_examples(values.astype(np.float32)))


@properties()
@given(raw=st.binary(max_size=120) | st.text("01 \n\r\tx.e-", max_size=60).map(str.encode))
def test_garbage_amat_never_crashes(campaign, workspace, raw):
    folder = workspace()
    attempt(campaign, "amat", lambda: parse_amat(raw, source="garbage.amat"),
            names="garbage.amat")
    path = folder / "garbage.amat"
    path.write_bytes(raw)
    attempt(campaign, "amat", lambda: load_dataset(str(path)), names=path.name)


# ----- IDX ----------------------------------------------------------------------------------------
IDX_CODES = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


idx_arrays = st.sampled_from(sorted(IDX_CODES)).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0,
                                                     max_side=4)))


@properties()
@given(array=idx_arrays, compressed=st.booleans())
def test_idx_files_parse_exactly(campaign, workspace, array, compressed):
    folder = workspace()
    raw = idx_bytes(array, IDX_CODES[array.dtype.str.replace("|", "")])
    path = folder / ("data.idx.gz" if compressed else "data.idx")
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    read, _ = attempt(campaign, "idx", lambda: read_idx(path), names=str(path))
    assert read is not None and read.dtype.isnative
    assert np.array_equal(read, array, equal_nan=True) and read.shape == array.shape
    parsed, _ = attempt(campaign, "idx", lambda: parse_idx(raw, source="x.idx"))
    assert parsed is not None and np.array_equal(parsed, array, equal_nan=True)


@properties()
@given(array=idx_arrays, compressed=st.booleans(), data=st.data())
def test_damaged_idx_files_are_refused(campaign, workspace, array, compressed, data):
    folder = workspace()
    raw = idx_bytes(array, IDX_CODES[array.dtype.str.replace("|", "")])
    kind, broken = damaged(raw, data)
    path = folder / ("data.idx.gz" if compressed else "data.idx")
    path.write_bytes(gzip.compress(broken) if compressed else broken)
    read, error = attempt(campaign, "idx", lambda: read_idx(path), names=str(path))
    if kind == "truncate":
        assert error is not None, "a truncated IDX file must not load"
    elif error is None:
        assert math.prod(read.shape) * read.dtype.itemsize + 4 + 4 * read.ndim == len(broken)
    if compressed:
        _, broken_stream = damaged(gzip.compress(raw), data)
        path.write_bytes(broken_stream)
        attempt(campaign, "idx", lambda: read_idx(path), names=str(path))


# ----- image folders ------------------------------------------------------------------------------
MODES = ["L", "RGB", "RGBA", "LA", "1", "P", "I;16"]
LOSSLESS = {"png": ("L", "RGB", "RGBA", "LA", "1", "P", "I;16"), "bmp": ("L", "RGB", "1", "P"),
            "tiff": ("L", "RGB", "RGBA", "1", "P")}


@st.composite
def image_sets(draw):
    width, height = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    count = draw(st.integers(1, 3))
    images = []
    for _ in range(count):
        image_format = draw(st.sampled_from(sorted(LOSSLESS)))
        mode = draw(st.sampled_from(LOSSLESS[image_format]))
        channels = {"L": (), "1": (), "P": (), "I;16": (), "LA": (2,), "RGB": (3,),
                    "RGBA": (4,)}[mode]
        dtype = np.uint16 if mode == "I;16" else np.uint8
        top = {"1": 1, "P": 3}.get(mode, np.iinfo(dtype).max)
        pixels = draw(hnp.arrays(dtype, (height, width, *channels),
                                 elements=st.integers(0, top)))
        images.append((image_format, mode, pixels))
    return images, draw(st.booleans())


PALETTE = [0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30]


def write_image(path: Path, image_format: str, mode: str, pixels: np.ndarray) -> np.ndarray:
    """Save the image; return the pixels the reader should produce (grey (H, W) or RGB)."""
    from PIL import Image

    if mode == "1":
        image = Image.fromarray(pixels.astype(bool))
        expected = pixels * 255
    elif mode == "P":
        image = Image.new("P", (pixels.shape[1], pixels.shape[0]))
        image.putdata(pixels.ravel().tolist())
        image.putpalette(PALETTE)
        expected = np.array(PALETTE, dtype=np.uint8).reshape(-1, 3)[pixels]
    elif mode == "I;16":
        image = Image.fromarray(pixels)
        expected = np.round(pixels / 257.0).astype(np.uint8)  # 16-bit grey to 8 bits
    else:
        image = Image.fromarray(pixels)
        expected = pixels[..., :3] if mode in ("RGBA", "RGB") else pixels
        if mode == "LA":
            expected = pixels[..., 0]
    image.save(path, format=image_format.upper())
    return expected.astype(np.uint8)


@properties()
@given(image_set=image_sets())
def test_image_folders_load_exactly(campaign, workspace, image_set):
    folder = workspace()
    pytest.importorskip("PIL")
    images, classes = image_set
    root = folder / "images"
    expected = []
    for index, (image_format, mode, pixels) in enumerate(images):
        where = root / f"class{index % 2}" if classes else root
        where.mkdir(parents=True, exist_ok=True)
        expected.append(write_image(where / f"{index}.{image_format}", image_format, mode,
                                    pixels))
    if classes:  # the reader goes class by class, each class's files sorted by name
        order = [index for parity in (0, 1) for index in range(len(images))
                 if index % 2 == parity]
        expected = [expected[index] for index in order]
    if any(pixels.ndim == 3 for pixels in expected):
        expected = [np.repeat(pixels[..., None], 3, 2) if pixels.ndim == 2 else pixels
                    for pixels in expected]
    stacked = np.stack(expected)
    read, _ = attempt(campaign, "images", lambda: read_image_folder(root), names=str(root))
    assert read is not None and same(read.x, stacked)
    check_loaded(campaign, "images", root, expected_examples(stacked))


@properties()
@given(image_set=image_sets(), data=st.data())
def test_damaged_images_never_load_partially(campaign, workspace, image_set, data):
    folder = workspace()
    pytest.importorskip("PIL")
    images, _ = image_set
    image_format, mode, pixels = images[0]
    root = folder / "images"
    root.mkdir()
    path = root / f"0.{image_format}"
    expected = write_image(path, image_format, mode, pixels)
    kind, raw = damaged(path.read_bytes(), data)
    path.write_bytes(raw)
    read, error = attempt(campaign, "images", lambda: read_image_folder(root), names=str(root))
    if error is None and kind == "truncate":
        # Only what the file still holds in full may come back: never a partial image.
        assert np.array_equal(read.x[0], expected)


# ----- validate_array -----------------------------------------------------------------------------
@properties(2)
@given(array=st.one_of(any_array, arrays_shaped(hnp.array_shapes(min_dims=2, max_dims=4,
                                                                max_side=3))),
       likelihood=st.sampled_from([None, "bernoulli", "gaussian"]))
def test_validate_array_accepts_exactly_the_valid_arrays(campaign, array, likelihood):
    checked, _ = attempt(campaign, "validate_array",
                         lambda: validate_array(array, name="probe", likelihood=likelihood),
                         names="probe")
    valid = (array.dtype.kind in "biuf" and array.size > 0 and array.ndim in (2, 3, 4))
    if valid:
        with np.errstate(over="ignore", invalid="ignore"):
            converted = array.astype(np.float32)
        valid = bool(np.isfinite(converted).all())
        if valid and likelihood == "bernoulli":
            valid = converted.min() >= 0 and converted.max() <= 1
    assert (checked is not None) == valid
    if valid:
        assert checked.flags.c_contiguous and same(checked, converted)


@properties()
@given(value=st.one_of(
    st.none(), st.text(max_size=5), st.integers(), st.floats(),
    st.lists(st.lists(st.floats(), max_size=3), max_size=3),
    st.lists(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool, torch.complex64,
                     torch.float16]).map(lambda dtype: torch.ones(2, 3, dtype=dtype))))
def test_validate_array_on_anything(campaign, value):
    checked, _ = attempt(campaign, "validate_array", lambda: validate_array(value, name="probe"),
                         names="probe")
    if checked is not None:
        assert checked.dtype == np.float32 and checked.ndim in (2, 3, 4)
        assert np.isfinite(checked).all()


# ----- aevae.make ---------------------------------------------------------------------------------
odd_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(),
                       st.text(max_size=6), st.lists(st.integers(-1, 20), max_size=3),
                       st.dictionaries(st.sampled_from(["sigma", "components", "x",
                                                        "per_dimension", "initial_sigma",
                                                        "pseudo_inputs"]),
                                       st.one_of(st.integers(-2, 5), st.floats(),
                                                 st.booleans(), st.text(max_size=2)),
                                       max_size=2))
sensible = {
    "latent_dim": st.integers(1, 6), "hidden": st.lists(st.integers(1, 12), max_size=2),
    "network": st.sampled_from(["mlp", "linear", "conv"]),
    "activation": st.sampled_from(["relu", "tanh", "gelu", "softplus"]),
    "norm": st.sampled_from([None, "none", "batch", "layer"]),
    "init": st.sampled_from(["default", "xavier", "kaiming", "orthogonal"]),
    "likelihood": st.sampled_from(["bernoulli", "gaussian", "gaussian-learned"]),
    "prior": st.sampled_from(["standard-normal", "mixture", "vamp"]),
    "likelihood_options": st.sampled_from([{}, {"sigma": 0.5}, {"per_dimension": True}]),
    "prior_options": st.sampled_from([{}, {"components": 3}, {"pseudo_inputs": 4}]),
    "input_noise_std": st.floats(0, 1), "input_mask_fraction": st.floats(0, 0.9),
    "seed": st.integers(0, 2**31),
    "beta": st.floats(0, 8), "samples": st.integers(1, 3), "importance_samples": st.integers(1, 4),
    "free_bits": st.floats(0, 1), "flow": st.sampled_from(["planar", "iaf"]),
    "flow_length": st.integers(1, 3), "sparsity": st.sampled_from(["l1", "kl"]),
    "mmd_weight": st.floats(0, 20), "intermediate_latent_dim": st.integers(1, 6),
}


@st.composite
def model_requests(draw):
    name = draw(st.sampled_from(sorted(aevae.models.MODELS) + ["nonsense"]))
    shape = draw(st.sampled_from([(6,), (1, 4, 4), (3, 8, 8), (2, 3)]))
    options = {"input_shape": shape}
    for key in draw(st.lists(st.sampled_from(sorted(sensible) + ["unknown_option"]),
                             unique=True, max_size=5)):
        odd = key == "unknown_option" or draw(st.integers(0, 4)) == 0
        options[key] = draw(odd_values if odd else sensible.get(key, odd_values))
    options.setdefault("hidden", [8])
    options.setdefault("prior_options", {"pseudo_inputs": 4} if options.get("prior") == "vamp"
                       or name == "vamp_prior" else {})
    return name, options


@properties(2)
@given(request=model_requests())
def test_make_builds_a_working_model_or_says_which_option_is_wrong(campaign, request):
    name, options = request
    model, _ = attempt(campaign, "make", lambda: aevae.make(name, **options))
    if model is None or model.uses:  # models that read labels: tests/test_labels.py
        return
    x = torch.rand(3, *options["input_shape"])
    codes = model.encode(x)
    assert codes.shape == (3, model.latent_dim) and torch.isfinite(codes).all()
    decoded = model.decode(codes)
    assert decoded.shape == x.shape and torch.isfinite(decoded).all()
    assert torch.isfinite(model.loss_terms(x)["loss"]).all()
    samples = model.sample(2, seed=0)
    assert samples.shape == (2, *x.shape[1:]) and np.isfinite(samples).all()


# ----- encode, decode, sample, interpolate --------------------------------------------------------
@functools.cache
def small_model(name: str, shape: tuple[int, ...]):
    return aevae.make(name, input_shape=shape, latent_dim=3, hidden=(8,))


MODEL_CASES = [("ae", (6,)), ("vae", (6,)), ("vae", (1, 2, 3)), ("hierarchical_vae", (6,))]
SIDES = st.sampled_from([0, 1, 2, 3, 6])
batch_shapes = st.lists(SIDES, max_size=4).map(tuple)
inputs = st.tuples(st.sampled_from(NUMERIC + ["c8", "U3"]), batch_shapes).flatmap(
    lambda spec: hnp.arrays(spec[0], spec[1]))
def batches(shape: tuple[int, ...]):
    """Half the time a batch shaped for the model (or flattened), else anything."""
    rows = st.integers(1, 4)
    good = st.one_of(rows.map(lambda n: (n, *shape)), rows.map(lambda n: (n, math.prod(shape))))
    return st.one_of(arrays_shaped(good), inputs)


def valid_batch(model, array: np.ndarray) -> bool:
    shape = model.input_shape
    if array.dtype.kind not in "biuf" or array.ndim in (0, len(shape)) or array.shape[0] == 0:
        return False
    if math.prod(array.shape[1:]) != math.prod(shape):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(array.astype(np.float32)).all())


@properties(2)
@given(case=st.sampled_from(MODEL_CASES), as_tensor=st.booleans(),
       batch_size=st.one_of(st.just(1024), st.just(1024), st.integers(-1, 3)), data=st.data())
def test_encode_takes_valid_batches_and_refuses_the_rest(campaign, case, as_tensor, batch_size,
                                                         data):
    model = small_model(*case)
    array = data.draw(batches(model.input_shape))
    value = array
    if as_tensor and array.dtype.kind in "biuf" and array.dtype.str not in (">f4", ">i2"):
        value = torch.from_numpy(array.astype(array.dtype.newbyteorder("=")))
    codes, _ = attempt(campaign, "encode", lambda: model.encode(value, batch_size=batch_size))
    assert (codes is not None) == (valid_batch(model, array) and batch_size >= 1)
    if codes is not None:
        assert tuple(codes.shape) == (array.shape[0], 3)
        assert not modest(array) or bool(np.isfinite(np.asarray(codes)).all())


@properties()
@given(case=st.sampled_from(MODEL_CASES),
       array=st.one_of(arrays_shaped(st.integers(1, 4).map(lambda n: (n, 3))), inputs))
def test_decode_takes_codes_and_refuses_the_rest(campaign, case, array):
    model = small_model(*case)
    decoded, _ = attempt(campaign, "decode", lambda: model.decode(array))
    valid = (array.dtype.kind in "biuf" and array.ndim == 2 and array.shape[0] > 0
             and array.shape[1] == 3)
    if valid:
        with np.errstate(over="ignore", invalid="ignore"):
            valid = bool(np.isfinite(array.astype(np.float32)).all())
    assert (decoded is not None) == valid
    if decoded is not None:
        assert decoded.shape == (array.shape[0], *model.input_shape)
        if modest(array):
            assert ((decoded >= 0) & (decoded <= 1)).all()  # Bernoulli means


counts = st.one_of(st.integers(1, 5), st.integers(-3, 5), st.floats(-2, 5), st.booleans(),
                   st.none(), st.text(max_size=2), st.just(np.int64(2)))
seeds = st.one_of(st.none(), st.integers(0, 1000), st.integers(0, 1000),
                  st.integers(-2**70, 2**70), st.floats(0, 9), st.text(max_size=2))


@properties()
@given(case=st.sampled_from(MODEL_CASES), n=counts, seed=seeds)
def test_sample_checks_its_count_and_seed(campaign, case, n, seed):
    model = small_model(*case)
    samples, _ = attempt(campaign, "sample", lambda: model.sample(n, seed=seed))
    whole = isinstance(n, (int, np.integer)) and not isinstance(n, bool)
    seed_ok = seed is None or (isinstance(seed, int) and 0 <= seed < 2**64)
    assert (samples is not None) == (whole and n >= 1 and seed_ok)
    if samples is not None:
        assert samples.shape == (n, *model.input_shape) and np.isfinite(samples).all()
        if seed is not None:
            assert np.array_equal(samples, model.sample(n, seed=seed))


@properties()
@given(case=st.sampled_from(MODEL_CASES),
       steps=st.one_of(st.integers(2, 6), st.integers(-1, 6), st.floats(0, 6), st.none()),
       as_list=st.booleans(), data=st.data())
def test_interpolate_checks_its_endpoints_and_steps(campaign, case, steps, as_list, data):
    model = small_model(*case)
    single = len(model.input_shape)
    # Two examples, two batches of one size, or anything.
    shaped = model.input_shape
    pair = st.one_of(arrays_shaped(st.just(shaped)),
                     st.integers(1, 3).flatmap(lambda n: arrays_shaped(st.just((n, *shaped)))))
    start = data.draw(st.one_of(pair, inputs))
    end = data.draw(st.one_of(arrays_shaped(st.just(start.shape)), inputs))
    if as_list:
        start, end = start.tolist(), end.tolist()
    path, _ = attempt(campaign, "interpolate", lambda: model.interpolate(start, end, steps))
    start_array, end_array = np.asarray(start), np.asarray(end)

    def batch(array):
        return array[None] if array.ndim == single else array

    valid = (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 2
             and start_array.ndim > 0 and end_array.ndim > 0
             and valid_batch(model, batch(start_array)) and valid_batch(model, batch(end_array))
             and batch(start_array).shape[0] == batch(end_array).shape[0])
    if path is not None:
        assert valid
        rows = batch(start_array).shape[0]
        expected = ((steps, *model.input_shape) if start_array.ndim == single
                    else (rows, steps, *model.input_shape))
        assert tuple(np.shape(path)) == expected
    else:
        # Endpoints with the same number of values but other shapes may also be refused.
        assert not valid or start_array.shape != end_array.shape


# ----- load_dataset's splits ----------------------------------------------------------------------
def mostly(valid, odd):
    """``valid`` about four times in five, so that most examples get past the checks."""
    return st.integers(0, 4).flatmap(lambda draw: odd if draw == 4 else valid)


fractions = mostly(st.one_of(st.just(0.0), st.floats(0, 0.5)),
                   st.one_of(st.floats(), st.integers(-1, 2), st.booleans(), st.text(max_size=3),
                             st.none()))
limits = mostly(st.one_of(st.none(), st.integers(1, 40)),
                st.one_of(st.integers(-2, 0), st.floats(0, 5), st.text(max_size=2)))
split_seeds = mostly(st.one_of(st.integers(0, 5), st.integers(2**32 - 3, 2**32 - 1)),
                     st.one_of(st.integers(-5, 2**33), st.floats(0, 2), st.none()))


def as_number(value):
    plain = isinstance(value, (int, float)) and not isinstance(value, bool)
    return value if plain else None


def expected_split_sizes(count, validation, test, limit, seed):
    """(train, validation, test) sizes, or None where load_dataset must refuse."""
    numbers = [as_number(value) for value in (validation, test)]
    if any(number is None or not 0.0 <= number < 1.0 for number in numbers):
        return None
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit < 1):
        return None
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        return None
    validation, test = numbers
    sizes = {"train": count, "validation": 0, "test": 0}
    for name, fraction in (("test", test), ("validation", validation)):
        if fraction > 0:
            carved = max(1, round(fraction * sizes["train"]))
            if carved >= sizes["train"]:
                return None
            sizes["train"] -= carved
            sizes[name] = carved
    if limit is not None:
        sizes["train"] = min(sizes["train"], limit)
    return sizes["train"], sizes["validation"], sizes["test"]


@properties(2)
@given(count=st.integers(1, 30), validation=fractions, test=fractions, limit=limits,
       seed=split_seeds)
def test_load_dataset_splits_partition_the_data_or_refuse(campaign, workspace, count, validation,
                                                           test, limit, seed):
    folder = workspace()
    x = np.arange(count * 2, dtype=np.float32).reshape(count, 2)
    path = folder / "rows.npy"
    np.save(path, x)

    def load():
        return load_dataset(str(path), validation_fraction=validation, test_fraction=test,
                            limit=limit, seed=seed)

    dataset, _ = attempt(campaign, "load_dataset", load)
    sizes = expected_split_sizes(count, validation, test, limit, seed)
    assert (dataset is not None) == (sizes is not None)
    if dataset is None:
        return
    splits = [dataset.train, dataset.validation, dataset.test]
    assert tuple(0 if split is None else len(split) for split in splits) == sizes
    rows = [row for split in splits if split is not None for row in split.x[:, 0].tolist()]
    assert len(set(rows)) == len(rows) and set(rows) <= set(x[:, 0].tolist())
    for split in splits:  # each split keeps the file's order
        if split is not None:
            assert split.x[:, 0].tolist() == sorted(split.x[:, 0].tolist())
    again = load()
    assert all(same(a.x, b.x) for a, b in zip(dataset.splits().values(),
                                              again.splits().values()))


# ----- regressions: each case below failed before the fix named in its test ---------------------
def png_header_only(width: int, height: int) -> bytes:
    import zlib

    chunk = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    text = header.ljust(117) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + data


@pytest.mark.regression
@pytest.mark.parametrize(("name", "raw", "message"), [
    ("huge.npy", npy_with_header("{'descr': '<f8', 'fortran_order': False, "
                                 "'shape': (10000000000,), }"), "truncated"),
    ("parenthesis.npy", npy_with_header("{'descr': '<f4'( 'fortran_order': False, "
                                        "'shape': (), }"), "not a readable .npy array"),
    ("longer.npy", npy_with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
                                   b"\x01\x02\x03"), "longer than its header says"),
], ids=["huge shape", "unbalanced header", "trailing bytes"])
def test_npy_headers_that_crashed_the_reader(tmp_path, name, raw, message):
    # MemoryError (numpy allocates what the header declares) and tokenize.TokenError before.
    (tmp_path / name).write_bytes(raw)
    with pytest.raises(DataError, match=message):
        read_npy(tmp_path / name)


@pytest.mark.regression
def test_npz_with_a_corrupt_compressed_member(tmp_path):
    # zlib.error escaped read_npz before.
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.arange(1000.0))
    raw = bytearray(buffer.getvalue())
    start = raw.index(b"x.npy") + len(b"x.npy") + 20
    raw[start:start + 40] = b"\xff" * 40
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="not a readable .npz archive"):
        read_npz(tmp_path / "bad.npz")


@pytest.mark.regression
def test_a_csv_field_the_csv_module_refuses(tmp_path):
    # _csv.Error escaped read_csv before.
    path = tmp_path / "table.csv"
    path.write_text("a,b\n1,\"" + "9" * 200_000 + "\"\n")
    with pytest.raises(DataError, match="table.csv: line 2: field larger than field limit"):
        read_csv(path)


@pytest.mark.regression
def test_images_that_crashed_or_came_back_wrong(tmp_path):
    from PIL import Image

    bomb = tmp_path / "bomb"
    bomb.mkdir()
    (bomb / "a.png").write_bytes(png_header_only(100_000, 100_000))  # DecompressionBombError
    with pytest.raises(DataError, match="a.png"):
        read_image_folder(bomb)
    deep = tmp_path / "sixteen-bit"
    deep.mkdir()
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(deep / "a.png")  # clipped to 255 before: [0, 255, 255, 255]
    assert read_image_folder(deep).x.tolist() == [[[0, 1, 128, 255]]]
    wide = tmp_path / "float"
    wide.mkdir()
    Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32)).save(wide / "a.tif")
    with pytest.raises(DataError, match="32-bit floating-point"):  # all 0 before
        read_image_folder(wide)


@pytest.mark.regression
def test_labels_too_large_for_int64_are_refused(tmp_path):
    # They wrapped around silently before and became other classes.
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    np.save(tmp_path / "y.npy", np.array([1e19, 0.0]))
    with pytest.raises(DataError, match="too large for class indices"):
        load_dataset(str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"))
    np.save(tmp_path / "y.npy", np.array([2**64 - 1, 0], dtype=np.uint64))
    with pytest.raises(DataError, match="too large for class indices"):
        load_dataset(str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"))


@pytest.mark.regression
@pytest.mark.parametrize(("options", "message"), [
    ({"validation_fraction": "0.1"}, "validation_fraction must be in"),  # TypeError before
    ({"limit": 2.5}, "limit must be a positive number"),  # TypeError before
    ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*32\)"),
    ({"seed": 2**32 - 1, "test_fraction": 0.2}, None),  # numpy's seed ValueError before
], ids=["text fraction", "float limit", "negative seed", "seed near 2**32"])
def test_load_dataset_arguments_that_crashed(tmp_path, options, message):
    np.save(tmp_path / "x.npy", np.zeros((10, 3)))
    if message is None:
        assert len(load_dataset(str(tmp_path / "x.npy"), **options).test) == 2
    else:
        with pytest.raises(DataError, match=message):
            load_dataset(str(tmp_path / "x.npy"), **options)


@pytest.mark.regression
@pytest.mark.parametrize(("call", "message"), [
    (lambda model: model.encode(np.zeros((0, 6))), "empty batch"),  # IndexError before
    (lambda model: model.decode(np.zeros((0, 3))), "N >= 1"),  # IndexError before
    (lambda model: model.encode(np.full((2, 6), np.nan)), "NaN or infinite"),  # NaN codes
    (lambda model: model.encode(np.ones((2, 6), dtype=np.complex64)), "must hold numbers"),
    (lambda model: model.encode([["a"] * 6]), "must hold numbers"),
    (lambda model: model.sample(2.5), "n must be an integer"),  # TypeError before
    (lambda model: model.sample(2, seed=2**70), "seed must be None or an integer"),
    (lambda model: model.interpolate(np.zeros(6), np.ones(6), steps=2.5),
     "steps must be an integer"),  # TypeError before
    (lambda model: model.encode(np.zeros((2, 6)), batch_size=0), "batch_size must be"),
], ids=["empty batch", "empty codes", "NaN", "complex", "strings", "float n", "huge seed",
        "float steps", "batch_size 0"])
def test_model_inputs_that_crashed_or_came_back_wrong(call, message):
    model = small_model("vae", (6,))
    with pytest.raises(ValueError, match=message):
        call(model)


@pytest.mark.regression
def test_interpolate_takes_lists():
    # x_start[None] on a list raised TypeError before.
    path = small_model("ae", (6,)).interpolate([0.0] * 6, [1.0] * 6, steps=3)
    assert path.shape == (3, 6)


@pytest.mark.regression
@pytest.mark.parametrize(("options", "message"), [
    ({"likelihood_options": {"x": 1}}, "unexpected keyword"),  # TypeError from make before
    ({"likelihood": "gaussian", "likelihood_options": {"sigma": "a"}},
     "likelihood_options.sigma: expected a number"),  # TypeError before
    ({"likelihood": "gaussian-learned", "likelihood_options": {"initial_sigma": 0.0}},
     "initial_sigma must be positive"),  # "math domain error" before
    ({"prior": "mixture", "prior_options": {"components": 2.7}},
     "prior_options.components: expected an integer"),  # silently 2 components before
    ({"seed": 2**60}, r"seed must be in \[0, 2\*\*32\)"),  # torch's overflow before
], ids=["unknown likelihood option", "text sigma", "zero initial_sigma", "float components",
        "huge seed"])
def test_make_options_that_crashed_or_were_misread(options, message):
    with pytest.raises(ValueError, match=message):
        aevae.make("vae", input_shape=(6,), hidden=(4,), **options)


@pytest.mark.regression
def test_a_prior_needing_a_posterior_on_a_model_without_one():
    # Built, then RuntimeError at the first sample() or training step before.
    with pytest.raises(ValueError, match="the vamp prior is built from a posterior"):
        aevae.make("ae", input_shape=(6,), hidden=(4,), prior="vamp")


@pytest.mark.regression
def test_json_that_crashed_the_reader(tmp_path):
    from aevae.io import read_json

    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # RecursionError
    with pytest.raises(CorruptFileError, match="deep.json: not valid JSON"):
        read_json(tmp_path / "deep.json")
    (tmp_path / "long.json").write_text("1" * 5000)  # ValueError without the file's name
    with pytest.raises(CorruptFileError, match="long.json: not valid JSON"):
        read_json(tmp_path / "long.json")


@pytest.mark.regression
@pytest.mark.parametrize(("header", "data"), [
    ({"w": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}, b"\0"),  # KeyError before
    ({"__metadata__": {"json": "[" * 50_000 + "]" * 50_000}}, b""),  # RecursionError before
], ids=["dtype torch lacks", "deep metadata"])
def test_safetensors_that_crashed_the_reader(tmp_path, header, data):
    import json

    from aevae.io import load_tensors

    text = json.dumps(header).encode()
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + data)
    with pytest.raises(CorruptFileError, match="w.safetensors: not a valid safetensors file"):
        load_tensors(tmp_path / "w.safetensors")


@pytest.mark.regression
def test_a_config_asking_for_terabytes_is_refused_before_allocating(tmp_path):
    import json

    model = small_model("vae", (6,))
    model.save(tmp_path)
    description = json.loads((tmp_path / "config.json").read_text())
    description["config"]["hidden"] = [10**9]  # allocated (or died trying) before
    (tmp_path / "config.json").write_text(json.dumps(description))
    with pytest.raises(CorruptFileError, match="does not fit the model"):
        aevae.load(tmp_path)


@pytest.mark.regression
def test_weights_holding_nan_are_refused(tmp_path):
    from aevae.io import save_tensors

    model = small_model("ae", (6,))
    model.save(tmp_path)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    first = next(iter(state))
    state[first][0] = float("nan")
    save_tensors(tmp_path / "model.safetensors", state)
    with pytest.raises(CorruptFileError, match=f"{first} holds NaN"):
        aevae.load(tmp_path)
