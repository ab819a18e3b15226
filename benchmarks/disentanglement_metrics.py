"""Time of each disentanglement metric at its default sizes on dSprites, one thread.

Two trivial representations, so the time is the protocol's own (sampling, rendering,
classifiers), not a model's:

* ``identity``: the factor indices themselves, looked up by factors (no rendering; the path a
  tabulated model takes, see ``aevae.metrics.tabulate_representation``).
* ``moments``: six image moments computed from the rendered sprites (area, centroid, second
  central moments), so every observation is rendered as a model's would be.

``--run DIR`` adds a trained model's codes (its posterior means), the way the study measures
them at these sizes: every dSprites grid point encoded once (timed apart, as ``tabulate``), then
every metric on the table.

    python benchmarks/disentanglement_metrics.py [--representation identity moments]
        [--metrics mig dci ...] [--fraction 1.0] [--run RUN_DIR] [--out results.json]

``--fraction`` scales every sample size (0.1 for a quick look); 1.0 is the default protocol.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from aevae.data import DSprites
from aevae.metrics import DISENTANGLEMENT_METRICS, disentanglement_report
from aevae.metrics.disentanglement import tabulate_representation
from aevae.models import load


class FactorIdentity:
    """Codes = factor indices as floats, looked up without rendering."""

    def codes_for_factors(self, factors: np.ndarray) -> np.ndarray:
        return factors.astype(np.float64)


def image_moments(observations: np.ndarray) -> np.ndarray:
    """(N, 6): area, centroid (x, y) and second central moments (xx, yy, xy) of each image."""
    images = observations[:, 0].astype(np.float64)
    size = images.shape[-1]
    grid = np.arange(size) + 0.5
    area = images.sum(axis=(1, 2))
    safe = np.maximum(area, 1.0)
    column_mass, row_mass = images.sum(axis=1), images.sum(axis=2)
    x = column_mass @ grid / safe
    y = row_mass @ grid / safe
    xx = column_mass @ grid**2 / safe - x**2
    yy = row_mass @ grid**2 / safe - y**2
    xy = np.einsum("nij,i,j->n", images, grid, grid) / safe - x * y
    return np.stack([area, x, y, xx, yy, xy], axis=1)


DEFAULT_SIZES = {"train_points": 10000, "eval_points": 5000, "test_points": 5000,
                 "points": 10000, "variance_points": 10000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--representation", nargs="+", default=["identity", "moments"],
                        choices=["identity", "moments"])
    parser.add_argument("--metrics", nargs="+", default=None,
                        choices=list(DISENTANGLEMENT_METRICS), help="default: all")
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--run", default=None, help="a trained model's run directory")
    parser.add_argument("--out", default=None)
    arguments = parser.parse_args()
    sizes = {name: max(10, round(count * arguments.fraction))
             for name, count in DEFAULT_SIZES.items()}
    if arguments.metrics is not None:  # only the sizes the chosen metrics take
        taken = {key for metric in arguments.metrics
                 for key in inspect.signature(DISENTANGLEMENT_METRICS[metric]).parameters}
        sizes = {key: value for key, value in sizes.items() if key in taken}
    representations = {"identity": FactorIdentity(), "moments": image_moments}
    record = {"fraction": arguments.fraction, "sizes": sizes, "threads": 1, "runs": {}}
    names = list(arguments.representation)
    setup = {name: ({}, {}) for name in names}  # wall and CPU seconds spent before the metrics
    with threadpool_limits(1), torch.inference_mode():
        torch.set_num_threads(1)
        if arguments.run:
            model = load(arguments.run)
            start, cpu_start = time.perf_counter(), time.process_time()
            representations["model"] = tabulate_representation(
                DSprites(), lambda x: model.encode(x.reshape(len(x), *model.input_shape)))
            setup["model"] = ({"tabulate": time.perf_counter() - start},
                              {"tabulate": time.process_time() - cpu_start})
            names.append("model")
            record["run"] = {"path": arguments.run, "model": model.name}
        # One thread throughout: DCI would otherwise fit its factors on every core.
        threads = {"n_jobs": 1} if "dci" in (arguments.metrics or DISENTANGLEMENT_METRICS) else {}
        for name in names:
            report = disentanglement_report(DSprites(), representations[name], seed=0,
                                            metrics=arguments.metrics, **sizes, **threads)
            wall, cpu = setup[name]
            report["seconds"] = {**wall, **report["seconds"]}
            report["cpu_seconds"] = {**cpu, **report["cpu_seconds"]}
            record["runs"][name] = {"scores": report["scores"], "seconds": report["seconds"],
                                    "cpu_seconds": report["cpu_seconds"]}
            print(f"{name}:")
            for metric, seconds in report["seconds"].items():
                print(f"  {metric:26s} {seconds:8.1f} s wall "
                      f"{report['cpu_seconds'][metric]:8.1f} s CPU")
            for score, value in report["scores"].items():
                print(f"  {score:26s} {value:8.3f}")
    record["load_average"] = list(os.getloadavg())
    print(f"load average {record['load_average']}")
    if arguments.out:
        with open(arguments.out, "w") as stream:
            json.dump(record, stream, indent=2)


if __name__ == "__main__":
    main()
