"""Throughput of the importance-sampled log p(x) against the machine's own matmul rate.

Model: the foundation MLP VAE, ``make("vae", input_shape=(1, 28, 28), latent_dim=16,
hidden=(512,))`` with a Bernoulli decoder, on binarized MNIST test images (random binary images
when MNIST is absent). Weights are the seeded initialisation: speed does not depend on them.

Counted work: the decoder's two matmuls, 2 * (16 * 512 + 512 * 784) = 819,200 FLOP per decoder
row (one row = one example x one sample). Not counted: the encoder (once per example), biases,
ReLU, the noise, softplus, the x . logits product and the log-sum-exp.

Reference: torch.mm of the decoder's dominant shape, (rows x 512) @ (512 x 784), for the chunk's
row count and for 8192 and 32768 rows; the best rate over those shapes is the machine's matmul
rate. On a shared machine other processes steal cores, so short units of work (the estimator on
``--unit-examples`` examples, about 10^4 rows; one matmul) alternate for ``--repeats`` rounds
and each reports its best: the fraction compares like with like. A sustained run on
``--examples`` examples gives the projection for 10,000 images, with the load average it met.

    python benchmarks/likelihood_throughput.py [--k 5000] [--repeats 15] [--max-rows N]
        [--examples 100] [--threads 1 2] [--default-malloc] [--full] [--out results.json]

``--full`` also runs k = 5000 on all 10,000 test images and reports the actual time.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# Idle OpenMP threads sleep instead of spinning: on a shared machine spinning threads stall
# every parallel region while other processes hold the cores. Set before torch loads; an
# explicit OMP_WAIT_POLICY=ACTIVE in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import aevae  # noqa: E402
from aevae.data import DataError, load_dataset  # noqa: E402
from aevae.metrics import likelihood  # noqa: E402
from machine import keep_heap_resident  # noqa: E402

FLOP_PER_ROW = 2 * (16 * 512 + 512 * 784)
MATMUL_FLOP_PER_ROW = 2 * 512 * 784
OLD_DEFAULT_MAX_ROWS = 32768




def binary_mnist_test() -> tuple[np.ndarray, str]:
    try:
        return load_dataset("mnist-dynamic", download=False).test.x, "mnist-dynamic test"
    except DataError:
        generator = np.random.default_rng(0)
        images = (generator.random((10000, 1, 28, 28)) < 0.13).astype(np.float32)
        return images, "random binary images (MNIST not found)"


def seconds_of(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def measure(model, images, source, arguments, threads: int) -> dict:
    """Every figure for one torch thread count."""
    torch.set_num_threads(threads)
    k, max_rows = arguments.k, arguments.max_rows
    unit = images[: arguments.unit_examples]
    batch, chunk = likelihood._chunk_sizes(len(unit), k, max_rows, None)
    chunk_rows = batch * chunk

    def estimate(values, fast=True, rows=max_rows):
        original = likelihood._uses_vae_weights
        if not fast:  # the generic path: the model's own log_importance_weights per chunk
            likelihood._uses_vae_weights = lambda model: False
        try:
            return likelihood.log_likelihood_estimate(model, values, k=k, seed=0, max_rows=rows)
        finally:
            likelihood._uses_vae_weights = original

    shapes = sorted({chunk_rows, 8192, OLD_DEFAULT_MAX_ROWS})
    matrices = {rows: (torch.randn(rows, 512), torch.randn(512, 784)) for rows in shapes}
    work = {  # name: (function, FLOP counted)
        **{
            f"mm_{rows}": (lambda rows=rows: torch.mm(*matrices[rows]), MATMUL_FLOP_PER_ROW * rows)
            for rows in shapes
        },
        "estimator": (lambda: estimate(unit), FLOP_PER_ROW * len(unit) * k),
        "generic_path": (lambda: estimate(unit, fast=False), FLOP_PER_ROW * len(unit) * k),
        "generic_path_old_default_rows": (
            lambda: estimate(unit, fast=False, rows=OLD_DEFAULT_MAX_ROWS),
            FLOP_PER_ROW * len(unit) * k,
        ),
    }
    for function, _ in work.values():  # warm-up
        function()
    best = {name: float("inf") for name in work}
    load_before = os.getloadavg()[0]
    for _ in range(arguments.repeats):
        for name, (function, _) in work.items():
            best[name] = min(best[name], seconds_of(function))
    rates = {name: work[name][1] / best[name] for name in work}
    machine = max(rates[f"mm_{rows}"] for rows in shapes)
    achieved = rates["estimator"]

    sustained_x = images[: arguments.examples]
    sustained_load = os.getloadavg()[0]
    sustained_seconds = seconds_of(lambda: estimate(sustained_x))
    sustained_rows = len(sustained_x) * k / sustained_seconds
    result = {
        "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "data": source,
        "k": k,
        "max_rows": max_rows,
        "chunk_rows": chunk_rows,
        "repeats": arguments.repeats,
        "unit_examples": len(unit),
        "load_average": load_before,
        "matmul_flops_by_rows": {str(rows): rates[f"mm_{rows}"] for rows in shapes},
        "machine_matmul_flops": machine,
        "estimator_flops": achieved,
        "estimator_rows_per_second": achieved / FLOP_PER_ROW,
        "fraction_of_matmul_rate": achieved / machine,
        "generic_path_fraction": rates["generic_path"] / machine,
        "generic_path_old_default_rows_fraction": rates["generic_path_old_default_rows"] / machine,
        "sustained_examples": len(sustained_x),
        "sustained_rows_per_second": sustained_rows,
        "sustained_fraction_of_matmul_rate": sustained_rows * FLOP_PER_ROW / machine,
        "sustained_load_average": sustained_load,
        "projected_seconds_10000_images": 10000 * k / sustained_rows,
        "projected_seconds_10000_images_at_best_rate": 10000 * k * FLOP_PER_ROW / achieved,
    }
    print(f"\n{threads} thread(s); data: {source}; k = {k}; max_rows = {max_rows} ({chunk_rows} "
          f"rows per chunk); OMP_WAIT_POLICY={result['omp_wait_policy']}; best of "
          f"{arguments.repeats} alternating rounds; load average "
          f"{load_before:.2f}")
    for rows in shapes:
        print(f"  torch.mm ({rows} x 512) @ (512 x 784): {rates[f'mm_{rows}'] / 1e9:7.1f} GFLOP/s")
    print(f"  machine matmul rate (best shape): {machine / 1e9:.1f} GFLOP/s")
    print(f"  estimator: {achieved / FLOP_PER_ROW:,.0f} decoder rows/s = {achieved / 1e9:.1f} "
          f"GFLOP/s = {achieved / machine:.0%} of the matmul rate")
    for name, label in (
        ("generic_path", f"{max_rows} rows"),
        ("generic_path_old_default_rows", f"{OLD_DEFAULT_MAX_ROWS} rows, the old default"),
    ):
        print(f"  generic path (model.log_importance_weights), {label}: "
              f"{rates[name] / 1e9:.1f} GFLOP/s = {rates[name] / machine:.0%}")
    print(f"  sustained, {len(sustained_x)} examples (load average {sustained_load:.2f}): "
          f"{sustained_rows:,.0f} rows/s = {result['sustained_fraction_of_matmul_rate']:.0%}")
    print(f"  projected k = {k} on 10,000 test images: "
          f"{result['projected_seconds_10000_images'] / 60:.1f} min at the sustained rate, "
          f"{result['projected_seconds_10000_images_at_best_rate'] / 60:.1f} min at the best")
    if arguments.full:
        everything = images[:10000]
        result["actual_seconds_10000_images"] = seconds_of(lambda: estimate(everything))
        print(f"  actual k = {k} on {len(everything)} test images: "
              f"{result['actual_seconds_10000_images'] / 60:.1f} min")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--max-rows", type=int, default=likelihood.DEFAULT_MAX_ROWS)
    parser.add_argument("--unit-examples", type=int, default=2)
    parser.add_argument("--examples", type=int, default=100, help="sustained run")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--full", action="store_true", help="also time all 10,000 test images")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's heap trimming as it is (see keep_heap_resident)")
    parser.add_argument("--out", help="write the figures as JSON here")
    arguments = parser.parse_args()
    heap_resident = not arguments.default_malloc and keep_heap_resident()

    model = aevae.make("vae", input_shape=(1, 28, 28), latent_dim=16, hidden=(512,)).eval()
    images, source = binary_mnist_test()
    print(f"model: vae 784-512-16 MLP, Bernoulli decoder; counted: decoder matmuls, "
          f"{FLOP_PER_ROW:,} FLOP per row; {os.cpu_count()} CPUs; heap kept resident: "
          f"{heap_resident}")
    results = [measure(model, images, source, arguments, threads)
               for threads in arguments.threads]
    if arguments.out:
        with open(arguments.out, "w") as handle:
            json.dump({"flop_per_row": FLOP_PER_ROW, "heap_kept_resident": heap_resident,
                       "flop_counted": "decoder matmuls only: 2 * (16 * 512 + 512 * 784) per row",
                       "runs": results}, handle, indent=2)


if __name__ == "__main__":
    main()
