"""MIWAE against its authors' reference figure: breast cancer, 50% missing completely at random.

The setting of Mattei & Frellsen (2019)'s own notebook: scikit-learn's breast cancer data (569 x
30) standardised with the complete data's mean and standard deviation, half the entries removed
completely at random, latent size 10, two hidden layers of 128 (ReLU, orthogonal weights), a
Student t decoder whose location, scale (softplus + 0.001) and degrees of freedom (softplus + 3)
all depend on z, K = 20 importance samples, Adam at 1e-3, batch 64; the reference reports a mean
squared error of 0.287 on the missing entries after about 1,000 epochs.

Two kinds of mask: the reference's own (``np.random.seed(1234)``, then ``np.random.choice`` of
exactly half the n x p entries without replacement: numpy's legacy stream, the same on every
version), where the seeds vary the initialisation and the training noise only, and a fresh mask
per seed (each entry missing with probability 0.5), which adds the mask's own variation. aevae's
MIWAE with the reference's decoder, and with a Gaussian decoder (a learned variance per feature)
as the ablation, single imputation from 1,000 importance samples, beside mean, k-NN and iterative
imputation on the same masks.

Writes benchmarks/results/miwae_reference.{json,md}.

    python benchmarks/miwae_reference.py [--seeds 0,1,2] [--epochs 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

import aevae

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_MSE = 0.287  # the authors' notebook, MIWAE on the missing entries


def standardised_table() -> np.ndarray:
    values = load_breast_cancer().data.astype(np.float64)
    return ((values - values.mean(axis=0)) / values.std(axis=0)).astype(np.float32)


DECODERS = {
    "MIWAE, Student t decoder (the reference's)": {"likelihood": "student-t",
                                                    "init": "orthogonal"},
    "MIWAE, Gaussian decoder (learned variance per feature)": {
        "likelihood": "gaussian-learned", "likelihood_options": {"per_dimension": True}},
}
MASKS = ("the reference's mask", "a fresh mask per seed")


def reference_mask(shape: tuple[int, int]) -> np.ndarray:
    """The notebook's mask: seed 1234, then exactly half the entries drawn without
    replacement (True = observed)."""
    count = shape[0] * shape[1]
    missing = np.random.RandomState(1234).choice(count, count // 2, replace=False)
    observed = np.ones(count, dtype=bool)
    observed[missing] = False
    return observed.reshape(shape)


def mask(kind: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    if kind == MASKS[0]:
        return reference_mask(shape)
    return np.random.default_rng(seed).random(shape) >= 0.5


def miwae(values: np.ndarray, observed: np.ndarray, seed: int, epochs: int,
          decoder: dict) -> np.ndarray:
    model = aevae.make("miwae", input_shape=(values.shape[1],), latent_dim=10,
                       hidden=(128, 128), importance_samples=20, seed=seed, **decoder)
    holes = np.where(observed, values, np.nan)
    model.fit(holes, observed=observed, epochs=epochs, batch_size=64, learning_rate=1e-3,
              seed=seed, progress=False)
    return model.impute(holes, observed, samples=1000, seed=seed)


BARE = ("the notebook's procedure in bare PyTorch, its imputation (10 sampled draws)",
        "the notebook's procedure in bare PyTorch, weighted mean of 1,000 draws")


def bare_notebook_procedure(values: np.ndarray, observed: np.ndarray, seed: int,
                            epochs: int) -> dict[str, np.ndarray]:
    """The notebook's model and training written out in plain torch (no aevae): encoder and
    decoder 128-128 ReLU with orthogonal weights, q(z|x) with a softplus standard deviation,
    the Student t decoder, the K = 20 bound on the zero-filled table, Adam 1e-3, the rows
    reshuffled each epoch and cut into n // 64 batches. Returns both imputations: the
    notebook's (the weighted mean of 10 draws x ~ p(x|z)) and the weighted mean of E[x|z]
    over 1,000 draws (aevae's)."""
    distributions = torch.distributions
    torch.manual_seed(seed)
    order_source = np.random.RandomState(seed)
    count, features = values.shape
    latent, width = 10, 128

    def network(inputs: int, outputs: int) -> torch.nn.Sequential:
        layers = torch.nn.Sequential(torch.nn.Linear(inputs, width), torch.nn.ReLU(),
                                     torch.nn.Linear(width, width), torch.nn.ReLU(),
                                     torch.nn.Linear(width, outputs))
        for layer in layers:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.orthogonal_(layer.weight)
        return layers

    encoder, decoder = network(features, 2 * latent), network(latent, 3 * features)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3)
    filled = torch.from_numpy(np.where(observed, values, 0.0).astype(np.float32))
    seen = torch.from_numpy(observed.astype(np.float32))
    prior = distributions.Normal(torch.zeros(latent), torch.ones(latent))
    softplus = torch.nn.functional.softplus

    def weights_and_decoder(rows, draws):
        encoded = encoder(filled[rows])
        posterior = distributions.Normal(encoded[:, :latent], softplus(encoded[:, latent:]))
        z = posterior.rsample([draws])
        decoded = decoder(z)
        location = decoded[..., :features]
        scale = softplus(decoded[..., features:2 * features]) + 1e-3
        freedom = softplus(decoded[..., 2 * features:]) + 3.0
        student = distributions.StudentT(freedom, location, scale)
        log_px = (student.log_prob(filled[rows]) * seen[rows]).sum(-1)
        log_weights = (log_px + prior.log_prob(z).sum(-1)
                       - posterior.log_prob(z).sum(-1))
        return log_weights, student

    for _ in range(epochs):
        for rows in np.array_split(order_source.permutation(count), count // 64):
            log_weights, _ = weights_and_decoder(rows, 20)
            loss = -torch.logsumexp(log_weights, 0).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    everything = np.arange(count)
    with torch.no_grad():
        log_weights, student = weights_and_decoder(everything, 10)
        sampled = (torch.softmax(log_weights, 0)[..., None] * student.sample()).sum(0)
        log_weights, student = weights_and_decoder(everything, 1000)
        mean = (torch.softmax(log_weights, 0)[..., None] * student.loc).sum(0)
    return {label: np.where(observed, values, imputed.numpy())
            for label, imputed in zip(BARE, (sampled, mean))}


def baselines() -> dict:
    return {"mean": SimpleImputer(), "k-NN (k = 5)": KNNImputer(n_neighbors=5),
            "iterative (BayesianRidge)": IterativeImputer(max_iter=20, random_state=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true",
                        help="keep the records already in the JSON; run only the missing ones")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    values = standardised_table()
    seeds = [int(value) for value in arguments.seeds.split(",")]
    path = RESULTS / "miwae_reference.json"
    records = (json.loads(path.read_text())["records"]
               if arguments.resume and path.is_file() else [])
    done = {(r["mask"], r["seed"], r["method"]) for r in records}
    started = time.perf_counter()
    methods = [*baselines(), *DECODERS, *BARE]
    for kind in MASKS:
        for seed in seeds:
            observed = mask(kind, values.shape, seed)
            holes = np.where(observed, values, np.nan)
            for label in methods:
                # The bare re-implementation runs on the notebook's own mask only; it yields
                # both of its imputations from one training.
                if (kind, seed, label) in done or label == BARE[1] or (
                        label in BARE and kind != MASKS[0]):
                    continue
                begun = time.perf_counter()
                if label in DECODERS:
                    filled = {label: miwae(values, observed, seed, arguments.epochs,
                                           DECODERS[label])}
                elif label in BARE:
                    filled = bare_notebook_procedure(values, observed, seed, arguments.epochs)
                else:
                    filled = {label: baselines()[label].fit_transform(holes)}
                seconds = time.perf_counter() - begun
                for name, imputed in filled.items():
                    error = np.asarray(imputed, dtype=np.float64) - values
                    records.append({"mask": kind, "seed": seed, "method": name,
                                    "mse": float(np.mean(error[~observed] ** 2)),
                                    "observed_kept": bool(np.array_equal(
                                        np.asarray(imputed)[observed], values[observed])),
                                    "seconds": seconds})
                    print(f"{kind}, seed {seed}, {name}: MSE {records[-1]['mse']:.4f} "
                          f"({seconds:.1f} s)", flush=True)

    def cell(kind, method, key="mse"):
        found = [r[key] for r in records if r["mask"] == kind and r["method"] == method]
        if not found:
            return ""
        if key == "seconds":
            return f"{np.mean(found):.1f}"
        spread = f" ± {np.std(found, ddof=1):.3f}" if len(found) > 1 else ""
        return f"{np.mean(found):.3f}{spread}"

    lines = ["# MIWAE against its reference: breast cancer, 50% missing", "",
             "Written by `benchmarks/miwae_reference.py`. Mean squared error on the missing "
             "entries of the standardised table (the reference's measure), mean ± standard "
             f"deviation over seeds {arguments.seeds}; MIWAE trained {arguments.epochs} epochs "
             "(latent 10, two hidden layers of 128, K = 20, Adam 1e-3, batch 64), one CPU "
             "thread. The reference's mask is its notebook's own (seed 1234, half the entries); "
             "with it the seeds vary the initialisation and training noise only.", "",
             f"| method | {MASKS[0]} | {MASKS[1]} | seconds per run |", "|---|---|---|---|"]
    for method in methods:
        lines.append(f"| {method} | {cell(MASKS[0], method)} | {cell(MASKS[1], method)} | "
                     f"{cell(MASKS[0], method, 'seconds')} |")
    lines.append(f"| MIWAE, the authors' notebook (reference) | {REFERENCE_MSE} | | |")
    student = next(iter(DECODERS))
    reached = {kind: np.mean([r["mse"] for r in records
                              if r["mask"] == kind and r["method"] == student])
               for kind in MASKS}
    kept = all(r["observed_kept"] for r in records if r["method"] in DECODERS)
    bare = {label: np.mean([r["mse"] for r in records if r["method"] == label])
            for label in BARE if any(r["method"] == label for r in records)}
    replication = ""
    if len(bare) == len(BARE):
        replication = (
            f" The notebook's own procedure, re-implemented in plain PyTorch and run here on "
            f"its own mask, reaches {bare[BARE[1]]:.3f} when read as aevae reads it (the "
            f"weighted mean of 1,000 draws) and {bare[BARE[0]]:.3f} with the notebook's "
            "imputation (10 sampled draws): the reference figure is not what its procedure "
            "gives on this machine, and aevae's MIWAE is ahead of that re-implementation by "
            f"{bare[BARE[1]] - reached[MASKS[0]]:.3f}.")
    verdict = "meets" if reached[MASKS[0]] <= REFERENCE_MSE else "misses"
    lines += ["", f"On the reference's mask aevae's MIWAE (Student t decoder) {verdict} the "
              f"reference: {reached[MASKS[0]]:.3f} against {REFERENCE_MSE}; on fresh masks "
              f"{reached[MASKS[1]]:.3f}.{replication} Observed entries left bit-identical: "
              f"{kept}. "
              f"Versions: torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
              f"python {platform.python_version()}."]
    RESULTS.mkdir(exist_ok=True)
    result = {"settings": vars(arguments), "reference_mse": REFERENCE_MSE, "records": records,
              "seconds": time.perf_counter() - started}
    (RESULTS / "miwae_reference.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "miwae_reference.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
