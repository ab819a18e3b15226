"""Imputing missing entries: MIWAE beside mean, k-NN and iterative imputation.

Mattei & Frellsen (2019)'s setting: entries are removed completely at random (20%, 50%, 80%),
each imputer is fitted on the incomplete data and fills that same data, and the score is the
RMSE on the removed entries. Tabular sets shipped with scikit-learn (breast cancer, wine,
digits, diabetes) are standardised with the complete data's mean and standard deviation (as in
the paper); MNIST (the first 10,000 training images, grey levels in [0, 1]) keeps its scale.
MIWAE: Gaussian decoder with learned per-dimension variance on the tables, Bernoulli on MNIST,
K = 20 importance samples in training, single imputation with 1,000 samples.

Writes benchmarks/results/imputation.{json,md}.

    python benchmarks/imputation.py [--seeds 0,1,2] [--sets all] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn import datasets
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

import aevae
from aevae.data import load_dataset

RESULTS = Path(__file__).resolve().parent / "results"
FRACTIONS = (0.2, 0.5, 0.8)
TABLES = {"breast cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
          "digits": datasets.load_digits, "diabetes": datasets.load_diabetes}


def load(name: str) -> np.ndarray:
    if name == "mnist":
        return load_dataset("mnist").train.x[:10000].reshape(10000, -1)
    values = TABLES[name]().data.astype(np.float64)
    scale = values.std(axis=0)
    return ((values - values.mean(axis=0)) / np.where(scale > 0, scale, 1.0)).astype(np.float32)


def miwae(values: np.ndarray, observed: np.ndarray, image: bool, seed: int) -> np.ndarray:
    options = ({"likelihood": "bernoulli", "latent_dim": 20, "hidden": (256, 256)} if image else
               {"likelihood": "gaussian-learned", "likelihood_options": {"per_dimension": True},
                "latent_dim": max(2, min(10, values.shape[1] // 2)), "hidden": (128, 128)})
    model = aevae.make("miwae", input_shape=(values.shape[1],), importance_samples=20, seed=seed,
                       **options)
    epochs = 30 if image else 300
    model.fit(np.where(observed, values, np.nan), observed=observed, epochs=epochs,
              batch_size=64, learning_rate=1e-3, seed=seed, progress=False)
    return model.impute(np.where(observed, values, np.nan), observed, samples=1000, seed=seed)


def imputers(image: bool) -> dict:
    iterative = (IterativeImputer(max_iter=3, n_nearest_features=50, random_state=0)
                 if image else IterativeImputer(max_iter=20, random_state=0))
    return {"mean": SimpleImputer(), "k-NN (k = 5)": KNNImputer(n_neighbors=5),
            "iterative (BayesianRidge)": iterative}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sets", default="all", help="comma-separated, of: mnist, "
                        + ", ".join(TABLES))
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    names = [*TABLES, "mnist"] if arguments.sets == "all" else arguments.sets.split(",")
    seeds = [int(value) for value in arguments.seeds.split(",")]
    started = time.perf_counter()
    records = []
    for name in names:
        values = load(name)
        image = name == "mnist"
        for fraction in FRACTIONS:
            for seed in seeds:
                generator = np.random.default_rng([seed, int(fraction * 100)])
                observed = generator.random(values.shape) >= fraction
                # Keep at least one observed entry per example, as the paper's masks do.
                empty = ~observed.any(axis=1)
                observed[empty, generator.integers(0, values.shape[1], empty.sum())] = True
                holes = np.where(observed, values, np.nan)
                for label, imputer in [*imputers(image).items(), ("MIWAE", None)]:
                    begun = time.perf_counter()
                    filled = (miwae(values, observed, image, seed) if imputer is None
                              else imputer.fit_transform(holes))
                    filled = np.asarray(filled, dtype=np.float64)
                    if filled.shape != values.shape:  # an all-missing column was dropped
                        raise RuntimeError(f"{label} returned {filled.shape} for {name}")
                    rmse = float(np.sqrt(np.mean((filled - values)[~observed] ** 2)))
                    kept = bool(np.array_equal(filled[observed], values[observed]))
                    records.append({"data": name, "fraction": fraction, "seed": seed,
                                    "method": label, "rmse": rmse, "observed_kept": kept,
                                    "seconds": time.perf_counter() - begun})
                    print(f"{name} {fraction:.0%} seed {seed} {label}: {rmse:.4f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    result = {"settings": {**vars(arguments), "fractions": FRACTIONS}, "records": records,
              "seconds": time.perf_counter() - started}
    (RESULTS / "imputation.json").write_text(json.dumps(result, indent=2) + "\n")
    methods = list(dict.fromkeys(record["method"] for record in records))
    lines = ["| data | missing | " + " | ".join(methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for name in names:
        for fraction in FRACTIONS:
            cells = []
            for method in methods:
                values = [record["rmse"] for record in records if record["data"] == name
                          and record["fraction"] == fraction and record["method"] == method]
                cells.append(f"{np.mean(values):.3f}" + (f" ± {np.std(values):.3f}"
                                                         if len(values) > 1 else ""))
            best = int(np.argmin([float(cell.split()[0]) for cell in cells]))
            cells[best] = f"**{cells[best]}**"
            lines.append(f"| {name} | {fraction:.0%} | " + " | ".join(cells) + " |")
    kept = all(record["observed_kept"] for record in records if record["method"] == "MIWAE")
    lines += ["", f"MIWAE left every observed entry bit-identical: {kept}. "
              f"{len(seeds)} seed(s); RMSE on the missing entries"
              + (" (mean ± std)." if len(seeds) > 1 else ".")]
    (RESULTS / "imputation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\n{result['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
