"""The times the README states, measured: each command in a fresh process, wall clock.

- the main command, `aevae compare --out DIR` (digits, default roster, 3 seeds, quick budget);
- `aevae evaluate RUN` (quick budget) on a 10-epoch MNIST VAE, the README's CLI example.

    python benchmarks/readme_times.py [--skip-evaluate] [--results DIR]

Writes benchmarks/results/readme_times.{json,md} (or into --results DIR), with the machine's
core count and its load average before and after. Run it on an otherwise idle machine: the
README's figures are for 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import write_results

RESULTS = Path(__file__).resolve().parent / "results"


def timed(command: list[str], cwd: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-evaluate", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder for readme_times.{json,md} (default benchmarks/results)")
    arguments = parser.parse_args()
    aevae = [sys.executable, "-m", "aevae.cli"]
    load_before = os.getloadavg()
    times = {}
    with tempfile.TemporaryDirectory() as folder:
        times["aevae compare --out compare-digits"] = timed(
            [*aevae, "compare", "--out", "compare-digits", "--quiet"], folder)
        if not arguments.skip_evaluate:
            timed([*aevae, "train", "vae", "--data", "mnist", "--latent-dim", "16", "--hidden",
                   "512", "--epochs", "10", "--out", "runs/vae", "--quiet"], folder)
            times["aevae evaluate runs/vae (quick budget, 10-epoch MNIST VAE)"] = timed(
                [*aevae, "evaluate", "runs/vae", "--quiet"], folder)
    load_after = os.getloadavg()
    machine = (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}); load "
               f"average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    lines = ["The README's commands, each in a fresh process, wall clock: " + machine + ".", "",
             "| command | seconds |", "|---|---:|"]
    lines += [f"| `{command}` | {seconds:.0f} |" for command, seconds in times.items()]
    write_results(arguments.results / "readme_times.json",
                  {"seconds": times, "cores": os.cpu_count(), "load_before": load_before,
                   "load_after": load_after}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
