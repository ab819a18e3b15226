"""Peak memory against file size: training from a ``.npy`` file held in memory or streamed.

For files of 1x, 4x and 16x a base size (float32 784-pixel rows of random grey levels), a fresh
process trains aevae's MLP VAE for one epoch either on the array loaded with ``np.load`` (what
``aevae train`` does for data that fits) or on ``aevae.data.NpyStream`` (``train --stream``: 64
MiB chunks read in a shuffled order). Each process reports its peak resident memory
(``VmHWM``), the resident memory it had before the data was touched (torch imported, model
built), and the examples trained per second. Streaming should hold the growth flat while the
in-memory path grows with the file.

The files are written to a temporary folder and deleted afterwards.
Writes benchmarks/results/streaming_memory.{json,md}.

    python benchmarks/streaming_memory.py [--base-mib 32] [--factors 1,4,16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import write_results

RESULTS = Path(__file__).resolve().parent / "results"
ROW_BYTES = 784 * 4


def status_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (its peak) of this process. The peak starts afresh at
    exec, unlike getrusage's ru_maxrss, which a child inherits from its parent."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(path: str, mode: str, threads: int) -> None:
    import numpy as np
    import torch

    import aevae
    from aevae.data import NpyStream

    torch.set_num_threads(threads)
    vae = aevae.make("vae", input_shape=(784,), latent_dim=16, hidden=(512,), seed=0)
    before = status_mib("VmRSS")
    started = time.perf_counter()
    x = np.load(path) if mode == "memory" else NpyStream(path, likelihood="bernoulli")
    vae.fit(x, epochs=1, batch_size=100, device="cpu", progress=False, compile=False)
    seconds = time.perf_counter() - started
    peak = status_mib("VmHWM")
    print(json.dumps({"before_mib": before, "peak_mib": peak, "seconds": seconds,
                      "examples": len(x)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-mib", type=int, default=32)
    parser.add_argument("--factors", default="1,4,16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "streaming_memory.json")
    arguments = parser.parse_args()
    if arguments.child:
        child(*arguments.child, arguments.threads)
        return
    import numpy as np

    rows = []
    environment = {**os.environ, "OMP_NUM_THREADS": str(arguments.threads)}
    with tempfile.TemporaryDirectory() as folder:
        for factor in (int(f) for f in arguments.factors.split(",")):
            count = factor * arguments.base_mib * 2**20 // ROW_BYTES
            path = Path(folder) / f"x{factor}.npy"
            generator = np.random.default_rng(factor)
            with open(path, "wb") as out:  # written in pieces: the parent stays small
                np.lib.format.write_array_header_1_0(
                    out, {"descr": "<f4", "fortran_order": False, "shape": (count, 784)})
                for start in range(0, count, 20_000):
                    size = min(count, start + 20_000) - start
                    out.write(generator.random((size, 784), dtype=np.float32).tobytes())
            size = path.stat().st_size / 2**20
            for mode in ("memory", "stream"):
                done = subprocess.run(
                    [sys.executable, __file__, "--child", str(path), mode,
                     "--threads", str(arguments.threads)],
                    capture_output=True, text=True, env=environment)
                if done.returncode != 0:
                    raise RuntimeError(f"{mode} x{factor} failed:\n{done.stderr[-3000:]}")
                figure = json.loads(done.stdout.strip().splitlines()[-1])
                row = {"factor": factor, "file_mib": size, "mode": mode, **figure,
                       "growth_mib": figure["peak_mib"] - figure["before_mib"],
                       "examples_per_second": figure["examples"] / figure["seconds"]}
                rows.append(row)
                print(f"x{factor:<3} {size:7.0f} MiB {mode:6}: peak {row['peak_mib']:7.0f} MiB "
                      f"(+{row['growth_mib']:.0f}), {row['examples_per_second']:,.0f} "
                      f"examples/s", flush=True)
            path.unlink()
    result = {"threads": arguments.threads, "base_mib": arguments.base_mib,
              "load_average": os.getloadavg()[0], "rows": rows}
    write_results(arguments.out, result, markdown(result))


def markdown(result: dict) -> str:
    lines = [f"Peak resident memory for one epoch of an MLP VAE (784-512-16) on a float32 .npy "
             f"file, {result['threads']} thread(s), each figure in a fresh process; growth is "
             f"the peak less the memory held before the data was touched.", "",
             "| file | in memory: peak (growth) | streamed: peak (growth) "
             "| in memory examples/s | streamed examples/s |",
             "|---:|---:|---:|---:|---:|"]
    by_factor: dict[int, dict] = {}
    for row in result["rows"]:
        by_factor.setdefault(row["factor"], {})[row["mode"]] = row
    for modes in by_factor.values():
        memory, stream = modes["memory"], modes["stream"]
        lines.append(f"| {memory['file_mib']:,.0f} MiB | {memory['peak_mib']:,.0f} MiB "
                     f"(+{memory['growth_mib']:,.0f}) | {stream['peak_mib']:,.0f} MiB "
                     f"(+{stream['growth_mib']:,.0f}) | {memory['examples_per_second']:,.0f} | "
                     f"{stream['examples_per_second']:,.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
