"""Sequence VAEs: the Bach chorales, posterior collapse and its cures, and the VRNN's per-step
latents following a change in the signal.

1. ``jsb-chorales`` (music21's corpus as 88-key piano rolls, aevae's own seeded split): test
   negative log-likelihood per step of the sequence VAE (one latent per chorale; importance
   sampled), the VRNN (a latent per step; importance sampled) and a plain GRU without latents
   (exact), all with the same GRU width and budget.
2. Posterior collapse: the sequence VAE on the chorales, plain and with each cure (KL annealing,
   free bits, decoder input dropout), with the validation KL and the active units after every
   epoch.
3. ``sines-switch``: a VRNN's per-step posterior means on signals whose frequency jumps at a known
   step; a change-point statistic on the latents finds the jump.

Writes benchmarks/results/sequences.{json,md} and two SVG figures.

    python benchmarks/sequences.py [--epochs 60] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import aevae
from aevae.data import load_dataset
from aevae.data.batch import Batch
from aevae.metrics import active_units
from aevae.models.sequence_vae import per_step
from aevae.report import svg

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH = 256
LATENT = 16


class GRUBaseline(nn.Module):
    """p(x_t | x_<t) by a GRU reading the previous step: no latent, an exact likelihood."""

    def __init__(self, features: int, width: int):
        super().__init__()
        self.rnn = nn.GRU(features, width, batch_first=True)
        self.output = nn.Linear(width, features)

    def nll(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        previous = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
        logits = self.output(self.rnn(previous)[0])
        values = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
        mask = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()
        return (values.sum(-1) * mask).sum(-1)


def train_baseline(data, epochs: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = GRUBaseline(data.shape[-1], WIDTH)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, lengths = torch.from_numpy(data.train.x), torch.from_numpy(data.train.lengths)
    valid = (torch.from_numpy(data.validation.x), torch.from_numpy(data.validation.lengths))
    best, best_state, started = math.inf, None, time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 16):
            index = order[start:start + 16]
            loss = model.nll(x[index], lengths[index]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            current = float(model.nll(*valid).sum() / valid[1].sum())
        if current < best:
            best, best_state = current, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    with torch.no_grad():
        test = model.nll(torch.from_numpy(data.test.x), torch.from_numpy(data.test.lengths))
    return float(test.sum() / data.test.lengths.sum()), time.perf_counter() - started


def fit_sequence_model(name: str, data, epochs: int, seed: int, **options):
    model = aevae.make(name, input_shape=data.shape, seed=seed, likelihood="bernoulli",
                       **options)
    started = time.perf_counter()
    validation = Batch(data.validation.x, lengths=data.validation.lengths)
    model.fit(data.train.x, lengths=data.train.lengths, validation=validation, epochs=epochs,
              batch_size=16, seed=seed, patience=10, progress=False)
    return model, time.perf_counter() - started


def test_nll_per_step(model, data, k: int) -> float:
    values = model.sequence_log_likelihood(data.test.x, lengths=data.test.lengths, k=k)
    return -per_step(values, data.test.lengths)


def collapse_curves(data, epochs: int, seed: int) -> dict:
    """KL and active units after each epoch, for the plain sequence VAE and each cure."""
    steps_per_epoch = math.ceil(len(data.train) / 16)
    variants = {
        "plain": ({}, None),
        "KL annealing": ({}, f"linear:{steps_per_epoch * epochs // 2}"),
        "free bits (0.25 nats per dimension)": ({"free_bits": 0.25}, None),
        "decoder input dropout 0.5": ({"decoder_input_dropout": 0.5}, None),
    }
    curves = {}
    for label, (options, schedule) in variants.items():
        model = aevae.make("sequence_vae", input_shape=data.shape, seed=seed,
                           likelihood="bernoulli", latent_dim=LATENT, hidden=(WIDTH,),
                           **options)
        records = []
        with tempfile.TemporaryDirectory() as folder:
            for epoch in range(1, epochs + 1):  # one epoch at a time, resumed: same as one run
                model.fit(data.train.x, lengths=data.train.lengths, epochs=epoch, batch_size=16,
                          seed=seed, kl_schedule=schedule, out=folder, resume=epoch > 1,
                          progress=False)
                means = model.encode(data.test.x, lengths=data.test.lengths)
                terms = model.loss_terms(data.validation.x, lengths=data.validation.lengths)
                records.append({
                    "epoch": epoch,
                    "kl": float(np.mean(terms["kl"])),
                    "reconstruction_per_step": per_step(terms["reconstruction"],
                                                        data.validation.lengths),
                    "active_units": active_units(means)["value"],
                })
        curves[label] = records
    return curves


def change_point(path: np.ndarray, window: int) -> int:
    """The step where the mean of the path's next ``window`` steps is farthest from the mean of
    its previous ``window`` steps."""
    scores = [np.linalg.norm(path[t:t + window].mean(0) - path[t - window:t].mean(0))
              for t in range(window, len(path) - window + 1)]
    return window + int(np.argmax(scores))


def vrnn_tracking(epochs: int, seed: int) -> dict:
    data = load_dataset("sines-switch")
    train = data.train.take(slice(0, 2000))
    model = aevae.make("vrnn", input_shape=data.shape, latent_dim=4, hidden=(64,),
                       likelihood="gaussian-learned", seed=seed)
    model.fit(train.x, lengths=train.lengths, epochs=epochs, batch_size=64, seed=seed,
              progress=False)
    test = data.test.take(slice(0, 300))
    means = model.encode(test.x, lengths=test.lengths)
    window = 6
    errors, chance, raw = [], [], []
    generator = np.random.default_rng(seed)
    for path, signal, length, factors in zip(means, test.x, test.lengths, test.factors):
        switch = int(factors[4])
        if switch < window or switch > length - window:
            continue
        errors.append(abs(change_point(path[:length], window) - switch))
        raw.append(abs(change_point(np.abs(np.diff(signal[:length], axis=0)), window) - switch))
        chance.append(abs(int(generator.integers(window, length - window + 1)) - switch))
    example = int(np.flatnonzero([window <= f[4] <= length - window for f, length in
                                  zip(test.factors, test.lengths)])[0])
    return {
        "sequences": len(errors),
        "window": window,
        "latent_change_point_error": float(np.mean(errors)),
        "signal_change_point_error": float(np.mean(raw)),
        "chance_error": float(np.mean(chance)),
        "example": {"latents": means[example, :test.lengths[example]].tolist(),
                    "signal": test.x[example, :test.lengths[example], 0].tolist(),
                    "switch": int(test.factors[example, 4])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--collapse-epochs", type=int, default=30)
    parser.add_argument("--vrnn-epochs", type=int, default=15)
    parser.add_argument("--importance-samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    started = time.perf_counter()
    chorales = load_dataset("jsb-chorales")

    comparison = {}
    baseline, seconds = train_baseline(chorales, arguments.epochs, arguments.seed)
    comparison["GRU without latents (exact)"] = {"nll_per_step": baseline, "seconds": seconds}
    for label, name, options in (
            ("sequence VAE, decoder input dropout 0.5", "sequence_vae",
             {"latent_dim": LATENT, "hidden": (WIDTH,), "decoder_input_dropout": 0.5}),
            ("sequence VAE, plain", "sequence_vae", {"latent_dim": LATENT, "hidden": (WIDTH,)}),
            ("VRNN", "vrnn", {"latent_dim": LATENT, "hidden": (WIDTH,)})):
        model, seconds = fit_sequence_model(name, chorales, arguments.epochs, arguments.seed,
                                            **options)
        terms = model.loss_terms(chorales.test.x, lengths=chorales.test.lengths)
        comparison[label] = {
            "nll_per_step": test_nll_per_step(model, chorales, arguments.importance_samples),
            "reconstruction_per_step": per_step(terms["reconstruction"], chorales.test.lengths),
            "kl_per_sequence": float(np.mean(terms["kl"])),
            "epochs_run": len(model.history_.epochs),
            "seconds": seconds,
        }
    curves = collapse_curves(chorales, arguments.collapse_epochs, arguments.seed)
    tracking = vrnn_tracking(arguments.vrnn_epochs, arguments.seed)
    result = {"settings": {**vars(arguments), "width": WIDTH, "latent_dim": LATENT,
                           "batch_size": 16, "optimizer": "Adam 1e-3",
                           "split": {name: len(split) for name, split in
                                     chorales.splits().items()}},
              "comparison": comparison, "collapse": curves, "vrnn_tracking": tracking,
              "seconds": time.perf_counter() - started}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sequences.json").write_text(json.dumps(result, indent=2) + "\n")

    lines = ["| model (jsb-chorales test set) | NLL per step [nats] | reconstruction per step "
             "| KL per chorale | epochs | time |", "|---|---|---|---|---|---|"]
    for label, row in comparison.items():
        lines.append(f"| {label} | {row['nll_per_step']:.3f} | "
                     f"{row.get('reconstruction_per_step', float('nan')):.3f} | "
                     f"{row.get('kl_per_sequence', float('nan')):.2f} | "
                     f"{row.get('epochs_run', arguments.epochs)} | {row['seconds'] / 60:.1f} min |")
    lines += ["", f"| posterior collapse (sequence VAE, after {arguments.collapse_epochs} epochs)"
              " | validation KL [nats] | active units (of 16) | reconstruction per step |",
              "|---|---|---|---|"]
    for label, records in curves.items():
        last = records[-1]
        lines.append(f"| {label} | {last['kl']:.2f} | {last['active_units']} | "
                     f"{last['reconstruction_per_step']:.3f} |")
    lines += ["", "| VRNN on sines-switch: change point of the per-step latents | mean error "
              "[steps] |", "|---|---|",
              f"| from the latents | {tracking['latent_change_point_error']:.2f} |",
              f"| from the signal's own step-to-step changes | "
              f"{tracking['signal_change_point_error']:.2f} |",
              f"| a random step (chance) | {tracking['chance_error']:.2f} |"]
    (RESULTS / "sequences.md").write_text("\n".join(lines) + "\n")
    figure = svg.line_chart(
        [{"label": label, "points": [(record["epoch"], record["kl"]) for record in records]}
         for label, records in curves.items()],
        title="posterior collapse: the sequence VAE's KL per epoch (jsb-chorales)",
        x_label="epoch", y_label="validation KL [nats per chorale]", width=640, height=360)
    (RESULTS / "sequences_collapse.svg").write_text(figure + "\n")
    example = tracking["example"]
    latents = np.asarray(example["latents"])
    series = [{"label": "signal", "points": list(enumerate(example["signal"]))}]
    series += [{"label": f"z{dimension}", "points": list(enumerate(latents[:, dimension]))}
               for dimension in range(latents.shape[1])]
    figure = svg.line_chart(series, title=f"VRNN per-step latents; the frequency jumps at step "
                            f"{example['switch']}", x_label="step", y_label="value", width=640,
                            height=320)
    (RESULTS / "sequences_vrnn.svg").write_text(figure + "\n")
    print("\n".join(lines))
    print(f"\n{result['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
