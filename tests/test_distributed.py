"""Data-parallel training under torchrun: two CPU processes (gloo, loopback) take the same
steps as one process on the same global batches, write one run, and resume it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from torchrun_environment import torchrun_environment

SCRIPT = """
import json, os, sys
import torch
import aevae
from aevae.data import load_dataset
from safetensors.torch import save_file

weights, epochs, run, model_name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
data = load_dataset("digits")
torch.manual_seed(0)
model = aevae.make(model_name, input_shape=data.shape, latent_dim=4, hidden=(32,))
# 600 examples in global batches of 61: the last batch (51) splits 26 / 25, unevenly.
model.fit(data.train.x[:600], validation=data.test.x[:200], epochs=epochs, batch_size=61,
          seed=0, progress=False, device="cpu", out=None if run == "-" else run,
          resume=run != "-")
if int(os.environ.get("RANK", 0)) == 0:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    print("RESULT", json.dumps(model.history_.epochs))
"""


def _run(command: list[str], cwd) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=torchrun_environment(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _torchrun(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", "2", *arguments]


def _history(done: subprocess.CompletedProcess) -> list[dict]:
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _largest_difference(first, second) -> float:
    a, b = load_file(first), load_file(second)
    assert a.keys() == b.keys()
    return max(float((a[key] - b[key]).abs().max()) for key in a)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def test_two_processes_take_the_steps_of_one(tmp_path, script):
    single = _run([sys.executable, str(script), "single.st", "3", "-", "ae"], tmp_path)
    double = _run(_torchrun(str(script), "double.st", "3", "-", "ae"), tmp_path)
    assert _largest_difference(tmp_path / "single.st", tmp_path / "double.st") < 1e-5
    for one, two in zip(_history(single), _history(double), strict=True):
        for key in ("train_loss", "validation_loss"):
            assert two[key] == pytest.approx(one[key], rel=1e-5)


def test_a_distributed_run_writes_once_and_resumes(tmp_path, script):
    run = tmp_path / "run"
    _run(_torchrun(str(script), "half.st", "2", str(run), "ae"), tmp_path)
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header and two epochs: one writer
    resumed = _run(_torchrun(str(script), "resumed.st", "4", str(run), "ae"), tmp_path)
    assert [record["epoch"] for record in _history(resumed)] == [1, 2, 3, 4]
    _run([sys.executable, str(script), "whole.st", "4", "-", "ae"], tmp_path)
    assert _largest_difference(tmp_path / "whole.st", tmp_path / "resumed.st") < 1e-5
    training = json.loads((run / "training.json").read_text())
    assert training["processes"] == 2


def test_a_distributed_vae_resumes_as_if_it_had_not_stopped(tmp_path, script):
    """Rank 1 draws its own noise, and only rank 0's RNG state is in the checkpoint: each epoch
    seeds rank 1 from the step, so the resumed run draws what the whole run drew."""
    run = tmp_path / "run"
    _run(_torchrun(str(script), "half.st", "2", str(run), "vae"), tmp_path)
    _run(_torchrun(str(script), "resumed.st", "3", str(run), "vae"), tmp_path)
    _run(_torchrun(str(script), "whole.st", "3", "-", "vae"), tmp_path)
    assert _largest_difference(tmp_path / "whole.st", tmp_path / "resumed.st") == 0


def test_the_cli_trains_under_torchrun(tmp_path):
    done = _run(_torchrun("-m", "aevae.cli", "train", "vae", "--data", "digits", "--epochs",
                          "2", "--latent-dim", "2", "--out", str(tmp_path / "run"),
                          "--quiet", "--device", "cpu"), tmp_path)
    assert done.stdout.count("trained vae for 2 epochs") == 1  # rank 0 alone reports
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.regression
def test_the_last_barrier_is_freed_by_the_main_thread(tmp_path):
    """gloo's worker thread must not hold the last reference to the final collective when the
    interpreter finalizes (a SIGABRT at exit after a good run): the barrier keeps it."""
    import torch.distributed as dist

    from aevae.training import distributed

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        distributed.Distributed(rank=0, world=2).barrier()  # world 2: take the enabled path
        kept = distributed._KEPT_WORK[-1]
        assert kept.is_completed() and kept.is_success()
    finally:
        dist.destroy_process_group()
        distributed._KEPT_WORK.clear()


CLOSED_FORM_AND_TOO_FEW = """
import os, sys
import aevae
from aevae.data import load_dataset

data = load_dataset("digits")
model = aevae.make("pca", input_shape=data.shape, latent_dim=4)
model.fit(data.train.x[:300], validation=data.test.x[:50], out=sys.argv[1], progress=False)
vae = aevae.make("vae", input_shape=data.shape, latent_dim=2, hidden=(8,))
try:
    vae.fit(data.train.x[:300], validation=data.test.x[:1], epochs=1, progress=False,
            device="cpu")
except ValueError as error:  # a file per rank: two ranks' lines can interleave on stdout
    with open(sys.argv[1] + ".refused." + os.environ["RANK"], "w") as file:
        file.write(str(error))
"""


def test_a_closed_form_model_is_written_once_and_too_few_rows_are_refused(tmp_path):
    """Every process solves pca (the same numbers) and rank 0 alone writes its run (each
    rank took the run folder's lock before); one validation row for two processes is refused
    with a message, not an IndexError deep in the model."""
    script = tmp_path / "closed.py"
    script.write_text(CLOSED_FORM_AND_TOO_FEW)
    _run(_torchrun(str(script), str(tmp_path / "run")), tmp_path)
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 2
    for rank in (0, 1):
        refused = (tmp_path / f"run.refused.{rank}").read_text()
        assert "validation data: 1 example(s) cannot be shared by the 2 processes" in refused
