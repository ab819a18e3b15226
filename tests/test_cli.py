"""The command line: every command end to end on digits, and bad input as one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

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


def test_evaluate_sample_reconstruct(trained_run, tmp_path, capsys):
    code, out, _ = run(capsys, "evaluate", str(trained_run), "--metrics",
                       "reconstruction,likelihood", "--importance-samples", "20")
    assert code == 0 and "likelihood.elbo" in out
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
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "digits" in out and "binarized-mnist" in out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "nope", "--data", "digits", "--out", "{tmp}/a"], "unknown model 'nope'"),
        (["train", "vae", "--data", "{tmp}/missing.npy", "--out", "{tmp}/b"], "missing.npy"),
        (["train", "vae", "--data", "{tmp}/big.npy", "--out", "{tmp}/c"], r"[0, 1]"),
        (["train", "vae", "--data", "{tmp}/nan.npy", "--out", "{tmp}/d"], "NaN"),
        (["train", "vae", "--data", "digits", "--latent-dim", "0", "--out", "{tmp}/e"],
         "latent_dim"),
        (["train", "vae", "--data", "digits", "--option", "betta=3", "--out", "{tmp}/f"],
         "unknown option"),
        (["evaluate", "{tmp}/nowhere"], "no saved model"),
        (["sample", "{tmp}/nowhere", "--out", "{tmp}/x.png"], "no saved model"),
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


def test_console_script_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "aevae.cli", "train", "vae", "--data", str(tmp_path / "x.csv"),
         "--out", str(tmp_path / "run")], capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
