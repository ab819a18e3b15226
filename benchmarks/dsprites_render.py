"""Rendering speed of the procedural dSprites, in images per second on one thread.

Renders random grid points of the full grid (64x64) and of the small grid (32x32), as binary
masks (``DSprites.render``) and as the float32 observations the metrics and the datasets use
(``sample_observations_from_factors``, also for the color and noisy variants). On a shared
machine other processes steal the core, so each measurement is repeated and the best round is
reported, with the CPU time of that round and the load average it met.

    python benchmarks/dsprites_render.py [--images 20000] [--repeats 5] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from aevae.data import DSprites, small_dsprites


def best_round(function, repeats: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the fastest of ``repeats`` calls."""
    rounds = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        rounds.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(rounds)


def measure(name: str, ground_truth: DSprites, images: int, repeats: int, masks: bool) -> dict:
    generator = np.random.default_rng(0)
    factors = ground_truth.sample_factors(images, generator)
    if masks:
        def work():
            ground_truth.render(factors)
    else:
        def work():
            ground_truth.sample_observations_from_factors(factors, generator)
    work()  # warm-up
    wall, cpu = best_round(work, repeats)
    return {
        "case": name,
        "output": "uint8 masks" if masks else "float32 observations",
        "observation_shape": list(ground_truth.observation_shape),
        "images": images,
        "seconds": round(wall, 4),
        "cpu_seconds": round(cpu, 4),
        "images_per_second": round(images / wall),
        "images_per_cpu_second": round(images / cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    arguments = parser.parse_args()
    cases = [
        ("dsprites", DSprites(), True),
        ("dsprites", DSprites(), False),
        ("color-dsprites", DSprites("color"), False),
        ("noisy-dsprites", DSprites("noisy"), False),
        ("dsprites-small", small_dsprites(), False),
    ]
    with threadpool_limits(1):
        results = [measure(name, truth, arguments.images, arguments.repeats, masks)
                   for name, truth, masks in cases]
    for row in results:
        print(f"{row['case']:16s} {row['output']:22s} {row['images_per_second']:>9,d} images/s "
              f"wall, {row['images_per_cpu_second']:>9,d} per CPU second "
              f"(best of {arguments.repeats}, {row['images']} images)")
    record = {"results": results, "threads": 1, "repeats": arguments.repeats,
              "load_average": list(os.getloadavg())}
    print(f"load average {record['load_average']}")
    if arguments.out:
        with open(arguments.out, "w") as stream:
            json.dump(record, stream, indent=2)


if __name__ == "__main__":
    main()
