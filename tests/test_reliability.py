"""Reliability of the command line and the files behind it: damaged or hostile run files, refused
commands that must leave every file as it was, and paths, devices and formats checked up front."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import aevae
from aevae.cli import main
from aevae.io import CorruptFileError, atomic_write_bytes
from aevae.models.base import AutoencoderConfig
from aevae.training import resolve_device

TINY = ["--epochs", "1", "--latent-dim", "4", "--hidden", "16", "--quiet"]


def run(capsys, *arguments):
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("aevae: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "vae"
    assert main(["train", "vae", "--data", "digits", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture
def copy(trained, tmp_path):
    destination = tmp_path / "run"
    shutil.copytree(trained, destination)
    return destination


@pytest.fixture
def user_data(tmp_path):
    values = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    np.save(tmp_path / "values.npy", values)
    np.save(tmp_path / "labels.npy", np.arange(40) % 2)
    return tmp_path


# ----- 1: damaged run files name themselves, exit 2 ---------------------------------------------
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def set_config(path: Path, change) -> None:
    description = json.loads(path.read_text())
    change(description)
    path.write_text(json.dumps(description))


@pytest.mark.parametrize(
    ("damage", "file_name", "message"),
    [
        (lambda run: truncate(run / "model.safetensors"), "model.safetensors",
         "not a valid safetensors file"),
        (lambda run: (run / "model.safetensors").write_bytes(b""), "model.safetensors",
         "truncated or corrupt"),
        (lambda run: (run / "config.json").write_text('{"model": "vae",'), "config.json",
         "not valid JSON"),
        (lambda run: (run / "config.json").write_bytes(b"\xff\xfe\x00"), "config.json",
         "not valid JSON"),
        (lambda run: (run / "config.json").write_text("[1, 2]"), "config.json",
         "expected an object"),
        (lambda run: set_config(run / "config.json", lambda d: d.pop("config")), "config.json",
         "expected an object"),
        (lambda run: set_config(run / "config.json", lambda d: d.update(model=3)),
         "config.json", "name a model"),
        (lambda run: set_config(run / "config.json", lambda d: d.update(model="nope")),
         "config.json", "unknown model 'nope'"),
        (lambda run: set_config(run / "config.json", lambda d: d["config"].pop("input_shape")),
         "config.json", "missing option(s) input_shape"),
        (lambda run: set_config(run / "config.json",
                                lambda d: d["config"].update(latent_dim="4")),
         "config.json", "option latent_dim: expected an integer, got '4'"),
        (lambda run: set_config(run / "config.json",
                                lambda d: d["config"].update(likelihood_options={"x": 1})),
         "config.json", "unexpected keyword"),
        (lambda run: set_config(run / "config.json", lambda d: d["config"].update(latent_dim=5)),
         "model.safetensors", "does not fit the model"),
        (lambda run: (run / "data.json").write_text("{"), "data.json", "not valid JSON"),
        (lambda run: (run / "data.json").write_text('{"data": 3}'), "data.json",
         "data should be a dataset name or path"),
        (lambda run: (run / "data.json").write_text('{"data": "digits", "seed": "0"}'),
         "data.json", "seed should be an integer"),
        (lambda run: (run / "data.json").write_text('"digits"'), "data.json",
         "expected a JSON object"),
    ],
)
def test_a_damaged_run_file_is_named_in_one_line(copy, capsys, damage, file_name, message):
    damage(copy)
    code, _, err = run(capsys, "evaluate", copy, "--metrics", "reconstruction")
    assert_one_line_error(code, err, str(copy / file_name), message)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: truncate(run / "checkpoint.safetensors"), "not a valid safetensors file"),
        (lambda run: aevae.io.save_tensors(run / "checkpoint.safetensors",
                                           {"x": torch.zeros(1)}, {"step": 1}),
         "not a checkpoint of this run"),
    ],
)
def test_a_damaged_checkpoint_is_named_in_one_line(copy, capsys, damage, message):
    damage(copy)
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--out", copy, "--resume",
                       "--epochs", "2", "--quiet")
    assert_one_line_error(code, err, str(copy / "checkpoint.safetensors"), message)


def test_a_damaged_ex_post_file_names_itself(tmp_path):
    from aevae.ex_post import ExPostSampler

    path = tmp_path / "ex_post.json"
    path.write_text("{oops")
    with pytest.raises(CorruptFileError, match=re.escape(f"{path}: not valid JSON")):
        ExPostSampler.load(tmp_path)
    path.write_text(json.dumps({"format": "aevae.ex_post", "covariance": "full"}))
    with pytest.raises(CorruptFileError, match=re.escape(f"{path}: not a valid ex-post")):
        ExPostSampler.load(tmp_path)


# ----- 3: a refused command leaves every file as it was -----------------------------------------
@pytest.mark.parametrize(
    "arguments",
    [
        ["vae", "--data", "{data}/values.npy", *TINY],  # a run is there, --resume is missing
        ["vae", "--data", "digits", "--validation-fraction", "0.2", *TINY],
        ["vae", "--data", "{data}/values.npy", "--resume", *TINY],  # other data
        ["ae", "--data", "digits", "--resume", *TINY],  # another model
        ["vae", "--data", "digits", "--resume", "--epochs", "2", "--latent-dim", "8"],
        ["vae", "--data", "digits", "--resume", "--epochs", "2", "--seed", "3"],
        ["vae", "--data", "digits", "--resume", "--epochs", "2", "--option", "beta=abc"],
        ["vae", "--data", "digits", "--resume", "--epochs", "2", "--device", "nowhere"],
    ],
)
def test_a_refused_train_leaves_the_run_as_it_was(copy, user_data, capsys, arguments):
    before = snapshot(copy)
    arguments = [part.format(data=user_data) for part in arguments]
    code, _, err = run(capsys, "train", *arguments, "--out", copy)
    assert_one_line_error(code, err)
    assert snapshot(copy) == before
    code, _, err = run(capsys, "evaluate", copy, "--metrics", "reconstruction",
                       "--max-examples", "20", "--out", copy.parent / "metrics.json")
    assert code == 0, err


# ----- 4: --resume checks the model and the data ------------------------------------------------
def test_resume_names_both_models_and_options(copy, capsys):
    code, _, err = run(capsys, "train", "ae", "--data", "digits", "--out", copy, "--resume",
                       "--latent-dim", "8")
    assert_one_line_error(code, err, f"cannot resume {copy}: it holds a vae (latent_dim=4), "
                          "the command asks for ae (latent_dim=8)")
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--out", copy, "--resume",
                       "--option", "beta=2")
    assert_one_line_error(code, err, "it holds a vae (beta=1.0)", "asks for vae (beta=2.0)")
    code, _, err = run(capsys, "train", "vae", "--data", "mnist", "--out", copy, "--resume")
    assert_one_line_error(code, err, "it was trained with --data digits",
                          "the command gives --data mnist")


def test_resume_with_the_same_or_no_model_options(copy, capsys):
    code, out, err = run(capsys, "train", "vae", "--data", "digits", "--out", copy, "--resume",
                         "--epochs", "2", "--quiet")
    assert code == 0 and "for 2 epochs" in out, err
    code, out, err = run(capsys, "train", "vae", "--data", "digits", "--out", copy, "--resume",
                         "--epochs", "3", "--latent-dim", "4", "--hidden", "16",
                         "--option", "beta=1", "--quiet")
    assert code == 0 and "for 3 epochs" in out, err
    assert len((copy / "history.csv").read_text().splitlines()) == 4


# ----- 5: devices -------------------------------------------------------------------------------
def test_cuda_without_cuda_support_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda': this PyTorch has no CUDA support"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda:0': no CUDA GPU is visible"):
        resolve_device("cuda:0")
    for unknown in ("gpu", "meta", "", "cuda:x"):
        with pytest.raises(ValueError, match="unknown device"):
            resolve_device(unknown)
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.backends.cuda.is_built() and torch.cuda.is_available(),
                    reason="this machine has CUDA")
def test_device_cuda_on_the_command_line_without_cuda(tmp_path, capsys):
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--device", "cuda",
                       "--out", tmp_path / "run", *TINY)
    assert_one_line_error(code, err, "device 'cuda'")
    assert not (tmp_path / "run").exists()


# ----- 6: counts, option types, unreadable arrays -----------------------------------------------
@pytest.mark.parametrize("command", ["sample", "reconstruct"])
def test_image_count_must_be_positive(copy, tmp_path, capsys, command):
    code, _, err = run(capsys, command, copy, "-n", "-1", "--out", tmp_path / "x.png")
    assert_one_line_error(code, err, "-n must be at least 1, got -1")
    assert not (tmp_path / "x.png").exists()


def test_option_of_the_wrong_type_names_the_option(tmp_path, capsys):
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--option", "beta=abc",
                       "--out", tmp_path / "run", *TINY)
    assert_one_line_error(code, err, "option beta: expected a number, got 'abc'")


@dataclass
class _TypedConfig(AutoencoderConfig):
    flag: bool = False
    ratio: float | None = None
    count: int = 1
    widths: tuple[int, ...] = (1,)
    name: str = "a"
    extra: dict | None = None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flag": 1}, "option flag: expected true or false, got 1"),
        ({"ratio": True}, "option ratio: expected a number or null, got True"),
        ({"ratio": "0.5"}, "option ratio: expected a number or null, got '0.5'"),
        ({"count": 2.0}, "option count: expected an integer, got 2.0"),
        ({"count": False}, "option count: expected an integer, got False"),
        ({"widths": [1, "2"]}, "option widths: expected a list of integers"),
        ({"widths": "12"}, "option widths: expected a list of integers"),
        ({"name": 3}, "option name: expected a string, got 3"),
        ({"extra": [1]}, "option extra: expected a JSON object or null"),
        ({"latent_dim": 2.5}, "option latent_dim: expected an integer"),
    ],
)
def test_config_options_are_checked_by_their_declared_types(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _TypedConfig.from_options({"input_shape": (4,), **options})


def test_config_options_of_the_right_type_are_converted():
    config = _TypedConfig.from_options({
        "input_shape": [4], "flag": True, "ratio": 1, "count": np.int64(3), "widths": 5,
        "extra": None, "hidden": [8, 4],
    })
    assert (config.input_shape, config.flag, config.ratio, config.count) == ((4,), True, 1.0, 3)
    assert config.widths == (5,) and config.hidden == (8, 4)
    assert isinstance(config.ratio, float)


def test_unreadable_arrays_never_suggest_unpickling(tmp_path, capsys):
    (tmp_path / "random.npy").write_bytes(os.urandom(64).replace(b"\x80", b"\x00"))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object),
            allow_pickle=True)
    (tmp_path / "pickled.npy").write_bytes(pickle.dumps([1, 2, 3]))
    expected = {
        "random.npy": "random.npy: not a readable .npy array",
        "objects.npy": "objects.npy holds Python objects (a pickle); aevae never unpickles",
        "pickled.npy": "pickled.npy holds Python objects (a pickle); aevae never unpickles",
    }
    for name, message in expected.items():
        code, _, err = run(capsys, "train", "ae", "--data", tmp_path / name,
                           "--out", tmp_path / "run", *TINY)
        assert_one_line_error(code, err, message)
        assert "allow_pickle" not in err


# ----- 7: user paths are recorded absolute ------------------------------------------------------
def test_relative_paths_are_recorded_absolute(user_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(user_data)
    code, _, err = run(capsys, "train", "ae", "--data", "values.npy", "--labels", "labels.npy",
                       "--data-dir", ".", "--out", "runs/ae", *TINY)
    assert code == 0, err
    record = json.loads((user_data / "runs" / "ae" / "data.json").read_text())
    assert record["data"] == str(user_data / "values.npy")
    assert record["labels"] == str(user_data / "labels.npy")
    assert record["data_dir"] == str(user_data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_directory = user_data / "runs" / "ae"
    code, _, err = run(capsys, "evaluate", run_directory, "--metrics", "reconstruction")
    assert code == 0, err
    # Named datasets stay names.
    code, _, err = run(capsys, "train", "ae", "--data", "digits", "--out", "named", *TINY)
    assert code == 0, err
    assert json.loads((elsewhere / "named" / "data.json").read_text())["data"] == "digits"


# ----- 8: image formats, file modes, no half runs -----------------------------------------------
def test_image_format_follows_the_extension(copy, tmp_path, capsys):
    for name, magic in (("z.jpg", b"\xff\xd8\xff"), ("z.JPEG", b"\xff\xd8\xff"),
                        ("z.png", b"\x89PNG"), ("z.svg", b"<?xml")):
        code, _, err = run(capsys, "sample", copy, "-n", "4", "--out", tmp_path / name)
        assert code == 0, err
        assert (tmp_path / name).read_bytes().startswith(magic), name
    # Checked before any work: the missing run is never looked at.
    for name in ("z.gif", "z"):
        code, _, err = run(capsys, "sample", tmp_path / "missing", "--out", tmp_path / name)
        assert_one_line_error(code, err, ".jpg", ".png")
        assert not (tmp_path / name).exists()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_usual_permissions(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    # A file that is replaced keeps the permissions it had.
    (tmp_path / "new.bin").chmod(0o640)
    atomic_write_bytes(tmp_path / "new.bin", b"y")
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o640


def test_a_new_run_gets_the_usual_permissions(tmp_path, capsys):
    previous = os.umask(0o022)
    try:
        assert run(capsys, "train", "ae", "--data", "digits", "--out", tmp_path / "run",
                   *TINY)[0] == 0
    finally:
        os.umask(previous)
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "run").iterdir()}
    assert set(modes.values()) == {0o644}, modes


@pytest.mark.parametrize(
    "arguments",
    [
        ["--data", "{data}/missing.npy"],
        ["--data", "digits", "--option", "beta=abc"],
        ["--data", "digits", "--kl-schedule", "sometimes"],
        ["--data", "digits", "--learning-rate", "1e9"],  # diverges in the first epoch
    ],
)
def test_a_failed_train_leaves_no_run_behind(user_data, tmp_path, capsys, arguments):
    arguments = [part.format(data=user_data) for part in arguments]
    code, _, err = run(capsys, "train", "vae", *arguments, "--out", tmp_path / "new" / "run",
                       *TINY)
    assert_one_line_error(code, err)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "train", "vae", *arguments, "--out", existing, *TINY)
    assert_one_line_error(code, err)
    assert snapshot(existing) == {"notes.txt": b"mine"}


# ----- 9: hostile files -------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates the marker file: proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_pickles_in_a_run_are_never_unpickled(copy, tmp_path, capsys):
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()  # the payload works
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Payload(marker))
    for name in ("model.pt", "model.pth", "checkpoint.pkl", "checkpoint.pt", "weights.npy"):
        (copy / name).write_bytes(payload)
    code, _, err = run(capsys, "evaluate", copy, "--metrics", "reconstruction",
                       "--max-examples", "20")
    assert code == 0, err
    aevae.load(copy)
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--out", copy, "--resume",
                       "--epochs", "2", "--quiet")
    assert code == 0, err
    # A pickle where aevae expects its own files is refused, not unpickled.
    for name in ("model.safetensors", "checkpoint.safetensors", "config.json", "data.json"):
        damaged = tmp_path / f"damaged-{name}"
        shutil.copytree(copy, damaged)
        (damaged / name).write_bytes(payload)
        if name == "checkpoint.safetensors":
            arguments = ["train", "vae", "--data", "digits", "--out", damaged, "--resume",
                         "--epochs", "3", "--quiet"]
        else:
            arguments = ["evaluate", damaged, "--metrics", "reconstruction"]
        code, _, err = run(capsys, *arguments)
        assert_one_line_error(code, err, str(damaged / name))
    (tmp_path / "data.npy").write_bytes(payload)
    code, _, err = run(capsys, "train", "ae", "--data", tmp_path / "data.npy", "--out",
                       tmp_path / "other", *TINY)
    assert_one_line_error(code, err, "aevae never unpickles")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(model="os:system"), "unknown model 'os:system'"),
        (lambda d: d.update(model="aevae.models.vae.VAE"), "unknown model"),
        (lambda d: d["config"].update(likelihood="builtins.eval"), "unknown likelihood"),
        (lambda d: d["config"].update(prior="subprocess.call"), "unknown prior"),
        (lambda d: d["config"].update(network="../../etc/passwd"), "unknown network"),
        (lambda d: d["config"].update(activation="os.system"), "unknown activation"),
    ],
)
def test_config_cannot_name_code(copy, capsys, change, message):
    set_config(copy / "config.json", change)
    code, _, err = run(capsys, "evaluate", copy, "--metrics", "reconstruction")
    assert_one_line_error(code, err, str(copy / "config.json"), message)


def test_no_source_file_can_unpickle():
    source = Path(aevae.__file__).parent
    for path in source.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib)\b", text, re.M), path
        for call in re.findall(r"np\.load\([^)]*\)", text):
            assert "allow_pickle=False" in call, (path, call)
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
