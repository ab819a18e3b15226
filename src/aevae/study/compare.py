"""A first AE-versus-VAE comparison: matched networks, same data, same budget, same metrics.

Both models share every setting but the one the seeds argue about: the VAE's encoder emits a
Gaussian and pays a KL to the prior. Both are scored by the same metric groups.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data import load_dataset
from ..io import atomic_write_json
from ..metrics.evaluate import EvaluationSettings, evaluate
from ..models import make
from ..report.figures import save_image_grid

RESULTS_FILE = "results.json"
# The groups a quick comparison runs; anomaly detection trains a model per class, so it is left
# to `aevae evaluate`.
COMPARE_METRICS = ("reconstruction", "likelihood", "generation", "latent", "structure")


@dataclass
class CompareSettings:
    dataset: str = "digits"
    models: tuple[str, ...] = ("ae", "vae")
    latent_dim: int = 8
    hidden: tuple[int, ...] = (256, 128)
    network: str = "mlp"
    likelihood: str = "bernoulli"
    epochs: int = 150
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int | None = 20
    validation_fraction: float = 0.1
    importance_samples: int = 1000
    generated_samples: int = 2000
    seed: int = 0
    data_dir: str | None = None


# (label, metric group, path inside the group's result, format)
TABLE_ROWS = [
    ("reconstruction -log p(x|z) [nats]", "reconstruction",
     ("negative_log_likelihood_of_reconstruction",), "{:.2f}"),
    ("reconstruction MSE [per pixel]", "reconstruction", ("mse", "value"), "{:.4f}"),
    ("reconstruction PSNR [dB]", "reconstruction", ("psnr", "value"), "{:.2f}"),
    ("ELBO [nats]", "likelihood", ("elbo",), "{:.2f}"),
    ("log p(x), importance sampled [nats]", "likelihood", ("log_likelihood",), "{:.2f}"),
    ("prior samples: Frechet distance", "generation", ("prior", "frechet_distance", "value"),
     "{:.2f}"),
    ("prior samples: precision", "generation", ("prior", "precision_recall", "precision"),
     "{:.3f}"),
    ("prior samples: recall", "generation", ("prior", "precision_recall", "recall"), "{:.3f}"),
    ("prior samples: classifier confidence", "generation",
     ("prior", "classifier", "mean_confidence"), "{:.3f}"),
    ("ex-post GMM samples: Frechet distance", "generation",
     ("ex_post", "frechet_distance", "value"), "{:.2f}"),
    ("linear probe, 10 labels per class [accuracy]", "structure",
     ("linear_probe", "accuracy", "10"), "{:.3f}"),
    ("k-NN, all labels [accuracy]", "structure", ("knn", "accuracy", "all"), "{:.3f}"),
    ("k-means clustering [accuracy]", "structure", ("clustering", "accuracy"), "{:.3f}"),
    ("active units", "latent", ("active_units", "value"), "{:d}"),
    ("codes vs prior: MMD^2 (IMQ kernel)", "latent", ("prior_mismatch", "mmd_imq"), "{:.4f}"),
    ("prior draws in latent holes [fraction]", "latent", ("prior_mismatch", "hole_fraction"),
     "{:.3f}"),
]


def lookup(result: dict, group: str, path: tuple[str, ...]):
    value = result["metrics"].get(group)
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def table(results: dict[str, dict]) -> list[tuple[str, list[str]]]:
    """Rows of (label, one formatted cell per model); 'n/a' where a model has no such number."""
    rows = []
    for label, group, path, form in TABLE_ROWS:
        cells = []
        for result in results.values():
            value = lookup(result, group, path)
            if value is None:
                cells.append("n/a")
            else:
                cells.append(form.format(int(value) if form == "{:d}" else float(value)))
        if any(cell != "n/a" for cell in cells):
            rows.append((label, cells))
    return rows


def compare(settings: CompareSettings, out: str | Path, progress: bool = False) -> dict:
    """Train each model of ``settings.models`` with matched networks; evaluate; write
    ``results.json`` and image grids into ``out``. Returns the results."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # The data layer carves the validation split (datasets with their own keep it).
    dataset = load_dataset(settings.dataset, data_dir=settings.data_dir,
                           validation_fraction=settings.validation_fraction, seed=settings.seed)
    train, validation = dataset.train, dataset.validation
    evaluation = EvaluationSettings(
        importance_samples=settings.importance_samples,
        generated_samples=settings.generated_samples,
        seed=settings.seed,
    )
    results: dict[str, dict] = {}
    test_x = (dataset.test or validation).x
    shown = test_x[:32]
    for name in settings.models:
        model = make(
            name, input_shape=dataset.shape, latent_dim=settings.latent_dim,
            network=settings.network, hidden=settings.hidden, likelihood=settings.likelihood,
            seed=settings.seed,
        )
        model.fit(
            train.x, validation=validation.x, epochs=settings.epochs,
            batch_size=settings.batch_size, learning_rate=settings.learning_rate,
            seed=settings.seed, patience=settings.patience, out=out / name,
            batch_transform=dataset.binarize if dataset.dynamic_binarization else None,
            progress=progress,
        )
        result = evaluate(model, dataset, metrics=list(COMPARE_METRICS), settings=evaluation)
        result["training"] = {
            "epochs_run": len(model.history_.epochs),
            "best_epoch": model.history_.best_epoch,
            "seconds": sum(record["seconds"] for record in model.history_.epochs),
        }
        results[name] = result
        atomic_write_json(out / name / "metrics.json", result)
        save_image_grid(np.concatenate([shown, model.reconstruct(shown)]),
                        out / f"{name}_reconstructions.png", columns=len(shown) // 2,
                        title=f"{name}: test images (top) and reconstructions (bottom)")
        save_image_grid(model.sample(64, seed=settings.seed), out / f"{name}_prior_samples.png",
                        title=f"{name}: decoded draws from the prior N(0, I)")
        save_image_grid(model.interpolate(test_x[:8], test_x[8:16], steps=10)
                        .reshape(-1, *dataset.shape), out / f"{name}_interpolations.png",
                        columns=10, title=f"{name}: straight lines between test codes")
    summary = {
        "settings": asdict(settings),
        "dataset": dataset.name,
        "results": results,
        "table": [{"metric": label, **dict(zip(results, cells))}
                  for label, cells in table(results)],
    }
    atomic_write_json(out / RESULTS_FILE, summary)
    return summary
