"""Model adapters: evaluate a trained model on a dataset with any set of metric groups.

Each group is a function ``(context) -> dict`` registered by name; it pulls the arrays it needs
(test data, codes, samples, a feature classifier) from the shared context, which computes each
of them once, then calls the pure cores. Every result echoes its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import Dataset, Split
from ..models.base import Autoencoder
from .classifier import load_or_train_feature_classifier
from .generation import sample_quality
from .latent import active_units, kl_per_dimension, mutual_information, prior_mismatch
from .likelihood import likelihood_report
from .reconstruction import bce, mse, psnr


@dataclass
class EvaluationSettings:
    importance_samples: int = 5000  # k for the importance-sampled log p(x) (Burda et al.)
    likelihood_examples: int | None = None  # None: the whole evaluation split
    generated_samples: int = 10000  # prior / ex-post samples for sample-quality metrics
    ex_post_components: int = 10  # Gaussian mixture fitted to training codes (Ghosh et al.)
    max_examples: int | None = None  # cap on evaluation examples (None: all)
    seed: int = 0
    cache_dir: str | None = None  # feature-classifier cache; None: the user cache directory


@dataclass
class EvaluationContext:
    model: Autoencoder
    dataset: Dataset
    settings: EvaluationSettings
    _cache: dict = field(default_factory=dict)

    def once(self, key: str, compute: Callable):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def evaluation_split(self) -> Split:
        """The test split, else validation, else training data (said in the result)."""
        split = self.dataset.test or self.dataset.validation or self.dataset.train
        if self.settings.max_examples is not None and len(split.x) > self.settings.max_examples:
            labels = None if split.labels is None else split.labels[: self.settings.max_examples]
            split = Split(split.x[: self.settings.max_examples], labels)
        return split

    @property
    def split_name(self) -> str:
        for name in ("test", "validation", "train"):
            if getattr(self.dataset, name) is not None:
                return name
        return "train"

    def evaluation_x(self) -> np.ndarray:
        """Evaluation data as the model sees it (binarized once, with the seed, if dynamic)."""

        def make():
            x = self.evaluation_split.x
            if self.dataset.dynamic_binarization:
                generator = torch.Generator().manual_seed(self.settings.seed)
                x = self.dataset.binarize(torch.from_numpy(x), generator=generator).numpy()
            return x

        return self.once("evaluation_x", make)

    def codes(self, split: str = "evaluation") -> np.ndarray:
        def make():
            x = self.evaluation_x() if split == "evaluation" else self.dataset.train.x
            return self.model.encode(x)

        return self.once(f"codes:{split}", make)

    def classifier(self):
        def make():
            train = self.dataset.train
            if train.labels is None:
                return None
            cache = Path(self.settings.cache_dir) if self.settings.cache_dir else _cache_dir()
            return load_or_train_feature_classifier(
                self.dataset.name, train.x, train.labels, cache, seed=self.settings.seed
            )

        return self.once("classifier", make)


def _cache_dir() -> Path:
    # The data directory may be read-only (a shared copy); classifiers are the user's cache.
    from ..data import user_cache_directory

    return user_cache_directory() / "classifiers"


METRIC_GROUPS: dict[str, tuple[str, Callable[[EvaluationContext], dict]]] = {}


def metric_group(name: str, description: str):
    def register(function):
        METRIC_GROUPS[name] = (description, function)
        return function

    return register


@metric_group("reconstruction", "MSE, BCE and PSNR of reconstructions (posterior mean codes)")
def _reconstruction(context: EvaluationContext) -> dict:
    x = context.evaluation_x()
    reconstruction = context.model.reconstruct(x)
    terms = context.model.loss_terms(x)
    result = {
        "mse": mse(x, reconstruction),
        "psnr": psnr(x, reconstruction),
        "negative_log_likelihood_of_reconstruction": float(np.mean(terms["reconstruction"])),
        "likelihood": context.model.config.likelihood,
    }
    if np.min(x) >= 0 and np.max(x) <= 1:
        result["bce"] = bce(x, np.clip(reconstruction, 0, 1))
    return result


@metric_group("likelihood", "ELBO, importance-sampled log p(x) (k samples), bits per dimension")
def _likelihood(context: EvaluationContext) -> dict:
    if not context.model.has_likelihood:
        return {
            "available": False,
            "reason": f"{context.model.name} is deterministic: it defines no likelihood p(x)",
        }
    x = context.evaluation_x()
    if context.settings.likelihood_examples is not None:
        x = x[: context.settings.likelihood_examples]
    report = likelihood_report(
        context.model, x, k=context.settings.importance_samples, seed=context.settings.seed
    )
    return {"available": True, **report}


@metric_group("latent", "active units, KL per dimension, I(x;z), aggregate posterior vs prior")
def _latent(context: EvaluationContext) -> dict:
    model, seed = context.model, context.settings.seed
    x = context.evaluation_x()
    codes = context.codes()
    result = {
        "active_units": active_units(codes),
        "prior_mismatch": prior_mismatch(codes, seed=seed),
    }
    if model.has_likelihood:
        means, variances = model.encode(x, return_variance=True)
        result["kl_per_dimension"] = kl_per_dimension(means, variances)
        result["mutual_information"] = mutual_information(means, variances, seed=seed)
    return result


def _samples(context: EvaluationContext, source: str) -> np.ndarray:
    settings = context.settings
    if source == "prior":
        return context.model.sample(settings.generated_samples, seed=settings.seed)
    from ..ex_post import ExPostSampler

    sampler = ExPostSampler().fit(
        context.model,
        context.dataset.train.x,
        components=settings.ex_post_components,
        seed=settings.seed,
    )
    return sampler.sample(settings.generated_samples, seed=settings.seed)


@metric_group(
    "generation",
    "sample quality in a trained classifier's feature space: Fréchet "
    "distance, precision/recall, density/coverage, confidence (prior and ex-post)",
)
def _generation(context: EvaluationContext) -> dict:
    classifier = context.classifier()
    if classifier is None:
        return {"available": False, "reason": "the dataset has no labels to train a classifier on"}
    real = context.once("real_features", lambda: classifier.features(context.evaluation_x()))
    result = {
        "available": True,
        "feature_classifier": {
            "test_accuracy": classifier.test_accuracy,
            "architecture": classifier.config.get("architecture"),
        },
        "generated_samples": context.settings.generated_samples,
    }
    for source in ("prior", "ex_post"):
        try:
            samples = _samples(context, source)
        except ImportError:
            continue
        result[source] = sample_quality(
            real,
            classifier.features(samples),
            classifier.probabilities(samples),
            seed=context.settings.seed,
        )
    return result


def available_metric_groups() -> list[tuple[str, str]]:
    return [(name, description) for name, (description, _) in METRIC_GROUPS.items()]


def evaluate(
    model: Autoencoder,
    dataset: Dataset,
    metrics: list[str] | None = None,
    settings: EvaluationSettings | None = None,
) -> dict:
    """Run the named metric groups (default: all) and return a JSON-ready dict."""
    settings = settings or EvaluationSettings()
    names = list(METRIC_GROUPS) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in METRIC_GROUPS]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRIC_GROUPS)}"
        )
    model.eval()
    context = EvaluationContext(model, dataset, settings)
    results = {name: METRIC_GROUPS[name][1](context) for name in names}
    return {
        "model": model.name,
        "dataset": dataset.name,
        "split": context.split_name,
        "examples": int(len(context.evaluation_split.x)),
        "settings": asdict(settings),
        "metrics": results,
    }
