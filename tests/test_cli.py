"""The command line: every command end to end on digits, and bad input as one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import aevae
from aevae.cli import main


def run(capsys, *arguments):
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    assert main(["train", "vae", "--data", "digits", "--epochs", "2", "--latent-dim", "4",
                 "--hidden", "32", "--out", str(out), "--quiet"]) == 0
    return out


def test_train_writes_a_complete_run(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.json", "model.safetensors", "history.csv", "checkpoint.safetensors",
            "data.json"} <= names
    config = json.loads((trained_run / "config.json").read_text())
    assert config["model"] == "vae" and config["config"]["latent_dim"] == 4


def test_resume_continues_a_run(tmp_path, capsys):
    out = tmp_path / "ae"
    arguments = ["train", "ae", "--data", "digits", "--hidden", "16", "--latent-dim", "2",
                 "--out", str(out), "--quiet"]
    assert run(capsys, *arguments, "--epochs", "1")[0] == 0
    code, _, err = run(capsys, *arguments, "--epochs", "1")
    assert code == 2 and "already holds a training run" in err
    code, out_text, _ = run(capsys, *arguments, "--epochs", "3", "--resume")
    assert code == 0 and "for 3 epochs" in out_text
    assert len((out / "history.csv").read_text().splitlines()) == 4
    # The run's records name its model and data: a resume need not repeat them (it said
    # "train needs --data").
    code, out_text, _ = run(capsys, "train", "--out", str(out), "--epochs", "4", "--resume",
                            "--quiet")
    assert code == 0 and "trained ae for 4 epochs" in out_text
    code, _, err = run(capsys, "train", "vae", "--out", str(out), "--resume", "--quiet")
    assert code == 2 and "it holds an ae, the command asks for vae" in err
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "new"), "--resume", "--quiet")
    assert code == 2 and "train needs model" in err  # nothing to resume there
    # Its saved configuration names the data the records gave, and starts a run of its own.
    saved = tmp_path / "resumed.toml"
    assert run(capsys, "train", "--out", str(out), "--epochs", "5", "--resume", "--quiet",
               "--save-config", str(saved))[0] == 0
    text = saved.read_text()
    assert 'data = "digits"' in text and "\nresume" not in text
    code, out_text, err = run(capsys, "train", "--config", str(saved), "--out",
                              str(tmp_path / "copy"), "--quiet")
    assert code == 0 and "trained ae for 5 epochs" in out_text and "nothing to resume" not in err


def test_evaluate_sample_reconstruct(trained_run, tmp_path, capsys):
    code, out, err = run(capsys, "evaluate", str(trained_run), "--metrics",
                         "reconstruction,likelihood", "--importance-samples", "20")
    assert code == 0 and "log p(x), importance sampled (higher is better)" in out
    assert "[2/2] likelihood" in err and "to go" in err  # progress per group
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["metrics"]["likelihood"]["importance_samples"] == 20
    assert run(capsys, "sample", str(trained_run), "-n", "9", "--out",
               str(tmp_path / "s.png"))[0] == 0
    assert run(capsys, "reconstruct", str(trained_run), "--out", str(tmp_path / "r.png"))[0] == 0
    for name in ("s.png", "r.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_listings(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "vae" in out and "ae" in out
    # The priors, likelihoods, networks and flows are listed too, and no line runs long.
    for name in ("mixture", "vamp", "gaussian-learned", "conv", "locatello_mlp", "iaf"):
        assert f"\n{name} " in out
    assert max(len(line) for line in out.splitlines()) <= 100
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "digits" in out and "binarized-mnist" in out


def test_models_name_lists_every_option_with_default_and_meaning(capsys):
    from aevae.models import MODELS

    for name, cls in MODELS.items():
        code, out, _ = run(capsys, "models", name)
        assert code == 0 and out.startswith(f"{name}: {cls.description}")
        for option in cls.Config.__dataclass_fields__:
            if option != "input_shape":
                assert f"\n{option} " in out, (name, option)
    code, out, _ = run(capsys, "models", "beta_vae")
    assert "Higgins" in out and "\nbeta " in out and "4.0" in out
    code, _, err = run(capsys, "models", "nope")
    assert code == 2 and "unknown model 'nope'" in err


def test_version_and_help_show_defaults(capsys):
    import aevae

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"aevae {aevae.__version__}"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "(default: 100)" in text and "(default: 0.001)" in text
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "reconstruction, likelihood, latent, generation, structure" in text


def test_sample_writes_arrays_and_traverse_writes_a_grid(trained_run, tmp_path, capsys):
    assert run(capsys, "sample", str(trained_run), "-n", "5", "--out",
               str(tmp_path / "s.npy"))[0] == 0
    values = np.load(tmp_path / "s.npy")
    assert values.shape == (5, 1, 8, 8) and 0 <= values.min() <= values.max() <= 1
    assert run(capsys, "sample", str(trained_run), "-n", "5", "--out",
               str(tmp_path / "s.csv"))[0] == 0
    table = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table, values.reshape(5, -1), rtol=1e-5, atol=1e-6)
    code, out, _ = run(capsys, "traverse", str(trained_run), "--dimensions", "2", "--out",
                       str(tmp_path / "t.png"))
    assert code == 0 and (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert "traversals of dimensions" in out
    code, _, err = run(capsys, "evaluate", str(trained_run), "--metrics", "nonsense")
    assert code == 2 and "unknown metric group(s) nonsense; known: reconstruction" in err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "nope", "--data", "digits", "--out", "{tmp}/a"], "unknown model 'nope'"),
        (["train", "vae", "--data", "{tmp}/missing.npy", "--out", "{tmp}/b"], "missing.npy"),
        (["train", "vae", "--data", "{tmp}/big.npy", "--likelihood", "bernoulli", "--out",
          "{tmp}/c"], r"[0, 1]"),  # without --likelihood: a Gaussian, on standardised values
        (["train", "vae", "--data", "{tmp}/nan.npy", "--out", "{tmp}/d"], "NaN"),
        (["train", "vae", "--data", "digits", "--latent-dim", "0", "--out", "{tmp}/e"],
         "latent_dim"),
        (["train", "vae", "--data", "digits", "--option", "betta=3", "--out", "{tmp}/f"],
         "unknown option"),
        (["evaluate", "{tmp}/nowhere"], "no saved model"),
        (["sample", "{tmp}/nowhere", "--out", "{tmp}/x.png"], "no saved model"),
        (["train", "vae", "--data", "digits", "--device", "cpu", "--cuda-graphs", "--out",
          "{tmp}/h"], "--cuda-graphs needs a CUDA GPU; this run would train on the cpu"),
        (["compare", "--device", "cpu", "--cuda-graphs", "--out", "{tmp}/g"],
         "--cuda-graphs needs a CUDA GPU; this study would train on the cpu"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, arguments, message):
    np.save(tmp_path / "big.npy", np.full((10, 4), 3.0, np.float32))
    values = np.zeros((10, 4), np.float32)
    values[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", values)
    code, _, err = run(capsys, *[part.format(tmp=tmp_path) for part in arguments])
    assert code == 2
    assert err.startswith("aevae: error: ") and err.count("\n") == 1, err
    assert message in err


def test_aevae_warnings_are_one_line_and_others_keep_their_source(capsys, monkeypatch):
    import aevae.cli as cli

    def warns(arguments):
        warnings.warn_explicit("cuda_graphs: this run steps eagerly: a reason", RuntimeWarning,
                               cli.__file__.replace("cli.py", "training/trainer.py"), 147)
        warnings.warn_explicit("a library's own warning", DeprecationWarning,
                               "/elsewhere/library.py", 3)
        return 0

    monkeypatch.setattr(cli, "command_models", warns)
    # The library's warning goes where Python sends warnings (here: pytest's record).
    with pytest.warns(DeprecationWarning, match="a library's own warning"):
        code, _, err = run(capsys, "models")
    assert code == 0
    assert err == "aevae: warning: cuda_graphs: this run steps eagerly: a reason\n"


def test_console_script_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "aevae.cli", "train", "vae", "--data", str(tmp_path / "x.csv"),
         "--out", str(tmp_path / "run")], capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_a_saved_config_repeats_a_run_bit_for_bit(tmp_path, capsys, monkeypatch):
    from safetensors.numpy import load_file

    monkeypatch.chdir(tmp_path)
    assert run(capsys, "train", "beta_vae", "--data", "digits", "--latent-dim", "3", "--hidden",
               "16,8", "--option", "beta=2", "--epochs", "2", "--out", "first", "--quiet",
               "--save-config", "run.toml")[0] == 0
    text = (tmp_path / "run.toml").read_text()
    assert 'model = "beta_vae"' in text and "hidden = [16, 8]" in text and "seed = 0" in text
    assert run(capsys, "train", "--config", "run.toml", "--out", "second", "--quiet")[0] == 0
    first, second = (load_file(tmp_path / name / "model.safetensors")
                     for name in ("first", "second"))
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[key], second[key]) for key in first)
    # The command line wins over the file.
    assert run(capsys, "train", "--config", "run.toml", "--out", "third", "--epochs", "1",
               "--quiet")[0] == 0
    assert len((tmp_path / "third" / "history.csv").read_text().splitlines()) == 2
    (tmp_path / "bad.toml").write_text("epoch = 3\n")
    code, _, err = run(capsys, "train", "--config", "bad.toml")
    assert code == 2 and "bad.toml: unknown option(s) epoch" in err
    code, _, err = run(capsys, "train", "--data", "digits", "--out", "x")
    assert code == 2 and "train needs model" in err


def _tensorboard_run(capsys, tmp_path, hidden: str, epochs: str):
    """Train a small VAE on digits with --tensorboard; its events, read back."""
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    assert run(capsys, "train", "vae", "--data", "digits", "--latent-dim", "3", "--hidden", hidden,
               "--epochs", epochs, "--out", str(tmp_path / "run"), "--quiet", "--tensorboard",
               str(tmp_path / "events"))[0] == 0
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "events"))
    accumulator.Reload()
    return accumulator


def test_tensorboard_events_are_readable_and_cheap(tmp_path, capsys):
    accumulator = _tensorboard_run(capsys, tmp_path, "16", "3")
    scalars = accumulator.Tags()["scalars"]
    assert {"loss/train", "loss/validation", "kl/validation", "training/kl_weight"} <= set(scalars)
    assert [event.step for event in accumulator.Scalars("loss/train")] == [1, 2, 3]
    # Epochs of a few milliseconds leave no 2% budget for sample grids: only the last has one.
    assert [event.step for event in accumulator.Images("samples/prior")] == [3]


def test_tracking_logs_grids_and_kl_per_dimension_when_the_budget_allows(digits, tmp_path):
    import torch

    import aevae
    from aevae.tracking import TensorBoardLogger

    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=3, hidden=(8,))
    logger = TensorBoardLogger(tmp_path / "events")
    validation = torch.from_numpy(digits.test.x[:64])
    for epoch in (1, 2, 3):  # epochs of 100 s: 2 s of logging to spend on each
        logger.epoch_end(model, {"epoch": epoch, "train_loss": 1.0, "kl_weight": 1.0,
                                 "seconds": 100.0}, validation)
    logger.close()
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "events"))
    accumulator.Reload()
    assert [event.step for event in accumulator.Images("samples/prior")] == [1, 2, 3]
    assert {f"kl_per_dimension/{index}" for index in range(3)} <= set(
        accumulator.Tags()["scalars"])
    assert accumulator.Scalars("training/logging_share")[0].value < 0.02


@pytest.mark.regression
def test_train_chooses_the_likelihood_and_standardises_real_values_like_compare(tmp_path,
                                                                                 capsys):
    generator = np.random.default_rng(0)
    values = generator.standard_normal((400, 3)) @ generator.standard_normal((3, 6)) * 5 + 20
    np.save(tmp_path / "x.npy", values.astype(np.float32))
    base = ["train", "vae", "--data", str(tmp_path / "x.npy"), "--epochs", "2", "--hidden", "8",
            "--latent-dim", "2"]
    code, _, err = run(capsys, *base, "--out", str(tmp_path / "auto"))
    assert code == 0 and "likelihood gaussian-learned (real-valued data" in err
    assert "standardised" in err
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["config"]["likelihood"] == "gaussian-learned"
    preparation = json.loads((tmp_path / "auto" / "data.json").read_text())["preparation"]
    assert preparation["transform"].startswith("standardised") and len(preparation["mean"]) == 6
    assert np.allclose(preparation["mean"], values[:360].mean(axis=0), atol=3)
    # A Gaussian given on the command line trains on standardised values too.
    code, _, err = run(capsys, *base, "--likelihood", "gaussian", "--out", str(tmp_path / "g"))
    assert code == 0 and "gaussian (chosen on the command line)" in err
    assert "mean" in json.loads((tmp_path / "g" / "data.json").read_text())["preparation"]
    # evaluate (and reconstruct, traverse) redo the recorded rescaling: errors of order 1,
    # not of the raw values' scale (an MSE of about 75 when trained on them).
    code, _, _ = run(capsys, "evaluate", str(tmp_path / "auto"), "--metrics", "reconstruction")
    metrics = json.loads((tmp_path / "auto" / "metrics.json").read_text())["metrics"]
    assert code == 0 and metrics["reconstruction"]["mse"]["value"] < 3
    assert metrics["reconstruction"]["mean_baseline_mse"] < 3
    # Resuming keeps (and redoes) the recorded preparation.
    code, _, _ = run(capsys, *base, "--epochs", "3", "--resume", "--quiet", "--out",
                     str(tmp_path / "auto"))
    assert code == 0
    assert json.loads((tmp_path / "auto" / "data.json").read_text())["preparation"] == preparation
    # Samples come back in the data's own units (around 20), not standardised ones (around 0).
    code, _, _ = run(capsys, "sample", str(tmp_path / "auto"), "-n", "500", "--out",
                     str(tmp_path / "samples.npy"))
    samples = np.load(tmp_path / "samples.npy")
    assert code == 0 and samples.shape == (500, 6)
    assert np.allclose(samples.mean(axis=0), values.mean(axis=0), atol=0.5 * values.std(axis=0))
    # Values in [0, 1] keep the Bernoulli decoder, unscaled.
    np.save(tmp_path / "unit.npy", generator.uniform(size=(200, 4)).astype(np.float32))
    code, _, err = run(capsys, "train", "ae", "--data", str(tmp_path / "unit.npy"), "--epochs",
                       "1", "--hidden", "8", "--out", str(tmp_path / "unit"))
    assert code == 0 and "likelihood bernoulli (values lie in [0, 1]" in err
    assert json.loads((tmp_path / "unit" / "data.json").read_text())["preparation"] == {
        "transform": "none"}
    # Bernoulli asked for on real values is still refused, nothing written.
    code, _, err = run(capsys, *base, "--likelihood", "bernoulli", "--out", str(tmp_path / "b"))
    assert code == 2 and err.startswith("aevae: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()


@pytest.mark.regression
def test_resuming_moves_metrics_of_older_weights_aside(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "ae", "--data", "digits", "--hidden", "8", "--latent-dim", "2", "--out",
            str(out), "--quiet"]
    assert run(capsys, *base, "--epochs", "1")[0] == 0
    assert run(capsys, "evaluate", str(out), "--metrics", "reconstruction", "--quiet")[0] == 0
    weights = json.loads((out / "metrics.json").read_text())["weights"]
    assert weights["epochs"] == 1 and len(weights["sha256"]) == 64
    # Resuming to where it already is changes nothing: the figures stay.
    assert run(capsys, *base, "--epochs", "1", "--resume")[0] == 0
    assert (out / "metrics.json").is_file() and not (out / "metrics.stale.json").exists()
    code, _, err = run(capsys, *base, "--epochs", "2", "--resume")
    assert code == 0 and "moved" in err and "after 1 epochs" in err and "after 2" in err
    assert not (out / "metrics.json").exists()
    assert json.loads((out / "metrics.stale.json").read_text())["weights"] == weights
    assert run(capsys, "evaluate", str(out), "--metrics", "reconstruction", "--quiet")[0] == 0
    assert json.loads((out / "metrics.json").read_text())["weights"]["epochs"] == 2


@pytest.mark.regression
def test_tensorboard_on_a_one_epoch_run_has_kl_per_dimension_and_a_sample_grid(tmp_path,
                                                                                capsys):
    accumulator = _tensorboard_run(capsys, tmp_path, "8", "1")
    scalars = set(accumulator.Tags()["scalars"])
    assert {f"kl_per_dimension/{index}" for index in range(3)} <= scalars
    assert [event.step for event in accumulator.Scalars("kl_per_dimension/0")] == [1]
    images = accumulator.Images("samples/prior")
    assert [event.step for event in images] == [1]
    assert images[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.regression
def test_import_aevae_gives_its_subpackages_lazily():
    code = ("import sys, aevae\n"
            "assert not {'aevae.metrics', 'aevae.study'} & set(sys.modules)\n"
            # Training a model needs no scipy.linalg (0.1 s of every fresh process's make).
            "aevae.make('vae', input_shape=(4,), latent_dim=2)\n"
            "assert 'scipy.linalg' not in sys.modules, 'make imported scipy.linalg'\n"
            "assert callable(aevae.metrics.dci) and callable(aevae.metrics.evaluate.evaluate)\n"
            "assert aevae.study.StudySettings and aevae.ex_post and aevae.sklearn\n"
            "assert {'metrics', 'study'} <= set(dir(aevae))\n"
            "try:\n    aevae.no_such_thing\nexcept AttributeError:\n    print('ok')\n")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "ok"



def _one_error_line(code, err, *parts):
    assert code == 2, err
    assert err.startswith("aevae: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, (part, err)


@pytest.mark.regression
def test_a_model_too_large_for_the_memory_is_refused_before_allocating(tmp_path, capsys,
                                                                      monkeypatch):
    import aevae.training.devices
    from aevae.models import model_class

    monkeypatch.setattr(aevae.training.devices, "available_memory", lambda: 8 * 2**30)
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).random((50, 20), np.float32))
    code, _, err = run(capsys, "train", "ae", "--data", str(tmp_path / "ok.npy"),
                       "--latent-dim", "100000000", "--out", str(tmp_path / "R"), "--quiet")
    _one_error_line(code, err, "latent_dim 100000000 needs up to", "GiB",
                    "this machine has 8 GiB of memory available")
    assert not (tmp_path / "R").exists()
    # What compare checks for each roster entry before anything trains, and --hidden too.
    with pytest.raises(ValueError, match="latent_dim 100000000 needs"):
        model_class("vae").Config.from_options({"input_shape": (20,), "latent_dim": 10**8})
    with pytest.raises(ValueError, match="hidden 100000,100000 needs"):
        model_class("vae").Config.from_options({"input_shape": (20,),
                                                "hidden": (100_000, 100_000)})
    model_class("vae").Config.from_options({"input_shape": (784,), "hidden": (512, 256)})


@pytest.mark.regression
def test_sample_caps_image_grids_and_writes_large_arrays_in_chunks(trained_run, tmp_path,
                                                                   capsys, monkeypatch):
    import shutil

    import aevae.cli

    code, _, err = run(capsys, "sample", str(trained_run), "-n", "2000000", "--out",
                       str(tmp_path / "n.png"))
    _one_error_line(code, err, "-n 2000000", "at most 10,000 images", "n.npy")
    assert list(tmp_path.iterdir()) == []
    # Drawn and written three examples at a time; the first chunk is the draw of -n 3.
    monkeypatch.setattr(aevae.cli, "CHUNK_VALUES", 3 * 64)
    assert run(capsys, "sample", str(trained_run), "-n", "3", "--out",
               str(tmp_path / "three.npy"))[0] == 0
    assert run(capsys, "sample", str(trained_run), "-n", "10", "--out",
               str(tmp_path / "ten.npy"))[0] == 0
    assert run(capsys, "sample", str(trained_run), "-n", "10", "--out",
               str(tmp_path / "ten.csv"))[0] == 0
    ten = np.load(tmp_path / "ten.npy")
    assert ten.shape == (10, 1, 8, 8) and ten.dtype == np.float32
    np.testing.assert_array_equal(ten[:3], np.load(tmp_path / "three.npy"))
    assert not np.array_equal(ten[3:6], ten[:3])  # later chunks draw with other seeds
    table = np.loadtxt(tmp_path / "ten.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table, ten.reshape(10, -1), rtol=1e-5, atol=1e-6)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ten.csv", "ten.npy",
                                                                "three.npy"]
    # An array the disk cannot hold is refused before anything is drawn.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(
        100, 100 - 1000, 1000))
    code, _, err = run(capsys, "sample", str(trained_run), "-n", "100000000", "--out",
                       str(tmp_path / "huge.npy"))
    _one_error_line(code, err, "huge.npy would take at least 23.8 GiB", "free")
    assert not (tmp_path / "huge.npy").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, uses killpg")
def _interruptible() -> None:
    """In the child: Ctrl-C's default disposition. A test run started in the background by a
    non-interactive shell inherits SIGINT ignored, and Python keeps an ignored SIGINT so."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.regression
def test_ctrl_c_early_in_compare_prints_no_traceback(tmp_path):
    import os
    import signal
    import time
    from pathlib import Path

    source = str(Path(__file__).resolve().parents[1] / "src")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [source, os.environ.get("PYTHONPATH")])), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "aevae.cli", "compare", "--data", "digits", "--models", "ae,vae",
         "--seeds", "1", "--epochs", "1", "--workers", "2", "--out", str(tmp_path / "D"),
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment, start_new_session=True,  # its own process group, as in a terminal
        preexec_fn=_interruptible)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    started = time.monotonic()
    # Like Ctrl-C in a terminal, to the whole group: once the worker process exists (it is
    # then still importing torch), or after 3 s if none does.
    while time.monotonic() - started < 60 and process.poll() is None:
        if time.monotonic() - started > 3 and (not children.exists()
                                               or children.read_text().strip()):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert process.returncode != 0 and "interrupted" in err, (process.returncode, err)


@pytest.mark.parametrize(
    "arguments, parts",
    [
        (["train", "ae", "--data", "digits", "--kl-schedule", "linear:abc", "--out", "{tmp}/k"],
         ["--kl-schedule linear:abc", "linear:STEPS"]),
        (["evaluate", "{run}", "--max-examples", "0"], ["--max-examples 0", "at least 1"]),
        (["evaluate", "{run}", "--importance-samples", "-5"],
         ["--importance-samples -5", "at least 1"]),
        (["train", "ae", "--data", "digits", "--out", "{tmp}/afile"],
         ["--out {tmp}/afile", "is a file, not a folder"]),
        (["compare", "--out", "{tmp}/afile"], ["--out {tmp}/afile", "is a file, not a folder"]),
        (["train", "--config", "{tmp}/nothere.toml"], ["--config {tmp}/nothere.toml",
                                                       "no such file"]),
        (["train", "vae", "--data", "digits", "--kl-schedule", "-1", "--out", "{tmp}/k"],
         ["--kl-schedule -1", "a number >= 0"]),
        (["train", "vae", "--data", "digits", "--learning-rate", "inf", "--out", "{tmp}/k"],
         ["--learning-rate", "positive finite number, got inf"]),
        (["train", "vae", "--data", "digits", "--out", ""], ["--out is empty"]),
        (["train", "vae", "--data", "digits", "--out", "{tmp}/k", "--save-config", "{tmp}"],
         ["--save-config {tmp}: name a .toml file"]),
        (["train", "vae", "--data", "digits", "--out", "{tmp}/k", "--save-config",
          "{tmp}/afile"], ["--save-config {tmp}/afile: name a .toml file"]),
        (["evaluate", "{run}", "--out", "{run}/model.safetensors"],
         ["would replace the run's own model.safetensors"]),
        (["sample", "{run}", "--out", "{run}/config.json"],
         ["would replace the run's own config.json"]),
        (["vary", "{run}", "--input", "{tmp}/afile", "--out", "{tmp}/afile"],
         ["--out {tmp}/afile is the file the command reads"]),
        (["edit", "{run}", "--input", "{tmp}/afile", "--data", "{tmp}/afolder", "--from", "1",
          "--to", "2", "--out", "{tmp}/afolder/e.png"], ["is inside the data folder"]),
        (["compare", "--data", "{tmp}/afolder", "--store", "{tmp}/afolder/runs.sqlite",
          "--out", "{tmp}/k"], ["--store {tmp}/afolder/runs.sqlite is inside the data folder"]),
        (["train", "vae", "--data", "digits", "--network", "recurrent", "--out", "{tmp}/k"],
         ["the recurrent network decodes sequences step by step"]),
        (["evaluate", "{run}", "--metrics", ""], ["--metrics is empty"]),
        (["evaluate", "{run}", "--max-examples", "2"], ["--max-examples 2: must be at least 10"]),
        (["evaluate", "{run}", "--generated-samples", "3"],
         ["--generated-samples 3: must be at least 10"]),
        (["evaluate", "{run}", "--seed", "-1"], ["--seed -1: must be at least 0"]),
        (["sample", "{run}", "--out", "{tmp}/afile/x.png"],
         ["--out {tmp}/afile/x.png", "is a file, not a folder"]),
        (["traverse", "{run}", "--out", "{tmp}/t.png", "--span", "0"], ["--span must be a "
                                                                        "positive number"]),
        (["traverse", "{run}", "--out", "{tmp}/t.png", "--steps", "100000"],
         ["--steps 100000", "at most 50 steps"]),
        (["train", "vae", "--data", "digits", "--epochs", "abc", "--out", "{tmp}/k"],
         ["argument --epochs: invalid int value: 'abc'", "(see `aevae train --help`)"]),
        (["compare", "--out", "{run}"], ["--out {run} is not empty and holds no study"]),
        (["train", "vae", "--data", "{tmp}", "--out", "{tmp}/inside"],
         ["--out {tmp}/inside is inside the data folder {tmp}"]),
        (["train", "vae", "--data", "{tmp}/afolder", "--out", "{tmp}/none/../afolder/run"],
         ["is inside the data folder {tmp}/afolder"]),
        (["train", "vae", "--data", "{tmp}/link", "--out", "{tmp}/inside"],
         ["is inside the data folder {tmp}/link"]),
        (["train", "vae", "--data", "mnist", "--data-dir", "{tmp}", "--out", "{tmp}/mnist/run"],
         ["is inside the data folder {tmp}"]),
    ],
)
@pytest.mark.regression
def test_bad_values_are_named_with_their_flag(trained_run, tmp_path, capsys, arguments, parts):
    (tmp_path / "afile").write_text("not a folder\n")
    (tmp_path / "afolder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path, target_is_directory=True)
    before = sorted(path.name for path in trained_run.iterdir())

    def filled(text):
        return text.format(tmp=tmp_path, run=trained_run)

    code, _, err = run(capsys, *map(filled, arguments))
    _one_error_line(code, err, *map(filled, parts))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["afile", "afolder", "link"]
    assert sorted(path.name for path in trained_run.iterdir()) == before


@pytest.mark.regression
def test_sample_and_evaluate_take_a_device_and_sample_help_explains(trained_run, tmp_path,
                                                                     capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "run directory" in text and "how many samples to draw" in text
    assert "seeds the draws" in text and "--device DEVICE auto, cpu or cuda" in text
    for command in (["sample", str(trained_run), "--out", str(tmp_path / "s.png")],
                    ["evaluate", str(trained_run), "--metrics", "reconstruction"]):
        code, _, err = run(capsys, *command, "--device", "gpu")
        _one_error_line(code, err, "unknown device 'gpu'")
    assert run(capsys, "sample", str(trained_run), "-n", "4", "--device", "cpu", "--out",
               str(tmp_path / "s.png"))[0] == 0
    code, _, err = run(capsys, "evaluate", str(trained_run), "--metrics", "reconstruction",
                       "--device", "cpu", "--out", str(tmp_path / "m.json"), "--quiet")
    assert code == 0, err
    assert "reconstruction" in json.loads((tmp_path / "m.json").read_text())["metrics"]


@pytest.mark.regression
def test_runs_refuses_an_unknown_metric(tmp_path, capsys):
    from aevae.study.store import STORE_FILE, RunStore

    with RunStore(tmp_path / STORE_FILE) as store:
        store.claim("r1", {"entry": "vae", "model": "vae", "options": {}, "dataset": "digits",
                           "data_fingerprint": "f", "seed": 0, "budget": "quick"})
        store.finish("r1", metrics={"compression.mse": 0.5}, train_seconds=1.0,
                     evaluation_seconds=1.0, versions={}, device="cpu")
    code, out, _ = run(capsys, "runs", str(tmp_path), "--metric", "compression.mse")
    assert code == 0 and "0.5" in out
    code, _, err = run(capsys, "runs", str(tmp_path), "--metric", "nonsense.x")
    _one_error_line(code, err, "--metric nonsense.x", "known:", "compression.mse",
                    "prior_sampling.prior_frechet_distance")


@pytest.mark.regression
def test_runs_finds_a_study_s_own_store_and_filters_by_roster_entry(tmp_path, capsys):
    from aevae.study.store import STORE_FILE, STUDY_FILE, STUDY_KEYS, RunStore

    elsewhere = tmp_path / "shared" / STORE_FILE
    elsewhere.parent.mkdir()
    with RunStore(elsewhere) as store:
        for run_id, entry, options in (("r1", "ae:latent_dim=4", {"latent_dim": 4}),
                                       ("r2", "ae:beta=0.5:latent_dim=2", {}),
                                       ("r3", "vae", {})):
            store.claim(run_id, {"entry": entry, "model": entry.split(":")[0],
                                 "options": options, "dataset": "digits",
                                 "data_fingerprint": "f", "seed": 0, "budget": "quick"})
    study = tmp_path / "study"  # run with --store shared/runs.sqlite: no store of its own
    study.mkdir()
    plan = {key: None for key in STUDY_KEYS}
    plan.update(store=str(elsewhere), runs=[{"id": run_id, "entry": "-", "seed": 0, "path": "-"}
                                            for run_id in ("r1", "r2", "r3")])
    (study / STUDY_FILE).write_text(json.dumps(plan))

    def listed(*options):
        code, out, err = run(capsys, "runs", str(study), *options)
        assert code == 0, err
        return [line.split()[0] for line in out.splitlines()[2:] if not line.startswith("(")]

    assert listed() == ["r1", "r2", "r3"]
    assert listed("--model", "ae") == ["r1", "r2"]
    assert listed("--model", "ae:latent_dim=4") == ["r1"]
    assert listed("--model", "ae:latent_dim=2:beta=0.5") == ["r2"]  # another spelling
    # Another study sharing the store: each folder lists its own runs, the store all.
    with RunStore(elsewhere) as store:
        store.claim("r4", {"entry": "rae", "model": "rae", "options": {}, "dataset": "digits",
                           "data_fingerprint": "f", "seed": 0, "budget": "quick"})
    assert listed() == ["r1", "r2", "r3"]
    code, out, _ = run(capsys, "runs", str(study))
    assert "(1 other run(s) in the store, of other studies or of this folder's earlier" in out
    code, out, _ = run(capsys, "runs", str(elsewhere))
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["r1", "r2", "r3", "r4"]
    code, _, err = run(capsys, "runs", str(tmp_path / "nothing"))
    _one_error_line(code, err, "no run store at")


@pytest.mark.parametrize("where", ["missing", "empty", "cache"])
@pytest.mark.regression
def test_a_failed_download_leaves_no_folder(tmp_path, capsys, monkeypatch, where):
    import urllib.error
    import urllib.request

    def unreachable(url, timeout=None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    monkeypatch.delenv("AEVAE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "empty").mkdir()
    data_dir = {"missing": ["--data-dir", str(tmp_path / "nonexistent" / "dir")],
                "empty": ["--data-dir", str(tmp_path / "empty")], "cache": []}[where]
    code, _, err = run(capsys, "train", "ae", "--data", "mnist", *data_dir, "--out",
                       str(tmp_path / "R"))
    _one_error_line(code, err, "could not download", "no route to host")
    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")) == [
        "cache", "empty"]


@pytest.mark.regression
def test_evaluate_refuses_a_read_only_output_before_computing(trained_run, tmp_path, capsys,
                                                              monkeypatch):
    import os

    import aevae.cli

    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: say the folder is read-only, as a mount is
        writable = os.access
        monkeypatch.setattr(aevae.cli.os, "access", lambda path, mode: os.path.abspath(
            path) != str(folder) and writable(path, mode))
    try:
        code, _, err = run(capsys, "evaluate", str(trained_run), "--out",
                           str(folder / "m.json"))
    finally:
        folder.chmod(0o755)
    _one_error_line(code, err, f"cannot write the evaluation in {folder}", "not writable")
    assert list(folder.iterdir()) == []


@pytest.mark.regression
def test_image_size_resizes_a_folder_of_mixed_sizes_and_the_run_records_it(tmp_path, capsys,
                                                                          monkeypatch):
    image = pytest.importorskip("PIL.Image")
    generator = np.random.default_rng(0)
    for index in range(40):
        side = 10 if index % 2 else 12
        pixels = (generator.uniform(size=(side, side)) * 255).astype(np.uint8)
        (tmp_path / "faces" / str(index % 2)).mkdir(parents=True, exist_ok=True)
        image.fromarray(pixels).save(tmp_path / "faces" / str(index % 2) / f"{index}.png")
    base = ["train", "ae", "--data", str(tmp_path / "faces"), "--epochs", "1", "--hidden", "8",
            "--latent-dim", "2", "--quiet"]
    code, _, err = run(capsys, *base, "--out", str(tmp_path / "refused"))
    assert code == 2 and len(err.splitlines()) == 1 and "--image-size HxW" in err
    assert not (tmp_path / "refused").exists()
    code, _, err = run(capsys, *base, "--image-size", "8by8", "--out", str(tmp_path / "bad"))
    assert code == 2 and "HEIGHTxWIDTH" in err and not (tmp_path / "bad").exists()
    out = tmp_path / "run"
    assert run(capsys, *base, "--image-size", "8x9", "--out", str(out))[0] == 0
    assert json.loads((out / "data.json").read_text())["image_size"] == "8x9"
    assert json.loads((out / "config.json").read_text())["config"]["input_shape"] == [1, 8, 9]
    # evaluate and reconstruct load the run's data the same way, without being told again.
    code, _, _ = run(capsys, "evaluate", str(out), "--metrics", "reconstruction", "--quiet")
    assert code == 0
    assert run(capsys, "reconstruct", str(out), "--out", str(tmp_path / "r.png"))[0] == 0
    code, _, err = run(capsys, *base, "--image-size", "10x10", "--epochs", "2", "--resume",
                       "--out", str(out))
    assert code == 2 and "--image-size 8x9" in err
    # compare hands it to the study's data loading.
    from aevae.study import runner

    seen = {}

    def fake_run_study(settings, out, **options):
        seen["settings"] = settings
        raise ValueError("stop here")

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    code, _, err = run(capsys, "compare", "--data", str(tmp_path / "faces"), "--image-size",
                       "8x9", "--out", str(tmp_path / "study"))
    assert code == 2 and seen["settings"].image_size == "8x9"


@pytest.mark.regression
def test_evaluate_caps_large_data_by_default_and_full_runs_the_protocol(tmp_path, capsys):
    generator = np.random.default_rng(0)
    np.save(tmp_path / "big.npy", (generator.uniform(size=(150, 32, 32)) > 0.5).astype(np.uint8))
    out = tmp_path / "run"
    assert run(capsys, "train", "ae", "--data", str(tmp_path / "big.npy"), "--epochs", "1",
               "--hidden", "8", "--latent-dim", "2", "--out", str(out), "--quiet")[0] == 0
    code, printed, err = run(capsys, "evaluate", str(out), "--metrics",
                             "reconstruction,latent")
    assert code == 0 and "estimated about" in err and "is large (1x32x32" in err
    assert "--full runs the quick protocol as is" in err and "capped" in printed
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["max_examples"] == 1000 and settings["classifier_min_steps"] == 200
    # What the command line gives explicitly wins over a cap.
    assert run(capsys, "evaluate", str(out), "--metrics", "latent", "--quiet",
               "--max-examples", "1500")[0] == 0
    assert json.loads((out / "metrics.json").read_text())["settings"]["max_examples"] == 1500
    code, printed, err = run(capsys, "evaluate", str(out), "--metrics", "latent", "--full")
    assert code == 0 and "is large" not in err and "capped" not in printed
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["max_examples"] == 2000 and settings["classifier_min_steps"] == 600


def test_help_names_every_registered_item():
    """The CLI's lists come from the registries: a newly registered network, preset, metric
    group, budget, task or model shows up in the matching --help text or choices."""
    from aevae.cli import build_parser
    from aevae.metrics.evaluate import METRIC_GROUPS
    from aevae.models import MODELS
    from aevae.nets import NETWORKS
    from aevae.study.roster import PRESETS
    from aevae.study.settings import BUDGETS
    from aevae.study.tasks import TASKS

    commands = build_parser().commands

    def option(command: str, flag: str):
        return next(action for action in commands[command]._actions if flag in
                    action.option_strings)

    helps = {name: " ".join(command.format_help().split()) for name, command in
             commands.items()}
    expected = [("train", MODELS, None), ("train", NETWORKS, "--network"),
                ("compare", NETWORKS, "--network"), ("compare", PRESETS, "--preset"),
                ("evaluate", METRIC_GROUPS, "--metrics"), ("compare", TASKS, "--tasks")]
    expected += [(command, BUDGETS, "--budget") for command in ("evaluate", "compare", "runs")]
    for command, registry, flag in expected:
        choices = option(command, flag).choices if flag else None
        for name in registry:
            assert name in (choices or ()) or f" {name}," in helps[command] \
                or f" {name} " in helps[command], (command, flag, name)


def test_closed_form_run_is_complete_and_evaluates(tmp_path, capsys):
    out = tmp_path / "pca"
    code, printed, err = run(capsys, "train", "pca", "--data", "digits", "--out", str(out))
    assert code == 0, err
    # The same run directory a neural run gets: data.json (so evaluate finds the data and its
    # split) and training.json (what the closed-form solve was given).
    assert {"config.json", "model.safetensors", "history.csv", "data.json",
            "training.json"} <= {path.name for path in out.iterdir()}
    training = json.loads((out / "training.json").read_text())
    assert "closed form" in training["fit"] and training["epochs"] is None
    assert training["seed"] == 0 and training["examples"] > training["validation_examples"] > 0
    assert json.loads((out / "data.json").read_text())["data"] == "digits"
    code, printed, err = run(capsys, "evaluate", str(out))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["reconstruction"]["mse"]["value"] > 0
    assert metrics["likelihood"]["available"] is False  # pca defines no p(x)


def test_closed_form_tensorboard_logs_the_final_losses(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tmp_path / "logs"
    code, _, err = run(capsys, "train", "ppca", "--data", "digits", "--out",
                       str(tmp_path / "ppca"), "--tensorboard", str(logs), "--quiet")
    assert code == 0, err
    events = EventAccumulator(str(logs))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"loss/train", "loss/validation", "reconstruction/validation"} <= set(scalars)
    [final] = events.Scalars("loss/train")
    history = (tmp_path / "ppca" / "history.csv").read_text().splitlines()
    assert final.step == 1 and final.value == pytest.approx(float(history[1].split(",")[1]))
    assert "kl_per_dimension/0" in scalars and "samples/prior" in events.Tags()["images"]


@pytest.mark.regression
def test_ctrl_c_while_the_command_line_starts_prints_no_traceback(tmp_path):
    """Torch loads inside main (the parser names the registries), so a Ctrl-C during start-up
    ends in one line too, not in a traceback from an import."""
    import os
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "aevae.cli", "compare", "--out",
                                str(tmp_path / "study"), "--quiet"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=_interruptible)
    # Interrupt once torch is loading, inside main. A fixed delay failed on a loaded machine:
    # the interrupt then came while Python itself was starting, before any aevae code runs
    # (an unhandled KeyboardInterrupt there is Python's, exit status -2).
    from pathlib import Path

    maps = Path(f"/proc/{process.pid}/maps")
    if maps.exists():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if "libtorch" in maps.read_text():
                    break
            except OSError:
                pass
            time.sleep(0.02)
    else:
        time.sleep(1.5)  # no /proc: a delay, as before
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("aevae: interrupted")


def test_vary_edit_and_impute_read_inputs_on_the_runs_scale_and_shape(tmp_path, capsys):
    generator = np.random.default_rng(0)
    codes = generator.normal(size=(300, 2))
    offsets = np.array([484.0, -30.0, 5.0, 1000.0, 0.0, 77.0])
    table = (codes @ generator.normal(size=(2, 6)) * 10 + offsets).astype(np.float32)
    np.save(tmp_path / "table.npy", table)
    out = tmp_path / "run"
    assert run(capsys, "train", "vae", "--data", str(tmp_path / "table.npy"), "--epochs", "3",
               "--hidden", "16", "--out", str(out), "--quiet")[0] == 0
    holes = table[:10].copy()
    holes[generator.random(holes.shape) < 0.2] = np.nan
    np.save(tmp_path / "holes.npy", holes)
    assert run(capsys, "impute", str(out), "--input", str(tmp_path / "holes.npy"), "--out",
               str(tmp_path / "filled.npy"))[0] == 0
    filled, missing = np.load(tmp_path / "filled.npy"), np.isnan(holes)
    np.testing.assert_array_equal(filled[~missing], holes[~missing])
    # In the data's units (the model saw standardised values): near each column, not near 0.
    spread = table.std(axis=0)
    assert (np.abs(filled - table[:10])[missing] < 5 * np.broadcast_to(spread, holes.shape)[
        missing]).all()
    assert run(capsys, "vary", str(out), "--input", str(tmp_path / "table.npy"), "-n", "2",
               "--limit", "3", "--out", str(tmp_path / "varied.npy"))[0] == 0
    varied = np.load(tmp_path / "varied.npy")
    assert varied.shape == (6, 6) and np.abs(varied.mean(axis=0) - offsets).max() < 200
    np.save(tmp_path / "wide.npy", np.zeros((4, 8), np.float32))
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    for arguments, message in (
            (("vary", str(out), "--input", str(tmp_path / "wide.npy"), "--out",
              str(tmp_path / "v.npy")), "wide.npy: rows of 8 values; "),
            (("vary", str(out), "--input", str(tmp_path / "table.npy"), "--limit", "-1",
              "--out", str(tmp_path / "v.npy")), "--limit must be at least 1, got -1"),
            (("impute", str(out), "--input", str(tmp_path / "holes.npy"), "--mask",
              str(tmp_path / "words.npy"), "--out", str(tmp_path / "f.npy")),
             "words.npy: a mask holds true/false (or 1/0) per entry")):
        code, _, err = run(capsys, *arguments)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_examples_of_the_wrong_shape_name_their_option_and_the_runs_shape(tmp_path, capsys):
    """They said 'the recorded rescaling has 10 means and 10 scales; the data has 7 features'
    (a standardised run), or 'x: examples are shaped ...', naming neither option nor file."""
    generator = np.random.default_rng(0)
    np.save(tmp_path / "table.npy", generator.normal(size=(60, 10)).astype(np.float32) * 5)
    out = tmp_path / "run"
    assert run(capsys, "train", "ae", "--data", str(tmp_path / "table.npy"), "--epochs", "1",
               "--hidden", "8", "--latent-dim", "3", "--out", str(out), "--quiet")[0] == 0
    narrow = generator.normal(size=(4, 7)).astype(np.float32)
    np.save(tmp_path / "narrow.npy", narrow)
    narrow[0, 1] = np.nan
    np.save(tmp_path / "holes.npy", narrow)
    np.save(tmp_path / "single.npy", narrow[0])
    np.save(tmp_path / "vector.npy", np.zeros(7, np.float32))
    holes_file, narrow_file = str(tmp_path / "holes.npy"), str(tmp_path / "narrow.npy")
    rows, trained = "rows of 7 values; ", f"{out} was trained on rows of 10"
    for arguments, parts in (
            (("impute", str(out), "--input", holes_file, "--out", str(tmp_path / "f.npy")),
             (f"--input {holes_file}: {rows}{trained}",)),
            (("impute", str(out), "--input", str(tmp_path / "single.npy"), "--out",
              str(tmp_path / "f.npy")), ("single.npy: an array shaped (7,)", "(N, 10)")),
            (("vary", str(out), "--input", narrow_file, "--out", str(tmp_path / "v.npy")),
             (f"--input {narrow_file}: {rows}{trained}",)),
            (("edit", str(out), "--input", str(tmp_path / "table.npy"), "--vector",
              str(tmp_path / "vector.npy"), "--out", str(tmp_path / "e.npy")),
             ("vector.npy: 7 values; ", "has 3 latent dimensions")),
            (("reconstruct", str(out), "--data", narrow_file, "--out", str(tmp_path / "r.png")),
             (f"--data {narrow_file}: {rows}{trained}",)),
            (("evaluate", str(out), "--data", narrow_file, "--out", str(tmp_path / "m.json"),
              "--quiet"), (f"--data {narrow_file}: {rows}{trained}",))):
        _one_error_line(*run(capsys, *arguments)[::2], *parts)
    np.save(tmp_path / "table.npy", np.load(narrow_file))  # the run's own data, changed since
    _one_error_line(*run(capsys, "evaluate", str(out), "--quiet")[::2],
                    f"table.npy (the data {out} records): {rows}{trained}")


def test_impute_reads_8_bit_images_as_training_read_them(tmp_path, capsys):
    from sklearn.datasets import load_digits

    images = (load_digits().images[:, None] * 255 / 16).astype(np.uint8)  # 0-255 grey levels
    np.save(tmp_path / "digits8.npy", images)
    out = tmp_path / "run"
    assert run(capsys, "train", "vae", "--data", str(tmp_path / "digits8.npy"), "--epochs",
               "3", "--hidden", "32", "--out", str(out), "--quiet")[0] == 0
    mask = np.ones(images[:20].shape, dtype=bool)
    mask[:, :, 2:6, 2:6] = False  # the middle of each digit is missing
    np.save(tmp_path / "mask.npy", mask)
    np.save(tmp_path / "some.npy", images[:20])
    assert run(capsys, "impute", str(out), "--input", str(tmp_path / "some.npy"), "--mask",
               str(tmp_path / "mask.npy"), "--out", str(tmp_path / "filled.npy"))[0] == 0
    filled = np.load(tmp_path / "filled.npy")
    np.testing.assert_array_equal(filled[mask], images[:20][mask])
    # On the 0-255 scale, like the observed pixels (a model fed 0-255 as if it were 0-1 fills
    # in values near 0).
    assert filled[~mask].mean() > 40


def test_a_resumed_run_keeps_its_own_training_options(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert run(capsys, "train", "vae", "--data", "digits", "--batch-size", "32",
               "--learning-rate", "0.02", "--epochs", "1", "--hidden", "16", "--out", out,
               "--quiet")[0] == 0
    assert run(capsys, "train", "vae", "--data", "digits", "--resume", "--epochs", "2",
               "--hidden", "16", "--out", out, "--quiet")[0] == 0
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    assert (record["batch_size"], record["learning_rate"], record["epochs"]) == (32, 0.02, 2)
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--resume", "--epochs", "3",
                       "--hidden", "16", "--learning-rate", "0.5", "--out", out, "--quiet")
    _one_error_line(code, err, "with learning_rate 0.5: the run was trained with 0.02")


def test_resuming_a_run_whose_configuration_is_no_longer_trained_says_so(tmp_path, capsys):
    # An older version trained an AE with a mixture prior (now refused): the run still loads,
    # and a resume says why it cannot go on rather than advising another prior.
    out = tmp_path / "run"
    assert run(capsys, "train", "ae", "--data", "digits", "--epochs", "1", "--hidden", "16",
               "--out", str(out), "--quiet")[0] == 0
    saved = aevae.load(out)
    older = aevae.models.MODELS["ae"](**{**saved.config.to_dict(), "prior": "mixture"})
    older.save(out)
    code, _, err = run(capsys, "train", "ae", "--data", "digits", "--resume", "--epochs", "2",
                       "--hidden", "16", "--out", str(out), "--quiet")
    _one_error_line(code, err, "this version no longer trains its configuration")
    assert "still loads" in err


def test_outputs_stay_out_of_the_environments_data_directory_and_studies(tmp_path, capsys,
                                                                         monkeypatch):
    """$AEVAE_DATA_DIR is a data folder the user pointed at, as --data-dir is; a study folder
    is no run folder."""
    shared = tmp_path / "shared"
    (shared / "mnist").mkdir(parents=True)
    monkeypatch.setenv("AEVAE_DATA_DIR", str(shared))
    code, _, err = run(capsys, "train", "vae", "--data", "mnist", "--out",
                       str(shared / "mnist" / "run"))
    _one_error_line(code, err, f"is inside the data folder {shared}")
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text("{}")
    code, _, err = run(capsys, "train", "vae", "--data", "digits", "--out", str(study))
    _one_error_line(code, err, "holds a study: train into a folder of its own")
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["mnist", "shared", "study",
                                                                 "study.json"]


def test_a_table_is_matched_to_the_training_columns_by_name(tmp_path, capsys):
    rng = np.random.default_rng(0)
    values = rng.random((120, 4)).astype(np.float32)
    header = "a,b,c,d"

    def table(path, columns, names):
        rows = [",".join(f"{value:.6f}" for value in row[columns]) for row in values]
        path.write_text(names + "\n" + "\n".join(rows) + "\n")
        return str(path)

    data = table(tmp_path / "train.csv", [0, 1, 2, 3], header)
    out = tmp_path / "run"
    assert run(capsys, "train", "ae", "--data", data, "--epochs", "1", "--hidden", "8",
               "--latent-dim", "2", "--out", str(out), "--quiet")[0] == 0
    reversed_table = table(tmp_path / "reversed.csv", [3, 2, 1, 0], "d,c,b,a")
    for source, name in ((data, "same.csv"), (reversed_table, "reversed-out.csv")):
        assert run(capsys, "reconstruct", str(out), "--data", source, "-n", "5", "--out",
                   str(tmp_path / (name + ".png")))[0] == 0
        assert run(capsys, "vary", str(out), "--input", source, "-n", "1", "--limit", "3",
                   "--out", str(tmp_path / name))[0] == 0
    same = (tmp_path / "same.csv").read_text().splitlines()
    assert same[0] == header and (tmp_path / "reversed-out.csv").read_text().splitlines() == same
    other = table(tmp_path / "other.csv", [0, 1, 2, 3], "a,b,c,e")
    code, _, err = run(capsys, "vary", str(out), "--input", other, "-n", "1", "--out",
                       str(tmp_path / "x.csv"))
    _one_error_line(code, err, "its columns are not those the run was trained on (missing: d) "
                    "(not in training: e); expected a, b, c, d")


def test_a_request_too_large_for_memory_is_one_line(trained_run, tmp_path, capsys):
    inputs = tmp_path / "in.npy"
    np.save(inputs, np.random.default_rng(0).random((2, 8, 8)).astype(np.float32))
    code, _, err = run(capsys, "vary", str(trained_run), "--input", str(inputs), "--limit", "1",
                       "-n", "1000000000000", "--out", str(tmp_path / "huge.npy"))
    _one_error_line(code, err, "out of memory (", "ask for fewer samples")
    assert not (tmp_path / "huge.npy").exists()


@pytest.mark.parametrize("line, expected", [
    ('restore_best = "false"', "restore_best = 'false': expected true or false"),
    ('resume = "no"', "resume = 'no': expected true or false"),
    ("data = 5", "data = 5: expected text"),
    ("epochs = 2.5", "epochs = 2.5: expected a whole number"),
    ('optimizer = "lbfgs"', "optimizer = 'lbfgs': expected one of"),
    ("option = 3", "option = 3: expected a table"),
])
def test_a_config_files_values_are_checked_like_flags(tmp_path, capsys, line, expected):
    """A TOML value reached the command unchecked: "false" (a truthy text) turned restore-best
    on, "no" resumed the run, and data = 5 failed deep in pathlib."""
    config = tmp_path / "c.toml"
    config.write_text(f'model = "ae"\n{line}\n')
    code, _, err = run(capsys, "train", "--config", str(config), "--out", str(tmp_path / "r"))
    _one_error_line(code, err, f"{config}: {expected}")
    assert not (tmp_path / "r").exists()


def test_a_config_may_give_options_as_key_value_texts(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('model = "beta_vae"\ndata = "digits"\noption = "beta=2"\nepochs = 1\n'
                      "hidden = [8]\n")
    assert run(capsys, "train", "--config", str(config), "--out", str(tmp_path / "r"),
               "--quiet")[0] == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["config"]["beta"] == 2


def test_a_sequence_run_writes_arrays_not_images(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "sequence_vae", "--data", "sines", "--limit", "60", "--epochs",
               "1", "--hidden", "8", "--latent-dim", "2", "--likelihood", "gaussian-learned",
               "--out", str(out), "--quiet")[0] == 0
    code, _, err = run(capsys, "sample", str(out), "-n", "2", "--out", str(tmp_path / "s.png"))
    _one_error_line(code, err, "sequence_vae models sequences, which an image grid does not "
                    "show; write .npy or .csv")
    assert run(capsys, "sample", str(out), "-n", "2", "--out", str(tmp_path / "s.npy"))[0] == 0


def test_evaluate_on_other_data_needs_its_own_out(trained_run, tmp_path, capsys):
    """Figures on other data replaced RUN/metrics.json, the run's figures on its own data."""
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(0).random((60, 8, 8)).astype(np.float32))
    code, _, err = run(capsys, "evaluate", str(trained_run), "--data", str(other), "--metrics",
                       "reconstruction")
    _one_error_line(code, err, f"--data {other} is not the data", "pass --out FILE")
    assert run(capsys, "evaluate", str(trained_run), "--data", str(other), "--metrics",
               "reconstruction", "--out", str(tmp_path / "other.json"), "--quiet")[0] == 0
    assert json.loads((tmp_path / "other.json").read_text())["dataset"] == "other"


def test_the_training_table_with_its_label_column_is_an_input(tmp_path, capsys):
    """vary/edit on the table a run was trained on (--labels kind) read the label column as a
    feature: a shape error for numbers, a parse error for class names."""
    rng = np.random.default_rng(0)
    rows = [f"{a:.4f},{b:.4f},{c:.4f},{'xy'[i % 2]}" for i, (a, b, c) in
            enumerate(rng.random((120, 3)))]
    table = tmp_path / "t.csv"
    table.write_text("a,b,c,kind\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert run(capsys, "train", "ae", "--data", str(table), "--labels", "kind", "--epochs", "1",
               "--hidden", "8", "--latent-dim", "2", "--out", str(out), "--quiet")[0] == 0
    assert run(capsys, "vary", str(out), "--input", str(table), "-n", "1", "--limit", "2",
               "--out", str(tmp_path / "v.csv"))[0] == 0
    assert (tmp_path / "v.csv").read_text().splitlines()[0] == "a,b,c"
    # edit takes the classes by their names, as sample --label does.
    assert run(capsys, "edit", str(out), "--input", str(table), "--from", "x", "--to", "y",
               "--limit", "2", "--out", str(tmp_path / "e.csv"))[0] == 0
    code, _, err = run(capsys, "edit", str(out), "--input", str(table), "--from", "z", "--to",
                       "y", "--out", str(tmp_path / "f.csv"))
    _one_error_line(code, err, "--from 'z' is not a class of this run (its classes: x, y)")
    # The same for a table given as other data, and for a label column named "last" in a
    # tab-separated file with a byte-order mark.
    assert run(capsys, "evaluate", str(out), "--data", str(table), "--metrics",
               "reconstruction", "--out", str(tmp_path / "e.json"), "--quiet")[0] == 0
    tabs = tmp_path / "t.tsv"
    tabs.write_text("\ufeff" + table.read_text().replace(",", "\t"), encoding="utf-8")
    last = tmp_path / "last"
    assert run(capsys, "train", "ae", "--data", str(tabs), "--labels", "last", "--epochs", "1",
               "--hidden", "8", "--latent-dim", "2", "--out", str(last), "--quiet")[0] == 0
    assert run(capsys, "vary", str(last), "--input", str(tabs), "-n", "1", "--limit", "2",
               "--out", str(tmp_path / "w.csv"))[0] == 0


def test_outputs_beside_data_that_is_not_read_are_allowed(tmp_path, capsys, monkeypatch):
    """A review's false positives: a folder named like a dataset (digits/) holding runs, and
    $AEVAE_DATA_DIR at the working directory, refused every output; digits reads no files,
    and a named dataset's own folder (mnist/) is all that is protected."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AEVAE_DATA_DIR", ".")
    assert run(capsys, "train", "ae", "--data", "digits", "--epochs", "1", "--hidden", "8",
               "--latent-dim", "2", "--out", "digits/ae", "--quiet")[0] == 0
    assert run(capsys, "sample", "digits/ae", "-n", "4", "--out", "digits/ae/s.png")[0] == 0
    code, _, err = run(capsys, "train", "vae", "--data", "mnist", "--out", "mnist/vae")
    _one_error_line(code, err, "is inside the data folder mnist")


def test_a_closed_form_model_says_which_training_options_it_ignores(tmp_path, capsys):
    code, out, err = run(capsys, "train", "pca", "--data", "digits", "--latent-dim", "2",
                         "--epochs", "5", "--batch-size", "3", "--out", str(tmp_path / "p"))
    assert code == 0 and "solved pca in closed form" in out
    assert "note: pca is solved in closed form: --epochs, --batch-size do(es) not apply" in err


@pytest.mark.regression
def test_report_re_renders_over_a_damaged_results_file(tmp_path):
    from aevae.cli import _keep_what_the_study_measured

    results = {"runs": [{"id": "a", "status": "finished", "reused": False},
                        {"id": "b", "status": "missing"}]}
    for damaged in ("[1, 2]", '"text"', '{"runs": "x"}', "{not json"):
        (tmp_path / "results.json").write_text(damaged)
        copy = json.loads(json.dumps(results))
        _keep_what_the_study_measured(tmp_path / "results.json", copy)
        assert copy["runs"][0]["reused"] is None  # no record of the call that trained it


@pytest.mark.parametrize("command, name", [
    (["sample", "{run}", "-n", "4"], "kept.npy"),
    (["reconstruct", "{run}"], "kept.png"),
    (["traverse", "{run}"], "kept.png"),
    (["vary", "{run}", "--input", "{tmp}/inputs.npy"], "kept.csv"),
    (["edit", "{run}", "--input", "{tmp}/inputs.npy", "--vector", "{tmp}/v.npy"], "kept.npy"),
    (["impute", "{run}", "--input", "{tmp}/inputs.npy"], "kept.npy"),
    (["evaluate", "{run}", "--metrics", "reconstruction"], "kept.json"),
])
def test_an_existing_output_file_is_replaced_only_with_overwrite(trained_run, tmp_path, capsys,
                                                                  command, name):
    """`sample --out other.npy` replaced whatever file was there (another dataset's, say)."""
    np.save(tmp_path / "inputs.npy", np.zeros((2, 1, 8, 8), np.float32))
    np.save(tmp_path / "v.npy", np.zeros(4, np.float32))
    kept = tmp_path / name
    kept.write_bytes(b"the user's own file")
    arguments = [part.format(run=trained_run, tmp=tmp_path) for part in command]
    code, _, err = run(capsys, *arguments, "--out", str(kept))
    _one_error_line(code, err, f"--out {kept} already exists: pass --overwrite")
    assert kept.read_bytes() == b"the user's own file"
    if command[0] == "sample":
        code, _, err = run(capsys, *arguments, "--out", str(kept), "--overwrite")
        assert code == 0, err
        assert np.load(kept).shape == (4, 1, 8, 8)


def test_train_refuses_a_folder_that_is_not_empty_and_holds_no_run(tmp_path, capsys,
                                                                   monkeypatch):
    """`train --data tab.npy --out .` wrote config.json, model.safetensors, ... beside the
    data; a folder holding a run is still resumed as before."""
    monkeypatch.chdir(tmp_path)
    np.save("tab.npy", np.random.default_rng(0).random((300, 10)).astype(np.float32))
    tiny = ["--data", "tab.npy", "--hidden", "8", "--latent-dim", "2", "--quiet"]
    for resume in ([], ["--resume"]):
        code, _, err = run(capsys, "train", "ae", *tiny, "--epochs", "1", "--out", ".", *resume)
        _one_error_line(code, err, "--out . is not empty and holds no run")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tab.npy"]
    assert run(capsys, "train", "ae", *tiny, "--epochs", "1", "--out", "run")[0] == 0
    code, out, err = run(capsys, "train", "ae", *tiny, "--epochs", "2", "--out", "run",
                         "--resume")
    assert code == 0 and "for 2 epochs" in out, err


def test_compare_into_a_read_only_folder_says_it_is_not_writable(tmp_path, capsys,
                                                                 monkeypatch):
    """It said '.../runs.sqlite: not a usable run store (unable to open database file)'."""
    import os
    import sqlite3

    import aevae.cli

    np.save(tmp_path / "tab.npy", np.random.default_rng(0).random((300, 10)).astype(np.float32))
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # modes do not stop root: the folder reads as a read-only mount does
        writable, connect = os.access, sqlite3.connect
        monkeypatch.setattr(aevae.cli.os, "access", lambda path, mode: os.path.abspath(
            path) != str(folder) and writable(path, mode))

        def unopenable(database, *arguments, **options):
            if str(folder) in str(database):
                raise sqlite3.OperationalError("unable to open database file")
            return connect(database, *arguments, **options)

        monkeypatch.setattr(sqlite3, "connect", unopenable)
    tiny = ["--data", str(tmp_path / "tab.npy"), "--models", "ae", "--seeds", "1", "--epochs",
            "1", "--quiet"]
    try:
        code, _, err = run(capsys, "compare", *tiny, "--out", str(folder))
        _one_error_line(code, err, f"--out {folder}: cannot write the study in {folder}: the "
                        "folder is not writable")
        code, _, err = run(capsys, "compare", *tiny, "--out", str(tmp_path / "study"),
                           "--store", str(folder / "runs.sqlite"))
        _one_error_line(code, err, "cannot write the run store in", "is not writable")
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == [] and not (tmp_path / "study").exists()


def test_runs_refuses_a_model_that_is_not_in_the_study(tmp_path, capsys):
    """`runs STUDY --model foo` answered 'no runs match' with exit code 0."""
    from aevae.study.store import STORE_FILE, STUDY_FILE, STUDY_KEYS, RunStore

    study = tmp_path / "study"
    with RunStore(study / STORE_FILE) as store:
        for run_id, entry, options in (("r1", "vae", {}), ("r2", "ae:latent_dim=4",
                                                          {"latent_dim": 4})):
            store.claim(run_id, {"entry": entry, "model": entry.split(":")[0],
                                 "options": options, "dataset": "digits",
                                 "data_fingerprint": "f", "seed": 0, "budget": "quick"})
    plan = {key: None for key in STUDY_KEYS}
    plan.update(store=str(study / STORE_FILE),
                roster=[{"key": "vae", "model": "vae"}, {"key": "ae:latent_dim=4", "model": "ae"}],
                runs=[{"id": run_id, "entry": "-", "seed": 0, "path": "-"}
                      for run_id in ("r1", "r2")])
    (study / STUDY_FILE).write_text(json.dumps(plan))
    code, _, err = run(capsys, "runs", str(study), "--model", "foo")
    _one_error_line(code, err, f"--model foo: not in the roster of {study}; its entries: vae, "
                    "ae:latent_dim=4")
    code, _, err = run(capsys, "runs", str(study / STORE_FILE), "--model", "ae:latent_dim=2")
    _one_error_line(code, err, "not among the runs of", "its entries: vae, ae:latent_dim=4")
    for model, listed in (("ae", ["r2"]), ("ae:latent_dim=4", ["r2"]), ("vae", ["r1"])):
        code, out, err = run(capsys, "runs", str(study), "--model", model)
        assert code == 0, err
        assert [line.split()[0] for line in out.splitlines()[2:]] == listed
    code, out, _ = run(capsys, "runs", str(study), "--model", "vae", "--seed", "3")
    assert code == 0 and "no runs match" in out  # a model of the study, no such run


def test_edit_names_the_classes_when_a_class_has_no_example(tmp_path, capsys):
    """`edit --to 42` said 'no example of class 42' without the classes there are."""
    table = np.random.default_rng(0).random((300, 10)).astype(np.float32)
    np.save(tmp_path / "tab.npy", table)
    np.save(tmp_path / "labels.npy", np.array([0, 2, 5])[np.arange(300) % 3])
    out = tmp_path / "run"
    assert run(capsys, "train", "vae", "--data", str(tmp_path / "tab.npy"), "--labels",
               str(tmp_path / "labels.npy"), "--epochs", "1", "--hidden", "8", "--latent-dim",
               "2", "--out", str(out), "--quiet")[0] == 0
    code, _, err = run(capsys, "edit", str(out), "--input", str(tmp_path / "tab.npy"),
                       "--from", "2", "--to", "42", "--out", str(tmp_path / "e.npy"))
    _one_error_line(code, err, "--to 42: no example of class 42 in the run's training data; "
                    "its classes: 0, 2, 5")
    assert not (tmp_path / "e.npy").exists()


def test_train_sizes_a_table_s_code_as_compare_does(tmp_path, capsys):
    """16 codes for a 10-column table would be no bottleneck (new-user audit)."""
    path = tmp_path / "table.npy"
    np.save(path, np.random.default_rng(0).standard_normal((120, 10)).astype(np.float32))
    for extra, expected in (([], 5), (["--latent-dim", "3"], 3)):
        out = tmp_path / f"run{expected}"
        assert run(capsys, "train", "ae", "--data", str(path), "--epochs", "1", "--out",
                   str(out), "--quiet", *extra)[0] == 0
        assert json.loads((out / "config.json").read_text())["config"]["latent_dim"] == expected


def test_train_can_keep_a_test_split_for_evaluate(tmp_path, capsys):
    """Evaluating a run trained on a file measured on the validation split, which chose the
    best epoch, and did not say so (new-user audit)."""
    path = tmp_path / "table.npy"
    np.save(path, np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32))
    held = tmp_path / "held"
    assert run(capsys, "train", "ae", "--data", str(path), "--epochs", "1", "--test-fraction",
               "0.2", "--out", str(held), "--quiet")[0] == 0
    assert json.loads((held / "data.json").read_text())["test_fraction"] == 0.2
    code, out, _ = run(capsys, "evaluate", str(held), "--metrics", "reconstruction", "--quiet")
    assert code == 0 and "\n40 test examples of table" in out and "note:" not in out
    plain = tmp_path / "plain"
    assert run(capsys, "train", "ae", "--data", str(path), "--epochs", "1", "--out", str(plain),
               "--quiet")[0] == 0
    code, out, _ = run(capsys, "evaluate", str(plain), "--metrics", "reconstruction", "--quiet")
    assert code == 0 and "validation examples of table" in out
    assert "note: measured on the validation split, which chose the best epoch" in out
    code, _, err = run(capsys, "train", "ae", "--data", str(path), "--test-fraction", "0.2",
                       "--stream", "--out", str(tmp_path / "streamed"), "--quiet")
    assert code == 2 and "--test-fraction needs the data in memory (leave out --stream)" in err
    fitted = tmp_path / "fitted"
    assert run(capsys, "train", "ae", "--data", str(path), "--epochs", "1",
               "--validation-fraction", "0", "--out", str(fitted), "--quiet")[0] == 0
    code, out, _ = run(capsys, "evaluate", str(fitted), "--metrics", "reconstruction", "--quiet")
    assert code == 0 and "note: measured on the training split, which the model was fitted" in out
