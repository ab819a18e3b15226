"""The GPU check: one prepared run of aevae's GPU measurements on a rented machine.

Stages, in order (``--stage 1,2`` picks some; all by default):

1. ``cuda-tests``: ``pytest -m cuda tests/test_cuda.py``, its exit code and output;
2. ``throughput``: MLP (784-512-16) and conv VAEs on MNIST, batch 100: ``aevae`` ``fit`` against
   a bare eager loop batching from CPU tensors (``bare-host``) and one with the data on the
   device (``bare-device``), and for the MLP ``fit`` with ``cuda_graphs=True``, eager
   (``aevae-graphs``) and compiled (``aevae-graphs-compiled``), each in a fresh process, the
   order alternating over repeats, the clock covering model and optimizer construction;
   goals: 1,000,000 samples/s and aevae at least 1.25x the bare on-device loop;
3. ``mnist-study``: ``aevae compare --data mnist --budget full`` (default roster, 3 seeds);
4. ``fashion-study``: the same on Fashion-MNIST;
5. ``disentanglement``: benchmarks/disentanglement_table.py on dSprites at a larger budget;
6. ``labels``: benchmarks/labels.py (M2 and M1+M2 with 100 labels), one process per seed;
7. ``nll``: the IWAE and hierarchical rows of benchmarks/nll on statically binarized MNIST
   read from ``binarized-mnist-packed.npz`` (made by ``--pack-binarized``), one process per row.

Every stage writes ``OUT/NN-name/result.json`` and ``result.md`` as soon as it ends (atomically),
with its wall time, the GPU's name and torch's version; a failing stage is recorded and the
next one starts. ``--minutes`` starts no stage whose estimate would overrun the limit and stops
a running one at the limit (a study then keeps the runs it finished). ``--archive FILE`` keeps a
.tar.gz of OUT (the small files) up to date after every stage: the device tool returns at most
8 files. ``--dry-run`` runs every stage on the CPU at toy sizes (a few minutes on two cores).

    python scripts/gpu_check.py --data DATA_DIR --out OUT_DIR [--stage N[,M...]] [--dry-run]
        [--minutes LIMIT] [--archive FILE.tar.gz]
    python scripts/gpu_check.py --pack-binarized /work/shared/datasets/binarized-mnist \\
        --data DATA_DIR
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
SRC = ROOT / "src"
BENCHMARKS = ROOT / "benchmarks"
if SRC.is_dir() and str(SRC) not in sys.path:  # aevae without installing it (PYTHONPATH=src)
    sys.path.insert(0, str(SRC))

PACKED_FILE = "binarized-mnist-packed.npz"
PIXELS = 784
GOAL_SAMPLES_PER_SECOND = 1_000_000
GOAL_SPEED_VS_BARE_DEVICE = 1.25
# Seconds kept back from --minutes for writing results after a stage is stopped (a study's
# partial results.json is aggregated in that time).
RESERVE_SECONDS = 60
SALVAGE_SECONDS = 45
ARCHIVE_FILE_LIMIT = 4 << 20  # files larger than this stay out of --archive (listed instead)
STOPPED = "stopped at the time limit"


# ----- small helpers ---------------------------------------------------------------------------
def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json(path: Path, value) -> None:
    atomic_write(path, json.dumps(value, indent=1, default=str) + "\n")


def tail(text: str, characters: int = 4000) -> str:
    return text if len(text) <= characters else "..." + text[-characters:]


def read_tail(path: Path, characters: int = 4000) -> str:
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - characters))
            return tail(stream.read().decode(errors="replace"), characters)
    except OSError:
        return ""


def child_environment(data: Path, threads: int, extra: dict | None = None) -> dict:
    environment = dict(os.environ)
    paths = [str(SRC)] + ([environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else [])
    environment.update({
        "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
        "AEVAE_DATA_DIR": str(data), "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    })
    environment.update(extra or {})
    return environment


def machine() -> dict:
    """What the stages ran on: the GPU's name, torch, CUDA, Python, cores, the commit."""
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "gpu": None,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    try:
        import aevae

        info["aevae"] = aevae.__version__
    except Exception as error:  # recorded, not fatal: the stages say what fails
        info["aevae"] = f"not importable: {error}"
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True,
                                        capture_output=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["commit"] = None
    return info


# ----- binarized MNIST, packed -------------------------------------------------------------------
BINARIZED_PARTS = ("train", "valid", "test")


def pack_binarized(source: Path, data: Path) -> Path:
    """Larochelle & Murray's binarized_mnist_{train,valid,test}.amat (105 MB of text) into
    DATA/binarized-mnist-packed.npz: each split's 0/1 pixels as np.packbits rows (98 bytes per
    image) with its shape beside it."""
    from aevae.data.readers import read_amat

    arrays = {}
    for part in BINARIZED_PARTS:
        path = source / f"binarized_mnist_{part}.amat"
        values = read_amat(path, cache=False)
        if values.ndim != 2 or values.shape[1] != PIXELS:
            raise ValueError(f"{path}: expected rows of {PIXELS} values, got {values.shape}")
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(f"{path}: values other than 0 and 1")
        arrays[part] = np.packbits(values.astype(np.uint8), axis=1)
        arrays[f"{part}_shape"] = np.asarray(values.shape, dtype=np.int64)
    data.mkdir(parents=True, exist_ok=True)
    out = data / PACKED_FILE
    temporary = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(temporary, **arrays)
    os.replace(temporary, out)
    return out


def load_packed(path: Path) -> dict[str, np.ndarray]:
    """The splits of a packed file as float32 0/1 arrays of shape (n, 784)."""
    with np.load(path, allow_pickle=False) as archive:
        splits = {}
        for part in BINARIZED_PARTS:
            rows, columns = (int(value) for value in archive[f"{part}_shape"])
            unpacked = np.unpackbits(archive[part], axis=1, count=columns)
            if unpacked.shape != (rows, columns):
                raise ValueError(f"{path}: {part} unpacks to {unpacked.shape}, its shape says "
                                 f"{(rows, columns)}")
            splits[part] = unpacked.astype(np.float32)
    return splits


# ----- running child processes -------------------------------------------------------------------
@dataclass
class Job:
    name: str
    command: list[str]
    environment: dict
    log: Path
    result_file: Path | None = None  # JSON the child writes, read back into the outcome


def stop_group(process: subprocess.Popen) -> None:
    """Stop a child started in its own session and everything it started (study workers)."""
    for sent, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sent)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_jobs(jobs: list[Job], parallel: int, deadline: float) -> list[dict]:
    """Run ``jobs``, ``parallel`` at a time, each in its own process group with its output in
    its log; the ones still running at ``deadline`` (time.time()) are stopped and the ones not
    started are not started. Returns one outcome per job, in order."""
    outcomes = {job.name: {"name": job.name, "command": " ".join(job.command),
                           "status": "not started", "exit_code": None, "seconds": None}
                for job in jobs}
    pending, running = list(jobs), {}
    try:
        while pending or running:
            while pending and len(running) < parallel and time.time() < deadline:
                job = pending.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                with open(job.log, "wb") as log:
                    process = subprocess.Popen(job.command, cwd=ROOT, env=job.environment,
                                               stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL,
                                               start_new_session=True)
                running[job.name] = (job, process, time.perf_counter())
            if time.time() >= deadline:
                for job, process, started in running.values():
                    stop_group(process)
                    outcomes[job.name].update(status=STOPPED,
                                              seconds=time.perf_counter() - started)
                running.clear()
                pending.clear()
                break
            for name in list(running):
                job, process, started = running[name]
                code = process.poll()
                if code is None:
                    continue
                del running[name]
                outcomes[name].update(status="finished" if code == 0 else "failed",
                                      exit_code=code, seconds=time.perf_counter() - started)
            time.sleep(0.2)
    finally:  # an exception or Ctrl-C here leaves no child behind
        for _, process, _ in running.values():
            stop_group(process)
    for job in jobs:
        outcome = outcomes[job.name]
        outcome["log_tail"] = read_tail(job.log, 3000)
        if job.result_file is not None and job.result_file.is_file():
            outcome["result"] = json.loads(job.result_file.read_text())
    return list(outcomes.values())


def child_command(kind: str, *arguments: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--child", kind, *arguments]


# ----- the stages ------------------------------------------------------------------------------
@dataclass
class Context:
    data: Path
    out: Path
    work: Path
    dry_run: bool
    device: str
    started: float  # time.time() when the check began
    limit_seconds: float | None
    cuda_graphs: bool = False  # the studies (stages 3-4) with `aevae compare --cuda-graphs`
    stage_dir: Path = None  # set per stage
    stage_work: Path = None
    stage_started: float = 0.0  # time.time()
    cap_seconds: float = 0.0

    @property
    def reserve(self) -> float:
        """Seconds of --minutes kept for writing results after the last stage is stopped."""
        return 0.0 if self.limit_seconds is None else min(RESERVE_SECONDS,
                                                          0.1 * self.limit_seconds)

    def deadline(self) -> float:
        """When the stage running now must stop (time.time()): its cap, or the --minutes
        limit less the reserve, whichever comes first."""
        candidates = [self.stage_started + self.cap_seconds]
        if self.limit_seconds is not None:
            candidates.append(self.started + self.limit_seconds - self.reserve)
        return min(candidates)

    def environment(self, threads: int, extra: dict | None = None) -> dict:
        return child_environment(self.data, threads, extra)


class StageError(RuntimeError):
    """A stage failed; ``partial`` holds what it measured before failing."""

    def __init__(self, message: str, partial: dict | None = None, stopped: bool = False):
        super().__init__(message)
        self.partial = partial or {}
        self.status = STOPPED if stopped else "failed"


@dataclass(frozen=True)
class Stage:
    number: int
    name: str
    summary: str  # what it does on the GPU, one line
    gpu_seconds: float  # estimate on the H200
    dry_seconds: float  # estimate of --dry-run on two CPU cores
    run: Callable[[Context], tuple[dict, list[str]]]
    # A stage is stopped at this many times its estimate (10x in a dry run, whose machine
    # may be slow or busy), or earlier at the --minutes limit.
    cap_factor: float = 2.5

    @property
    def folder(self) -> str:
        return f"{self.number:02d}-{self.name}"

    def estimate(self, dry_run: bool) -> float:
        return self.dry_seconds if dry_run else self.gpu_seconds


def failed_jobs(outcomes: list[dict]) -> list[dict]:
    return [outcome for outcome in outcomes if outcome["status"] != "finished"]


def require_jobs(outcomes: list[dict], partial: dict) -> None:
    bad = failed_jobs(outcomes)
    if bad:
        text = "; ".join(f"{outcome['name']}: {outcome['status']}"
                         + (f" (exit {outcome['exit_code']})" if outcome["exit_code"] else "")
                         for outcome in bad)
        raise StageError(f"{len(bad)} of {len(outcomes)} process(es) did not finish: {text}\n"
                         + bad[0]["log_tail"][-2000:], partial,
                         stopped=any(outcome["status"] == STOPPED for outcome in bad))


# 1. CUDA tests
def stage_cuda_tests(context: Context) -> tuple[dict, list[str]]:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py",
               "-p", "no:cacheprovider"]
    log = context.stage_dir / "pytest-output.txt"
    [outcome] = run_jobs([Job("pytest", command, context.environment(4), log)], 1,
                         context.deadline())
    output = read_tail(log, 12000)
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
    counts = {word: int(number) for number, word in re.findall(
        r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)", last)}
    results = {"command": " ".join(command[1:]), "exit_code": outcome["exit_code"],
               "status": outcome["status"], "seconds": outcome["seconds"], "summary_line": last,
               "counts": counts, "output_tail": tail(output, 6000)}
    lines = [f"`python {results['command']}`: exit code {outcome['exit_code']} "
             f"({outcome['status']}), {outcome['seconds'] or 0:.0f} s", "", f"    {last}"]
    if outcome["exit_code"] != 0:
        raise StageError(f"pytest exited with {outcome['exit_code']} ({outcome['status']}): "
                         f"{last}", results)
    return results, lines


# 2. Throughput
THROUGHPUT_MODELS = ("mlp", "conv")
# fit's options per aevae contender. aevae: the defaults (compile="auto": compiled on a GPU from
# 1,000 steps). For the MLP VAE the goals name, cuda_graphs=True (off by default until a GPU
# run confirms it) eager and compiled, to see what each pays; on the CPU graphs fall back to
# eager steps, saying why.
AEVAE_CONTENDERS = {"aevae": {}, "aevae-graphs": {"cuda_graphs": True, "compile": False},
                    "aevae-graphs-compiled": {"cuda_graphs": True, "compile": True}}
THROUGHPUT_CONTENDERS = {"mlp": (*AEVAE_CONTENDERS, "bare-host", "bare-device"),
                         "conv": ("aevae", "bare-host", "bare-device")}


def stage_throughput(context: Context) -> tuple[dict, list[str]]:
    epochs, repeats, limit = (1, 1, 2000) if context.dry_run else (3, 3, None)
    pairs = [(model, contender) for model in THROUGHPUT_MODELS
             for contender in THROUGHPUT_CONTENDERS[model]]
    seconds = {pair: [] for pair in pairs}
    epoch_rates = {pair: [] for pair in pairs}
    examples, runs = {}, []
    partial = {"runs": runs}
    for repeat in range(repeats):
        for model, contender in (pairs if repeat % 2 == 0 else list(reversed(pairs))):
            name = f"r{repeat + 1}-{model}-{contender}"
            result_file = context.stage_work / f"{name}.json"
            command = child_command("throughput", "--contender", contender, "--model", model,
                                    "--epochs", str(epochs), "--device", context.device,
                                    "--data", str(context.data), "--result-file",
                                    str(result_file), *(["--limit", str(limit)] if limit else []))
            [outcome] = run_jobs([Job(name, command, context.environment(1),
                                      context.stage_work / f"{name}.log", result_file)], 1,
                                 context.deadline())
            runs.append({key: outcome.get(key) for key in ("name", "status", "exit_code",
                                                             "seconds", "result")})
            require_jobs([outcome], partial)
            figure = outcome["result"]
            seconds[(model, contender)].append(figure["seconds"])
            epoch_rates[(model, contender)].append(figure["last_epoch_samples_per_second"])
            examples[(model, contender)] = figure["examples"]
            print(f"  repeat {repeat + 1}: {model:4} {contender:21} {figure['seconds']:7.2f} s "
                  f"({figure['examples'] / figure['seconds']:,.0f} samples/s)", flush=True)
    rows = []
    for model, contender in pairs:
        times = seconds[(model, contender)]
        row = {"model": model, "contender": contender, "seconds": times,
               "examples": examples[(model, contender)],
               "samples_per_second": examples[(model, contender)] / statistics.median(times),
               "last_epoch_samples_per_second": statistics.median(epoch_rates[(model,
                                                                               contender)])}
        for reference in ("bare-host", "bare-device"):
            ratios = [theirs / mine for theirs, mine in zip(seconds[(model, reference)], times)]
            row[f"speed_vs_{reference.replace('-', '_')}"] = statistics.median(ratios)
        rows.append(row)
    goals = {}
    for model in THROUGHPUT_MODELS:
        row = max((r for r in rows if r["model"] == model and r["contender"] in AEVAE_CONTENDERS),
                  key=lambda r: r["samples_per_second"])
        goals[model] = {
            "contender": row["contender"],
            "samples_per_second": row["samples_per_second"],
            "samples_per_second_goal": GOAL_SAMPLES_PER_SECOND,
            "samples_per_second_met": row["samples_per_second"] >= GOAL_SAMPLES_PER_SECOND,
            "speed_vs_bare_device": row["speed_vs_bare_device"],
            "speed_vs_bare_device_goal": GOAL_SPEED_VS_BARE_DEVICE,
            "speed_vs_bare_device_met": row["speed_vs_bare_device"] >= GOAL_SPEED_VS_BARE_DEVICE,
            "last_epoch_samples_per_second": row["last_epoch_samples_per_second"],
            "last_epoch_samples_per_second_met":
                row["last_epoch_samples_per_second"] >= GOAL_SAMPLES_PER_SECOND,
        }
    results = {"epochs": epochs, "repeats": repeats, "batch_size": 100, "limit": limit,
               "device": context.device, "threads": 1, "rows": rows, "goals": goals,
               "runs": runs, "method": "each figure from a fresh process; the clock runs from "
               "model construction (optimizer included) to the end of training, synchronized; "
               "data loaded and the device initialised before it; order reversed on odd "
               "repeats; ratios per repeat, median reported. aevae: make + fit with its "
               "defaults (compile='auto': compiled on a GPU from 1,000 steps, compilation "
               "counted; aevae-graphs: cuda_graphs=True, compile=False; "
               "aevae-graphs-compiled: both on); last_epoch_samples_per_second "
               "excludes start-up, compilation and capture"}
    lines = [f"{epochs} epoch(s) of {rows[0]['examples'] // epochs:,} MNIST images, batch 100, "
             f"{context.device}, median of {repeats} fresh process(es)", "",
             "| model | contender | samples/s | last epoch samples/s | vs bare-host | "
             "vs bare-device |", "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['contender']} | {row['samples_per_second']:,.0f} "
                     f"| {row['last_epoch_samples_per_second']:,.0f} | "
                     f"{row['speed_vs_bare_host']:.2f}x | {row['speed_vs_bare_device']:.2f}x |")
    lines += ["", f"Goals: >= {GOAL_SAMPLES_PER_SECOND:,} samples/s and aevae >= "
              f"{GOAL_SPEED_VS_BARE_DEVICE}x the bare on-device loop.", ""]
    for model, goal in goals.items():
        lines.append(f"- {model} ({goal['contender']}): {goal['samples_per_second']:,.0f} "
                     "samples/s end to end "
                     f"({'met' if goal['samples_per_second_met'] else 'not met'}), "
                     f"{goal['last_epoch_samples_per_second']:,.0f} in the last epoch "
                     f"({'met' if goal['last_epoch_samples_per_second_met'] else 'not met'}); "
                     f"{goal['speed_vs_bare_device']:.2f}x bare-device "
                     f"({'met' if goal['speed_vs_bare_device_met'] else 'not met'})")
    return results, lines


def child_throughput(arguments) -> None:
    """One contender in this fresh process; writes seconds and examples to --result-file."""
    import torch

    sys.path.insert(0, str(BENCHMARKS))
    from aevae.data import load_dataset
    from throughput import bare_vae  # the same networks and loss as benchmarks/throughput.py

    torch.set_num_threads(1)
    x = load_dataset("mnist", data_dir=arguments.data, download=False).train.x
    x = x[:arguments.limit] if arguments.limit else x
    device = torch.device(arguments.device)
    cuda = device.type == "cuda"

    def synchronize():
        if cuda:
            torch.cuda.synchronize(device)

    import aevae  # imported, like the data loaded, before the clock

    if cuda:  # the CUDA context before the clock too
        torch.zeros(1, device=device)
        synchronize()
    epoch_seconds = []
    started = time.perf_counter()
    if arguments.contender in AEVAE_CONTENDERS:
        options = ({"hidden": (512,)} if arguments.model == "mlp"
                   else {"network": "conv", "hidden": (256,)})
        vae = aevae.make("vae", input_shape=(1, 28, 28), latent_dim=16, seed=0, **options)
        vae.fit(x, epochs=arguments.epochs, batch_size=100, learning_rate=1e-3,
                device=str(device), progress=True, **AEVAE_CONTENDERS[arguments.contender])
        synchronize()
        epoch_seconds = [record["seconds"] for record in vae.history_.epochs]
    else:
        torch.manual_seed(0)
        on_device = arguments.contender == "bare-device"
        data = torch.from_numpy(x)
        if on_device:
            data = data.to(device)
        vae = bare_vae(arguments.model).to(device)
        optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
        for _ in range(arguments.epochs):
            begun = time.perf_counter()
            order = torch.randperm(len(data), device=data.device)
            total = torch.zeros((), device=device)
            for start in range(0, len(data), 100):
                batch = data[order[start:start + 100]]
                loss = vae(batch if on_device else batch.to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.detach()
            print(f"loss {float(total) / -(-len(data) // 100):.3f}", file=sys.stderr)
            epoch_seconds.append(time.perf_counter() - begun)  # float(total) synchronized
    seconds = time.perf_counter() - started
    write_json(Path(arguments.result_file), {
        "contender": arguments.contender, "model": arguments.model, "seconds": seconds,
        "examples": len(x) * arguments.epochs, "epoch_seconds": epoch_seconds,
        "last_epoch_samples_per_second": len(x) / epoch_seconds[-1],
        "device": str(device),
        "options": AEVAE_CONTENDERS.get(arguments.contender, {"compile": False})})


# 3-4. Full-budget studies
GPU_STUDY_WORKERS = 8  # one thread each; 16 cores, one GPU shared by the workers


# The dry run leaves out the tasks that train the evaluation classifier (600 CPU steps of a
# CNN, about 45 s here; cached on disk afterwards).
DRY_STUDY_TASKS = ("compression,likelihood,few_labels,clustering,anomaly,"
                   "denoising,imputation,latent_health")


def dry_study_data(context: Context, name: str, limit: int = 1000) -> Path:
    """The first ``limit`` images of a named dataset (read from DATA with aevae's loader) as a
    user .npz with labels: the dry run's stand-in, a study on all of MNIST being too long for
    a CPU."""
    from aevae.data import load_dataset

    dataset = load_dataset(name, data_dir=context.data, download=False, limit=limit)
    path = context.stage_work / f"{name}-first-{limit}.npz"
    np.savez(path, x=dataset.train.x, y=dataset.train.labels)
    return path


def study_stage(name: str) -> Callable[[Context], tuple[dict, list[str]]]:
    def run(context: Context) -> tuple[dict, list[str]]:
        study = context.stage_work / "study"
        if study.exists():
            shutil.rmtree(study)
        if context.dry_run:
            options = ["--data", str(dry_study_data(context, name)), "--budget", "quick",
                       "--seeds", "1", "--epochs", "1", "--models", "pca,ae,vae",
                       "--tasks", DRY_STUDY_TASKS, "--workers", "2"]
        else:
            options = ["--data", name, "--data-dir", str(context.data), "--budget", "full",
                       "--seeds", "3", "--workers", str(GPU_STUDY_WORKERS)]
        if context.cuda_graphs and not context.dry_run:
            options.append("--cuda-graphs")
        command = [sys.executable, "-m", "aevae.cli", "compare", *options,
                   "--device", context.device, "--out", str(study), "--quiet"]
        log = context.stage_work / "compare.log"
        deadline = context.deadline()
        # Time kept to aggregate the finished runs should the study be stopped.
        salvage = min(SALVAGE_SECONDS, 0.25 * max(0.0, deadline - time.time()))
        [outcome] = run_jobs([Job("compare", command, context.environment(1), log)], 1,
                             deadline - salvage)
        answer = log.read_text(errors="replace") if log.is_file() else ""
        atomic_write(context.stage_dir / "answer.txt", answer)
        results = {"command": " ".join(command[3:]), "status": outcome["status"],
                   "exit_code": outcome["exit_code"], "seconds": outcome["seconds"],
                   "workers": GPU_STUDY_WORKERS if not context.dry_run else 2}
        if outcome["status"] == STOPPED and (study / "study.json").is_file():
            # The runs finished so far, aggregated as `aevae report` does.
            salvage_command = [sys.executable, "-m", "aevae.cli", "report", str(study)]
            [report] = run_jobs([Job("report", salvage_command, context.environment(1),
                                     context.stage_work / "report.log")], 1,
                                time.time() + SALVAGE_SECONDS)
            results["partial_report"] = report["status"]
        copied = []
        for file in ("results.json", "study.json", "report.html"):
            source = study / file
            if source.is_file() and source.stat().st_size <= ARCHIVE_FILE_LIMIT:
                shutil.copy2(source, context.stage_dir / file)
                copied.append(file)
        results["copied"] = copied
        lines = [f"`aevae {results['command']}`: {outcome['status']} "
                 f"(exit {outcome['exit_code']}), {outcome['seconds'] or 0:.0f} s"]
        if (study / "results.json").is_file():
            found = json.loads((study / "results.json").read_text())
            runs = found.get("runs", [])
            results["runs_planned"] = len(runs)
            results["runs_finished"] = sum(run.get("status") == "finished" for run in runs)
            results["summary"] = found.get("summary")
            results["timing"] = found.get("timing")
            lines += ["", f"{results['runs_finished']} of {len(runs)} runs finished; "
                      f"timing {json.dumps(found.get('timing', {}), default=str)[:400]}", ""]
            lines += [f"- {sentence}" for sentence in found.get("summary", [])]
        if outcome["status"] != "finished":
            raise StageError(f"aevae compare {outcome['status']} (exit {outcome['exit_code']})"
                             f": {tail(outcome['log_tail'], 1500)}", results,
                             stopped=outcome["status"] == STOPPED)
        return results, lines

    return run


# 5. Disentanglement table
def stage_disentanglement(context: Context) -> tuple[dict, list[str]]:
    study = context.stage_work / "study"
    if study.exists():
        shutil.rmtree(study)
    if context.dry_run:
        table = ["--seeds", "1", "--epochs", "1", "--points", "200", "--network", "mlp",
                 "--workers", "2"]
        dataset = "dsprites-small"
    else:
        table = ["--seeds", "3", "--epochs", "10", "--points", "5000", "--network", "conv",
                 "--workers", str(GPU_STUDY_WORKERS)]
        dataset = "dsprites"
    result_file = context.stage_dir / "disentanglement_table.json"
    command = [sys.executable, str(BENCHMARKS / "disentanglement_table.py"), *table,
               "--data", dataset, "--data-dir", str(context.data), "--device", context.device,
               "--results", str(context.stage_dir), "--out", str(study)]
    [outcome] = run_jobs([Job("table", command, context.environment(1),
                              context.stage_work / "table.log", result_file)], 1,
                         context.deadline())
    results = {"arguments": table, "dataset": dataset,
               "status": outcome["status"], "exit_code": outcome["exit_code"],
               "seconds": outcome["seconds"], "table": outcome.get("result")}
    require_jobs([outcome], results)
    markdown = context.stage_dir / "disentanglement_table.md"
    lines = [f"benchmarks/disentanglement_table.py {' '.join(table)} on {results['dataset']}, "
             f"device {context.device}: {outcome['seconds']:.0f} s", ""]
    lines += markdown.read_text().splitlines() if markdown.is_file() else []
    return results, lines


# 6. Labels: M2 and M1+M2 with 100 labels
def stage_labels(context: Context) -> tuple[dict, list[str]]:
    if context.dry_run:
        seeds, options, threads = (0,), ["--epochs", "1", "--m2-epochs", "1", "--limit",
                                         "1000"], 1
    else:
        seeds, options, threads = (0, 1, 2), ["--epochs", "50", "--m2-epochs", "100"], 4
    jobs = []
    for seed in seeds:
        folder = context.stage_work / f"seed-{seed}"
        command = [sys.executable, str(BENCHMARKS / "labels.py"), "--seeds", str(seed),
                   "--threads", str(threads), *options, "--device", context.device,
                   "--data-dir", str(context.data), "--results", str(folder)]
        # With several processes, a cache each: the evaluation classifier is trained in each
        # rather than raced for.
        environment = context.environment(
            threads, {"XDG_CACHE_HOME": str(folder / "cache")} if len(seeds) > 1 else None)
        jobs.append(Job(f"seed-{seed}", command, environment, folder / "labels.log",
                        folder / "labels.json"))
    outcomes = run_jobs(jobs, len(jobs), context.deadline())
    per_seed = {outcome["name"]: outcome.get("result") for outcome in outcomes}
    results = {"arguments": options, "seeds": list(seeds), "device": context.device,
               "processes": [{key: outcome[key] for key in ("name", "status", "exit_code",
                                                            "seconds")} for outcome in outcomes],
               "per_seed": per_seed}
    require_jobs(outcomes, results)
    results["semi_supervised"], table = labels_summary(per_seed)
    lines = [f"benchmarks/labels.py {' '.join(options)}, seeds {', '.join(map(str, seeds))} "
             "(one process each)", "", *table]
    return results, lines


def labels_summary(per_seed: dict[str, dict]) -> tuple[dict, list[str]]:
    """Each method's test error % over the seeds' labels.json files (one record per seed),
    beside the published figure, and the CVAE's class shares: (results, table lines)."""
    values: dict[str, list[float]] = {}
    for found in per_seed.values():
        for record in found["records"]:
            for method, error in record["errors"].items():
                values.setdefault(method, []).append(float(error))
    published = {"M2": 11.97, "M1+M2": 3.33}
    summary = {method: {"mean": float(np.mean(numbers)), "std": float(np.std(numbers)),
                        "values": numbers, "published": published.get(method)}
               for method, numbers in values.items()}
    lines = ["| MNIST, 100 labels | test error % | published |", "|---|---|---|"]
    for method, row in summary.items():
        lines.append(f"| {method} | {row['mean']:.2f} ± {row['std']:.2f} | "
                     f"{'-' if row['published'] is None else row['published']} |")
    shares = [found["conditional"]["mean"] for found in per_seed.values()]
    lines += ["", "CVAE samples showing the requested class (evaluation classifier), per "
              "process: " + ", ".join(f"{share:.3f}" for share in shares)]
    return summary, lines


# 7. NLL rows on statically binarized MNIST
NLL_ROWS = ("vae", "iwae_k5", "iwae_k50", "hierarchical_vae", "hierarchical_iwae_k50")


def stage_nll(context: Context) -> tuple[dict, list[str]]:
    packed = context.data / PACKED_FILE
    if not packed.is_file():
        raise StageError(f"{packed} is missing: make it with --pack-binarized "
                         "/work/shared/datasets/binarized-mnist --data DATA_DIR")
    if context.dry_run:
        budget = {"epochs": 1, "k": 20, "test_examples": 50, "train_limit": 500}
        parallel = 2
    else:
        budget = {"epochs": 50, "k": 5000, "test_examples": 2000, "train_limit": None}
        parallel = len(NLL_ROWS)
    jobs = []
    for row in NLL_ROWS:
        result_file = context.stage_work / f"{row}.json"
        options = ["--row", row, "--packed", str(packed), "--device", context.device,
                   "--epochs", str(budget["epochs"]), "--k", str(budget["k"]),
                   "--test-examples", str(budget["test_examples"]),
                   "--result-file", str(result_file)]
        if budget["train_limit"]:
            options += ["--limit", str(budget["train_limit"])]
        jobs.append(Job(row, child_command("nll", *options), context.environment(2),
                        context.stage_work / f"{row}.log", result_file))
    outcomes = run_jobs(jobs, parallel, context.deadline())
    rows = [outcome["result"] for outcome in outcomes if "result" in outcome]
    results = {"budget": budget, "dataset": "binarized-mnist (static, Larochelle & Murray), "
               f"from {PACKED_FILE}", "device": context.device, "rows": rows,
               "processes": [{key: outcome[key] for key in ("name", "status", "exit_code",
                                                            "seconds")} for outcome in outcomes],
               "note": "the published figures are Burda et al.'s on dynamically binarized "
               "MNIST after 3,280 epochs; these rows train on the static binarization at the "
               "budget above, so compare the rows with each other"}
    lines = [f"{budget['epochs']} epochs, batch 100, Adam 1e-3; test NLL with k={budget['k']} "
             f"on {budget['test_examples']} test images; {context.device}", "",
             "| row | NLL (± s.e.) | test -ELBO | published (dynamic MNIST) | train s | eval s |",
             "|---|---|---|---|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['label']} | {row['nll']:.2f} ± {row['standard_error']:.2f} | "
                     f"{-row['test_elbo']:.2f} | {row['published_nll']} | "
                     f"{row['train_seconds']:.0f} | {row['eval_seconds']:.0f} |")
    require_jobs(outcomes, results)
    return results, lines


def child_nll(arguments) -> None:
    """Train one row of benchmarks/nll (its model and options) on the packed binarized MNIST
    arrays with model.fit, and score test images with model.log_likelihood."""
    import torch

    sys.path.insert(0, str(BENCHMARKS / "nll"))
    from common import ROWS, test_subset

    import aevae

    torch.set_num_threads(2)
    row = ROWS[arguments.row]
    splits = load_packed(Path(arguments.packed))
    train = splits["train"][:arguments.limit] if arguments.limit else splits["train"]
    train = train.reshape(-1, 1, 28, 28)
    test = splits["test"].reshape(-1, 1, 28, 28)
    model = aevae.make(row.model, input_shape=(1, 28, 28), likelihood="bernoulli", seed=0,
                       **row.options)
    started = time.perf_counter()
    model.fit(train, epochs=arguments.epochs, batch_size=100, learning_rate=1e-3, seed=0,
              device=arguments.device, progress=True)
    if arguments.device.startswith("cuda"):
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - started
    indices = test_subset(len(test), arguments.test_examples)
    test_x = test[indices]
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        elbo = np.asarray(model.elbo(test_x), dtype=np.float64)
    # On a GPU far more decoder rows fit at once than the CPU default (8,192) allows.
    max_rows = 1 << 18 if arguments.device.startswith("cuda") else None
    log_likelihood = np.asarray(model.log_likelihood(test_x, k=arguments.k, seed=0,
                                                     max_rows=max_rows), dtype=np.float64)
    eval_seconds = time.perf_counter() - started
    history = model.history_.epochs
    write_json(Path(arguments.result_file), {
        "row": row.name, "label": row.label, "model": row.model, "options": row.options,
        "published_nll": row.published, "published_source": row.source,
        "nll": float(-log_likelihood.mean()),
        "standard_error": float(log_likelihood.std(ddof=1) / math.sqrt(len(log_likelihood))),
        "test_elbo": float(elbo.mean()), "importance_samples": arguments.k,
        "test_examples": len(test_x), "train_examples": len(train), "epochs": arguments.epochs,
        "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        "epoch_seconds": [record["seconds"] for record in history],
        "final_train_loss": history[-1]["train_loss"], "device": arguments.device,
        "parameters": sum(p.numel() for p in model.parameters())})


# Estimates on the H200 are guesses made before any GPU run (stage 2 measures the step time
# they rest on); each fits one 10-minute device command under --minutes 9.5.
STAGES = (
    Stage(1, "cuda-tests", "pytest -m cuda tests/test_cuda.py", 150, 15, stage_cuda_tests),
    Stage(2, "throughput", "MLP and conv VAE on MNIST: aevae fit (and, for the MLP, with CUDA "
          "graphs) vs bare loops (host batches, data on the device), 3 epochs, 3 repeats of "
          "fresh processes", 400, 40,
          stage_throughput),
    Stage(3, "mnist-study", "aevae compare --data mnist --budget full, default roster, 3 "
          f"seeds, {GPU_STUDY_WORKERS} workers on the GPU", 480, 25, study_stage("mnist")),
    Stage(4, "fashion-study", "aevae compare --data fashion-mnist --budget full, default "
          f"roster, 3 seeds, {GPU_STUDY_WORKERS} workers on the GPU", 480, 25,
          study_stage("fashion-mnist")),
    Stage(5, "disentanglement", "benchmarks/disentanglement_table.py --seeds 3 --epochs 10 "
          f"--points 5000 --network conv on dSprites, {GPU_STUDY_WORKERS} workers", 450, 30,
          stage_disentanglement),
    Stage(6, "labels", "benchmarks/labels.py --epochs 50 --m2-epochs 100, seeds 0, 1, 2 in "
          "three processes", 480, 45, stage_labels),
    Stage(7, "nll", "VAE, IWAE k=5/50, two-layer VAE and IWAE k=50 on static binarized MNIST "
          "(packed), 50 epochs each, NLL with k=5000 on 2,000 test images, one process per "
          "row", 420, 25, stage_nll),
)


# ----- the driver --------------------------------------------------------------------------------
def write_archive(out: Path, archive: Path, work: Path) -> None:
    """OUT's small files (not the work folder) as a .tar.gz, replaced atomically."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    temporary = archive.with_name(archive.name + ".tmp")
    left_out = []
    with tarfile.open(temporary, "w:gz") as bundle:
        for path in sorted(out.rglob("*")):
            relative = path.relative_to(out)
            if (not path.is_file() or path.is_relative_to(work)
                    or path.name.endswith(".tmp") or path.resolve() == archive.resolve()):
                continue
            if path.stat().st_size > ARCHIVE_FILE_LIMIT:
                left_out.append(str(relative))
                continue
            bundle.add(path, arcname=str(Path(out.name) / relative))
    os.replace(temporary, archive)
    if left_out:
        print(f"archive: left out (over {ARCHIVE_FILE_LIMIT >> 20} MiB): {', '.join(left_out)}")


def run_stage(stage: Stage, context: Context, info: dict) -> dict:
    context.stage_dir = context.out / stage.folder
    context.stage_work = context.work / stage.folder
    context.stage_dir.mkdir(parents=True, exist_ok=True)
    context.stage_work.mkdir(parents=True, exist_ok=True)
    context.cap_seconds = ((10 if context.dry_run else stage.cap_factor)
                           * stage.estimate(context.dry_run))
    context.stage_started = time.time()
    record = {"stage": stage.number, "name": stage.name, "summary": stage.summary,
              "dry_run": context.dry_run, "device": context.device, "gpu": info.get("gpu"),
              "torch": info.get("torch"), "machine": info, "started": now(),
              "estimate_seconds": stage.estimate(context.dry_run)}
    begun = time.perf_counter()
    lines = []
    try:
        results, lines = stage.run(context)
        record.update(status="ok", error=None, results=results)
    except StageError as error:
        record.update(status=error.status, error=str(error), results=error.partial)
    except Exception as error:  # recorded; the next stage runs
        record.update(status="failed", error=f"{type(error).__name__}: {error}",
                      traceback=tail(traceback.format_exc(), 6000), results={})
    record["wall_seconds"] = time.perf_counter() - begun
    record["finished"] = now()
    write_json(context.stage_dir / "result.json", record)
    header = [f"# Stage {stage.number}: {stage.name}", "",
              f"{record['status']} in {record['wall_seconds']:.0f} s (estimate "
              f"{record['estimate_seconds']:.0f} s); device {context.device}, GPU "
              f"{record['gpu'] or 'none'}, torch {record['torch']}"
              + (" — dry run" if context.dry_run else ""), ""]
    if record["error"]:
        header += ["Error:", "", "```", tail(record["error"], 3000), "```", ""]
    atomic_write(context.stage_dir / "result.md", "\n".join(header + lines) + "\n")
    return record


def parse_stages(text: str | None) -> list[Stage]:
    if not text:
        return list(STAGES)
    by_number = {stage.number: stage for stage in STAGES}
    wanted = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece.isdigit() or int(piece) not in by_number:
            raise SystemExit(f"--stage: {piece!r} is not a stage; stages are 1 to {len(STAGES)}")
        wanted.append(by_number[int(piece)])
    return sorted(set(wanted), key=lambda stage: stage.number)


def main_check(arguments) -> int:
    started = time.time()
    data, out = arguments.data.resolve(), arguments.out.resolve()
    work = (arguments.work or out / "_work").resolve()
    stages = parse_stages(arguments.stage)
    info = machine()
    if not arguments.dry_run and not info["cuda_available"]:
        print("gpu_check: no CUDA GPU is visible; run with --dry-run on a CPU", file=sys.stderr)
        return 2
    device = "cpu" if arguments.dry_run else "cuda"
    out.mkdir(parents=True, exist_ok=True)
    context = Context(data=data, out=out, work=work, dry_run=arguments.dry_run, device=device,
                      started=started, limit_seconds=None if arguments.minutes is None
                      else arguments.minutes * 60, cuda_graphs=arguments.cuda_graphs)
    print(f"gpu_check: {len(stages)} stage(s) on {device} (GPU {info['gpu'] or 'none'}, "
          f"torch {info['torch']}), data {data}, out {out}"
          + (f", limit {arguments.minutes:g} min" if arguments.minutes else ""), flush=True)
    overview = {"started": now(), "dry_run": arguments.dry_run, "device": device,
                "machine": info, "data": str(data), "minutes": arguments.minutes,
                "command": " ".join(arguments.argv), "stages": [], "earlier_stages": []}
    try:  # the stages an earlier check wrote into OUT stay listed
        earlier = json.loads((out / "summary.json").read_text())
        chosen = {stage.number for stage in stages}
        overview["earlier_stages"] = [
            entry for entry in earlier.get("stages", []) + earlier.get("earlier_stages", [])
            if entry.get("stage") not in chosen and entry.get("status") != "not started"]
    except (OSError, ValueError):
        pass
    for stage in stages:
        elapsed = time.time() - started
        estimate = stage.estimate(arguments.dry_run)
        if (context.limit_seconds is not None
                and elapsed + estimate > context.limit_seconds - context.reserve):
            entry = {"stage": stage.number, "name": stage.name, "status": "not started",
                     "reason": f"its estimate {estimate:.0f} s would overrun the limit "
                               f"({elapsed:.0f} of {context.limit_seconds:.0f} s used)"}
            print(f"[{stage.number}] {stage.name}: not started ({entry['reason']})", flush=True)
        else:
            print(f"[{stage.number}] {stage.name}: starting (estimate {estimate:.0f} s)",
                  flush=True)
            record = run_stage(stage, context, info)
            entry = {key: record[key] for key in ("stage", "name", "status", "wall_seconds",
                                                  "estimate_seconds", "error")}
            entry["folder"] = stage.folder
            print(f"[{stage.number}] {stage.name}: {record['status']} in "
                  f"{record['wall_seconds']:.0f} s"
                  + (f": {tail(record['error'], 300)}" if record["error"] else ""), flush=True)
        overview["stages"].append(entry)
        overview["wall_seconds"] = time.time() - started
        write_json(out / "summary.json", overview)
        atomic_write(out / "summary.md", overview_markdown(overview))
        if arguments.archive:
            write_archive(out, arguments.archive.resolve(), work)
    print(overview_markdown(overview), flush=True)
    return 0


def overview_markdown(overview: dict) -> str:
    info = overview["machine"]
    lines = [f"# GPU check{' (dry run)' if overview['dry_run'] else ''}", "",
             f"GPU {info.get('gpu') or 'none'}, torch {info.get('torch')} (CUDA "
             f"{info.get('cuda')}), {info.get('cpus')} CPUs, commit {info.get('commit')}; "
             f"{overview.get('wall_seconds', 0):.0f} s in all", "",
             "| stage | status | wall s | estimate s |", "|---|---|---:|---:|"]
    entries = sorted(overview["stages"] + overview.get("earlier_stages", []),
                     key=lambda entry: entry["stage"])
    for entry in entries:
        wall = entry.get("wall_seconds")
        lines.append(f"| {entry['stage']} {entry['name']} | {entry['status']} | "
                     f"{'-' if wall is None else f'{wall:.0f}'} | "
                     f"{entry.get('estimate_seconds') or '-'} |")
    return "\n".join(lines) + "\n"


def parse_arguments(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Stages: " + "; ".join(f"{s.number} {s.name} (~{s.gpu_seconds / 60:.0f} min): "
                                      f"{s.summary}" for s in STAGES))
    parser.add_argument("--data", type=Path,
                        help="folder with mnist/, fashion-mnist/ and " + PACKED_FILE)
    parser.add_argument("--out", type=Path, help="output folder (one subfolder per stage)")
    parser.add_argument("--stage", help="stages to run, e.g. 1,2 (default: all, in order)")
    parser.add_argument("--dry-run", action="store_true",
                        help="every stage on the CPU at toy sizes")
    parser.add_argument("--minutes", type=float,
                        help="start no stage that would overrun this; stop one at the limit")
    parser.add_argument("--archive", type=Path,
                        help="keep a .tar.gz of OUT's small files here, updated after each stage")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="the studies of stages 3-4 with `aevae compare --cuda-graphs` (once "
                        "stage 1 has shown the replayed steps match the eager ones)")
    parser.add_argument("--work", type=Path,
                        help="scratch folder for study runs and logs (default OUT/_work)")
    parser.add_argument("--pack-binarized", type=Path, metavar="SRC_DIR",
                        help=f"write DATA/{PACKED_FILE} from SRC_DIR's .amat files and exit")
    # The child processes of the stages.
    hidden = argparse.SUPPRESS
    parser.add_argument("--child", help=hidden)
    parser.add_argument("--contender", help=hidden)
    parser.add_argument("--model", help=hidden)
    parser.add_argument("--epochs", type=int, help=hidden)
    parser.add_argument("--device", help=hidden)
    parser.add_argument("--limit", type=int, help=hidden)
    parser.add_argument("--result-file", help=hidden)
    parser.add_argument("--row", help=hidden)
    parser.add_argument("--packed", help=hidden)
    parser.add_argument("--k", type=int, help=hidden)
    parser.add_argument("--test-examples", type=int, help=hidden)
    if argv is None:
        argv = sys.argv[1:]
    arguments = parser.parse_args(argv)
    arguments.argv = ["scripts/gpu_check.py", *argv]
    if arguments.child is None and arguments.data is None:
        parser.error("--data is required")
    if arguments.child is None and arguments.pack_binarized is None and arguments.out is None:
        parser.error("--out is required")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.child == "throughput":
        child_throughput(arguments)
    elif arguments.child == "nll":
        child_nll(arguments)
    elif arguments.child is not None:
        raise SystemExit(f"unknown child {arguments.child!r}")
    elif arguments.pack_binarized is not None:
        began = time.perf_counter()
        path = pack_binarized(arguments.pack_binarized, arguments.data)
        splits = load_packed(path)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB; "
              + ", ".join(f"{part} {value.shape}" for part, value in splits.items())
              + f") in {time.perf_counter() - began:.0f} s")
    else:
        return main_check(arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
