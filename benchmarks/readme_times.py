"""The times the README states, measured: each command in a fresh process, wall clock.

- the main command, `aevae compare --out DIR` (digits, default roster, 3 seeds, quick budget);
- `aevae evaluate RUN` (quick budget) on a 10-epoch MNIST VAE, the README's CLI example.

    python benchmarks/readme_times.py [--skip-evaluate]

Run it on an otherwise idle machine: the README's figures are for 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def timed(command: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-evaluate", action="store_true")
    arguments = parser.parse_args()
    aevae = [sys.executable, "-m", "aevae.cli"]
    print(f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as folder:
        seconds = timed([*aevae, "compare", "--out", "compare-digits", "--quiet"], folder)
        print(f"aevae compare --out compare-digits: {seconds:.0f} s")
        if not arguments.skip_evaluate:
            timed([*aevae, "train", "vae", "--data", "mnist", "--latent-dim", "16", "--hidden",
                   "512", "--epochs", "10", "--out", "runs/vae", "--quiet"], folder)
            seconds = timed([*aevae, "evaluate", "runs/vae", "--quiet"], folder)
            print(f"aevae evaluate runs/vae (quick budget, 10-epoch MNIST VAE): {seconds:.0f} s")


if __name__ == "__main__":
    main()
