"""Train an AE and a VAE with the same networks on MNIST, run every metric group on both, and
write a JSON plus a markdown table side by side (AE | VAE) with the settings used.

Setting (the defaults): dynamically binarized MNIST (``mnist-dynamic``: each training batch is
drawn anew as pixel ~ Bernoulli(grey level); the 10,000 test images are binarized once with a
fixed seed), Bernoulli decoder, 784-512-16 MLP (ReLU) encoder and decoder for both models, Adam
1e-3, batch 100, 10 epochs, seed 0; importance-sampled log p(x) with k = 5000 on all 10,000 test
images; every other setting is ``EvaluationSettings``' default unless changed below.

    nohup python benchmarks/evaluate_mnist.py > /tmp/evaluate_mnist.log 2>&1 &

Writes benchmarks/results/evaluate_mnist.json (per-example arrays left out) and
benchmarks/results/evaluate_mnist.md. Takes about half an hour on two busy CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

# Idle OpenMP threads sleep rather than spin (see likelihood_throughput.py); set before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import aevae  # noqa: E402
from aevae.data import load_dataset  # noqa: E402
from aevae.metrics.evaluate import METRIC_GROUPS, EvaluationSettings, evaluate  # noqa: E402
from aevae.study.tasks import lookup  # noqa: E402
from machine import keep_heap_resident  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# (label, group, path inside the group's result, format)
ROWS = [
    ("**Reconstruction** (posterior-mean codes)", None, None, None),
    ("reconstruction term -log p(x\\|z) [nats] (VAE: one z ~ q(z\\|x))", "reconstruction",
     ("negative_log_likelihood_of_reconstruction",), "{:.2f}"),
    ("BCE [nats per image]", "reconstruction", ("bce", "value"), "{:.2f}"),
    ("MSE [per pixel]", "reconstruction", ("mse", "value"), "{:.4f}"),
    ("PSNR [dB]", "reconstruction", ("psnr", "value"), "{:.2f}"),
    ("**Likelihood**", None, None, None),
    ("ELBO [nats]", "likelihood", ("elbo",), "{:.2f}"),
    ("IWAE bound, k = 5 [nats]", "likelihood", ("importance_weighted_bounds", "5"), "{:.2f}"),
    ("IWAE bound, k = 50 [nats]", "likelihood", ("importance_weighted_bounds", "50"), "{:.2f}"),
    ("log p(x), importance sampled, k = 5000 [nats]", "likelihood", ("log_likelihood",),
     "{:.2f}"),
    ("standard error of log p(x) over images", "likelihood", ("log_likelihood_standard_error",),
     "{:.2f}"),
    ("bits per dimension", "likelihood", ("bits_per_dimension",), "{:.4f}"),
    ("**Latent space**", None, None, None),
    ("active units (of 16)", "latent", ("active_units", "value"), "{:d}"),
    ("KL(q(z\\|x) \\|\\| N(0, I)) [nats]", "latent", ("kl_to_standard_normal", "total"), "{:.2f}"),
    ("I(x; z) [nats]", "latent", ("mutual_information", "value"), "{:.2f}"),
    ("codes vs prior: MMD² (IMQ)", "latent", ("prior_mismatch", "mmd_imq"), "{:.4f}"),
    ("codes vs prior: KL of fitted Gaussian [nats]", "latent", ("prior_mismatch", "gaussian_kl"),
     "{:.2f}"),
    ("holes: Gaussian probes of the codes' region off the codes "
     "[fraction; about 0.05 for Gaussian codes]",
     "latent", ("holes", "value"), "{:.3f}"),
    ("**Generation** (classifier features)", None, None, None),
    ("prior samples: Fréchet distance", "generation", ("prior", "frechet_distance", "value"),
     "{:.2f}"),
    ("prior samples: precision", "generation", ("prior", "precision_recall", "precision"),
     "{:.3f}"),
    ("prior samples: recall", "generation", ("prior", "precision_recall", "recall"), "{:.3f}"),
    ("prior samples: density", "generation", ("prior", "density_coverage", "density"), "{:.3f}"),
    ("prior samples: coverage", "generation", ("prior", "density_coverage", "coverage"),
     "{:.3f}"),
    ("prior samples: classifier confidence", "generation",
     ("prior", "classifier", "mean_confidence"), "{:.3f}"),
    ("prior samples: label entropy / log 10", "generation",
     ("prior", "classifier", "normalised_marginal_entropy"), "{:.3f}"),
    ("ex-post GMM samples: Fréchet distance", "generation",
     ("ex_post", "frechet_distance", "value"), "{:.2f}"),
    ("ex-post GMM samples: precision", "generation",
     ("ex_post", "precision_recall", "precision"), "{:.3f}"),
    ("ex-post GMM samples: recall", "generation", ("ex_post", "precision_recall", "recall"),
     "{:.3f}"),
    ("ex-post GMM samples: density", "generation", ("ex_post", "density_coverage", "density"),
     "{:.3f}"),
    ("ex-post GMM samples: coverage", "generation",
     ("ex_post", "density_coverage", "coverage"), "{:.3f}"),
    ("ex-post GMM samples: classifier confidence", "generation",
     ("ex_post", "classifier", "mean_confidence"), "{:.3f}"),
    ("ex-post GMM samples: label entropy / log 10", "generation",
     ("ex_post", "classifier", "normalised_marginal_entropy"), "{:.3f}"),
    ("**Structure** (codes; train split -> test split)", None, None, None),
    ("linear probe, 10 labels per class", "structure", ("linear_probe", "accuracy", "10"),
     "{:.3f}"),
    ("linear probe, 100 labels per class", "structure", ("linear_probe", "accuracy", "100"),
     "{:.3f}"),
    ("linear probe, all labels", "structure", ("linear_probe", "accuracy", "all"), "{:.3f}"),
    ("5-NN, 10 labels per class", "structure", ("knn", "accuracy", "10"), "{:.3f}"),
    ("5-NN, 100 labels per class", "structure", ("knn", "accuracy", "100"), "{:.3f}"),
    ("5-NN, all labels", "structure", ("knn", "accuracy", "all"), "{:.3f}"),
    ("k-means accuracy (Hungarian)", "structure", ("clustering", "accuracy"), "{:.3f}"),
    ("k-means NMI", "structure", ("clustering", "nmi"), "{:.3f}"),
    ("k-means ARI", "structure", ("clustering", "ari"), "{:.3f}"),
    ("silhouette of the labels", "structure", ("silhouette", "value"), "{:.3f}"),
    ("**Interpolation** (straight lines between test codes)", None, None, None),
    ("smoothness: largest / mean step (1 = even)", "interpolation", ("smoothness", "value"),
     "{:.3f}"),
    ("midpoints: distance to nearest training image (1 = typical)", "interpolation",
     ("midpoint_realism", "value"), "{:.3f}"),
    ("endpoints (reconstructions), same measure", "interpolation",
     ("endpoint_realism", "value"), "{:.3f}"),
    ("midpoints: classifier confidence", "interpolation",
     ("midpoint_realism", "classifier", "mean_confidence"), "{:.3f}"),
    ("**Anomaly detection** (one-class, mean AUROC over the 10 classes)", None, None, None),
    ("score: reconstruction error", "anomaly", ("auroc", "reconstruction_error", "value"),
     "{:.3f}"),
    ("score: negative ELBO", "anomaly", ("auroc", "negative_elbo", "value"), "{:.3f}"),
    ("score: negative log p(x), k = 100", "anomaly",
     ("auroc", "negative_log_likelihood", "value"), "{:.3f}"),
    ("**Denoising** (PSNR of reconstruct(corrupted) vs clean, dB)", None, None, None),
    ("clean input", "denoising", ("clean_reconstruction_psnr",), "{:.2f}"),
]






def denoising_rows(results: dict) -> list[tuple]:
    """One row per corruption, the corrupted input's own PSNR in the label."""
    first = next(iter(results.values()))["metrics"].get("denoising", {})
    rows = []
    for kind, label in (("gaussian_noise", "Gaussian noise, std"), ("masking", "masked, share")):
        for level, entry in first.get(kind, {}).items():
            rows.append((f"{label} {level} (corrupted input: {entry['corrupted_psnr']:.2f})",
                         "denoising", (kind, level, "value"), "{:.2f}"))
    return rows


def strip_per_example(value):
    """The result without per-example arrays (they would make the file megabytes)."""
    if isinstance(value, dict):
        return {key: strip_per_example(item) for key, item in value.items()
                if key != "per_example"}
    return value


def markdown(results: dict, settings: EvaluationSettings, training: dict, options: dict) -> str:
    names = list(results)
    lines = [
        "| metric | " + " | ".join(name.upper() for name in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, group, path, form in ROWS + denoising_rows(results):
        if group is None:
            lines.append(f"| {label} |" + " |" * len(names))
            continue
        cells = []
        for name in names:
            value = lookup(results[name]["metrics"], (group, *path))
            if value is None:
                cells.append("n/a")
            else:
                cells.append(form.format(int(value) if form == "{:d}" else float(value)))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    first = results[names[0]]
    classifier = lookup((results["vae"] if "vae" in results else first)["metrics"],
                        ("generation", "feature_classifier")) or {}
    anomaly = lookup(first["metrics"], ("anomaly", "training")) or {}
    settings_lines = [
        "",
        f"Data: `{options['data']}`: training batches binarized anew (pixel ~ Bernoulli(grey "
        f"level)), {first['examples']} test images binarized once with a fixed seed. Both "
        f"models: 784-{'-'.join(map(str, options['hidden']))}-{options['latent_dim']} MLP "
        f"encoder and decoder (ReLU), Bernoulli decoder, Adam {options['learning_rate']:g}, "
        f"batch {options['batch_size']}, {options['epochs']} epochs, seed {options['seed']}. "
        "The AE has no likelihood, hence n/a.",
        "",
        f"Settings: log p(x) with k = {settings.importance_samples} importance samples on "
        f"{settings.likelihood_examples or first['examples']} test images (IWAE bounds with "
        f"their own samples); {settings.generated_samples} generated samples from the prior "
        f"N(0, I) and from a {settings.ex_post_components}-component full-covariance Gaussian "
        "mixture fitted to the training codes (Ghosh et al. 2020), compared with "
        f"{settings.reference_images} grey-level training images in the feature space of a "
        f"small CNN classifier (test accuracy {classifier.get('test_accuracy', float('nan')):.3f})"
        "; precision/recall k = 3, density/coverage k = 5. Structure: codes = posterior means "
        "(VAE) or encoder outputs (AE), probes trained on the 60,000 training codes, tested on "
        "the test codes; k-means with 10 clusters (10 restarts); silhouette on "
        f"{settings.silhouette_examples} test codes. Interpolation: "
        f"{settings.interpolation_pairs} random test pairs, {settings.interpolation_steps} "
        "steps. Anomaly: one-class protocol, a fresh copy of each model trained per normal "
        f"class for {anomaly.get('epochs')} epochs on at most "
        f"{anomaly.get('max_examples_per_class')} images of that class, scoring all test "
        f"images; negative log p(x) with k = {settings.anomaly_importance_samples}. Denoising: "
        "Gaussian noise clipped to [0, 1], masking sets pixels to 0; the corrupted input's "
        f"own PSNR is in the label. Seed {settings.seed} everywhere.",
        "",
        f"Training and evaluation time ({options['threads']} torch thread(s), "
        f"OMP_WAIT_POLICY={options['omp_wait_policy']}, glibc heap kept resident: "
        f"{options['heap_kept_resident']}; a 2-core machine shared with other work): "
        + "; ".join(
            f"{name.upper()} {training[name]['seconds'] / 60:.1f} min training "
            f"(final training loss {training[name]['final_loss']:.2f} nats), "
            f"{sum(results[name]['seconds'].values()) / 60:.1f} min evaluation "
            f"(log p(x) {results[name]['seconds'].get('likelihood', 0) / 60:.1f} min)"
            for name in names
        )
        + ".",
    ]
    return "\n".join(lines + settings_lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist-dynamic")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--likelihood-examples", type=int, help="default: all test images")
    parser.add_argument("--anomaly-epochs", type=int, default=10)
    parser.add_argument("--max-examples", type=int, help="cap on test images (quick runs)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine a second "
                        "thread made training 3x slower and the estimator no faster)")
    parser.add_argument("--out", default=str(RESULTS / "evaluate_mnist"),
                        help="path stem of the .json and .md written")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    heap_resident = keep_heap_resident()
    options = {
        "data": arguments.data, "epochs": arguments.epochs, "batch_size": arguments.batch_size,
        "learning_rate": arguments.learning_rate, "latent_dim": arguments.latent_dim,
        "hidden": tuple(arguments.hidden), "seed": arguments.seed,
        "threads": arguments.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "heap_kept_resident": heap_resident,
    }
    dataset = load_dataset(arguments.data, download=False)
    settings = EvaluationSettings(
        importance_samples=arguments.importance_samples,
        likelihood_examples=arguments.likelihood_examples,
        anomaly_training_epochs=arguments.anomaly_epochs,
        max_examples=arguments.max_examples,
        seed=arguments.seed,
    )
    print(f"{dataset!r}; {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f}",
          flush=True)
    results, training = {}, {}
    for name in ("ae", "vae"):
        model = aevae.make(name, input_shape=dataset.shape, latent_dim=arguments.latent_dim,
                           hidden=tuple(arguments.hidden), likelihood="bernoulli",
                           seed=arguments.seed)
        started = time.perf_counter()
        model.fit(dataset.train.x, epochs=arguments.epochs, batch_size=arguments.batch_size,
                  learning_rate=arguments.learning_rate, seed=arguments.seed,
                  batch_transform=dataset.binarize if dataset.dynamic_binarization else None,
                  progress=False)
        training[name] = {
            "seconds": time.perf_counter() - started,
            "final_loss": model.history_.epochs[-1]["train_loss"],
            "epochs": arguments.epochs,
        }
        print(f"{name}: trained {arguments.epochs} epochs in {training[name]['seconds']:.0f} s, "
              f"training loss {training[name]['final_loss']:.2f}", flush=True)
        merged = None
        for group in METRIC_GROUPS:  # one group at a time, to log progress
            result = evaluate(model, dataset, metrics=[group], settings=settings)
            if merged is None:
                merged = result
            else:
                merged["metrics"].update(result["metrics"])
                merged["seconds"].update(result["seconds"])
            print(f"{name}: {group} in {result['seconds'][group]:.0f} s "
                  f"(load average {os.getloadavg()[0]:.2f})", flush=True)
        results[name] = merged
    out = Path(arguments.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "options": options,
        "settings": asdict(settings),
        "training": training,
        "results": {name: strip_per_example(result) for name, result in results.items()},
        "note": "per-example arrays are left out of this file",
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    table = markdown(results, settings, training, options)
    out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
