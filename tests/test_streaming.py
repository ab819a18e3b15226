"""Data beyond memory: .npy files read in shuffled chunks, image folders decoded lazily."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest
import torch

import aevae
from aevae.cli import UsageError
from aevae.data import DataError
from aevae.data.streaming import ImageFolderStream, NpyStream


@pytest.fixture
def table(tmp_path):
    x = np.random.default_rng(0).random((1000, 6)).astype(np.float32)
    path = tmp_path / "table.npy"
    np.save(path, x)
    return path, x


def _epoch(stream, seed: int, batch_size: int = 64) -> list[np.ndarray]:
    return list(stream.batches(batch_size, torch.Generator().manual_seed(seed)))


def test_an_epoch_serves_every_row_once_in_a_new_order(table):
    path, x = table
    stream = NpyStream(path, chunk_bytes=6 * 4 * 150)  # 150 rows per chunk
    assert stream.chunk_rows == 150 and len(stream) == 1000
    first, second = _epoch(stream, 0), _epoch(stream, 1)
    assert [len(batch) for batch in first] == [64] * 15 + [40]  # leftovers carried over
    for epoch in (first, second):
        served = np.concatenate(epoch)
        assert np.array_equal(served[np.lexsort(served.T)], x[np.lexsort(x.T)])
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))
    assert all(np.array_equal(a, b) for a, b in zip(first, _epoch(stream, 0)))


def test_held_out_rows_are_never_served(table):
    path, x = table
    train, validation = NpyStream(path, chunk_bytes=6 * 4 * 100).hold_out(0.2, seed=3)
    assert len(train) == 800 and validation.shape == (200, 6)
    served = {row.tobytes() for row in np.concatenate(_epoch(train, 0))}
    assert len(served) == 800
    assert not served & {row.tobytes() for row in validation}


def test_a_bad_value_deep_in_the_file_names_its_rows(tmp_path):
    x = np.random.default_rng(0).random((500, 4)).astype(np.float32)
    x[321, 2] = np.nan
    np.save(tmp_path / "bad.npy", x)
    stream = NpyStream(tmp_path / "bad.npy", chunk_bytes=4 * 4 * 100)
    with pytest.raises(DataError, match=r"rows 300-399 .*NaN"):
        _epoch(stream, 0)
    x[321, 2] = 1.5
    np.save(tmp_path / "range.npy", x)
    stream = NpyStream(tmp_path / "range.npy", likelihood="bernoulli", chunk_bytes=1600)
    with pytest.raises(DataError, match=r"rows 300-399"):
        _epoch(stream, 0)


def test_files_that_cannot_be_streamed_are_refused(tmp_path):
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.ones((10, 3), np.float32)))
    with pytest.raises(DataError, match="Fortran order"):
        NpyStream(tmp_path / "fortran.npy")
    np.save(tmp_path / "short.npy", np.ones((100, 3), np.float32))
    data = (tmp_path / "short.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[:-40])
    with pytest.raises(DataError, match="truncated"):
        NpyStream(tmp_path / "short.npy")
    np.save(tmp_path / "vector.npy", np.ones(10, np.float32))
    with pytest.raises(DataError, match="first axis"):
        NpyStream(tmp_path / "vector.npy")


def test_uint8_images_stream_scaled_and_channel_first(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (300, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "images.npy", pixels)
    stream = NpyStream(tmp_path / "images.npy")
    assert stream.example_shape == (1, 8, 8)
    served = np.concatenate(_epoch(stream, 0))
    assert served.max() <= 1.0 and np.isclose(served.sum(), pixels.sum() / 255.0, rtol=1e-5)


def test_fit_trains_on_a_stream_with_early_stopping(table):
    path, _ = table
    train, validation = NpyStream(path).hold_out(0.1, seed=0)
    model = aevae.make("vae", input_shape=(6,), latent_dim=2, hidden=(16,),
                       likelihood="gaussian", seed=0)
    model.fit(train, validation=validation, epochs=3, batch_size=50, patience=2,
              progress=False)
    losses = model.history_.column("train_loss")
    assert len(losses) == 3 and losses[-1] < losses[0]


def test_peak_memory_stays_flat_as_the_file_grows(tmp_path):
    # VmHWM, not ru_maxrss: a child inherits ru_maxrss from its parent (here, pytest).
    probe = (
        "import sys, torch\n"
        "from aevae.data.streaming import NpyStream\n"
        "def status(field):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(field + ':'):\n"
        "            return int(line.split()[1]) // 1024\n"
        "stream = NpyStream(sys.argv[1], chunk_bytes=4 << 20)\n"
        "before = status('VmRSS')\n"
        "for batch in stream.batches(100, torch.Generator().manual_seed(0)):\n"
        "    pass\n"
        "print(status('VmHWM') - before)\n"
    )
    grown = {}
    for factor in (1, 8):
        path = tmp_path / f"x{factor}.npy"
        np.save(path, np.zeros((factor * 5000, 784), np.float32))  # 15.7 MB per factor
        done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True,
                              text=True, check=True, timeout=300)
        grown[factor] = int(done.stdout.split()[-1])
    # Loading the larger file whole would add about 110 MB more than the smaller one.
    assert grown[8] - grown[1] < 24, grown


def test_an_image_folder_is_read_lazily_and_checked(tmp_path):
    from PIL import Image

    for index in range(12):
        values = np.full((8, 8), index * 20, dtype=np.uint8)
        Image.fromarray(values).save(tmp_path / f"{index:02d}.png")
    folder = ImageFolderStream(tmp_path)
    assert len(folder) == 12 and folder.example_shape == (1, 8, 8)
    assert float(folder[3].max()) == pytest.approx(60 / 255)
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "99.png")
    with pytest.raises(DataError, match="images differ in size"):
        ImageFolderStream(tmp_path)[12]


def test_the_cli_streams_npy_files_and_image_folders(tmp_path, capsys):
    from aevae.cli import main

    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((400, 5)).astype(np.float32))
    code = main(["train", "vae", "--data", str(tmp_path / "x.npy"), "--stream", "--epochs", "1",
                 "--likelihood", "gaussian", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0 and "trained vae for 1 epoch:" in capsys.readouterr().out
    code = main(["train", "cvae", "--data", str(tmp_path / "x.npy"), "--stream", "--epochs",
                 "1", "--out", str(tmp_path / "conditional"), "--quiet"])
    assert code == 2 and "streamed data does not carry" in capsys.readouterr().err
    code = main(["train", "vae", "--data", "digits", "--stream", "--out",
                 str(tmp_path / "named"), "--quiet"])
    assert code == 2 and "--stream reads a .npy file or an image folder" in \
        capsys.readouterr().err


def test_a_streamed_run_holds_out_the_rows_a_loaded_one_does(tmp_path, capsys):
    """evaluate and reconstruct load the file and carve its validation split: a streamed run
    must have held out those rows, and taken --limit from the rest, as a loaded run does."""
    from aevae.cli import _stream_source
    from aevae.data import load_dataset

    x = np.random.default_rng(1).random((400, 5)).astype(np.float32)
    x[:, 0] = np.arange(400) / 400  # each row tells its index
    np.save(tmp_path / "rows.npy", x)
    record = {"data": str(tmp_path / "rows.npy"), "validation_fraction": 0.1, "seed": 7,
              "limit": 100, "image_size": None, "labels": None}
    arguments = argparse.Namespace(stream=True, quiet=True)
    train, validation = _stream_source(arguments, record)
    loaded = load_dataset(str(tmp_path / "rows.npy"), validation_fraction=0.1, seed=7,
                          limit=100)
    np.testing.assert_array_equal(validation, loaded.validation.x)
    np.testing.assert_array_equal(train.read_rows(train.rows), loaded.train.x)
    # Values a loaded run would standardise are refused, not trained on as they are.
    np.save(tmp_path / "real.npy", (x * 50 + 1000).astype(np.float32))
    with pytest.raises(UsageError, match="values span 1000 to 1049.*standardise the file "
                                         "first"):
        _stream_source(arguments, {**record, "data": str(tmp_path / "real.npy")})
    # Standardised values are read as they are, as a loaded run would nearly leave them.
    standard = (x - x.mean(axis=0)) / x.std(axis=0)
    np.save(tmp_path / "standard.npy", standard.astype(np.float32))
    _stream_source(arguments, {**record, "data": str(tmp_path / "standard.npy")})


def test_an_image_folder_streams_the_images_it_loads(tmp_path):
    """Streaming and loading list an image folder the same way, hidden files and folders
    (".thumbs", macOS's "._a.png") left out of both, so their rows and splits agree."""
    from PIL import Image

    from aevae.data import load_dataset

    for name in ("a", "b", "a/.thumbs", ".hidden"):
        (tmp_path / "images" / name).mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(("a/1.png", "a/2.png", "b/1.png", "a/.thumbs/1.png",
                                  ".hidden/1.png", "b/._1.png")):
        pixels = np.full((4, 4), 20 * index, dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / name, format="PNG")
    stream = ImageFolderStream(tmp_path / "images")
    loaded = load_dataset(str(tmp_path / "images"), validation_fraction=0.0)
    assert len(stream) == len(loaded.train) == 3
    np.testing.assert_array_equal(np.stack([stream[i].numpy() for i in range(3)]),
                                  loaded.train.x)


def test_the_validation_rows_a_stream_keeps_are_drawn_from_all_it_held_out(table):
    """Memory keeps at most `limit` held-out rows: a random share of them, not the first ones
    (a file's order may follow a factor)."""
    path, _ = table
    train, validation = NpyStream(path).hold_out(0.5, seed=0, limit=20)
    assert len(validation) == 20 and len(train) == 500
    rows = NpyStream(path).read_rows(np.arange(1000))
    kept = [int(np.flatnonzero((rows == row).all(axis=1))[0]) for row in validation]
    assert max(kept) > 500  # the first 20 held-out rows would all lie near the start
