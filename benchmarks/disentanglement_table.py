"""The disentanglement table: the six models of Locatello et al. (2019)'s study beside an AE and
a VAE, on procedural dSprites, with every metric over several seeds.

A study (``aevae.study.run_study``) with the disentanglement and compression tasks: the same
network for every model, latent size 10, Bernoulli decoder, batch 64, for the budget given here.
``--network mlp`` is Chen et al. (2018)'s 1200-1200 MLP (about twice as fast per step on a CPU);
``--network conv`` is Locatello et al. (2019)'s four 4x4 stride-2 convolutions of 32, 32, 64, 64
channels and a 256-unit dense layer. They trained 300,000 steps at Adam 1e-4; a run of a few
thousand steps learns more at a larger step size (--learning-rate). Metric sizes are smaller
than the protocols' defaults (see --points) and said in the table.

Writes benchmarks/results/disentanglement_table.{json,md} (or into --results DIR); the study's
own report and run store are kept in --out. --device picks the device of every run (default
auto: fit's own choice), --data another dSprites variant (dsprites-small for quick checks) and
--data-dir the folder it is read from (default: $AEVAE_DATA_DIR or aevae's cache).

    python benchmarks/disentanglement_table.py [--seeds 3] [--epochs 2] [--network mlp]
        [--learning-rate 5e-4] [--out DIR] [--device auto] [--results DIR] [--data dsprites]
        [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from aevae.study import StudySettings, run_study
from aevae.study.settings import Budget
from aevae.study.statistics import paired_difference
from aevae.study.verdicts import format_value
from machine import write_results

RESULTS = Path(__file__).resolve().parent / "results"
TRAINING_IMAGES = 90_000  # dSprites' 100,000 less the study's validation tenth
NAMES = {"ae": "AE", "vae": "VAE", "beta_vae": "beta-VAE (beta 4)",
         "annealed": "AnnealedVAE (C 25, gamma 1000)",
         "beta_tcvae": "beta-TCVAE (beta 6)", "factor_vae": "FactorVAE (gamma 40)",
         "dip_vae_i": "DIP-VAE-I (10, 100)", "dip_vae_ii": "DIP-VAE-II (10, 10)"}


NETWORKS = {"mlp": "1200-1200 MLP of Chen et al. (2018)",
            "conv": "conv network of Locatello et al. (2019)"}


def roster(epochs: int) -> tuple[str, str]:
    """The roster, and the key of the AnnealedVAE entry, whose capacity ramp must fit the
    budget (Locatello et al.'s 100k-step ramp would not start to matter in a short run)."""
    steps = epochs * -(-TRAINING_IMAGES // 64)
    annealed = f"beta_vae:capacity_max=25:capacity_steps={int(0.8 * steps)}:gamma=1000"
    return (f"ae,vae,beta_vae,{annealed},beta_tcvae,factor_vae,dip_vae_i,dip_vae_ii",
            annealed)
# What the papers that introduced each metric report on dSprites for their best models, as a
# rough guide (their networks, budgets and sizes differ from this table's).
PUBLISHED = [
    "Kim & Mnih (2018), FactorVAE score: about 0.82 for FactorVAE and 0.73 for beta-VAE "
    "(beta = 4), after 300k steps.",
    "Chen et al. (2018), MIG: about 0.3 to 0.35 for the best beta-TCVAE runs, up to about 0.25 "
    "for beta-VAE, below 0.1 for the VAE.",
    "Locatello et al. (2019): over their hyperparameter grid every model spans a wide range on "
    "each metric, and the random seed matters about as much as the model.",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs of the 90,000 training images")
    parser.add_argument("--points", type=int, default=2000,
                        help="training points of the metrics (test points: half)")
    parser.add_argument("--network", choices=("mlp", "conv"), default="mlp")
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--out", default="dsprites-study")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto",
                        help="device of every run: auto (default), cpu or cuda[:N]")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder for disentanglement_table.{json,md} (default "
                        "benchmarks/results)")
    parser.add_argument("--data", default="dsprites",
                        help="the dSprites dataset by name (dsprites-small for quick checks)")
    parser.add_argument("--data-dir", default=None,
                        help="folder the dataset is read from (default: $AEVAE_DATA_DIR or "
                        "aevae's cache)")
    arguments = parser.parse_args(argv)
    budget = Budget(
        "dsprites", f"{arguments.epochs} epochs of dSprites' 90,000 training images (about "
        f"{arguments.epochs * -(-TRAINING_IMAGES // 64):,} steps), batch 64, Adam "
        f"{arguments.learning_rate:g}, the {NETWORKS[arguments.network]}; metrics on smaller "
        "samples than Locatello et al.'s protocols",
        epochs=arguments.epochs, batch_size=64, learning_rate=arguments.learning_rate,
        patience=arguments.epochs,
        evaluation={"max_examples": 5000, "disentanglement_train_points": arguments.points,
                    "disentanglement_test_points": arguments.points // 2,
                    "disentanglement_dci_trees": 50})
    models, annealed = roster(arguments.epochs)
    settings = StudySettings(data=arguments.data, data_dir=arguments.data_dir, models=models,
                             seeds=arguments.seeds, device=arguments.device,
                             budget=budget, network=arguments.network,
                             hidden=(256,) if arguments.network == "conv" else (1200, 1200),
                             latent_dim=10,
                             tasks="disentanglement,compression", workers=arguments.workers)
    results = run_study(settings, arguments.out, progress=True)
    tasks = {task["name"]: task for task in results["tasks"]}
    metrics = tasks["disentanglement"]["metrics"] + tasks["compression"]["metrics"][:1]
    names = {**NAMES, annealed: NAMES["annealed"]}
    header = "| model | " + " | ".join(metric["label"] for metric in metrics) + " |"
    lines = [header, "|---|" + "---|" * len(metrics)]
    for key in results["labels"]:
        cells = []
        for metric in metrics:
            row = metric["rows"][key]
            text = format_value(row["mean"], metric["digits"])
            if row.get("low") is not None:
                text += (f" [{format_value(row['low'], metric['digits'])}, "
                         f"{format_value(row['high'], metric['digits'])}]")
            cells.append(text)
        lines.append(f"| {names.get(key, key)} | " + " | ".join(cells) + " |")
    evaluations = [evaluation(run) for run in results["runs"]]
    run_seconds = sum(run["train_seconds"] + sum(evaluated["seconds"].values())
                      for run, evaluated in zip(results["runs"], evaluations))
    lines += ["", f"Mean [95% interval] over {arguments.seeds} seeds. Budget: {budget.description}."
              f" Metric points: {arguments.points} / {arguments.points // 2}; DCI with "
              "scikit-learn's GradientBoostingClassifier, 50 boosting stages. "
              f"{run_seconds / 3600:.1f} hours of single-thread run time "
              "(training and one evaluation) on this machine.", ""]
    checks = orderings(metrics, annealed)
    lines += ["| expected ordering | metric | difference [95% interval] | seeds ahead | "
              "verdict |", "|---|---|---|---|---|"]
    lines += [f"| {names[check['first']]} above {names[check['second']]} | {check['metric']} "
              f"| {check['difference']} | {check['seeds_ahead']} | {check['verdict']} |"
              for check in checks]
    timing = metric_seconds(evaluations)
    lines += ["", "Time per metric on a trained model (median over the runs, one thread, at the "
              "table's metric sizes): " + ", ".join(
                  f"{name} {seconds:.1f} s" for name, seconds in timing.items()) + ".", ""]
    lines += [f"- {line}" for line in PUBLISHED]
    summary = {"settings": {**vars(arguments), "results": str(arguments.results),
                            "budget": budget.to_dict()},
               "verdicts": {metric["name"]: metric["verdict"] for metric in metrics},
               "orderings": checks, "metric_seconds": timing, "run_seconds": run_seconds,
               "timing": results["timing"]}
    write_results(arguments.results / "disentanglement_table.json", summary,
                  "\n".join(lines) + "\n")


ORDERED_METRICS = ("mig", "factor_vae_score")


def orderings(metrics: list[dict], annealed: str) -> list[dict]:
    """The orderings the literature expects, each judged by the paired per-seed difference:
    holds when its 95% interval is above zero, reversed when below, else not separated.
    ``annealed`` is the AnnealedVAE's roster key."""
    family = ("vae", "beta_vae", annealed, "beta_tcvae", "factor_vae", "dip_vae_i", "dip_vae_ii")
    pairs = [(model, "ae") for model in family]
    pairs += [(model, "vae") for model in ("beta_vae", "beta_tcvae", "factor_vae")]
    by_name = {metric["name"]: metric for metric in metrics}
    checks = []
    for metric_name in ORDERED_METRICS:
        metric = by_name[metric_name]
        for first, second in pairs:
            paired = paired_difference(metric["rows"][first]["values"],
                                       metric["rows"][second]["values"])
            if paired is None:
                continue
            interval, differences = paired
            if interval.low is None:
                verdict, text = "one seed", format_value(interval.mean, 3)
            else:
                verdict = ("holds" if interval.low > 0 else "reversed" if interval.high < 0
                           else "not separated")
                text = (f"{format_value(interval.mean, 3)} [{format_value(interval.low, 3)}, "
                        f"{format_value(interval.high, 3)}]")
            checks.append({"first": first, "second": second, "metric": metric["label"],
                           "difference": text, "verdict": verdict,
                           "seeds_ahead": f"{sum(value > 0 for value in differences)} of "
                                          f"{len(differences)}"})
    return checks


def evaluation(run: dict) -> dict:
    """A run's metrics.json: each evaluation group's result and its latest wall seconds (a
    group evaluated again, say after a metric changed, counts once)."""
    return json.loads((Path(run["path"]) / "metrics.json").read_text())


def metric_seconds(evaluations: list[dict]) -> dict[str, float]:
    """Median wall seconds of each disentanglement metric over the runs' evaluations."""
    seconds: dict[str, list[float]] = {}
    for evaluated in evaluations:
        for name, value in evaluated["metrics"]["disentanglement"]["seconds"].items():
            seconds.setdefault(name, []).append(value)
    return {name: float(statistics.median(values)) for name, values in seconds.items()}


if __name__ == "__main__":
    main()
