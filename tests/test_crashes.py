"""Crashes on purpose: training and studies killed with SIGKILL at seeded random moments, a full
disk and unwritable folders while checkpoints are written, and studies sharing one run store at
the same time. After each: every run directory still loads, a resume loses at most one epoch, and
the run store stays consistent.

Starting Python and importing torch takes seconds, a fork milliseconds: so that many kills fit
in a short test, most runs are processes forked from a helper that imported aevae once, each
running the ``aevae train`` entry point (or a study) and killed with SIGKILL like any process.
One kill per test run hits a fresh ``python -m aevae.cli train`` during its start-up.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import aevae
import aevae.io
from aevae.cli import main
from aevae.io import load_tensors, read_json
from aevae.study import StudySettings, run_study
from aevae.study.runner import read_run
from aevae.study.store import STORE_FILE

# The campaign script raises these for a longer run.
TRAINING_KILLS = int(os.environ.get("AEVAE_TRAINING_KILLS", "8"))
STUDY_KILLS = int(os.environ.get("AEVAE_STUDY_KILLS", "4"))
SOURCE = str(Path(aevae.__file__).resolve().parents[1])
ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [SOURCE,
                                                           os.environ.get("PYTHONPATH")]))}
TRAIN = ["train", "vae", "--data", "digits", "--limit", "300", "--latent-dim", "4",
         "--hidden", "32", "--batch-size", "50", "--seed", "3"]
EPOCHS = max(20, 3 * TRAINING_KILLS)  # so that the kills land while it trains
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+) ")
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")

FORK_SERVER = textwrap.dedent("""
    import json, os, signal, sys, traceback
    import torch
    from aevae.cli import main
    from aevae.data import load_dataset
    from aevae.study import run_study
    load_dataset("digits")  # imports what a run needs, once: the data's readers,
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the optimizer's (seconds)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        gate = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.read(gate[0], 1)  # starts once its pid is out, so no line comes before it
            code = 1
            try:
                if request.get("output"):
                    output = os.open(request["output"], os.O_WRONLY | os.O_CREAT, 0o644)
                    os.dup2(output, 1)
                    os.dup2(output, 2)
                if "script" in request:
                    sys.argv = request["argv"]
                    exec(request["script"], {"__name__": "__main__"})
                    code = 0
                else:
                    code = main(request["argv"])
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                print(f"exit {code}", flush=True)
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)
        os.write(gate[1], b"x")
        os.close(gate[0])
        os.close(gate[1])
""")


class ForkServer:
    """A process that imported aevae once and forks a child for each request."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-c", FORK_SERVER],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=ENVIRONMENT)
        assert self.process.stdout.readline().strip() == "ready"

    def start(self, **request) -> int:
        self.exit_code = None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:  # lines a killed child printed last are skipped
            if line.strip().isdigit():
                return int(line)
        raise AssertionError("the fork server stopped")

    def lines(self):
        """The current child's lines (it writes to our pipe), until it exits."""
        for line in self.process.stdout:
            if line.startswith("exit "):
                self.exit_code = int(line.split()[1])
                return
            yield line

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def forks():
    server = ForkServer()
    yield server
    server.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill(pid: int) -> bool:
    """SIGKILL, then wait until the process is gone; True if it was still running."""
    try:
        os.kill(pid, signal.SIGKILL)
        was_running = True
    except ProcessLookupError:
        was_running = False
    while alive(pid):
        time.sleep(0.002)
    return was_running


def wait(pid: int, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while alive(pid):
        assert time.time() < deadline, f"process {pid} is still running"
        time.sleep(0.05)


def history_rows(run: Path) -> int:
    path = run / "history.csv"
    if not path.is_file():
        return 0
    with open(path, newline="") as file:
        return len(list(csv.DictReader(file)))


def checked_run_directory(run: Path) -> tuple[int, int]:
    """Every file a killed run left must be whole: the model loads (or none was saved yet), JSON
    parses, the checkpoint reads. Returns (epochs in history.csv, epochs in the checkpoint)."""
    if (run / "config.json").is_file():
        aevae.load(run)
    for path in run.glob("*.json"):
        read_json(path)
    checkpoint_epochs = 0
    if (run / "checkpoint.safetensors").is_file():
        _, metadata = load_tensors(run / "checkpoint.safetensors")
        checkpoint_epochs = len(metadata["history"]["epochs"])
    return history_rows(run), checkpoint_epochs


def comparable_history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as file:
        return [{key: value for key, value in row.items() if key != "seconds"}
                for row in csv.DictReader(file)]


# ----- SIGKILL during training ------------------------------------------------------------------
def test_training_killed_at_random_moments_resumes_losing_at_most_one_epoch(tmp_path, capsys,
                                                                           forks, campaign):
    reference = tmp_path / "uninterrupted"
    assert main([*TRAIN, "--epochs", str(EPOCHS), "--out", str(reference), "--quiet"]) == 0
    capsys.readouterr()
    run = tmp_path / "killed"
    arguments = [*TRAIN, "--epochs", str(EPOCHS), "--out", str(run), "--resume"]
    rng = random.Random(14)

    # Once in a fresh interpreter, during start-up: nothing may be written yet.
    fresh = subprocess.Popen([sys.executable, "-m", "aevae.cli", *arguments], env=ENVIRONMENT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.1, 1.0))
    fresh.send_signal(signal.SIGKILL)
    fresh.wait()
    assert checked_run_directory(run) == (0, 0) and not (run / "config.json").exists()
    campaign.record("crashes", "training", "killed", phase="start-up")

    expected_start, kills = 1, 0
    for _ in range(TRAINING_KILLS - 1):
        pid = forks.start(argv=arguments)
        wanted = rng.randint(1, 4)
        # Often right after an epoch line, while its checkpoint is being written.
        delay = rng.choice([rng.uniform(0, 0.004), rng.uniform(0, 0.08)])
        first_epoch, seen = None, 0
        for line in forks.lines():
            match = EPOCH_LINE.match(line)
            if match:
                first_epoch = first_epoch or int(match.group(1))
                seen += 1
                if seen == wanted:
                    time.sleep(delay)
                    break
        killed = kill(pid) and forks.exit_code is None  # None: it had not finished
        kills += killed
        if first_epoch is not None:  # the resume starts right after the last checkpoint
            assert first_epoch == expected_start, (first_epoch, expected_start)
        in_history, in_checkpoint = checked_run_directory(run)
        assert in_checkpoint >= in_history - 1, "more than one epoch lost"
        expected_start = in_checkpoint + 1
        campaign.record("crashes", "training", "killed" if killed else "finished first",
                        phase="training", history=in_history, checkpoint=in_checkpoint,
                        temporary_files=len(list(run.glob(".*.tmp"))))
    assert kills >= (TRAINING_KILLS - 1) // 2, "the runs ended before most kills"
    pid = forks.start(argv=arguments)
    printed = list(forks.lines())
    assert forks.exit_code == 0, printed
    wait(pid)
    assert not list(run.glob(".*.tmp")), "the resumed run left the kills' temporary files"
    # Killed and resumed, the run ends exactly where the uninterrupted one does.
    assert history_rows(run) == EPOCHS
    assert comparable_history(run) == comparable_history(reference)
    resumed, uninterrupted = aevae.load(run).state_dict(), aevae.load(reference).state_dict()
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in uninterrupted)
    campaign.record("crashes", "training", "resumed bit-identical")


# ----- SIGKILL during a study -------------------------------------------------------------------
STUDY = textwrap.dedent("""
    import sys
    from aevae.study import StudySettings, run_study
    from aevae.study.settings import Budget
    budget = Budget(**{**%r, "evaluation": %r})
    run_study(StudySettings(data="digits", models=%r, seeds=%d, budget=budget, workers=1,
                            store=sys.argv[2]), sys.argv[1], progress=False)
""")


def study_settings(tiny_budget, models: str, seeds: int, store: Path, epochs: int = 4):
    from aevae.study.settings import Budget

    budget = Budget(**{**tiny_budget.to_dict(), "epochs": epochs})
    return StudySettings(data="digits", models=models, seeds=seeds, budget=budget, workers=1,
                         store=str(store))


def study_script(settings: StudySettings) -> str:
    budget = settings.training_budget.to_dict()
    evaluation = budget.pop("evaluation")
    return STUDY % (budget, evaluation, settings.models, settings.seeds)


def checked_store(store_path: Path) -> list[str]:
    """The store is intact and every finished row has a complete, loadable run directory;
    returns the finished ids."""
    with sqlite3.connect(store_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = connection.execute("SELECT id, status, path FROM runs").fetchall()
    finished = []
    for run_id, status, path in rows:
        if status == "finished":
            assert read_run(Path(path)) is not None, f"finished run {run_id} is incomplete"
            finished.append(run_id)
    for directory in (store_path.parent / "runs").glob("*"):
        if (directory / "config.json").is_file():
            aevae.load(directory)
    return finished


def test_a_study_killed_at_random_moments_finishes_everything_on_rerun(tmp_path, tiny_budget,
                                                                       forks, campaign):
    out, store = tmp_path / "study", tmp_path / "shared" / STORE_FILE
    seeds = max(2, STUDY_KILLS // 2)  # runs of about a second: the kills spread over them
    settings = study_settings(tiny_budget, "ae,vae", seeds, store, epochs=2)
    rng = random.Random(7)
    finished: list[str] = []
    for index in range(STUDY_KILLS):
        output = tmp_path / f"output-{index}.txt"
        pid = forks.start(script=study_script(settings), argv=["study", str(out), str(store)],
                          output=str(output))
        deadline = time.time() + 120
        while not store.exists() and alive(pid) and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 3.0))
        killed = kill(pid)
        assert killed or output.read_text().endswith("exit 0\n"), output.read_text()
        finished = checked_store(store) if store.exists() else []
        campaign.record("crashes", "study", "killed" if killed else "finished first",
                        finished=len(finished))
    kept = {run_id: (store.parent / "runs" / run_id / "metrics.json").read_bytes()
            for run_id in finished}
    results = run_study(settings, out, progress=False)
    assert all(run["status"] == "finished" for run in results["runs"])
    assert results["timing"]["runs_executed"] == 2 * seeds - len(finished)
    for run_id, content in kept.items():  # finished runs are reused, not redone
        assert (store.parent / "runs" / run_id / "metrics.json").read_bytes() == content
    assert sorted(checked_store(store)) == sorted(run["id"] for run in results["runs"])
    assert not list((store.parent / "runs").glob("*/.*.tmp"))
    campaign.record("crashes", "study", "rerun finished everything")


# ----- studies sharing one store at once --------------------------------------------------------
LOGGED_STUDY = textwrap.dedent("""
    import os, sys, time
    from aevae.study import runner
    execute = runner.execute_run
    def logged(plan, *arguments, **options):
        started = time.time()
        record = execute(plan, *arguments, **options)
        with open(sys.argv[3], "a") as log:  # one short append per run: atomic
            log.write(f"{plan.id} {os.getpid()} {started} {time.time()}\\n")
        return record
    runner.execute_run = logged
""")


def test_studies_sharing_a_store_do_every_run_exactly_once(tmp_path, tiny_budget, forks,
                                                           campaign):
    store, log = tmp_path / "shared" / STORE_FILE, tmp_path / "executed.log"
    rosters = [("ae,vae", 2), ("vae,pca", 2), ("ae,pca", 1)]  # overlapping
    children = []
    for index, (models, seeds) in enumerate(rosters):
        settings = study_settings(tiny_budget, models, seeds, store, epochs=2)
        output = tmp_path / f"output-{index}.txt"
        pid = forks.start(script=LOGGED_STUDY + study_script(settings),
                          argv=["study", str(tmp_path / f"study-{index}"), str(store), str(log)],
                          output=str(output))
        children.append((pid, output))
    for pid, output in children:  # all three run at once
        wait(pid)
        assert output.read_text().endswith("exit 0\n"), output.read_text()
    executed = [line.split()[0] for line in log.read_text().splitlines()]
    assert len(executed) == len(set(executed)) == 6, executed  # ae, vae, pca x seeds 0, 1
    assert sorted(checked_store(store)) == sorted(executed)
    for index, _ in enumerate(rosters):
        results = read_json(tmp_path / f"study-{index}" / "results.json")
        assert all(run["status"] == "finished" for run in results["runs"])
        assert {run["id"] for run in results["runs"]} <= set(executed)
    campaign.record("crashes", "shared store", "every run once", processes=len(rosters),
                    runs=len(executed))


# ----- a full disk and unwritable folders -------------------------------------------------------
TINY = ["train", "vae", "--data", "digits", "--latent-dim", "4", "--hidden", "16", "--quiet"]


def assert_one_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2 and err.startswith("aevae: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


class FailingWrite:
    """The file object atomic_write_bytes writes through, failing as a full disk would."""

    def __init__(self, file, error: OSError):
        self.file, self.error = file, error

    def write(self, data):
        raise self.error

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.file.close()


def fail_writes(monkeypatch, name: str, after: int, error: OSError, at: str = "write"):
    """Make writes of the file ``name`` fail from its ``after``+1-th write on: at the write
    itself (a full disk) or when the temporary file is created (a folder turned read-only)."""
    real_mkstemp, real_fdopen = aevae.io.tempfile.mkstemp, aevae.io.os.fdopen
    state = {"target": False, "count": 0}

    def mkstemp(*arguments, prefix="", **options):
        state["target"] = prefix.startswith(f".{name}.")
        if state["target"]:
            state["count"] += 1
            if at == "create" and state["count"] > after:
                raise error
        return real_mkstemp(*arguments, prefix=prefix, **options)

    def fdopen(handle, *arguments, **options):
        file = real_fdopen(handle, *arguments, **options)
        if at == "write" and state["target"] and state["count"] > after:
            return FailingWrite(file, error)
        return file

    monkeypatch.setattr(aevae.io.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(aevae.io.os, "fdopen", fdopen)


@pytest.mark.regression  # a full disk was a traceback; other failures named the temporary file
@pytest.mark.parametrize(("error", "at", "message"), [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "write", "the disk is full"),
    (OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), "write", "the disk is full"),
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES)), "create",
     os.strerror(errno.EACCES)),
    (OSError(errno.EROFS, os.strerror(errno.EROFS)), "create", os.strerror(errno.EROFS)),
], ids=["disk full", "quota", "permission", "read-only"])
def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, capsys, monkeypatch,
                                                          campaign, error, at, message):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        fail_writes(patch, "checkpoint.safetensors", after=1, error=error, at=at)
        code = main([*TINY, "--epochs", "3", "--out", str(run)])
    assert_one_line(code, capsys.readouterr().err, str(run / "checkpoint.safetensors"),
                    message)
    assert not list(run.glob(".*.tmp")), "a temporary file was left behind"
    _, metadata = load_tensors(run / "checkpoint.safetensors")
    assert len(metadata["history"]["epochs"]) == 1  # the first epoch's, whole
    aevae.load(run)
    code = main([*TINY, "--epochs", "3", "--out", str(run), "--resume"])
    assert code == 0 and history_rows(run) == 3, capsys.readouterr().err
    campaign.record("disk", "injected " + errno.errorcode[error.errno], "one line, kept")


def test_an_unwritable_output_folder_is_one_line_and_writes_nothing(tmp_path, capsys,
                                                                    monkeypatch, campaign):
    monkeypatch.setattr(aevae.training.checkpoints.os, "access", lambda path, mode: False)
    code = main([*TINY, "--epochs", "1", "--out", str(tmp_path / "locked" / "run")])
    assert_one_line(code, capsys.readouterr().err, "is not writable")
    assert not (tmp_path / "locked").exists()
    campaign.record("disk", "unwritable folder", "one line")


class Mount:
    """A small tmpfs of our own (root on Linux); tests using it are skipped elsewhere."""

    def __init__(self, where: Path, size: int):
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                               "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.where)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.where)], check=False)


def pages(path: Path) -> int:
    return -(-path.stat().st_size // 4096) * 4096


@pytest.mark.regression
@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="mounting a tmpfs needs root on Linux")
def test_a_real_full_disk_and_read_only_disk(tmp_path, capsys, campaign):
    # Size the disk from a one-epoch run: room for one checkpoint and two copies of the model
    # (the atomic write of the next one), not for two checkpoints.
    sizes = tmp_path / "sizes"
    assert main([*TINY, "--epochs", "1", "--out", str(sizes)]) == 0
    small = sum(pages(path) for path in sizes.iterdir() if path.name != "checkpoint.safetensors")
    size = pages(sizes / "checkpoint.safetensors") + small + pages(sizes / "model.safetensors")
    mount = Mount(tmp_path / "disk", size + 3 * 4096)
    try:
        run = mount.where / "run"
        code = main([*TINY, "--epochs", "3", "--out", str(run)])
        assert_one_line(code, capsys.readouterr().err, "the disk is full",
                        str(run / "checkpoint.safetensors"))
        assert not list(run.glob(".*.tmp"))
        assert checked_run_directory(run)[1] == 1
        campaign.record("disk", "tmpfs full", "one line, kept")

        mount.remount("ro")
        code = main([*TINY, "--epochs", "3", "--out", str(run), "--resume"])
        assert_one_line(code, capsys.readouterr().err, "not writable")
        code = main([*TINY, "--epochs", "1", "--out", str(mount.where / "other")])
        assert_one_line(code, capsys.readouterr().err, "not writable")
        campaign.record("disk", "read-only tmpfs", "one line")

        mount.remount(f"rw,size={size * 4}")
        assert main([*TINY, "--epochs", "3", "--out", str(run), "--resume"]) == 0
        assert checked_run_directory(run) == (3, 3)
        campaign.record("disk", "tmpfs full", "resumed")
    finally:
        mount.close()
