"""Why the reparameterization trick: the encoder's ELBO gradient by three estimators.

1. Gradient variance at fixed points of training. A VAE is trained with the reparameterized
   gradient; at a few checkpoints the encoder's gradient on one fixed batch is drawn many times
   (fresh z each time) with each estimator, and its variance per parameter group is reported
   (the sum of the coordinates' variances), beside the squared norm of the mean gradient.
2. Training curves. The same initial model is trained with each estimator for the same number of
   steps; the validation ELBO is recorded along the way.

Estimators: ``vae`` (reparameterized), ``score_function_vae`` with baseline ``none`` and with
the leave-one-out baseline. Writes benchmarks/results/gradient_estimators.{json,md,svg}.

    python benchmarks/gradient_estimators.py [--steps 3000] [--draws 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import aevae
from aevae.data import load_dataset
from aevae.report import svg

RESULTS = Path(__file__).resolve().parent / "results"
ESTIMATORS = {
    "reparameterized": ("vae", {}),
    "score function": ("score_function_vae", {"baseline": "none"}),
    "score function, leave-one-out baseline": ("score_function_vae",
                                               {"baseline": "leave_one_out"}),
}
NETWORK = {"latent_dim": 16, "hidden": (256,), "likelihood": "bernoulli"}


def make(name: str, options: dict, state: dict | None = None):
    model = aevae.make(name, input_shape=(1, 28, 28), seed=0, **NETWORK, **options)
    if state is not None:
        model.load_state_dict(state)
    return model


def encoder_groups(model) -> dict[str, list[torch.nn.Parameter]]:
    """The encoder's parameters by tensor: each linear map's weight and bias."""
    return {name: [parameter] for name, parameter in model.encoder.named_parameters()}


def gradient_statistics(model, batch: torch.Tensor, draws: int, seed: int) -> dict:
    groups = encoder_groups(model)
    samples = {name: [] for name in groups}
    torch.manual_seed(seed)
    model.train()
    for _ in range(draws):
        model.zero_grad(set_to_none=True)
        model.loss(batch).loss.mean().backward()
        for name, parameters in groups.items():
            samples[name].append(torch.cat([p.grad.flatten() for p in parameters]).clone())
    statistics = {}
    for name, values in samples.items():
        stacked = torch.stack(values).double()
        mean = stacked.mean(0)
        statistics[name] = {"variance": float(stacked.var(0).sum()),
                            "mean_squared_norm": float(mean.pow(2).sum())}
    return statistics


def validation_elbo(model, x: np.ndarray) -> float:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return float(np.mean(model.elbo(x)))


def train_step(model, optimizer, train: torch.Tensor, generator: torch.Generator) -> None:
    """One Adam step on a batch of 100 drawn with replacement."""
    model.train()
    index = torch.randint(len(train), (100,), generator=generator)
    loss = model.loss(train[index]).loss.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train_curve(name: str, options: dict, state: dict, train: torch.Tensor, valid: np.ndarray,
                steps: int, every: int) -> list[tuple[int, float]]:
    model = make(name, options, state)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    curve = [(0, validation_elbo(model, valid))]
    torch.manual_seed(1)
    for step in range(1, steps + 1):
        train_step(model, optimizer, train, generator)
        if step % every == 0:
            value = validation_elbo(model, valid)
            curve.append((step, value if math.isfinite(value) else None))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--checkpoints", default="0,500,3000")
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    started = time.perf_counter()
    data = load_dataset("mnist")
    train = torch.from_numpy(data.train.x[:20000])
    valid = data.test.x[:1000]
    batch = train[:100]
    checkpoints = [int(step) for step in arguments.checkpoints.split(",")]

    # 1. Variance at checkpoints of a reparameterized run.
    reference = make("vae", {})
    initial = {key: value.clone() for key, value in reference.state_dict().items()}
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(2)
    variance: dict[int, dict] = {}
    torch.manual_seed(2)
    for step in range(max(checkpoints) + 1):
        if step in checkpoints:
            state = {key: value.clone() for key, value in reference.state_dict().items()}
            variance[step] = {
                label: gradient_statistics(make(name, options, state), batch, arguments.draws,
                                           seed=10 + step)
                for label, (name, options) in ESTIMATORS.items()}
        if step == max(checkpoints):
            break
        train_step(reference, optimizer, train, generator)

    # 2. Training curves from the same initial weights.
    every = max(1, arguments.steps // 12)
    curves = {label: train_curve(name, options, initial, train, valid, arguments.steps, every)
              for label, (name, options) in ESTIMATORS.items()}
    result = {"settings": {**vars(arguments), "network": NETWORK, "batch": 100,
                           "data": "mnist (first 20,000 training images; 1,000 test images)",
                           "optimizer": "Adam 1e-3"},
              "variance": variance, "curves": curves,
              "seconds": time.perf_counter() - started}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gradient_estimators.json").write_text(json.dumps(result, indent=2) + "\n")

    lines = ["| step | parameter group | " + " | ".join(ESTIMATORS) + " |",
             "|---|---|" + "---|" * len(ESTIMATORS)]
    for step, by_estimator in variance.items():
        groups = next(iter(by_estimator.values()))
        for group in groups:
            cells = []
            for label in ESTIMATORS:
                value = by_estimator[label][group]["variance"]
                ratio = value / by_estimator["reparameterized"][group]["variance"]
                cells.append(f"{value:.3g}" + ("" if label == "reparameterized"
                                               else f" (x{ratio:.3g})"))
            lines.append(f"| {step} | {group} | " + " | ".join(cells) + " |")
    lines += ["", f"| estimator | validation ELBO after {arguments.steps} steps |", "|---|---|"]
    for label, curve in curves.items():
        final = curve[-1][1]
        lines.append(f"| {label} | {'diverged' if final is None else f'{final:.2f}'} |")
    (RESULTS / "gradient_estimators.md").write_text("\n".join(lines) + "\n")
    chart = svg.line_chart([{"label": label, "points": [(step, value) for step, value in curve
                                                         if value is not None]}
                            for label, curve in curves.items()],
                           title="validation ELBO while training, by encoder gradient estimator",
                           x_label="step", y_label="ELBO [nats]", width=640, height=360)
    (RESULTS / "gradient_estimators.svg").write_text(chart + "\n")
    print("\n".join(lines))
    print(f"\n{result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
