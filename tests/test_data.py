"""Tests of aevae.data. They never touch the network; real data comes from the shared folder."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from aevae.data import (
    REMOTE_FILES,
    DataError,
    Dataset,
    Split,
    data_directory,
    list_datasets,
    load_dataset,
    readers,
    register_dataset,
    registry,
    validate_array,
    verify_files,
)
from aevae.data.containers import assemble_dataset
from aevae.data.download import RemoteFile
from aevae.data.readers import parse_amat, parse_idx, read_amat, read_idx

# Read before any test edits the environment.
SHARED = Path(os.environ.get("AEVAE_DATA_DIR") or Path(__file__).parents[2] / "shared" / "datasets")


def shared_directory() -> Path:
    if not (SHARED / "mnist").is_dir():
        pytest.skip(f"shared datasets not found at {SHARED}")
    return SHARED


pytestmark = pytest.mark.usefixtures("isolated_data_environment")


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_dataset("mnist", data_dir=shared_directory(), download=False)


@pytest.fixture(scope="module")
def binarized(tmp_path_factory):
    directory = shared_directory()
    cache = tmp_path_factory.mktemp("binarized-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        dataset = load_dataset("binarized-mnist", data_dir=directory, download=False)
    return dataset, cache


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    dtype = np.dtype(">i4") if array.dtype.kind == "i" else array.dtype
    header = bytes([0, 0, codes[dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def small_mnist_files(count: int = 6) -> dict[str, bytes]:
    random = np.random.RandomState(1)
    images = random.randint(0, 256, size=(count, 28, 28)).astype(np.uint8)
    labels = (np.arange(count) % 10).astype(np.uint8)
    files = {}
    for prefix in ("train", "t10k"):
        files[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(images))
        files[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(labels))
    return files


# ------------------------------------------------------------------ registry and directory


def test_list_datasets_has_the_named_datasets_with_one_line_descriptions():
    listed = dict(list_datasets())
    expected = {"digits", "mnist", "fashion-mnist", "binarized-mnist", "mnist-dynamic"}
    assert expected <= set(listed)
    for description in listed.values():
        assert description and "\n" not in description
    assert "fixed seed" in listed["mnist-dynamic"]


def test_unknown_name_lists_the_known_names():
    with pytest.raises(DataError, match="unknown dataset 'mnsit'") as caught:
        load_dataset("mnsit")
    for name, _ in list_datasets():
        assert name in str(caught.value)


def test_missing_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(str(tmp_path / "absent.npy"))


def test_register_dataset_decorator_and_predefined_validation(monkeypatch):
    monkeypatch.setattr(registry, "DATASETS", dict(registry.DATASETS))
    x = np.arange(12, dtype=np.float32).reshape(6, 2)

    @register_dataset("Toy_Set", "six rows for a test")
    def build_toy(source):
        return assemble_dataset(
            "toy-set", Split(x), Split(x[:2]), None, description="six rows for a test"
        )

    assert ("toy-set", "six rows for a test") in list_datasets()
    with pytest.warns(UserWarning, match="predefined validation split"):
        dataset = load_dataset("TOY-SET", validation_fraction=0.5)
    assert (len(dataset.train), len(dataset.validation)) == (6, 2)
    assert dataset.value_range == (0.0, 11.0)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toy-set", "again")(build_toy)
    with pytest.raises(ValueError, match="one line"):
        register_dataset("other", "two\nlines")


def test_data_directory_order(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_directory() == tmp_path / "xdg" / "aevae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_directory() == Path.home() / ".cache" / "aevae"
    monkeypatch.setenv("AEVAE_DATA_DIR", str(tmp_path / "environment"))
    assert data_directory() == tmp_path / "environment"
    assert data_directory(tmp_path / "explicit") == tmp_path / "explicit"


# ------------------------------------------------------------------ digits


def test_digits_shapes_ranges_and_labels(tmp_path):
    dataset = load_dataset("digits", data_dir=tmp_path / "nothing-here", download=False)
    assert (len(dataset.train), len(dataset.test)) == (1437, 360)
    assert dataset.validation is None
    assert dataset.shape == (1, 8, 8)
    assert dataset.train.x.shape == (1437, 1, 8, 8)
    assert dataset.train.x.dtype == np.float32 and dataset.train.x.flags.c_contiguous
    assert dataset.value_range == (0.0, 1.0)
    assert dataset.test.x.min() >= 0.0 and dataset.test.x.max() <= 1.0
    assert dataset.train.labels.dtype == np.int64
    assert set(dataset.train.labels.tolist()) == set(range(10))
    assert not dataset.dynamic_binarization
    assert dataset.class_names == tuple(str(digit) for digit in range(10))


def test_digits_split_is_deterministic_and_partitions_the_data():
    from sklearn.datasets import load_digits

    first, second = load_dataset("digits"), load_dataset("digits")
    np.testing.assert_array_equal(first.train.x, second.train.x)
    np.testing.assert_array_equal(first.test.labels, second.test.labels)
    # Pinned: the split must not change between versions.
    assert first.test.labels[:12].tolist() == [7, 9, 4, 7, 0, 2, 6, 1, 3, 1, 3, 7]
    assert first.train.labels[:12].tolist() == [2, 8, 2, 6, 6, 7, 1, 9, 8, 5, 2, 8]
    everything = np.concatenate([first.train.x, first.test.x]).reshape(-1, 64)
    original = (load_digits().data / 16.0).astype(np.float32)
    np.testing.assert_array_equal(np.unique(everything, axis=0), np.unique(original, axis=0))


def test_limit_and_validation_fraction_on_a_named_dataset():
    dataset = load_dataset("digits", limit=100)
    assert len(dataset.train) == 100 and len(dataset.test) == 360
    carved = load_dataset("digits", validation_fraction=0.25, seed=3)
    assert len(carved.validation) == round(0.25 * 1437)
    assert len(carved.train) + len(carved.validation) == 1437
    again = load_dataset("digits", validation_fraction=0.25, seed=3)
    np.testing.assert_array_equal(carved.validation.x, again.validation.x)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"validation_fraction": -0.1}, "validation_fraction"),
        ({"limit": 0}, "limit"),
        ({"labels": "last"}, "labels option"),
    ],
)
def test_bad_options_raise(options, message):
    with pytest.raises(DataError, match=message):
        load_dataset("digits", **options)


# ------------------------------------------------------------------ MNIST family (shared data)


def test_mnist_shapes_range_and_labels(mnist):
    assert (len(mnist.train), len(mnist.test)) == (60000, 10000)
    assert mnist.validation is None
    assert mnist.shape == (1, 28, 28)
    assert mnist.train.x.shape == (60000, 1, 28, 28) and mnist.train.x.dtype == np.float32
    assert mnist.value_range == (0.0, 1.0)
    assert mnist.test.x.min() == 0.0 and mnist.test.x.max() == 1.0
    assert mnist.train.labels.dtype == np.int64
    assert set(np.unique(mnist.train.labels).tolist()) == set(range(10))
    assert mnist.train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(float(mnist.train.x.mean()) - 0.1307) < 1e-3
    assert not mnist.dynamic_binarization


def test_fashion_mnist_shapes_and_classes():
    dataset = load_dataset("fashion-mnist", data_dir=shared_directory(), download=False)
    assert dataset.train.x.shape == (60000, 1, 28, 28)
    assert dataset.test.x.shape == (10000, 1, 28, 28)
    assert np.bincount(dataset.test.labels).tolist() == [1000] * 10
    assert dataset.class_names[9] == "Ankle boot"


def test_shared_files_pass_md5_verification():
    directory = shared_directory()
    for folder in ("mnist", "fashion-mnist", "binarized-mnist"):
        verify_files(folder, directory / folder)


def test_md5_table_matches_shared_md5sums():
    directory = shared_directory()
    for folder, remotes in REMOTE_FILES.items():
        lines = (directory / folder / "MD5SUMS").read_text().split("\n")
        reference = dict(reversed(line.split()) for line in lines if line.strip())
        assert {remote.name: remote.md5 for remote in remotes} == reference


def test_verify_files_reports_a_mismatch(tmp_path):
    for name, content in small_mnist_files().items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match="md5 mismatch"):
        verify_files("mnist", tmp_path)


def test_binarized_mnist_shapes_and_binary_values(binarized):
    dataset, _ = binarized
    sizes = (len(dataset.train), len(dataset.validation), len(dataset.test))
    assert sizes == (50000, 10000, 10000)
    assert dataset.shape == (1, 28, 28)
    assert dataset.train.labels is None
    for split in dataset.splits().values():
        assert split.x.dtype == np.float32
        assert np.all((split.x == 0.0) | (split.x == 1.0))
        assert split.x.min() == 0.0 and split.x.max() == 1.0
    assert 0.12 < float(dataset.train.x.mean()) < 0.14
    assert not dataset.dynamic_binarization


def test_binarized_mnist_caches_outside_the_read_only_shared_folder(binarized):
    _, cache = binarized
    shared = shared_directory() / "binarized-mnist"
    assert not list(shared.glob("*.npy"))
    assert len(list((cache / "aevae" / "parsed").glob("binarized_mnist_*.npy"))) == 3


def test_mnist_dynamic_binarization(mnist):
    dynamic = load_dataset("mnist-dynamic", data_dir=shared_directory(), download=False)
    assert dynamic.dynamic_binarization
    np.testing.assert_array_equal(dynamic.train.x, mnist.train.x)
    # The test split is binarized once, with a fixed seed.
    assert set(np.unique(dynamic.test.x).tolist()) == {0.0, 1.0}
    assert abs(float(dynamic.test.x.mean()) - float(mnist.test.x.mean())) < 0.005
    again = load_dataset("mnist-dynamic", data_dir=shared_directory(), download=False)
    np.testing.assert_array_equal(dynamic.test.x, again.test.x)

    batch = torch.from_numpy(dynamic.train.x[:5000])
    sample = dynamic.binarize(batch, torch.Generator().manual_seed(7))
    assert set(torch.unique(sample).tolist()) == {0.0, 1.0}
    assert abs(float(sample.mean()) - float(batch.mean())) < 0.005
    repeat = dynamic.binarize(batch, torch.Generator().manual_seed(7))
    assert torch.equal(sample, repeat)
    other = dynamic.binarize(batch, torch.Generator().manual_seed(8))
    assert not torch.equal(sample, other)
    # Already binary test data passes through unchanged.
    test_batch = torch.from_numpy(dynamic.test.x[:100])
    assert torch.equal(dynamic.binarize(test_batch), test_batch)
    # Non-dynamic datasets return the batch itself.
    assert mnist.binarize(batch) is batch


# ------------------------------------------------------------------ missing, corrupt, download


def test_missing_files_without_download_name_file_directory_and_variable(tmp_path):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    message = str(caught.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert str(tmp_path / "mnist") in message
    assert "AEVAE_DATA_DIR" in message
    assert "\n" not in message


def test_idx_parsing_round_trip_and_big_endian():
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    parsed = parse_idx(idx_bytes(values))
    np.testing.assert_array_equal(parsed, values)
    assert parsed.dtype == np.int32 and parsed.dtype.isnative


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[:-10], "truncated"),
        (lambda raw: raw + b"\x00", "longer than its header"),
        (lambda raw: b"\x08\x03" + raw[2:], "bad magic number"),
        (lambda raw: raw[:6], "truncated inside the IDX header"),
        (lambda raw: raw[:2], "truncated"),
        # An empty array whose header claims other dimensions no array can have (found by the
        # property tests: numpy's own "array is too big" named no file).
        (lambda raw: raw[:4] + b"\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff",
         "file.idx is corrupt: its header declares shape"),
    ],
)
def test_corrupt_idx_raises(damage, message):
    raw = idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match=message):
        parse_idx(damage(raw), source="file.idx")


def test_truncated_gzip_raises(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    content = gzip.compress(idx_bytes(np.ones((50, 28, 28), dtype=np.uint8)))
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


def test_corrupt_file_in_a_named_dataset_raises(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, content in small_mnist_files().items():
        (folder / name).write_bytes(content)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00"))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()


def patch_remote(monkeypatch, files: dict[str, bytes], served: dict[str, bytes], requested: list):
    """Point the md5 table of "mnist" at ``files`` and serve ``served`` by URL name."""
    remotes = tuple(
        RemoteFile(remote.name, remote.url, hashlib.md5(files[remote.name]).hexdigest())
        for remote in REMOTE_FILES["mnist"]
    )
    monkeypatch.setitem(REMOTE_FILES, "mnist", remotes)

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        return FakeResponse(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)


def test_download_fetches_verifies_and_loads(monkeypatch, tmp_path):
    files = small_mnist_files()
    requested: list[str] = []
    patch_remote(monkeypatch, files, files, requested)
    dataset = load_dataset("mnist", data_dir=tmp_path, download=True)
    assert len(dataset.train) == 6 and dataset.shape == (1, 28, 28)
    assert sorted(requested) == sorted(
        "https://ossci-datasets.s3.amazonaws.com/mnist/" + name for name in files
    )
    assert sorted(path.name for path in (tmp_path / "mnist").iterdir()) == sorted(files)
    # Present files are not fetched again.
    requested.clear()
    load_dataset("mnist", data_dir=tmp_path, download=True)
    assert requested == []


def test_download_md5_mismatch_raises_and_leaves_nothing(monkeypatch, tmp_path):
    files = small_mnist_files()
    served = {name: content + b"tampered" for name, content in files.items()}
    patch_remote(monkeypatch, files, served, [])
    with pytest.raises(DataError, match="md5 mismatch"):
        load_dataset("mnist", data_dir=tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []  # not even the folder


def test_download_network_failure_raises(monkeypatch, tmp_path):
    def unreachable(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(DataError, match="could not download .*no route to host"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []  # not even the folder


def test_real_md5_table_rejects_wrong_bytes(monkeypatch, tmp_path):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: FakeResponse(b"0 1\n"))
    with pytest.raises(DataError, match="md5 mismatch.*db28b1a6ae0fe70cbd3da91acf46e477"):
        load_dataset("binarized-mnist", data_dir=tmp_path)


# ------------------------------------------------------------------ amat parsing and cache


def test_amat_fast_and_general_paths_agree():
    rows = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=np.uint8)
    text = "\n".join(" ".join(str(value) for value in row) for row in rows) + "\n"
    fast = parse_amat(text.encode())
    assert fast.dtype == np.uint8
    np.testing.assert_array_equal(fast, rows)
    general = parse_amat(text.replace("\n", " \r\n").encode())
    assert general.dtype == np.float32
    np.testing.assert_array_equal(general, rows)
    np.testing.assert_array_equal(parse_amat(text.rstrip("\n").encode()), rows)
    np.testing.assert_array_equal(parse_amat(b"0.5 2\n3 4e1\n"), [[0.5, 2], [3, 40]])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"0 1 1\n0 1\n", "line 2 has 2 values, expected 3"),
        (b"0 1\n0 x\n", "line 2 has a non-numeric value 'x'"),
        (b"\n\n", "holds no data"),
    ],
)
def test_bad_amat_raises(content, message):
    with pytest.raises(DataError, match=message):
        parse_amat(content, source="bad.amat")


def test_amat_cache_never_goes_beside_a_writable_file(monkeypatch, tmp_path):
    # aevae writes nothing into a data folder it reads, even one it could write to.
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "tiny.amat"
    path.write_bytes(b"0 1\n1 0\n")
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    first = read_amat(path)
    assert sorted(entry.name for entry in folder.iterdir()) == ["tiny.amat"]
    (cached,) = (cache / "aevae" / "parsed").glob("tiny-*.npy")

    def refuse(*args, **kwargs):
        raise AssertionError("should have used the cache")

    monkeypatch.setattr(readers, "parse_amat", refuse)
    np.testing.assert_array_equal(read_amat(path), first)
    # A source newer than its cache is parsed again.
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    path.write_bytes(b"1 1\n1 1\n")
    stamp = cached.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))
    np.testing.assert_array_equal(read_amat(path), np.ones((2, 2)))
    assert sorted(entry.name for entry in folder.iterdir()) == ["tiny.amat"]


def test_binarized_mnist_in_a_writable_data_directory_stays_untouched(monkeypatch, tmp_path):
    folder = tmp_path / "data" / "binarized-mnist"
    folder.mkdir(parents=True)
    row = " ".join(["0", "1"] * 392) + "\n"
    for part in ("train", "valid", "test"):
        (folder / f"binarized_mnist_{part}.amat").write_text(row * 3)
    before = sorted(entry.name for entry in folder.iterdir())
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    dataset = load_dataset("binarized-mnist", data_dir=tmp_path / "data", download=False)
    assert dataset.shape == (1, 28, 28) and len(dataset.test) == 3
    assert sorted(entry.name for entry in folder.iterdir()) == before
    assert sorted(entry.name for entry in (tmp_path / "data").iterdir()) == ["binarized-mnist"]
    assert len(list((cache / "aevae" / "parsed").glob("binarized_mnist_*.npy"))) == 3


def test_amat_cache_falls_back_to_user_cache_for_read_only_folder(monkeypatch, tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    (folder / "tiny.amat").write_bytes(b"0 1\n1 0\n")
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    folder.chmod(0o555)
    try:
        values = read_amat(folder / "tiny.amat")
        assert sorted(path.name for path in folder.iterdir()) == ["tiny.amat"]
    finally:
        folder.chmod(0o755)
    np.testing.assert_array_equal(values, [[0, 1], [1, 0]])
    assert len(list((cache / "aevae" / "parsed").glob("tiny-*.npy"))) == 1


# ------------------------------------------------------------------ validate_array


def test_validate_array_returns_float32_c_contiguous():
    integers = np.arange(24, dtype=np.int64).reshape(2, 3, 4)[:, ::-1]
    checked = validate_array(integers)
    assert checked.dtype == np.float32 and checked.flags.c_contiguous
    np.testing.assert_array_equal(checked, integers)
    assert validate_array(torch.ones(2, 3, requires_grad=True)).shape == (2, 3)
    assert validate_array(np.zeros((2, 2), dtype=bool)).dtype == np.float32


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (np.zeros((0, 4)), {}, r"data is empty \(shape \(0, 4\)\)"),
        ([], {}, "is empty"),
        (np.array([["a", "b"]]), {}, "non-numeric dtype"),
        (np.array([[1 + 2j]]), {}, "non-numeric dtype"),
        (np.zeros(5), {}, "1 dimension"),
        (np.zeros((2, 1, 1, 1, 1)), {}, "5 dimension"),
        (np.ones((2, 2)) * np.array([1, np.nan]), {}, r"2 NaN and 0 infinite.*\(0, 1\)"),
        (np.array([[0.0, 1.0], [np.inf, -np.inf]]), {}, r"0 NaN and 2 infinite.*example 1"),
        (np.array([[1e39, 0.0]]), {}, "infinite"),
        (np.array([[-0.5, 255.0]]), {"likelihood": "bernoulli"}, "min -0.5, max 255\\)"),
        (np.array([[0.0, 255.0]]), {"likelihood": "bernoulli"}, "divide by 255"),
        (np.array([[0.0, 1.5]]), {"likelihood": "Bernoulli"}, r"outside \[0, 1\]"),
    ],
)
def test_validate_array_rejects_bad_input(data, options, message):
    with pytest.raises(DataError, match=message) as caught:
        validate_array(data, **options)
    assert "\n" not in str(caught.value)


def test_validate_array_names_the_data_and_allows_gaussian_range():
    with pytest.raises(DataError, match="^pixels is empty"):
        validate_array(np.zeros((0, 3)), name="pixels")
    assert validate_array(np.array([[-3.0, 300.0]]), likelihood="gaussian").shape == (1, 2)


def test_split_checks_label_count():
    with pytest.raises(DataError, match="labels have 2 entries"):
        Split(np.zeros((3, 4), dtype=np.float32), np.zeros(2, dtype=np.int64))


# ------------------------------------------------------------------ user data round trips


def test_npy_images_round_trip_with_labels_file(tmp_path):
    images = np.random.RandomState(0).randint(0, 256, size=(10, 5, 6)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "labels.npy", np.arange(10) % 3)
    dataset = load_dataset(str(tmp_path / "images.npy"), labels=str(tmp_path / "labels.npy"))
    assert dataset.name == "images" and dataset.shape == (1, 5, 6)
    np.testing.assert_allclose(dataset.train.x[:, 0], images / 255.0, rtol=1e-6)
    assert dataset.train.labels.tolist() == (np.arange(10) % 3).tolist()
    assert dataset.validation is None and dataset.test is None
    assert not dataset.dynamic_binarization


def test_npy_layouts(tmp_path):
    tabular = np.random.RandomState(0).normal(size=(7, 3))
    np.save(tmp_path / "tabular.npy", tabular)
    dataset = load_dataset(tmp_path / "tabular.npy")
    assert dataset.shape == (3,) and dataset.value_range[0] < 0
    np.testing.assert_allclose(dataset.train.x, tabular, rtol=1e-6)

    channel_last = np.random.RandomState(1).rand(4, 9, 8, 3).astype(np.float32)
    np.save(tmp_path / "colour.npy", channel_last)
    dataset = load_dataset(str(tmp_path / "colour.npy"))
    assert dataset.shape == (3, 9, 8)
    np.testing.assert_array_equal(dataset.train.x, channel_last.transpose(0, 3, 1, 2))

    channel_first = np.zeros((4, 3, 9, 3), dtype=np.float32)
    np.save(tmp_path / "first.npy", channel_first)
    assert load_dataset(str(tmp_path / "first.npy")).shape == (3, 9, 3)


def test_npy_bad_content_raises(tmp_path):
    np.save(tmp_path / "flat.npy", np.arange(5))
    with pytest.raises(DataError, match="1 dimension"):
        load_dataset(str(tmp_path / "flat.npy"))
    np.save(tmp_path / "holes.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(DataError, match="1 NaN"):
        load_dataset(str(tmp_path / "holes.npy"))
    (tmp_path / "broken.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"broken.npy: not a readable .npy array") as caught:
        load_dataset(str(tmp_path / "broken.npy"))
    assert "allow_pickle" not in str(caught.value)
    np.save(tmp_path / "data.npy", np.zeros((4, 2)))
    np.save(tmp_path / "few.npy", np.zeros(3))
    with pytest.raises(DataError, match="3 entries but the data has 4"):
        load_dataset(str(tmp_path / "data.npy"), labels=str(tmp_path / "few.npy"))
    (tmp_path / "data.xyz").write_text("1")
    with pytest.raises(DataError, match="unsupported file type"):
        load_dataset(str(tmp_path / "data.xyz"))


def test_npz_keys(tmp_path):
    x = np.random.RandomState(0).rand(6, 4)
    np.savez(tmp_path / "named.npz", x=x, y=np.arange(6))
    dataset = load_dataset(str(tmp_path / "named.npz"))
    np.testing.assert_allclose(dataset.train.x, x, rtol=1e-6)
    assert dataset.train.labels.tolist() == list(range(6))

    np.savez(tmp_path / "single.npz", whatever=x)
    assert load_dataset(str(tmp_path / "single.npz")).train.labels is None

    np.savez(tmp_path / "data.npz", data=x, labels=np.arange(6) % 2, extra=np.zeros(1))
    assert load_dataset(str(tmp_path / "data.npz")).train.labels.tolist() == [0, 1] * 3

    np.savez(tmp_path / "custom.npz", features=x, target=np.arange(6) + 1.0)
    dataset = load_dataset(str(tmp_path / "custom.npz"), labels="target")
    assert dataset.train.labels.tolist() == list(range(1, 7))

    np.savez(tmp_path / "ambiguous.npz", a=x, b=x)
    with pytest.raises(DataError, match=r"keys \['a', 'b'\]"):
        load_dataset(str(tmp_path / "ambiguous.npz"))


def test_csv_with_header_and_named_label_column(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,species,b\n1.5,cat,2\n3,dog,-4\n5,cat,6e-1\n")
    dataset = load_dataset(str(path), labels="species")
    np.testing.assert_allclose(dataset.train.x, [[1.5, 2], [3, -4], [5, 0.6]], rtol=1e-6)
    assert dataset.shape == (2,)
    assert dataset.train.labels.tolist() == [0, 1, 0]
    assert dataset.class_names == ("cat", "dog")


def test_csv_without_header_and_last_label_column(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("0.1;0.2;1\n0.3;0.4;0\n\n0.5;0.6;1\n")
    dataset = load_dataset(str(path), labels="last")
    np.testing.assert_allclose(dataset.train.x, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], rtol=1e-6)
    assert dataset.train.labels.tolist() == [1, 0, 1]
    unlabelled = load_dataset(str(path))
    assert unlabelled.shape == (3,) and unlabelled.train.labels is None


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        ("a,b\n1,2\n3,oops\n", {}, "line 3, column 'b' has a non-numeric value 'oops'"),
        ("a,b\n1,2\n3\n", {}, "line 3 has 1 fields, expected 2"),
        ("a,b\n1,2\n", {"labels": "c"}, "no column named 'c'; columns: a, b"),
        ("1,2\n3,4\n", {"labels": "c"}, "no header row"),
        ("a,b\n1,\n3,4\n", {}, "1 NaN"),
        ("a,b\n", {}, "no data rows"),
        ("a,b\n1,2.5\n", {"labels": "last"}, "fractional"),
    ],
)
def test_bad_csv_raises(tmp_path, content, options, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path), **options)


def write_image(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_with_class_subfolders(tmp_path):
    pytest.importorskip("PIL")
    random = np.random.RandomState(0)
    written = {}
    for name in ("zebra", "ant"):
        for index in range(3):
            array = random.randint(0, 256, size=(5, 7)).astype(np.uint8)
            write_image(tmp_path / "images" / name / f"{index}.png", array)
            written[(name, index)] = array
    dataset = load_dataset(str(tmp_path / "images"), validation_fraction=1 / 3, seed=0)
    assert dataset.class_names == ("ant", "zebra")
    assert dataset.shape == (1, 5, 7)
    assert (len(dataset.train), len(dataset.validation)) == (4, 2)
    assert dataset.test is None
    everything = load_dataset(str(tmp_path / "images"))
    assert everything.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_allclose(everything.train.x[3, 0], written[("zebra", 0)] / 255.0, rtol=1e-6)


def test_image_folder_colour_and_size_mismatch(tmp_path):
    pytest.importorskip("PIL")
    colour = np.zeros((4, 6, 3), dtype=np.uint8)
    colour[..., 0] = 255
    write_image(tmp_path / "flat" / "a.png", colour)
    write_image(tmp_path / "flat" / "b.png", np.full((4, 6), 128, dtype=np.uint8))
    dataset = load_dataset(str(tmp_path / "flat"))
    assert dataset.shape == (3, 4, 6) and dataset.train.labels is None
    np.testing.assert_allclose(dataset.train.x[0, :, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(dataset.train.x[1, :, 0, 0], [128 / 255] * 3, rtol=1e-6)

    write_image(tmp_path / "flat" / "c.png", np.zeros((5, 6), dtype=np.uint8))
    with pytest.raises(DataError, match="images differ in size: .*c.png is 6x5"):
        load_dataset(str(tmp_path / "flat"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_dataset(str(tmp_path / "empty"))


def test_image_folder_without_pillow(monkeypatch, tmp_path):
    (tmp_path / "images").mkdir()
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match="needs pillow"):
        load_dataset(str(tmp_path / "images"))


def test_user_data_limit_keeps_the_first_examples(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.save(tmp_path / "x.npy", x)
    dataset = load_dataset(str(tmp_path / "x.npy"), limit=5)
    np.testing.assert_array_equal(dataset.train.x, x[:5])
    assert dataset.value_range == (0.0, 9.0)


def test_image_folder_of_mixed_sizes_loads_resized_with_image_size(tmp_path):
    pytest.importorskip("PIL")
    write_image(tmp_path / "mixed" / "a.png", np.full((4, 6), 200, dtype=np.uint8))
    write_image(tmp_path / "mixed" / "b.png", np.zeros((5, 7), dtype=np.uint8))
    with pytest.raises(DataError, match="images differ in size: .*--image-size HxW of train"):
        load_dataset(str(tmp_path / "mixed"))
    for size in ("8x10", (8, 10)):
        dataset = load_dataset(str(tmp_path / "mixed"), image_size=size)
        assert dataset.shape == (1, 8, 10) and len(dataset.train.x) == 2
        np.testing.assert_allclose(dataset.train.x[0], 200 / 255, rtol=1e-6)
        np.testing.assert_allclose(dataset.train.x[1], 0.0)
    for bad in ("8by10", "0x8", "8x", (8,)):
        with pytest.raises(DataError, match="image size must be HEIGHTxWIDTH"):
            load_dataset(str(tmp_path / "mixed"), image_size=bad)
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(DataError, match="not an image folder"):
        load_dataset(str(tmp_path / "x.npy"), image_size="8x8")
    with pytest.raises(DataError, match="not an image folder"):
        load_dataset("digits", image_size="8x8")


def test_undo_preparation_inverts_standardise():
    from aevae.data.containers import Split as DataSplit
    from aevae.data.preparation import apply_preparation, standardise, undo_preparation

    x = np.random.default_rng(0).normal(5.0, 3.0, size=(50, 4)).astype(np.float32)
    dataset = assemble_dataset("x", DataSplit(x), None, None, description="x")
    prepared, record = standardise(dataset)
    np.testing.assert_allclose(undo_preparation(prepared.train.x, record), x, rtol=1e-5,
                               atol=1e-5)
    again = apply_preparation(dataset, record)
    np.testing.assert_allclose(again.train.x, prepared.train.x)
    assert undo_preparation(x, {"transform": "none"}) is x


def test_npz_labels_that_name_no_array_and_no_file_list_the_arrays(tmp_path):
    """It said 'labels file not found: foo', though foo was meant as one of the arrays."""
    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.default_rng(0).random((30, 4)), y=np.arange(30) % 3)
    with pytest.raises(DataError, match=r"d.npz has no array named 'foo'; its arrays: x, y "
                       r"\(and no labels file foo exists\)"):
        load_dataset(str(path), labels="foo")


def test_csv_labels_may_name_a_labels_file(tmp_path):
    """A labels file with a .csv table was looked up as a column ('has no column named ...')."""
    values = np.random.default_rng(0).random((30, 4))
    path = tmp_path / "tab.csv"
    path.write_text("a,b,c,d\n" + "".join(",".join(f"{v:.4f}" for v in row) + "\n"
                                          for row in values))
    np.save(tmp_path / "tab_labels.npy", np.arange(30) % 3)
    dataset = load_dataset(str(path), labels=str(tmp_path / "tab_labels.npy"),
                           validation_fraction=0.0)
    assert dataset.feature_names == ("a", "b", "c", "d")
    np.testing.assert_allclose(dataset.train.x, values, atol=1e-4)
    assert dataset.train.labels.tolist() == (np.arange(30) % 3).tolist()
    with pytest.raises(DataError, match=r"no column named 'nofile.npy'; columns: a, b, c, d "
                       r"\(and no labels file nofile.npy exists\)"):
        load_dataset(str(path), labels="nofile.npy")
