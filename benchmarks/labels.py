"""Labels: semi-supervised MNIST with 100 labels, and conditional generation.

1. MNIST with 100 labels (10 per class, drawn with the seed; the rest of the 50,000 training
   images unlabelled, 10,000 kept for validation), test error of:
   - a classifier trained on the 100 labelled images alone (MLP 784-500-10, early stopping on
     the labelled validation images it may see: 10 per class);
   - a linear probe (logistic regression) on the codes of an AE and of a VAE trained on all
     50,000 images without labels;
   - M2 (Kingma et al. 2014), trained on the 100 labels and the unlabelled images;
   - M1+M2: M2 on the codes of the VAE above (M1).
   Beside the published test errors with 100 labels: M2 11.97%, M1+M2 3.33%.
2. Conditional VAE on all MNIST labels: samples of each requested class, checked with the
   evaluation classifier (the study's feature classifier).

Writes benchmarks/results/labels.{json,md} (or into --results DIR) after each seed; a later
invocation with the same epochs, limit and device trains only the seeds (and the CVAE) not
stored there, so a killed run loses at most the seed it was training. --device is the device of
every aevae fit (default auto: fit's own choice); MNIST is read from --data-dir (default:
$AEVAE_DATA_DIR or aevae's cache).

    python benchmarks/labels.py [--seeds 0,1,2] [--epochs 50] [--m2-epochs 30] [--threads 1]
        [--device auto] [--data-dir DIR] [--results DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

import aevae
from aevae.data import load_dataset, user_cache_directory
from aevae.io import atomic_write_json, atomic_write_text
from aevae.metrics.classifier import load_or_train_feature_classifier
from aevae.models.m2 import M1_M2_OPTIONS, M2, fit_m1_m2
from aevae.study.statistics import t_interval
from aevae.training import Callback

RESULTS = Path(__file__).resolve().parent / "results"
PUBLISHED = {"M2": 11.97, "M1+M2": 3.33}  # test error %, 100 labels (Kingma et al. 2014)


def labelled_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    known = np.zeros(len(labels), dtype=bool)
    for value in range(10):
        members = np.flatnonzero(labels == value)
        known[generator.choice(members, per_class, replace=False)] = True
    return known


def error(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(100.0 * np.mean(predictions != labels))


def supervised_only(x, labels, known, valid_x, valid_labels, test_x, test_labels, seed):
    """An MLP on the labelled images alone, early-stopped on 100 validation images."""
    torch.manual_seed(seed)
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 500),
                                  torch.nn.ReLU(), torch.nn.Linear(500, 10))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3, weight_decay=1e-4)
    train_x = torch.from_numpy(x[known])
    train_y = torch.from_numpy(labels[known])
    check = labelled_subset(valid_labels, 10, seed + 100)
    check_x, check_y = torch.from_numpy(valid_x[check]), torch.from_numpy(valid_labels[check])
    best, best_state = -1.0, None
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(network(train_x), train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            accuracy = float((network(check_x).argmax(1) == check_y).float().mean())
        if accuracy > best:
            best, best_state = accuracy, {k: v.clone() for k, v in network.state_dict().items()}
    network.load_state_dict(best_state)
    with torch.no_grad():
        return error(network(torch.from_numpy(test_x)).argmax(1).numpy(), test_labels)


def probe(model, x, labels, known, test_x, test_labels, seed) -> float:
    classifier = LogisticRegression(max_iter=2000, random_state=seed)
    classifier.fit(model.encode(x[known]), labels[known])
    return error(classifier.predict(model.encode(test_x)), test_labels)


def one_seed(seed: int, data, x, labels, arguments, fit: dict) -> dict[str, tuple]:
    """Every method's test error (%) and seconds for the labels the seed draws."""
    valid_x, test_x, test_labels = data.validation.x, data.test.x, data.test.labels
    known = labelled_subset(labels, 10, seed)
    results = {}
    begun = time.perf_counter()
    value = supervised_only(x, labels, known, valid_x, data.validation.labels, test_x,
                            test_labels, seed)
    results["classifier on the 100 labels alone"] = (value, time.perf_counter() - begun)
    models = {}
    for name in ("ae", "vae"):
        begun = time.perf_counter()
        model = aevae.make(name, input_shape=data.shape, latent_dim=50, hidden=(600, 600),
                           seed=seed)
        model.fit(x, validation=valid_x, epochs=arguments.epochs, seed=seed, **fit)
        models[name] = model
        value = probe(model, x, labels, known, test_x, test_labels, seed)
        results[f"linear probe on {name.upper()} codes"] = (value, time.perf_counter() - begun)
    m2_options = {"latent_dim": 50, "hidden": (500,), "classifier_hidden": (500,), "seed": seed}
    begun = time.perf_counter()
    model = aevae.make("m2", input_shape=data.shape, **m2_options)
    model.fit(x, labels=labels, label_known=known, labelled_per_batch=10, validation=valid_x,
              epochs=arguments.m2_epochs, seed=seed, **fit)
    results["M2"] = (error(model.predict(test_x), test_labels), time.perf_counter() - begun)
    begun = time.perf_counter()
    model = fit_m1_m2(models["vae"], x, labels=labels, label_known=known,
                      m2_options=m2_options, labelled_per_batch=10, validation=valid_x,
                      epochs=arguments.m2_epochs, seed=seed, **fit)
    value = error(model.predict(models["vae"].encode(test_x)), test_labels)
    results["M1+M2"] = (value, time.perf_counter() - begun)
    return results


# One ingredient of Kingma et al. (2014)'s recipe changed at a time from a base M2 and
# M1+M2 (model options, fit options, epochs as a multiple of --ablation-epochs). Options the
# runner reads itself: alpha_factor scales the default alpha, 0.1 x all / labelled examples
# (50 for 100 labels in 50,000); m1 names the M1 recipe (M1_RECIPES); codes="active" keeps
# the M1 dimensions whose posterior means vary (std > 0.1 over 1,000 training images, as
# Kingma et al.'s code does), codes="drawn" trains on codes drawn from q(z|x) afresh each
# batch (their features); curve=N records the test and validation error every N epochs.
ABLATION = {
    "M2, the base": ("m2", {}, {}, 1),
    "M2, labelled_share='data' (the objective unbiased)": ("m2", {"labelled_share": "data"},
                                                            {}, 1),
    "M2, softplus activations (the paper's)": ("m2", {"activation": "softplus"}, {}, 1),
    "M2, alpha / 10": ("m2", {"alpha_factor": 0.1}, {}, 1),
    "M2, 3 x the epochs": ("m2", {}, {}, 3),
    "M1+M2, labelled_share='batch' (the default before)": (
        "m1+m2", {"labelled_share": "batch"}, {}, 1),
    "M1+M2, the base (labelled_share='data')": ("m1+m2", {}, {}, 1),
    "M1+M2, softplus activations (the paper's)": ("m1+m2", {"activation": "softplus"}, {}, 1),
    "M1+M2, alpha / 10": ("m1+m2", {"alpha_factor": 0.1}, {}, 1),
    "M1+M2, alpha x 10": ("m1+m2", {"alpha_factor": 10.0}, {}, 1),
    "M1+M2, 3 x the epochs": ("m1+m2", {}, {}, 3),
    "M1+M2, 10 x the epochs": ("m1+m2", {}, {}, 10),
    "M2, labelled_share='data', 3 x the epochs, no early stopping": (
        "m2", {"labelled_share": "data", "curve": 5}, {"patience": None, "restore_best": False},
        3),
    "M1+M2, 15 x the epochs, no early stopping": (
        "m1+m2", {"curve": 5}, {"patience": None, "restore_best": False}, 15),
    "M1+M2, the paper's M2 (300 softplus units, Adam 3e-4), 6 x the epochs": (
        "m1+m2", {"hidden": (300,), "classifier_hidden": (300,), "activation": "softplus",
                  "curve": 5}, {"learning_rate": 3e-4, "patience": None,
                                "restore_best": False}, 6),
    "M1+M2, only M1's active dimensions (the paper's)": ("m1+m2", {"codes": "active"}, {}, 1),
    "M1+M2, codes drawn from q(z|x) each batch (the paper's), 6 x the epochs": (
        "m1+m2", {"codes": "drawn", "curve": 5}, {"patience": None, "restore_best": False}, 6),
    "M1+M2, weight decay (AdamW 0.05), 6 x the epochs": (
        "m1+m2", {"curve": 5}, {"optimizer": "adamw", "weight_decay": 0.05, "patience": None,
                                "restore_best": False}, 6),
    "M1+M2, M1 trained on images binarized afresh each batch (the paper's)": (
        "m1+m2", {"m1": "binarized"}, {}, 1),
    "M2, weight decay (AdamW 0.05)": ("m2", {}, {"optimizer": "adamw", "weight_decay": 0.05},
                                      1),
}

# M1, the VAE whose codes M1+M2 classifies: the benchmark's (grey levels as Bernoulli means)
# and one trained on images binarized afresh each batch, as Kingma et al.'s M1 was.
M1_RECIPES = {"grey": {}, "binarized": {"batch_transform": torch.bernoulli}}


class DrawnCodesM2(M2):
    """M2 whose training rows are M1's posterior means and log-variances side by side: every
    training batch draws its codes from q(z|x) afresh, as Kingma et al.'s code does; validation
    and classification use the means (predict takes the same side-by-side rows)."""

    @property
    def width(self) -> int:
        return self.config.input_shape[0]

    @property
    def input_shape(self) -> tuple[int, ...]:  # the rows fit and predict take
        return (2 * self.width,)

    def batch_loss(self, batch, **options):
        mean, log_variance = batch.x.split(self.width, dim=1)
        if self.training:
            mean = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
        return super().batch_loss(batch.replace(x=mean), **options)

    def class_logits(self, x):
        return super().class_logits(x[:, :self.width] if x.shape[1] == 2 * self.width else x)


def errors_on(model, inputs: dict, data) -> tuple[float, float, float]:
    """M2's test and validation error (%) on ``inputs`` (images, or M1's code features), and
    its test error once each predicted class is renamed to the true class most of its test
    examples have: a diagnosis (it reads the test labels), which tells a classifier whose
    classes are digits under other names from one that has not found the digits."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        predicted = model.predict(inputs["test"])
        validation = error(model.predict(inputs["validation"]), data.validation.labels)
    model.train(was_training)
    renamed = sum(np.bincount(data.test.labels[predicted == value]).max()
                  for value in np.unique(predicted))
    return (error(predicted, data.test.labels), validation,
            float(100.0 * (1.0 - renamed / len(predicted))))


class ErrorCurve(Callback):
    """``errors_on``'s three errors every ``every`` epochs, of the weights as they are."""

    def __init__(self, every: int, inputs: dict, data):
        self.every, self.inputs, self.data, self.points = every, inputs, data, []

    def epoch_end(self, state, record):
        if record["epoch"] % self.every == 0:
            self.points.append([record["epoch"],
                                *errors_on(state.model, self.inputs, self.data)])


def m1_model(recipe: str, seed: int, data, x, arguments, fit: dict, cache: dict):
    """The seed's M1 for ``recipe``, trained once (kept in --m1-cache if given)."""
    if (recipe, seed) in cache:
        return cache[recipe, seed]
    name = ("m1-" if recipe == "grey" else f"m1-{recipe}-") + f"seed{seed}-epochs{arguments.epochs}"
    folder = None if arguments.m1_cache is None else arguments.m1_cache / name
    if folder is not None and folder.is_dir():
        cache[recipe, seed] = aevae.load(folder)
        return cache[recipe, seed]
    m1 = aevae.make("vae", input_shape=data.shape, latent_dim=50, hidden=(600, 600), seed=seed)
    m1.fit(x, validation=data.validation.x, epochs=arguments.epochs, seed=seed, out=folder,
           **fit, **M1_RECIPES[recipe])
    cache[recipe, seed] = m1
    return m1


def code_features(m1, codes: str, parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """M1's codes of each part (train, validation, test) as M2's input: the means (of the
    dimensions active on the first 1,000 training images, for codes="active"), or means and
    log-variances side by side (for DrawnCodesM2)."""
    if codes == "drawn":
        drawn = {}
        for part, values in parts.items():
            means, variances = m1.encode(values, return_variance=True)
            drawn[part] = np.concatenate([np.asarray(means), np.log(variances)], axis=1)
        return drawn
    means = {part: np.asarray(m1.encode(values)) for part, values in parts.items()}
    if codes == "active":
        keep = means["train"][:1000].std(axis=0) > 0.1
        if not keep.any():
            raise ValueError("M1 has no active dimension (std of the means > 0.1)")
        means = {part: values[:, keep] for part, values in means.items()}
    return means


def run_ablation(data, x, labels, arguments, fit: dict) -> None:
    """Each ABLATION row for each --ablation-seeds seed; resumable from labels_ablation.json."""
    path = arguments.results / "labels_ablation.json"

    def stored() -> list[dict]:
        return json.loads(path.read_text())["records"] if path.is_file() else []

    records = stored()
    done = {(r["name"], r["seed"]) for r in records}
    names = list(ABLATION)
    if arguments.ablation_rows is not None:
        names = [names[int(number)] for number in arguments.ablation_rows.split(",")]
    m1_models = {}
    for seed in (int(value) for value in arguments.ablation_seeds.split(",")):
        known = labelled_subset(labels, 10, seed)
        for name in names:
            kind, options, fit_options, multiple = ABLATION[name]
            if (name, seed) in done:
                continue
            options = dict(options)
            if "alpha_factor" in options:
                options["classification_weight"] = options.pop("alpha_factor") * float(
                    0.1 * len(x) / known.sum())
            every, recipe = options.pop("curve", None), options.pop("m1", "grey")
            codes = options.pop("codes", "mean")
            m2_options = {"latent_dim": 50, "hidden": (500,), "classifier_hidden": (500,),
                          "seed": seed, **options}
            epochs = arguments.ablation_epochs * multiple
            common = {"labelled_per_batch": 10, "epochs": epochs, "seed": seed, **fit,
                      **fit_options}
            if kind == "m2":
                inputs = {"train": x, "validation": data.validation.x, "test": data.test.x}
            else:
                m1 = m1_model(recipe, seed, data, x, arguments, fit, m1_models)
                inputs = code_features(m1, codes, {"train": x, "validation": data.validation.x,
                                                   "test": data.test.x})
            curve = ErrorCurve(every, inputs, data) if every else None
            begun = time.perf_counter()  # M1 is shared by the M1+M2 rows: not counted
            common["callbacks"] = [curve] if curve else []
            if kind == "m2":
                model = aevae.make("m2", input_shape=data.shape, **m2_options)
                model.fit(x, labels=labels, label_known=known, validation=data.validation.x,
                          **common)
            elif codes == "mean":
                model = fit_m1_m2(m1, x, labels=labels, label_known=known,
                                  m2_options=m2_options, validation=data.validation.x, **common)
            else:  # fit_m1_m2's M2, on other features of M1's codes
                model_class = DrawnCodesM2 if codes == "drawn" else M2
                width = inputs["train"].shape[1] // (2 if codes == "drawn" else 1)
                model = model_class(input_shape=(width,), **M1_M2_OPTIONS, **m2_options)
                model.fit(inputs["train"], labels=labels, label_known=known,
                          validation=inputs["validation"], **common)
            value, checked, renamed = errors_on(model, inputs, data)
            record = {"name": name, "seed": seed, "error": value,
                      "validation_error": checked, "renamed_error": renamed, "epochs": epochs,
                      "epochs_run": len(model.history_.epochs),
                      "seconds": time.perf_counter() - begun}
            if curve is not None:
                record["curve"] = curve.points
            print(f"seed {seed}, {name}: {value:.2f}% ({record['seconds']:.0f} s)", flush=True)
            # Re-read before writing: another invocation may be running other rows.
            records = [r for r in stored() if (r["name"], r["seed"]) != (name, seed)]
            records.append(record)
            atomic_write_json(path, {"settings": {
                "ablation_epochs": arguments.ablation_epochs, "m1_epochs": arguments.epochs,
                "threads": arguments.threads}, "records": records})
    records = stored()
    lines = ["# M2 and M1+M2 with 100 labels: one ingredient at a time", "",
             "Written by `benchmarks/labels.py --ablation`. MNIST, 10 labels per class, test "
             "error % (and on the 10,000 validation images, where recorded); each row changes "
             "one thing from the base M2 or M1+M2 (latent 50, one hidden layer of 500, "
             "ReLU, classifier 784-500-10 or 50-500-10, alpha = 0.1 N / labelled per labelled "
             "example, 10 labelled examples in every batch of 100, the labelled and unlabelled "
             "means weighed equally for M2 and by their shares of the data for M1+M2, Adam "
             "1e-3, early stopping on the validation bound with patience 10), "
             f"{arguments.ablation_epochs} epochs unless "
             f"the row says otherwise; M1 is the benchmark's VAE ({arguments.epochs} epochs). "
             "One CPU thread. Published with 100 labels (Kingma et al. 2014): M2 11.97%, "
             "M1+M2 3.33%.", "",
             "| variant | test error % | validation error % | seeds | epochs (run) | "
             "seconds per run |", "|---|---|---|---|---|---|"]
    for name in ABLATION:
        rows = [r for r in records if r["name"] == name]
        if not rows:
            continue
        values = [r["error"] for r in rows]
        spread = f" ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
        checked = [r["validation_error"] for r in rows if "validation_error" in r]
        checked_cell = f"{np.mean(checked):.2f}" if checked else "-"
        if checked and len(checked) < len(rows):
            checked_cell += f" ({len(checked)} of {len(rows)} seeds)"
        lines.append(f"| {name} | {np.mean(values):.2f}{spread} | {checked_cell} | {len(rows)} | "
                     f"{rows[0]['epochs']} ({np.mean([r['epochs_run'] for r in rows]):.0f}) | "
                     f"{np.mean([r['seconds'] for r in rows]):.0f} |")
    lines += ["", "Seconds were measured while up to five runs shared the two cores: read them as "
              "rough costs.", ""]
    curves = [(name, r) for name in ABLATION for r in records
              if r["name"] == name and r.get("curve")]
    if curves:
        marks = sorted({point[0] for _, r in curves for point in r["curve"]
                        if point[0] in (5, 10, 20, 30, 60, 100, 150)})
        lines += ["Learning curves of the rows trained without early stopping: test error % of "
                  "the weights at that epoch; the mean over the last five checkpoints (the "
                  "level a run settles at); and, at the last one, the test error once each "
                  "predicted class is renamed to the digit most of its test images show (a "
                  "diagnosis that reads the test labels: low when the classifier has found "
                  "the digits under other names).", "",
                  "| variant | seed | " + " | ".join(f"epoch {mark}" for mark in marks)
                  + " | last five | last, classes renamed |",
                  "|---|---|" + "---|" * (len(marks) + 2)]
        for name, r in curves:
            at = {point[0]: point[1] for point in r["curve"]}
            cells = [f"{at[mark]:.2f}" if mark in at else "" for mark in marks]
            tail = np.mean([point[1] for point in r["curve"][-5:]])
            last = r["curve"][-1]
            renamed = f"{last[3]:.2f}" if len(last) > 3 else "-"
            lines.append(f"| {name} | {r['seed']} | " + " | ".join(cells)
                         + f" | {tail:.2f} | {renamed} |")
        lines.append("")
    for kind, goal, published in (("M2", 12.0, 11.97), ("M1+M2", 4.0, 3.33)):
        best = {}
        for name in ABLATION:
            values = [r["error"] for r in records if r["name"] == name]
            if name.startswith(kind + ",") and len(values) >= 3:
                best[name] = float(np.mean(values))
        if best:
            name = min(best, key=best.get)
            verdict = "met" if best[name] <= goal else "not met"
            lines.append(f"Goal for {kind} (at most {goal:g}% over three seeds; the paper "
                         f"{published}%): **{verdict}**; the best three-seed row is "
                         f"\"{name}\" at {best[name]:.2f}%.")
    (arguments.results / "labels_ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# What makes two invocations' seeds comparable: records are kept only under the same values.
SETTING_KEYS = ("epochs", "m2_epochs", "limit", "device")


def main_settings(arguments, unlabelled: int) -> dict:
    return {"epochs": arguments.epochs,
            "m2_epochs": arguments.m2_epochs, "threads": arguments.threads,
            "limit": arguments.limit, "device": arguments.device, "labels_per_class": 10,
            "unlabelled": unlabelled,
            "networks": "AE/VAE (M1) 784-600-600-50; M2 500 hidden, latent 50, classifier "
            "784-500-10; CVAE 784-512-256-16",
            "training": "Adam 1e-3, batch 100 (10 labelled per M2 batch), early stopping on "
            "10,000 validation images (patience 10)"}


def run_main(data, x, labels, arguments, fit: dict) -> None:
    """Every method's error for each --seeds seed, then the CVAE; each seed's record is written
    to labels.json as it finishes, and a later invocation with the same settings skips it."""
    path = arguments.results / "labels.json"
    settings = main_settings(arguments, len(x))
    stored = json.loads(path.read_text()) if path.is_file() else {}
    if any(stored.get("settings", {}).get(key) != settings[key] for key in SETTING_KEYS):
        stored = {}  # another budget (or the older format): its figures do not mix with these
    records = stored.get("records", [])
    conditional = stored.get("conditional")

    def save() -> str:
        """labels.json and labels.md as they stand; returns the table."""
        result = {"settings": settings, "records": sorted(records, key=lambda r: r["seed"]),
                  "conditional": conditional}
        atomic_write_json(path, result)
        table = render_main(result)
        atomic_write_text(arguments.results / "labels.md", table)
        return table

    done = {r["seed"] for r in records}
    for seed in (int(value) for value in arguments.seeds.split(",")):
        if seed in done:
            continue
        record = {"seed": seed, "errors": {}, "seconds": {}}
        for name, (value, spent) in one_seed(seed, data, x, labels, arguments, fit).items():
            record["errors"][name], record["seconds"][name] = value, spent
            print(f"seed {seed}, {name}: {value:.2f}% error ({spent:.0f} s)", flush=True)
        records.append(record)
        save()

    if conditional is None:
        # A CVAE on all labels, its samples judged by the evaluation classifier.
        classifier = load_or_train_feature_classifier(
            "mnist", x, labels, user_cache_directory() / "classifiers", seed=0)
        cvae = aevae.make("cvae", input_shape=data.shape, latent_dim=16, hidden=(512, 256),
                          seed=0)
        begun = time.perf_counter()
        cvae.fit(x, labels=labels, epochs=arguments.epochs, seed=0, batch_size=100,
                 learning_rate=1e-3, progress=False, device=arguments.device)
        per_class = {}
        for target in range(10):
            samples = cvae.sample(1000, labels=target, seed=target)
            per_class[str(target)] = float(np.mean(
                classifier.probabilities(samples).argmax(1) == target))
        conditional = {"per_class": per_class, "mean": float(np.mean(list(per_class.values()))),
                       "classifier_test_accuracy": classifier.test_accuracy,
                       "epochs_run": len(cvae.history_.epochs),
                       "seconds": time.perf_counter() - begun}
    print(save())


def render_main(result: dict) -> str:
    """labels.md from labels.json's records."""
    settings, records = result["settings"], result["records"]
    seconds = sum(sum(r["seconds"].values()) for r in records)
    conditional = result.get("conditional")
    if conditional:
        seconds += conditional["seconds"]
    limit = "" if settings.get("limit") is None else f" (the first {settings['limit']:,})"
    lines = ["# MNIST with 100 labels, and samples of a chosen class", "",
             f"Written by `benchmarks/labels.py`. MNIST, 10 labels per class drawn with each "
             f"seed among the {settings['unlabelled']:,} training images{limit}, the rest "
             f"unlabelled; networks: {settings['networks']}; {settings['training']}; at most "
             f"{settings['epochs']} epochs for the AE, the VAE and the CVAE, "
             f"{settings['m2_epochs']} for M2 and M1+M2 (M2 on the VAE's codes). "
             f"{settings['threads']} CPU thread{'s' if settings['threads'] != 1 else ''} per "
             f"process, device {settings['device']}; {seconds / 3600:.1f} hours of run time. "
             "Published with 100 labels: Kingma et "
             "al. (2014). The paper trained M2 for 3,000 epochs; what each ingredient of its "
             "recipe does on this budget is in labels_ablation.md.", "",
             f"| MNIST, 100 labels | test error %, mean [95% interval] over {len(records)} "
             "seeds | std | per seed | published | minutes per seed |",
             "|---|---|---|---|---|---|"]
    names = list(records[0]["errors"]) if records else []
    for name in names:
        values = [r["errors"][name] for r in records]
        interval = t_interval(values)
        cell = f"{interval.mean:.2f}"
        if interval.low is not None:  # an error rate: the interval clipped to [0, 100]
            cell += f" [{max(interval.low, 0.0):.2f}, {min(interval.high, 100.0):.2f}]"
        deviation = interval.standard_deviation
        spread = "-" if deviation is None else f"{deviation:.2f}"
        published = PUBLISHED.get(name)
        minutes = np.mean([r["seconds"][name] for r in records]) / 60
        lines.append(f"| {name} | {cell} | {spread} | "
                     + ", ".join(f"{value:.2f}" for value in values)
                     + f" | {'-' if published is None else f'{published:.2f}'} | "
                     f"{minutes:.1f} |")
    if conditional:
        per_class = conditional["per_class"]
        lines += ["", "Conditional VAE on all the training labels (seed 0, "
                  f"{conditional['epochs_run']} epochs run): 1,000 samples of each requested "
                  "class, judged by the evaluation classifier (test accuracy "
                  f"{conditional['classifier_test_accuracy']:.4f}).", "",
                  "| CVAE: samples of the requested class | share |", "|---|---|",
                  f"| mean over the 10 classes | {conditional['mean']:.3f} |",
                  f"| lowest class (digit {min(per_class, key=per_class.get)}) | "
                  f"{min(per_class.values()):.3f} |"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=50, help="AE, VAE (M1), CVAE")
    parser.add_argument("--m2-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, help="train on the first N images (quick checks)")
    parser.add_argument("--device", default="auto",
                        help="device of the aevae fits: auto (default), cpu or cuda[:N]")
    parser.add_argument("--data-dir", default=None,
                        help="folder MNIST is read from (default: $AEVAE_DATA_DIR or aevae's "
                        "cache)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder for labels.{json,md} (default benchmarks/results)")
    parser.add_argument("--ablation", action="store_true",
                        help="run the M2 / M1+M2 ablation instead (labels_ablation.{json,md})")
    parser.add_argument("--ablation-seeds", default="0")
    parser.add_argument("--ablation-epochs", type=int, default=10)
    parser.add_argument("--m1-cache", type=Path, default=None,
                        help="with --ablation: keep each seed's M1 here and reuse it")
    parser.add_argument("--ablation-rows", default=None,
                        help="the ABLATION rows to run, by their numbers from 0 (default: all)")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    data = load_dataset("mnist", data_dir=arguments.data_dir,
                        validation_fraction=10000 / 60000, seed=0)
    x, labels = data.train.x[:arguments.limit], data.train.labels[:arguments.limit]
    fit = {"batch_size": 100, "learning_rate": 1e-3, "patience": 10, "progress": False,
           "device": arguments.device}
    if arguments.ablation:
        run_ablation(data, x, labels, arguments, fit)
        return
    run_main(data, x, labels, arguments, fit)


if __name__ == "__main__":
    main()
