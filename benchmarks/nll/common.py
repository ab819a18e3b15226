"""Shared runner for the published-NLL benchmarks: one training and one evaluation path for
every row of ``benchmarks/results/published_nll.md``.

Each row script (``vae.py``, ``iwae_k5.py``, ...) is a thin file naming its row; this module
holds the rows' settings, trains the model with ``model.fit``, estimates the test
log-likelihood with ``aevae.metrics.likelihood.log_likelihood_estimate`` (importance sampling,
k = 5000 by default) and writes ``benchmarks/results/nll/<row>.json``.

    python benchmarks/nll/vae.py --epochs 10 --batch-size 100 --test-examples 1000 --threads 1

Every row script takes these options; ``--device`` (default cpu) is where the model trains and is
scored, ``--results DIR`` (alias ``--results-dir``) where the JSON and run folders go.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import torch

import aevae
from aevae.data import load_dataset
from aevae.metrics.likelihood import DEFAULT_MAX_ROWS, log_likelihood_estimate
from aevae.training.devices import resolve_device

RESULTS = Path(__file__).resolve().parents[1] / "results" / "nll"
# Seeds the fixed random subset of test images when fewer than all are scored.
TEST_SUBSET_SEED = 0

# Burda et al. 2016's MNIST networks: tanh MLPs with two deterministic layers of 200 units on
# each side of the (first) stochastic layer, Glorot (Xavier) initialisation. Added here: batch
# normalisation after each hidden layer, as Sonderby et al. 2016 used to train their one- versus
# two-layer comparisons. Without it these tanh networks sit on the plateau of the pixel
# marginals for most of the first epoch, and the two-layer model trails the one-layer model by
# 30 nats after 10 epochs (supplementary set `before-batch-norm`); a short budget then measures
# the warm-up, not the models.
BURDA_ONE_LAYER = {"latent_dim": 50, "hidden": (200, 200), "activation": "tanh",
                   "init": "xavier", "norm": "batch"}
# hierarchical_vae's defaults are Burda's two-layer network (784-200-200-100-100-50); stated
# explicitly so a change of defaults cannot silently change the benchmark.
BURDA_TWO_LAYER = {**BURDA_ONE_LAYER, "intermediate_latent_dim": 100,
                   "intermediate_hidden": (100, 100)}
BURDA_NOTES = "batch norm after each hidden layer (not in the paper)"
# Tomczak & Welling 2018's one-layer MNIST VAE: latent size 40, two gated hidden layers of 300
# (h = (W x + b) * sigmoid(V x + c)). No batch norm: the VampPrior passes its pseudo-inputs
# through the encoder, and batch statistics would mix them with the data.
VAMP_ONE_LAYER = {"latent_dim": 40, "hidden": (300, 300), "activation": "gated",
                  "init": "xavier"}
VAMP_NOTES = ("Adam 1e-3 without the paper's 100-epoch KL warm-up; no clamp on the "
              "log-variance")


@dataclass(frozen=True)
class Row:
    name: str
    label: str  # the model column of the table
    model: str  # aevae registry name
    dataset: str
    options: dict
    published: float | None
    source: str
    notes: str = ""
    comparison: str = "burda"  # rows compared in a claim share one budget


ROWS = {row.name: row for row in (
    Row("vae", "VAE (1 layer, k=1)", "vae", "mnist-dynamic", BURDA_ONE_LAYER, 86.76,
        "Burda et al. 2016, Table 1: VAE, 1 stochastic layer, k=1", BURDA_NOTES),
    Row("iwae_k5", "IWAE k=5 (1 layer)", "iwae", "mnist-dynamic",
        {**BURDA_ONE_LAYER, "importance_samples": 5}, 85.54,
        "Burda et al. 2016, Table 1: IWAE, 1 stochastic layer, k=5", BURDA_NOTES),
    Row("iwae_k50", "IWAE k=50 (1 layer)", "iwae", "mnist-dynamic",
        {**BURDA_ONE_LAYER, "importance_samples": 50}, 84.78,
        "Burda et al. 2016, Table 1: IWAE, 1 stochastic layer, k=50", BURDA_NOTES),
    Row("hierarchical_vae", "VAE (2 layers, k=1)", "hierarchical_vae", "mnist-dynamic",
        BURDA_TWO_LAYER, 85.33,
        "Burda et al. 2016, Table 1: VAE, 2 stochastic layers, k=1", BURDA_NOTES),
    Row("hierarchical_iwae_k50", "IWAE k=50 (2 layers)", "hierarchical_iwae", "mnist-dynamic",
        {**BURDA_TWO_LAYER, "importance_samples": 50}, 82.90,
        "Burda et al. 2016, Table 1: IWAE, 2 stochastic layers, k=50", BURDA_NOTES),
    Row("vamp_prior", "VAE + VampPrior (500 pseudo-inputs)", "vamp_prior", "binarized-mnist",
        {**VAMP_ONE_LAYER, "prior": "vamp", "prior_options": {"pseudo_inputs": 500}}, 85.57,
        "Tomczak & Welling 2018, Table 2: VAE + VampPrior, one layer (gated MLP 300-300, "
        "latent 40), static MNIST",
        notes=VAMP_NOTES, comparison="vamp"),
    Row("standard_prior_static", "VAE + N(0, I) prior (static)", "vae", "binarized-mnist",
        VAMP_ONE_LAYER, None,
        "no published figure: the VampPrior row's architecture and budget with the standard "
        "normal prior", notes="same networks and budget as the VampPrior row; " + VAMP_NOTES,
        comparison="vamp"),
)}


def parse_arguments(row: Row, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"Train and evaluate the {row.label} row.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights: seed 0)")
    parser.add_argument("--k", type=int, default=5000, help="importance samples at evaluation")
    parser.add_argument("--test-examples", type=int, default=10000,
                        help="score N test images (a fixed random subset when below all)")
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--eval-chunk", type=int, default=250,
                        help="test examples per logged evaluation chunk")
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS,
                        help="log_likelihood_estimate's bound on live decoder rows")
    parser.add_argument("--train-limit", type=int, default=None,
                        help="train on the first N examples only (timing probes)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-evaluate the model saved by an earlier run of this row")
    parser.add_argument("--extend", action="store_true",
                        help="continue the saved run of this row up to --epochs instead of "
                        "starting afresh (same result as training --epochs from the start)")
    parser.add_argument("--activation", default=None,
                        help="diagnostics only: replace the row's activation (results go to "
                        "--results-dir; the table's rows use their own)")
    parser.add_argument("--norm", default=None,
                        help="diagnostics only: replace the row's normalisation (none, batch, "
                        "layer); results go to --results-dir as for --activation")
    parser.add_argument("--results-dir", "--results", type=Path, default=RESULTS,
                        help="folder for <row>.json and runs/<row> (default "
                        "benchmarks/results/nll)")
    parser.add_argument("--device", default="cpu",
                        help="device of training and evaluation: cpu (default), cuda[:N] or auto")
    return parser.parse_args(argv)


def log(message: str) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_description(device: str) -> str:
    """The device as the result records it: ``cpu (<CPU model>)`` as before, or the device
    asked for with the GPU's name."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return f"{resolved} ({torch.cuda.get_device_name(resolved)})"
    return f"{resolved} ({cpu_model()})"


def evaluate(model, x: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """Per-example importance-sampled log p(x), in logged chunks. The chunk starting at image
    ``start`` is estimated with seed ``eval_seed * 1_000_000 + start`` (and the estimator seeds
    each image from that and its offset), so every image draws from its own stream."""
    pieces = []
    started = time.perf_counter()
    for start in range(0, len(x), args.eval_chunk):
        chunk = x[start:start + args.eval_chunk]
        pieces.append(log_likelihood_estimate(
            model, chunk, k=args.k, seed=args.eval_seed * 1_000_000 + start,
            max_rows=args.max_rows,
        ))
        done = start + len(chunk)
        values = np.concatenate(pieces)
        elapsed = time.perf_counter() - started
        log(f"evaluated {done}/{len(x)}: NLL so far {-values.mean():.3f} "
            f"({elapsed:.0f}s, {elapsed / done:.3f}s per example)")
    return np.concatenate(pieces)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def test_subset(count: int, wanted: int) -> np.ndarray:
    """Indices of the test images scored: all of them, or a fixed random subset (sorted).
    Not the first N: binarized-mnist's test file is sorted by class, and MNIST's first 5,000
    test images are the cleaner half."""
    if wanted >= count:
        return np.arange(count)
    return np.sort(np.random.RandomState(TEST_SUBSET_SEED).permutation(count)[:wanted])


def train(row: Row, args: argparse.Namespace, dataset, run_dir: Path,
          earlier: dict | None = None) -> tuple[object, dict]:
    """Train a fresh model into ``run_dir`` or, given the ``earlier`` result of this row, resume
    its saved run up to ``args.epochs`` (checkpoints restore weights, optimizer and random
    states, so this equals training that many epochs in one go); returns the model and the
    training part of the result."""
    if earlier is None and run_dir.exists():
        shutil.rmtree(run_dir)  # a fresh run each time; fit refuses to overwrite a run
    train_x = dataset.train.x if args.train_limit is None else dataset.train.x[:args.train_limit]
    model = aevae.make(row.model, input_shape=dataset.shape, likelihood="bernoulli", seed=0,
                       **row.options)
    log(f"{sum(p.numel() for p in model.parameters())} parameters; train {len(train_x)}; "
        f"dynamic binarization {dataset.dynamic_binarization}")
    train_started, started = now(), time.perf_counter()
    model.fit(train_x, epochs=args.epochs, batch_size=args.batch_size,
              learning_rate=args.learning_rate, seed=args.seed,
              batch_transform=dataset.binarize if dataset.dynamic_binarization else None,
              progress=True, out=run_dir, device=args.device, resume=earlier is not None)
    train_seconds = time.perf_counter() - started
    if earlier is not None:  # the time and start of the epochs trained before
        log(f"extended the run of {earlier['budget']['epochs']} epochs")
        train_seconds += earlier["train_seconds"]
        train_started = earlier["train_started"]
    history = model.history_.epochs
    log(f"trained {args.epochs} epochs in {train_seconds:.0f}s")
    return model, {
        "budget": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "optimizer": "adam",
            "seed": args.seed,
            "train_examples": len(train_x),
        },
        "train_seconds": train_seconds,
        "train_started": train_started,
        "train_finished": now(),
        "epoch_seconds": [record["seconds"] for record in history],
        "final_train_loss": history[-1]["train_loss"],
        "final_train_terms": {key[len("train_"):]: value for key, value in history[-1].items()
                              if key.startswith("train_")},
        "train_command": command_line(),
    }


def earlier_result(path: Path, run_dir: Path, needed_file: str, flag: str) -> dict:
    """The result JSON of an earlier run of this row, whose run directory must still hold
    ``needed_file``; ``flag`` names the option that needs it in the error."""
    if not path.is_file() or not (run_dir / needed_file).is_file():
        raise SystemExit(f"{flag} needs an earlier run: {path} and {run_dir}")
    return json.loads(path.read_text())


def previous_training(path: Path, run_dir: Path, device: str = "cpu"):
    """The saved model of an earlier run and the training part of its result, for
    ``--evaluate-only``."""
    earlier = earlier_result(path, run_dir, "model.safetensors", "--evaluate-only")
    keys = ("budget", "train_seconds", "train_started", "train_finished", "epoch_seconds",
            "final_train_loss", "final_train_terms", "train_command")
    training = {key: earlier[key] for key in keys if key in earlier}
    if "train_started" not in training:  # written before the timestamps were recorded
        finished = datetime.fromisoformat(earlier["finished"])
        end = finished - timedelta(seconds=earlier["eval_seconds"])
        training["train_finished"] = end.isoformat(timespec="seconds")
        training["train_started"] = (end - timedelta(seconds=earlier["train_seconds"])
                                     ).isoformat(timespec="seconds")
        training["train_command"] = earlier.get("command")
    return aevae.load(run_dir, device=resolve_device(device)), training


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def run(row_name: str, argv: list[str] | None = None) -> dict:
    row = ROWS[row_name]
    args = parse_arguments(row, argv)
    for option in ("activation", "norm"):
        value = getattr(args, option)
        if value is not None and value != row.options.get(option, "none"):
            row = dataclasses.replace(row, label=f"{row.label} [{option} {value}]",
                                      options={**row.options, option: value})
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:  # already set in this process
        pass
    results_dir = args.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    run_dir = results_dir / "runs" / row.name
    path = results_dir / f"{row.name}.json"

    log(f"{row.name}: {row.model} on {row.dataset}, options {row.options}")
    log(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {cpu_model()}")
    dataset = load_dataset(row.dataset, download=False)
    if args.evaluate_only:
        model, training = previous_training(path, run_dir, args.device)
        log(f"evaluating the saved model in {run_dir}")
    elif args.extend:
        earlier = earlier_result(path, run_dir, "checkpoint.safetensors", "--extend")
        if earlier["budget"]["epochs"] >= args.epochs:
            raise SystemExit(f"--extend: the saved run already has {earlier['budget']['epochs']} "
                             f"epochs; ask for more than that")
        model, training = train(row, args, dataset, run_dir, earlier)
        training["extended_from_epochs"] = earlier["budget"]["epochs"]
    else:
        model, training = train(row, args, dataset, run_dir)
    indices = test_subset(len(dataset.test.x), args.test_examples)
    test_x = dataset.test.x[indices]

    eval_started, started = now(), time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(args.eval_seed)
        elbo = np.asarray(model.elbo(test_x), dtype=np.float64)
    log_likelihood = evaluate(model, test_x, args).astype(np.float64)
    eval_seconds = time.perf_counter() - started
    nll = float(-log_likelihood.mean())
    standard_error = float(log_likelihood.std(ddof=1) / math.sqrt(len(log_likelihood)))
    log(f"test NLL {nll:.3f} +- {standard_error:.3f} (k={args.k}, {len(test_x)} examples; "
        f"published {row.published}); ELBO {elbo.mean():.3f}; evaluation {eval_seconds:.0f}s")

    if len(indices) == len(dataset.test.x):
        subset = f"all {len(indices)} test images"
    else:
        subset = (f"{len(indices)} of the {len(dataset.test.x)} test images, chosen by "
                  f"numpy RandomState({TEST_SUBSET_SEED}).permutation (the same for every row)")
    if dataset.dynamic_binarization:
        subset += "; the test split binarized once with aevae's fixed seed"
    result = {
        "row": row.name,
        "label": row.label,
        "model": row.model,
        "options": row.options,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dataset": row.dataset,
        "comparison": row.comparison,
        "published_nll": row.published,
        "published_source": row.source,
        "notes": row.notes,
        "measured_nll": nll,
        "standard_error": standard_error,
        "test_elbo": float(elbo.mean()),
        "importance_samples": args.k,
        "max_rows": args.max_rows,
        "test_examples": len(test_x),
        "test_subset": subset,
        "test_indices_seed": TEST_SUBSET_SEED,
        "eval_seed": args.eval_seed,
        **training,
        "evaluated_separately": bool(args.evaluate_only),
        "eval_seconds": eval_seconds,
        "eval_started": eval_started,
        "device": device_description(args.device),
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "aevae_version": aevae.__version__,
        "python_version": platform.python_version(),
        "command": command_line(),
        "finished": now(),
        "environment_threads": {key: os.environ.get(key) for key in
                                ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "test_indices": indices.tolist(),
        "per_example_log_likelihood": log_likelihood.tolist(),
    }
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result, indent=1) + "\n")
    temporary.replace(path)
    log(f"wrote {path}")
    return result
