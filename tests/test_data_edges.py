"""Edge cases of the data layer found by an audit: CSV header guessing, empty labels, downloads
next to a read-only data folder and the parsed .amat cache. No test touches the network."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import struct
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from aevae.data import REMOTE_FILES, DataError, NpyStream, load_dataset, readers
from aevae.data.download import RemoteFile, download_file
from aevae.data.readers import read_amat
from aevae.data.validation import validate_array, validate_labels

pytestmark = pytest.mark.usefixtures("isolated_data_environment")


def one_line_error(call, *fragments: str) -> str:
    with pytest.raises(DataError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ------------------------------------------------------------------ CSV: header or data


@pytest.mark.parametrize(("content", "cell"), [
    ("1.5,NA,3\n4,5,6\n7,8,9\n", "'NA'"),
    ("1,2,?\n4,5,6\n", "'?'"),
    ("0.5 n/a\n1 2\n", "'n/a'"),
])
def test_a_first_row_with_numbers_is_data_so_its_missing_marker_is_reported(tmp_path, content,
                                                                             cell):
    path = tmp_path / "first.csv"
    path.write_text(content)
    one_line_error(lambda: load_dataset(str(path)), str(path), "line 1", cell)


def test_a_text_label_in_a_headerless_first_row_is_a_label(tmp_path):
    path = tmp_path / "labelled.csv"
    path.write_text("0.1,0.2,unknown\n0.3,0.4,1\n0.5,0.6,0\n")
    dataset = load_dataset(str(path), labels="last")
    np.testing.assert_allclose(dataset.train.x, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], rtol=1e-6)
    assert dataset.class_names == ("0", "1", "unknown")
    assert dataset.train.labels.tolist() == [2, 1, 0]
    assert dataset.feature_names is None


@pytest.mark.parametrize(("content", "labels", "names", "classes"), [
    ("a,b,label\n1,2,0\n3,4,1\n", "label", ("a", "b"), None),
    ("x,y,kind\n1,2,cat\n3,4,dog\n", "kind", ("x", "y"), ("cat", "dog")),
    ("height;weight\n1;2\n3;4\n", None, ("height", "weight"), None),
    (",left,right\n0,1,2\n1,3,4\n", None, ("feature 1", "left", "right"), None),
])
def test_text_headers_stay_headers(tmp_path, content, labels, names, classes):
    path = tmp_path / "table.csv"
    path.write_text(content)
    dataset = load_dataset(str(path), labels=labels)
    assert len(dataset.train) == 2
    assert dataset.feature_names == names
    assert dataset.class_names == classes


@pytest.mark.parametrize(("content", "names"), [
    # A delimiter ending every row adds no column (it was read as a fourth column of NaN,
    # 'contains 2 NaN ... index (0, 3)').
    ("1,2,3,\n4,5,6,\n", None),
    ("a,b,c\n1,2,3,\n4,5,6,\n", ("a", "b", "c")),
    ("a,b,c,\n1,2,3,\n4,5,6,\n", ("a", "b", "c")),
    ("1\t2\t3\t\n4\t5\t6\t\n", None),
    # Comment lines before the data are skipped (the comment was read as the first row:
    # 'line 2 has 1 fields, expected 3').
    ("# exported by X\n1,2,3\n4,5,6\n", None),
    ("# exported by X, 2024\n\n#0,0,0\n1,2,3\n4,5,6\n", None),  # a row commented out
    ("# exported by X\na,b,c\n1,2,3\n4,5,6\n", ("a", "b", "c")),
    # The last comment naming every column is the header (np.savetxt's header=).
    ("#id,a,b\n1,2,3\n4,5,6\n", ("id", "a", "b")),
    ("# made by numpy\n# x y z\n1 2 3\n4 5 6\n", ("x", "y", "z")),
    ("# a;b;c;\n1;2;3;\n4;5;6;\n", ("a", "b", "c")),
])
def test_a_table_is_read_as_the_columns_it_holds(tmp_path, content, names):
    path = tmp_path / "table.csv"
    path.write_text(content)
    dataset = load_dataset(str(path))
    np.testing.assert_array_equal(dataset.train.x, [[1, 2, 3], [4, 5, 6]])
    assert dataset.feature_names == names
    assert load_dataset(str(path), labels="last").train.labels.tolist() == [3, 6]
    assert readers.table_columns(path) == (None if names is None else list(names), 3)


@pytest.mark.parametrize(("content", "fragments"), [
    ("a,b,c,d\n1,2,3,\n4,5,6,\n", ("2 NaN",)),  # a named column: its values are missing
    ("1,2,3,\n4,5,6,7\n", ("1 NaN",)),  # a value missing in one row only
    ("1,2,3,\n4,5,6\n", ("line 2 has 3 fields, expected 4", "line 1 ends with a delimiter")),
])
def test_a_last_column_empty_only_somewhere_is_still_refused(tmp_path, content, fragments):
    path = tmp_path / "holes.csv"
    path.write_text(content)
    one_line_error(lambda: load_dataset(str(path)), str(path), *fragments)


def test_a_numpy_header_comment_names_the_label_column_and_lines_keep_their_numbers(tmp_path):
    path = tmp_path / "saved.csv"
    np.savetxt(path, [[1, 2, 0], [3, 4, 1]], delimiter=",", header="a,b,kind", fmt="%g")
    dataset = load_dataset(str(path), labels="kind")
    assert dataset.feature_names == ("a", "b") and dataset.train.labels.tolist() == [0, 1]
    path.write_text("# exported by X\n1,2\n3,oops\n")
    one_line_error(lambda: load_dataset(str(path)), str(path), "line 3", "'oops'")
    for content in ("1,2,3\n# a note\n4,5,6\n", "1,2,3\n#4,5,6\n"):
        path.write_text(content)
        one_line_error(lambda: load_dataset(str(path)), str(path), "line 2 is a comment",
                       "only before the data")
    path.write_text("# nothing here\n")
    one_line_error(lambda: load_dataset(str(path)), str(path), "no data")


# ------------------------------------------------------------------ empty labels


@pytest.mark.parametrize(("content", "labels", "where"), [
    ("a,b,y\n1,2,\n4,5,1\n", "last", "line 2"),
    ("a,b,y\n1,2,0\n4,5,1\n7,8,\n", "y", "line 4"),
    ("1,2,\n4,5,1\n", "last", "line 1"),
    (";1;2\n1;4;5\n", "first", "line 1"),
    ("a,b,y\n1,2,cat\n4,5, \n", "y", "line 3"),
])
def test_an_empty_csv_label_is_refused_naming_file_and_line(tmp_path, content, labels, where):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    one_line_error(lambda: load_dataset(str(path), labels=labels), str(path), where, "no label")


def test_an_empty_class_name_from_any_source_is_refused(tmp_path):
    path = tmp_path / "named.npz"
    np.savez(path, x=np.zeros((3, 2)), y=np.array(["cat", "", "dog"]))
    one_line_error(lambda: load_dataset(str(path)), str(path), "empty label at example 1")
    with pytest.raises(DataError, match="empty label at example 0"):
        validate_labels(np.array([" ", "cat"], dtype=object), 2)
    assert validate_labels(np.array(["dog", "cat"]), 2)[1] == ("cat", "dog")


# ------------------------------------------------------------------ downloads and read-only data


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def fake_mnist(monkeypatch, count: int = 5) -> tuple[dict[str, bytes], list[str]]:
    """Serve a small MNIST from memory, its md5 table pointed at it; returns the files and
    the list of URLs requested."""
    images = np.random.RandomState(3).randint(0, 256, size=(count, 28, 28))
    labels = np.arange(count) % 10
    files = {}
    for prefix in ("train", "t10k"):
        files[f"{prefix}-images-idx3-ubyte.gz"] = idx_gz(images)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = idx_gz(labels)
    monkeypatch.setitem(REMOTE_FILES, "mnist", tuple(
        RemoteFile(remote.name, remote.url, hashlib.md5(files[remote.name]).hexdigest())
        for remote in REMOTE_FILES["mnist"]))
    requested: list[str] = []

    def serve(url, timeout=None):
        requested.append(url)
        return io.BytesIO(files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    return files, requested


@pytest.fixture
def read_only(tmp_path):
    """``read_only(path)`` makes a folder (0o555, no write bits) that is writable again at
    teardown; root could write into it, aevae must not."""
    folders = []

    def make(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o555)
        folders.append(path)
        return path

    yield make
    for folder in folders:
        folder.chmod(0o755)


def snapshot(folder: Path) -> tuple:
    return sorted(os.listdir(folder)), folder.stat().st_mtime_ns


@pytest.mark.parametrize("layout", ["no-subfolder", "empty-subfolder", "partial-subfolder"])
def test_a_download_never_writes_into_a_read_only_data_folder(monkeypatch, tmp_path, read_only,
                                                             layout):
    files, requested = fake_mnist(monkeypatch)
    data = tmp_path / "shared"
    if layout != "no-subfolder":
        (data / "mnist").mkdir(parents=True)
    if layout == "partial-subfolder":
        (data / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(
            files["train-images-idx3-ubyte.gz"])
    if layout != "no-subfolder":
        read_only(data / "mnist")
    read_only(data)
    monkeypatch.setenv("AEVAE_DATA_DIR", str(data))
    before = {folder: snapshot(folder) for folder in (data, *data.glob("*"))}
    dataset = load_dataset("mnist")
    assert len(dataset.train) == 5 and len(dataset.test) == 5
    assert {folder: snapshot(folder) for folder in (data, *data.glob("*"))} == before
    cache = tmp_path / "user-cache" / "aevae" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(files)
    assert len(requested) == 4
    # The copy in the cache is found again, with or without downloading allowed.
    requested.clear()
    assert len(load_dataset("mnist").train) == 5
    assert len(load_dataset("mnist", download=False).train) == 5
    assert requested == []
    assert {folder: snapshot(folder) for folder in (data, *data.glob("*"))} == before


def test_a_read_only_folder_and_a_read_only_cache_refuse_to_download(monkeypatch, tmp_path,
                                                                     read_only):
    _, requested = fake_mnist(monkeypatch)
    data = read_only(tmp_path / "shared")
    cache_home = read_only(tmp_path / "read-only-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    before = snapshot(data), snapshot(cache_home)
    one_line_error(lambda: load_dataset("mnist", data_dir=data), f"into {data / 'mnist'}: ",
                   f"{data} is read-only", f"user cache that would take it instead ({cache_home})",
                   "AEVAE_DATA_DIR")
    # The data folder is the cache itself (no AEVAE_DATA_DIR): nowhere to go either.
    one_line_error(lambda: load_dataset("mnist"), f"into {cache_home / 'aevae' / 'mnist'}: ",
                   f"{cache_home} is read-only")
    assert (snapshot(data), snapshot(cache_home)) == before
    assert requested == []


def test_download_file_refuses_a_read_only_folder(monkeypatch, tmp_path, read_only):
    fake_mnist(monkeypatch)
    folder = read_only(tmp_path / "shared")
    before = snapshot(folder)
    for target in (folder, folder / "mnist"):
        one_line_error(lambda target=target: download_file(REMOTE_FILES["mnist"][0], target),
                       str(target), "read-only")
    assert snapshot(folder) == before


# ------------------------------------------------------------------ the parsed .amat cache


def cached_amat(monkeypatch, tmp_path, content: bytes) -> tuple[Path, Path, list]:
    """A source file read once (so cached), the cache's path, and a list that records every
    later parse."""
    path = tmp_path / "data" / "tiny.amat"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    read_amat(path)
    (candidate,) = (tmp_path / "user-cache" / "aevae" / "parsed").glob("tiny-*.npy")
    parses = []
    parse = readers.parse_amat

    def counted(raw, **options):
        parses.append(raw)
        return parse(raw, **options)

    monkeypatch.setattr(readers, "parse_amat", counted)
    return path, candidate, parses


def set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_amat_replaced_by_an_older_copy_is_parsed_again(monkeypatch, tmp_path):
    path, candidate, parses = cached_amat(monkeypatch, tmp_path, b"0 1\n1 0\n")
    np.testing.assert_array_equal(read_amat(path), [[0, 1], [1, 0]])
    assert parses == []  # unchanged: served from the cache
    path.write_bytes(b"1 1 1\n1 1 1\n")
    set_mtime(path, candidate.stat().st_mtime_ns - 3600 * 10**9)  # as cp -p, tar, rsync -a
    np.testing.assert_array_equal(read_amat(path), np.ones((2, 3)))
    assert len(parses) == 1
    np.testing.assert_array_equal(read_amat(path), np.ones((2, 3)))
    assert len(parses) == 1  # the new version is cached in turn


def test_amat_replaced_with_the_same_size_and_mtime_is_parsed_again(monkeypatch, tmp_path):
    path, _, parses = cached_amat(monkeypatch, tmp_path, b"0 1\n1 0\n")
    old = path.stat()
    path.write_bytes(b"1 1\n0 0\n")
    set_mtime(path, old.st_mtime_ns)
    while path.stat().st_ctime_ns == old.st_ctime_ns:  # a coarse clock: let it tick
        time.sleep(0.01)
        set_mtime(path, old.st_mtime_ns)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    np.testing.assert_array_equal(read_amat(path), [[1, 1], [0, 0]])
    assert len(parses) == 1


def test_amat_cache_without_a_matching_record_is_stale(monkeypatch, tmp_path):
    path, candidate, parses = cached_amat(monkeypatch, tmp_path, b"0 1\n1 0\n")
    record = candidate.with_suffix(".json")
    future = path.stat().st_mtime_ns + 3600 * 10**9
    # An older aevae's cache: an array alone, newer than its source.
    record.unlink(missing_ok=True)
    np.save(candidate, np.full((2, 2), 7.0))
    set_mtime(candidate, future)
    np.testing.assert_array_equal(read_amat(path), [[0, 1], [1, 0]])
    assert len(parses) == 1 and json.loads(record.read_text())["source"]["size"] == 8
    # The array replaced behind its record's back.
    np.save(candidate, np.full((2, 2), 7.0))
    set_mtime(candidate, future)
    np.testing.assert_array_equal(read_amat(path), [[0, 1], [1, 0]])
    assert len(parses) == 2
    # A record that is not one.
    record.write_text("[1, 2]")
    np.testing.assert_array_equal(read_amat(path), [[0, 1], [1, 0]])
    assert len(parses) == 3
    np.testing.assert_array_equal(read_amat(path), [[0, 1], [1, 0]])
    assert len(parses) == 3



def test_float64_values_whose_variation_float32_would_round_away_are_refused(tmp_path):
    import aevae
    from aevae.cli import main

    base = np.random.default_rng(0).normal(size=(300, 5))
    # 1e8 + a unit spread: float32 keeps steps of 8 there, so standardising after the cast
    # (what every model computes in) left 2 distinct values of 300 in a column, silently.
    path = tmp_path / "offset.npy"
    np.save(path, 1e8 + base)
    one_line_error(lambda: load_dataset(path), "offset.npy: feature", "around 1e+08",
                   "100% of that variation is rounding noise", "Subtract an offset")
    model = aevae.make("vae", input_shape=(5,), latent_dim=2, hidden=(8,), seed=0)
    with pytest.raises(DataError, match="training data: feature .* rounding noise"):
        model.fit(1e8 + base, epochs=1, progress=False)
    with pytest.raises(ValueError, match="x: feature .* rounding noise"):
        model.encode(1e8 + base)
    timestamps = (1_700_000_000_000 + 1000 * base).astype(np.int64)  # milliseconds
    one_line_error(lambda: validate_array(timestamps), "rounding noise")
    assert main(["train", "vae", "--data", str(path), "--out", str(tmp_path / "run"),
                 "--epochs", "1"]) == 2
    # What float32 holds to the last bits passes: small integers, float32 itself, offsets that
    # leave the spread its digits, constant features (float64's own last-bit noise included).
    rng = np.random.default_rng(1)
    for fine in (np.arange(1500).reshape(300, 5), (1e8 + base).astype(np.float32),
                 1e3 + base, np.ones((10, 3)),
                 0.1 + np.where(rng.random((300, 3)) < 0.5, 0.0, np.spacing(0.1))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            validate_array(fine)
    # A visible but small share (a latitude to 10 m: 1%) is said, not refused.
    with pytest.warns(RuntimeWarning, match="1% of that variation is rounding noise"):
        validate_array(51.5074 + 1e-4 * base)
    # A stream is judged on rows from the whole file, not chunk by chunk: sorted timestamps
    # spread less within a chunk than over the file.
    stamps = np.sort(1_700_000_000_000 + 1e6 * rng.random(20000)).astype(np.int64)
    np.save(tmp_path / "stamps.npy", np.repeat(stamps[:, None], 3, axis=1))
    with pytest.warns(RuntimeWarning, match="stamps.npy: feature 0 .* rounding noise"):
        stream = NpyStream(tmp_path / "stamps.npy", chunk_bytes=2048 * 24)
    generator = torch.Generator().manual_seed(0)
    assert sum(len(batch) for batch in stream.batches(500, generator)) == 20000
    # Any dtype numpy or torch hands over is judged, none crashes the check: 16- and 32-bit
    # unsigned pixels, big-endian files, long doubles, unsigned tensors.
    for fine in ((rng.random((100, 4)) * 60000).astype(np.uint16),
                 (rng.random((100, 4)) * 6e4).astype(np.uint32), base.astype(">f4"),
                 base.astype(np.longdouble), torch.randint(0, 60000, (100, 4)).to(torch.uint16)):
        validate_array(fine)
    np.save(tmp_path / "big_endian.npy", (1e8 + base).astype(">f8"))
    one_line_error(lambda: NpyStream(tmp_path / "big_endian.npy"), "rounding noise")
    one_line_error(lambda: validate_array((2 ** 40 + rng.integers(0, 3, (100, 4))).astype(
        np.uint64)), "rounding noise")


def test_values_below_float32_s_range_are_zeros_not_a_lost_spread():
    """Codes of 1e-120 (a property test drew them) were refused as '100% rounding noise':
    below float32's smallest normal number every value is 0 to a model, and decodes as such."""
    import aevae
    from aevae.data.validation import float32_rounding

    tiny = np.array([[0.0, 1.46e-120, 1.46e-120], [1.46e-120, 1.46e-120, 1.46e-120]])
    assert float32_rounding(tiny) is None
    model = aevae.make("ae", input_shape=(6,), latent_dim=3, hidden=(8,))
    np.testing.assert_array_equal(model.decode(tiny), model.decode(np.zeros((2, 3))))
    # A spread float32 can hold is still judged (1e8 plus a unit spread is refused).
    assert float32_rounding(np.array([[1e8 + 1.0], [1e8 + 2.0], [1e8 + 3.0]]))[3] > 0.5
