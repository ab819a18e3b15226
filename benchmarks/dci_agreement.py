"""DCI from aevae's gradient boosting against scikit-learn's GradientBoostingClassifier, on the
codes of trained models, with the time of each.

For every finished run of a dSprites study (default: the disentanglement table's), the codes of
``--points`` training and half as many test grid points are drawn as the study draws them
(``aevae.metrics.compute_dci`` with the run's seed), then DCI is computed three ways:

* ``scikit-learn``: one ``GradientBoostingClassifier`` per factor (the reference's classifier,
  ``random_state`` from the seed), its ``feature_importances_``;
* ``exact``: ``aevae.metrics.dci(max_bins=None)``, splits between any two distinct values;
* ``binned``: ``aevae.metrics.dci()`` as the study runs it (256 quantile bins per code).

One thread. Writes benchmarks/results/dci_agreement.{json,md}.

    python benchmarks/dci_agreement.py [--study DIR] [--points 2000] [--trees 50] [--runs N]
        [--summarise EARLIER.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier
from threadpoolctl import threadpool_limits

from aevae.data import DSprites
from aevae.metrics import dci, dci_from_importance
from aevae.metrics._utils import sklearn_random_state
from aevae.metrics.disentanglement import make_generator, sample_factor_codes
from aevae.models import load
from machine import write_results

RESULTS = Path(__file__).resolve().parent / "results"
SCORES = ("disentanglement", "completeness", "informativeness")


def scikit_learn_dci(train, test, random_state: int, n_estimators: int) -> dict:
    """DCI as disentanglement_lib computes it: scikit-learn's classifier per factor."""
    (train_codes, train_factors), (test_codes, test_factors) = train, test
    importance = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    accuracy = []
    for k in range(train_factors.shape[1]):
        model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=random_state)
        model.fit(train_codes, train_factors[:, k])
        importance[:, k] = model.feature_importances_
        accuracy.append(float(np.mean(model.predict(test_codes) == test_factors[:, k])))
    return {**dci_from_importance(importance), "informativeness": float(np.mean(accuracy))}


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="/work/studies/dsprites-table")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--runs", type=int, default=None, help="only the first N runs")
    parser.add_argument("--out", default=str(RESULTS / "dci_agreement.json"))
    parser.add_argument("--summarise", default=None,
                        help="remake the table from this earlier result instead of fitting")
    arguments = parser.parse_args()
    if arguments.summarise:
        earlier = json.loads(Path(arguments.summarise).read_text())
        summarise(earlier["runs"], earlier["settings"], arguments.out)
        return
    paths = sorted(Path(arguments.study, "runs").glob("*/run.json"))[: arguments.runs]
    records = [(json.loads(path.read_text()), path.parent) for path in paths]
    truth = DSprites()
    rows = []
    with threadpool_limits(1), torch.inference_mode():
        torch.set_num_threads(1)
        for record, directory in records:
            model = load(directory)

            def representation(observations, model=model):
                return model.encode(observations.reshape(len(observations), *model.input_shape))

            generator = make_generator(record["seed"])
            train = sample_factor_codes(truth, representation, arguments.points, generator)
            test = sample_factor_codes(truth, representation, arguments.points // 2, generator)
            random_state = sklearn_random_state(generator)  # as dci() draws it
            reference, reference_seconds = timed(scikit_learn_dci, train, test, random_state,
                                                 arguments.trees)
            row = {"run": directory.name, "model": record["entry"], "seed": record["seed"],
                   "scikit-learn": {**{key: reference[key] for key in SCORES},
                                    "seconds": reference_seconds}}
            for name, max_bins in (("exact", None), ("binned", 256)):
                result, seconds = timed(dci, *train, *test, seed=random_state,
                                        n_estimators=arguments.trees, max_bins=max_bins)
                row[name] = {**{key: result[key] for key in SCORES}, "seconds": seconds}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summarise(rows, vars(arguments), arguments.out)


def summarise(rows: list[dict], settings: dict, out) -> None:
    """The table: each implementation's difference from scikit-learn over the runs."""
    lines = [f"DCI on {len(rows)} trained models' codes ({settings['points']:,} training / "
             f"{settings['points'] // 2:,} test grid points, {settings['trees']} boosting "
             "stages, one thread): difference from scikit-learn's GradientBoostingClassifier "
             "(mean signed, largest absolute, runs above it) and median seconds.", "",
             "| implementation | " + " | ".join(SCORES) + " | median seconds |",
             "|---|---|---|---|---|"]
    summary = {}
    for name in ("scikit-learn", "exact", "binned"):
        differences = {key: np.array([row[name][key] - row["scikit-learn"][key]
                                      for row in rows]) for key in SCORES}
        seconds = statistics.median(row[name]["seconds"] for row in rows)
        summary[name] = {
            "mean_difference": {key: float(values.mean()) for key, values in differences.items()},
            "max_abs_difference": {key: float(np.abs(values).max())
                                   for key, values in differences.items()},
            "runs_above": {key: int((values > 0).sum()) for key, values in differences.items()},
            "median_seconds": seconds}
        label = {"scikit-learn": "scikit-learn (reference)",
                 "exact": "aevae, max_bins=None", "binned": "aevae, 256 bins (default)"}[name]
        cells = [f"{values.mean():+.4f}, max {np.abs(values).max():.4f}, "
                 f"{int((values > 0).sum())} of {len(rows)} above" for values in
                 differences.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {seconds:.1f} |")
    write_results(out, {"settings": settings, "summary": summary, "runs": rows},
                  "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
