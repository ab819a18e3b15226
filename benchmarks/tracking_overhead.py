"""What TensorBoard tracking costs: ``fit`` with and without ``log_dir`` on MNIST.

The same 784-512-16 VAE trains for a few epochs, each figure in a fresh process (so imports and
allocators start cold for both), alternating which goes first; the clock covers building the
model and optimizer, training and closing the event file. Prints each time and the median ratio.

    python benchmarks/tracking_overhead.py [--epochs 2] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import json, sys, time, torch
torch.set_num_threads({threads})
import aevae
from aevae.data import load_dataset
x = load_dataset("mnist", download=False).train.x
log_dir = {log_dir!r}
started = time.perf_counter()
model = aevae.make("vae", input_shape=(1, 28, 28), latent_dim=16, hidden=(512,))
model.fit(x[:50000], validation=x[50000:], epochs={epochs}, batch_size=100, progress=False,
          log_dir=log_dir)
print(json.dumps({{"seconds": time.perf_counter() - started}}))
"""


def timed(epochs: int, threads: int, log_dir: str | None) -> float:
    code = CHILD.format(epochs=epochs, threads=threads, log_dir=log_dir)
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    times: dict[str, list[float]] = {"plain": [], "tracked": []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(arguments.repeats):
            order = ("plain", "tracked") if repeat % 2 == 0 else ("tracked", "plain")
            for name in order:
                log_dir = f"{folder}/events-{repeat}" if name == "tracked" else None
                times[name].append(timed(arguments.epochs, arguments.threads, log_dir))
                print(f"{name}: {times[name][-1]:.2f} s", flush=True)
    ratios = [tracked / plain for plain, tracked in zip(times["plain"], times["tracked"])]
    print(f"epochs={arguments.epochs} threads={arguments.threads} repeats={arguments.repeats}: "
          f"tracked / plain time, median {statistics.median(ratios):.3f} "
          f"(each pair: {', '.join(f'{ratio:.3f}' for ratio in ratios)})")


if __name__ == "__main__":
    main()
