"""Model adapters: evaluate a trained model on a dataset with any set of metric groups.

Each group is a function ``(context) -> dict`` registered by name; it pulls the arrays it needs
(test data, codes, samples, a feature classifier) from the shared context, which computes each
of them once, then calls the pure cores. Every result echoes its settings, and every random
choice is drawn from ``settings.seed``, so the same call gives the same numbers twice.

Groups: reconstruction, likelihood, latent, generation, structure, interpolation, anomaly,
denoising (``available_metric_groups()`` lists them with one line each).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import numbers
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checks import is_whole
from ..data import Dataset, Split
from ..models.base import Autoencoder
from ._utils import mean_spacing
from .anomaly import per_class_auroc
from .classifier import load_or_train_feature_classifier
from .denoising import add_gaussian_noise, denoising_psnr, random_mask
from .generation import ReferenceSet, sample_quality
from .interpolation import interpolation_smoothness, midpoint_realism
from .latent import (
    active_units,
    gaussian_probes,
    kl_to_standard_normal,
    latent_holes,
    mutual_information,
    prior_mismatch,
)
from .likelihood import (
    DEFAULT_MAX_ROWS,
    bits_per_dimension,
    likelihood_report,
    log_likelihood_estimate,
)
from .reconstruction import bce, mse, mse_per_example, psnr
from .structure import clustering, knn_accuracy, linear_probe_accuracy, silhouette


def random_subset(count: int, size: int, seed, stream: int | None = None) -> np.ndarray:
    """Sorted indices of a seeded random subset: the first N of a test file can be biased
    (binarized MNIST's test file is sorted by class). ``stream`` gives a group its own draw."""
    generator = np.random.default_rng(seed if stream is None else [seed, stream])
    return np.sort(generator.permutation(count)[:size])


@dataclass
class EvaluationSettings:
    # likelihood
    importance_samples: int = 5000  # k for the importance-sampled log p(x) (Burda et al.)
    likelihood_examples: int | None = None  # None: the whole split, else a seeded random subset
    bound_samples: tuple[int, ...] = (1, 5, 50)  # small k for the reported IWAE_k bounds
    max_rows: int = DEFAULT_MAX_ROWS  # decoder rows live at once in the estimator
    # generation
    generated_samples: int = 10000  # prior / ex-post samples for sample-quality metrics
    ex_post_components: int = 10  # Gaussian mixture fitted to training codes (Ghosh et al.)
    # every group
    max_examples: int | None = None  # cap on evaluation examples: a seeded random subset
    # cap on the training examples read (training codes, ex-post mixture, feature classifier,
    # structure's probes, manipulation's class centres): a seeded random subset
    max_train_examples: int | None = None
    classifier_min_steps: int = 600  # the feature classifier's least Adam steps
    seed: int = 0
    cache_dir: str | None = None  # feature-classifier cache; None: the user cache directory
    # structure
    labels_per_class: tuple[int | None, ...] = (10, 100, None)  # None: all labels
    knn_neighbours: int = 5
    silhouette_examples: int | None = 5000
    # interpolation
    interpolation_pairs: int = 200
    interpolation_steps: int = 10
    reference_images: int = 10000  # training images the midpoints are compared with
    # anomaly: 0 epochs scores with the given model, which is NOT the one-class protocol
    anomaly_training_epochs: int = 10
    anomaly_training_examples: int = 2000  # per normal class, drawn at random
    anomaly_batch_size: int = 100
    anomaly_importance_samples: int = 100  # k of the log p(x) anomaly score
    anomaly_classes: int | None = None  # None: every class in turn; else a seeded choice
    # disentanglement (data with known factors): Locatello et al. 2019's sizes
    disentanglement_train_points: int = 10000  # beta-VAE/FactorVAE training points, MIG, ...
    disentanglement_test_points: int = 5000  # their evaluation / test points
    disentanglement_dci_trees: int = 100  # boosting stages of DCI's GradientBoostingClassifier
    # manipulation (labelled data): class-vector edits and variations of one input
    manipulation_examples: int = 1000  # evaluation examples edited
    variation_examples: int = 200  # inputs whose variations are drawn
    variations: int = 8  # variations per input
    variation_input_noise: float = 0.1  # deterministic models' only source of variation
    # imputation: entries missing completely at random in the evaluation examples
    missing_fractions: tuple[float, ...] = (0.2, 0.5)
    imputation_examples: int = 1000
    # denoising
    noise_levels: tuple[float, ...] = (0.1, 0.3, 0.5)  # Gaussian noise std
    mask_fractions: tuple[float, ...] = (0.25, 0.5)  # share of pixels set to 0

    def __post_init__(self):
        # Refused here, by name: a zero, a fraction or a string deep in a metric group either
        # crashes there after the model's other groups have run, or gives a wrong figure.
        for name, low in _COUNTS.items():
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_COUNTS:
                continue
            if not is_whole(value) or value < low:
                allowed = " or None" if name in _OPTIONAL_COUNTS else ""
                raise ValueError(f"EvaluationSettings.{name} must be a whole number of at "
                                 f"least {low}{allowed}, got {value!r}")
        self.bound_samples = _sequence(self, "bound_samples", lambda k: is_whole(k) and k >= 1,
                                       "whole numbers of at least 1")
        self.labels_per_class = _sequence(
            self, "labels_per_class", lambda n: n is None or (is_whole(n) and n >= 1),
            "whole numbers of at least 1, or None for every label")
        self.noise_levels = _sequence(self, "noise_levels", lambda s: _real(s) and s > 0,
                                      "positive noise deviations")
        for name in ("missing_fractions", "mask_fractions"):
            setattr(self, name, _sequence(self, name, lambda f: _real(f) and 0 < f < 1,
                                          "fractions between 0 and 1, both left out"))
        if not _real(self.variation_input_noise) or self.variation_input_noise < 0:
            raise ValueError("EvaluationSettings.variation_input_noise must be a finite number "
                             f"of at least 0, got {self.variation_input_noise!r}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise ValueError("EvaluationSettings.cache_dir must be a folder path or None, got "
                             f"{self.cache_dir!r}")


# Least value of every count; those in _OPTIONAL_COUNTS may also be None.
_COUNTS = {"importance_samples": 1, "likelihood_examples": 1, "max_rows": 1,
           "generated_samples": 2, "ex_post_components": 1, "max_examples": 2,
           "max_train_examples": 2, "classifier_min_steps": 0, "seed": 0,
           "knn_neighbours": 1, "silhouette_examples": 2, "interpolation_pairs": 1,
           "interpolation_steps": 1, "reference_images": 1, "anomaly_training_epochs": 0,
           "anomaly_training_examples": 1, "anomaly_batch_size": 1,
           "anomaly_importance_samples": 1, "anomaly_classes": 1,
           "disentanglement_train_points": 2, "disentanglement_test_points": 2,
           "disentanglement_dci_trees": 1, "manipulation_examples": 1, "variation_examples": 1,
           "variations": 1, "imputation_examples": 1}
_OPTIONAL_COUNTS = {"likelihood_examples", "max_examples", "max_train_examples",
                    "silhouette_examples", "anomaly_classes"}


def _real(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _sequence(settings: EvaluationSettings, name: str, valid: Callable, what: str) -> tuple:
    """The field as a tuple (a list read back from JSON is one), each entry checked."""
    value = getattr(settings, name)
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) \
            or not all(valid(entry) for entry in value):
        raise ValueError(f"EvaluationSettings.{name} must be a sequence of {what}, "
                         f"got {value!r}")
    return tuple(value)


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
            split = split.take(random_subset(len(split.x), self.settings.max_examples,
                                             self.settings.seed))
        return split

    @property
    def train_split(self) -> Split:
        """The training split, or a seeded random subset of ``max_train_examples`` of it."""
        train, cap = self.dataset.train, self.settings.max_train_examples
        if cap is not None and len(train.x) > cap:
            train = train.take(random_subset(len(train.x), cap, self.settings.seed, stream=11))
        return train

    @property
    def split_name(self) -> str:
        for name in ("test", "validation", "train"):
            if getattr(self.dataset, name) is not None:
                return name
        return "train"

    def _as_model_sees(self, x: np.ndarray, offset: int) -> np.ndarray:
        """Binarized once with the seed if the dataset is dynamically binarized."""
        if not self.dataset.dynamic_binarization:
            return x
        generator = torch.Generator().manual_seed(self.settings.seed + offset)
        return self.dataset.binarize(torch.from_numpy(x), generator=generator).numpy()

    def evaluation_x(self) -> np.ndarray:
        """Evaluation data as the model sees it (binarized once, with the seed, if dynamic)."""
        return self.once("evaluation_x", lambda: self._as_model_sees(self.evaluation_split.x, 0))

    def train_x(self) -> np.ndarray:
        """Training data as the model saw it (binarized once, with the seed, if dynamic)."""
        return self.once("train_x", lambda: self._as_model_sees(self.train_split.x, 1))

    def codes(self, split: str = "evaluation") -> np.ndarray:
        def make():
            x = self.evaluation_x() if split == "evaluation" else self.train_x()
            return self.model.encode(x)

        return self.once(f"codes:{split}", make)

    def classifier(self):
        def make():
            train = self.train_split
            if train.labels is None:
                return None
            cache = Path(self.settings.cache_dir) if self.settings.cache_dir else _cache_dir()
            steps = self.settings.classifier_min_steps
            return load_or_train_feature_classifier(
                self.dataset.name, train.x, train.labels, cache, seed=self.settings.seed,
                **({} if steps == 600 else {"min_steps": steps}),  # 600: keeps cached ones
            )

        return self.once("classifier", make)

    def ex_post_sampler(self):
        """A Gaussian mixture fitted to the training codes (Ghosh et al. 2020), fitted once."""
        from ..ex_post import ExPostSampler

        return self.once("ex_post_sampler", lambda: ExPostSampler().fit(
            self.model, self.train_x(), components=self.settings.ex_post_components,
            seed=self.settings.seed))

    def reference_images(self) -> np.ndarray:
        """A seeded random subset of training images as stored (grey levels for a dynamically
        binarized dataset, like the decoder means they are compared with)."""

        def make():
            train = self.train_split.x
            count = min(len(train), self.settings.reference_images)
            generator = np.random.default_rng([self.settings.seed, 2])
            return train[np.sort(generator.choice(len(train), size=count, replace=False))]

        return self.once("reference_images", make)

    def feature_extractor(self):
        """The trained classifier when the data has labels, else the data's own principal
        components: sample quality is then measured in data space."""
        classifier = self.classifier()
        if classifier is not None:
            return classifier
        return self.once("data_features", lambda: DataSpaceFeatures(
            self.reference_images(), seed=self.settings.seed))

    def features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, str]:
        """(features, class probabilities or None, feature space name) of images."""
        extractor = self.feature_extractor()
        if isinstance(extractor, DataSpaceFeatures):
            return extractor.features(images), None, extractor.name
        return (*extractor.features_and_probabilities(images), "classifier")

    def reference_features(self) -> tuple[np.ndarray, np.ndarray | None, str]:
        """``features`` of the reference images."""
        return self.once("reference_features", lambda: self.features(self.reference_images()))

    def reference_set(self) -> ReferenceSet:
        """The real side of sample quality: the reference images' features and neighbour radii.
        The same for every run with the same feature extractor, reference images and seed, so
        a process (a study worker) keeps the last few between runs, with the features (which
        interpolation, manipulation and variation read too)."""
        return self.once("real_reference", lambda: self._shared_reference(
            "set", lambda features: ReferenceSet(features, seed=self.settings.seed)))

    def reference_spread(self) -> float:
        """Mean distance from each reference feature to its nearest other one: the scale the
        realism of midpoints, edits and variations is measured in. Kept like the reference
        set, so the three groups, and a worker's later runs, share one computation."""
        return self.once("reference_spread", lambda: self._shared_reference(
            "spread", lambda features: mean_spacing(np.asarray(features, dtype=np.float64))))

    def _shared_reference(self, name: str, compute: Callable[[np.ndarray], object]):
        """``compute(reference features)``, kept by the process under (feature extractor,
        reference images, seed) with the features themselves; an extractor without a cache
        key keeps nothing between runs."""
        extractor = self.feature_extractor()
        identity = (extractor.name if isinstance(extractor, DataSpaceFeatures)
                    else extractor.config.get("cache_key"))
        if identity is None:
            return compute(self.reference_features()[0])
        digest = hashlib.blake2b(self.reference_images().tobytes(), digest_size=16)
        key = (identity, digest.hexdigest(), self.settings.seed)
        memo = _REFERENCE_MEMOS.setdefault(key, {})
        _REFERENCE_MEMOS.move_to_end(key)
        while len(_REFERENCE_MEMOS) > 4:
            _REFERENCE_MEMOS.popitem(last=False)
        if "features" in memo:
            self.once("reference_features", lambda: memo["features"])
        else:
            memo["features"] = self.reference_features()
        if name not in memo:
            memo[name] = compute(memo["features"][0])
        return memo[name]


# (extractor, reference images, seed) -> what was computed from them: "features", "set" (the
# ReferenceSet), "spread"; the last few kept by the process (a study worker) between runs
_REFERENCE_MEMOS: OrderedDict = OrderedDict()


class DataSpaceFeatures:
    """Features for data without labels: the leading principal components of (a sample of) the
    training data. Fréchet distance and precision/recall then compare samples with data in
    data space, on a scale where the covariance is well conditioned."""

    max_components = 32

    def __init__(self, reference: np.ndarray, seed: int = 0):
        from sklearn.decomposition import PCA

        flat = reference.reshape(len(reference), -1).astype(np.float64)
        components = max(1, min(self.max_components, flat.shape[1], len(flat) // 10))
        self.pca = PCA(components, svd_solver="full", random_state=seed).fit(flat)
        self.name = f"data principal components ({components})"

    def features(self, x: np.ndarray) -> np.ndarray:
        return self.pca.transform(np.asarray(x).reshape(len(x), -1).astype(np.float64))


def _cache_dir() -> Path:
    # The data directory may be read-only (a shared copy); classifiers are the user's cache.
    from ..data import user_cache_directory

    return user_cache_directory() / "classifiers"


def _code_description(model: Autoencoder) -> str:
    if model.has_likelihood:
        return "posterior mean E[z|x] (model.encode)"
    return "encoder output z = g(x) (model.encode)"


def _unavailable(reason: str) -> dict:
    return {"available": False, "reason": reason}


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
    with torch.random.fork_rng():
        torch.manual_seed(context.settings.seed)
        terms = context.model.loss_terms(x)
    # What reconstructing every example as the training mean scores: the floor any model that
    # uses its codes must beat (the study's health check reads it).
    train_mean = context.train_x().mean(axis=0, dtype=np.float64)
    result = {
        "mse": mse(x, reconstruction),
        "mean_baseline_mse": float(mse_per_example(x, np.broadcast_to(train_mean, x.shape))
                                   .mean()),
        "negative_log_likelihood_of_reconstruction": float(np.mean(terms["reconstruction"])),
        "likelihood": context.model.config.likelihood,
        "codes": _code_description(context.model),
        "examples": int(len(x)),
        "seed": context.settings.seed,
    }
    if "kl" in terms:  # the rate of a rate-distortion plot, beside the distortion above
        result["rate"] = float(np.mean(terms["kl"]))
    if np.min(x) >= 0 and np.max(x) <= 1:  # PSNR and BCE assume values in [0, 1]
        result["psnr"] = psnr(x, reconstruction)
        result["bce"] = bce(x, np.clip(reconstruction, 0, 1))
    return result


@metric_group(
    "likelihood",
    "per-example ELBO, IWAE_k bounds, importance-sampled log p(x) (k samples), bits per dimension",
)
def _likelihood(context: EvaluationContext) -> dict:
    settings = context.settings
    if not context.model.has_likelihood:
        return _unavailable(
            f"{context.model.name} is deterministic: it defines no likelihood p(x), so it has no "
            "ELBO and no log-likelihood"
        )
    x = context.evaluation_x()
    if settings.likelihood_examples is not None and len(x) > settings.likelihood_examples:
        x = x[random_subset(len(x), settings.likelihood_examples, settings.seed)]
    report = likelihood_report(
        context.model,
        x,
        k=settings.importance_samples,
        seed=settings.seed,
        max_rows=settings.max_rows,
        bound_samples=tuple(settings.bound_samples),
    )
    exact = context.model.exact_log_likelihood
    if exact is not None:
        values = np.asarray(exact(x), dtype=np.float64)
        report["exact_log_likelihood"] = float(values.mean())
        report["exact_log_likelihood_standard_error"] = float(
            values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
    jacobian = context.dataset.log_jacobian
    if jacobian is not None:
        # The model saw standardised values: its log-density is theirs. The data's own units
        # differ by a constant (the same for every model on this data, so comparisons stand).
        report["unit"] = report["unit"].replace(
            "on the data's scale", "of the standardised values the model was trained on, as "
            "are the bounds and per-example figures; the *_data_units figures are in the "
            "data's own units")
        report["log_jacobian"] = jacobian
        report["log_likelihood_data_units"] = report["log_likelihood"] + jacobian
        report["elbo_data_units"] = report["elbo"] + jacobian
        report["bits_per_dimension_data_units"] = bits_per_dimension(
            report["log_likelihood_data_units"], report["dimensions"])
        if "exact_log_likelihood" in report:
            report["exact_log_likelihood_data_units"] = report["exact_log_likelihood"] + jacobian
    return {"available": True, **report}


@metric_group(
    "latent",
    "active units, KL per dimension, I(x;z), codes and aggregate posterior vs the prior, holes",
)
def _latent(context: EvaluationContext) -> dict:
    model, seed = context.model, context.settings.seed
    x = context.evaluation_x()
    codes = context.codes()
    result = {
        "active_units": active_units(codes),
        "prior_mismatch": prior_mismatch(codes, seed=seed),
        "holes": latent_holes(codes, seed=seed),
        "codes": _code_description(model),
        "reference_prior": "N(0, I)",
        "model_prior": model.config.prior,
        "examples": int(len(codes)),
    }
    if model.has_likelihood:
        means, variances = model.encode(x, return_variance=True)
        result["kl_to_standard_normal"] = kl_to_standard_normal(means, variances)
        result["mutual_information"] = mutual_information(means, variances, seed=seed)
        # The aggregate posterior q(z) = E_x q(z|x) is what a VAE matches to its prior; its
        # posterior means are more concentrated than that.
        noise = np.random.default_rng([seed, 6]).standard_normal(means.shape)
        draws = means + np.sqrt(variances) * noise
        result["aggregate_posterior_mismatch"] = prior_mismatch(draws, seed=seed)
    return result


SAMPLE_SOURCES = {
    "prior": "decoded draws from the model's prior",
    "ex_post": "decoded draws from a Gaussian mixture fitted to the training codes",
    "code_gaussian": "decoded draws from one Gaussian fitted to the training codes (their own "
    "region: what lies between the codes)",
}


def _samples(context: EvaluationContext, source: str) -> np.ndarray:
    settings = context.settings
    if source == "prior":
        return context.model.sample(settings.generated_samples, seed=settings.seed)
    if source == "code_gaussian":
        probes = gaussian_probes(context.codes("train"), settings.generated_samples,
                                 seed=np.random.default_rng([settings.seed, 7]))
        return context.model.decode(probes.astype(np.float32))
    return context.ex_post_sampler().sample(settings.generated_samples, seed=settings.seed)


@metric_group(
    "generation",
    "sample quality in a trained classifier's feature space: Fréchet "
    "distance, precision/recall, density/coverage, confidence (prior and ex-post)",
)
def _generation(context: EvaluationContext) -> dict:
    extractor = context.feature_extractor()
    classifier = None if isinstance(extractor, DataSpaceFeatures) else extractor
    # Training images as stored (grey levels where the data is binarized dynamically, like the
    # decoder means they are compared with); the evaluation split can be too small for the
    # covariance of the features.
    reference = context.reference_images()
    real = context.reference_set()  # computed once for every sampler (and run)
    result = {
        "available": True,
        "feature_space": "classifier" if classifier is not None else extractor.name,
        "reference": "train",
        "reference_images": int(len(reference)),
        "generated_samples": context.settings.generated_samples,
        "ex_post_components": context.settings.ex_post_components,
        "samples": "decoder means",
        "sources": SAMPLE_SOURCES,
        "seed": context.settings.seed,
    }
    if classifier is not None:
        result["feature_classifier"] = {
            "test_accuracy": classifier.test_accuracy,
            "architecture": classifier.config.get("architecture"),
            "seed": classifier.config.get("seed"),
        }
    for source in SAMPLE_SOURCES:
        features, probabilities, _ = context.features(_samples(context, source))
        result[source] = sample_quality(real, features, probabilities, seed=context.settings.seed)
    return result


@metric_group(
    "structure",
    "linear probe and k-NN accuracy with 10, 100 and all labels per class; k-means accuracy "
    "(Hungarian), NMI, ARI; silhouette of the labels in code space",
)
def _structure(context: EvaluationContext) -> dict:
    settings = context.settings
    train_labels = context.train_split.labels
    test_labels = context.evaluation_split.labels
    if train_labels is None or test_labels is None:
        return _unavailable("the dataset has no labels")
    train_codes, test_codes = context.codes("train"), context.codes()
    budgets = tuple(settings.labels_per_class)
    return {
        "available": True,
        "codes": _code_description(context.model),
        "train_split": "train",
        "test_split": context.split_name,
        "n_train": int(len(train_codes)),
        "n_test": int(len(test_codes)),
        "linear_probe": linear_probe_accuracy(
            train_codes, train_labels, test_codes, test_labels, budgets, seed=settings.seed
        ),
        "knn": knn_accuracy(
            train_codes,
            train_labels,
            test_codes,
            test_labels,
            budgets,
            seed=settings.seed,
            k=settings.knn_neighbours,
        ),
        "clustering": clustering(test_codes, test_labels, seed=settings.seed),
        "silhouette": silhouette(
            test_codes, test_labels, sample_size=settings.silhouette_examples, seed=settings.seed
        ),
    }


@metric_group(
    "interpolation",
    "straight lines between test codes: smoothness (largest / mean decoded step), midpoint "
    "distance to the nearest training image and classifier confidence on midpoints",
)
def _interpolation(context: EvaluationContext) -> dict:
    settings, model = context.settings, context.model
    codes = context.codes()
    pairs = min(settings.interpolation_pairs, len(codes) // 2)
    if pairs < 1 or settings.interpolation_steps < 2:
        return _unavailable("needs at least two evaluation examples and two steps")
    order = np.random.default_rng([settings.seed, 3]).permutation(len(codes))[: 2 * pairs]
    start, end = codes[order[:pairs]], codes[order[pairs:]]
    fractions = np.linspace(0.0, 1.0, settings.interpolation_steps, dtype=np.float32)
    paths = start[:, None] + fractions[None, :, None] * (end - start)[:, None]
    decoded = model.decode(paths.reshape(-1, model.latent_dim))
    decoded = decoded.reshape(pairs, settings.interpolation_steps, *model.input_shape)
    midpoints = model.decode(0.5 * (start + end))
    reference_features = context.reference_features()
    midpoint_features, midpoint_probabilities, space = context.features(midpoints)
    endpoint_features, endpoint_probabilities, _ = context.features(decoded[:, 0])
    midpoints_realism = midpoint_realism(midpoint_features, reference_features[0],
                                         midpoint_probabilities, max_reference=None,
                                         seed=settings.seed,
                                         train_distance=context.reference_spread())
    return {
        "available": True,
        "smoothness": interpolation_smoothness(decoded),
        "midpoint_realism": midpoints_realism,
        # The same measure on the decoded endpoints (reconstructions), for scale; the
        # reference's own nearest-neighbour distance is the midpoints'.
        "endpoint_realism": midpoint_realism(
            endpoint_features, reference_features[0], endpoint_probabilities,
            max_reference=None, seed=settings.seed,
            train_distance=midpoints_realism["mean_train_distance"]),
        "path": "straight line between the codes of random pairs of evaluation examples",
        "codes": _code_description(model),
        "pairs": pairs,
        "steps": settings.interpolation_steps,
        "feature_space": space,
        "reference": "train",
        "reference_images": int(len(context.reference_images())),
        "seed": settings.seed,
    }


def _anomaly_scores(model: Autoencoder, x: np.ndarray, settings: EvaluationSettings) -> dict:
    """Per-example anomaly scores (higher = more anomalous) from one model."""
    scores = {"reconstruction_error": mse_per_example(x, model.reconstruct(x))}
    if model.has_likelihood:
        with torch.random.fork_rng():
            torch.manual_seed(settings.seed)
            scores["negative_elbo"] = -np.asarray(model.elbo(x), dtype=np.float64)
        scores["negative_log_likelihood"] = -log_likelihood_estimate(
            model,
            x,
            k=settings.anomaly_importance_samples,
            seed=settings.seed,
            max_rows=settings.max_rows,
        )
    return scores


def _one_class_model(context: EvaluationContext, normal: int) -> tuple[Autoencoder, int]:
    """A fresh copy of the model (same config) trained on a capped subset of one class."""
    from ..models import make

    settings, model = context.settings, context.model
    train = context.dataset.train
    members = np.flatnonzero(train.labels == normal)
    generator = np.random.default_rng([settings.seed, 4, int(normal)])
    count = min(len(members), settings.anomaly_training_examples)
    chosen = np.sort(generator.choice(members, size=count, replace=False))
    binarize = context.dataset.binarize if context.dataset.dynamic_binarization else None
    with torch.random.fork_rng():
        torch.manual_seed(settings.seed)
        fresh = make(model.name, **model.config.to_dict()).to(model.device)
        fresh.fit(
            train.x[chosen],
            epochs=settings.anomaly_training_epochs,
            batch_size=settings.anomaly_batch_size,
            seed=settings.seed,
            batch_transform=binarize,
            device=model.device,
            progress=False,
        )
    return fresh.eval(), count


@metric_group(
    "anomaly",
    "one-class anomaly detection (each class normal in turn, one fresh model per class): AUROC "
    "of reconstruction error, negative ELBO and negative log p(x) per class and mean",
)
def _anomaly(context: EvaluationContext) -> dict:
    settings, model = context.settings, context.model
    train_labels = context.dataset.train.labels
    labels = context.evaluation_split.labels
    if train_labels is None or labels is None:
        return _unavailable("the dataset has no labels to define normal classes")
    if (refused := model.training_refusal()) is not None:  # a run an older version trained
        return _unavailable(f"its one-class copies cannot be trained: {refused}")
    classes = [int(value) for value in np.unique(labels) if np.any(train_labels == value)]
    if len(classes) < 2:
        return _unavailable("needs at least two classes present in both splits")
    if settings.anomaly_classes is not None and len(classes) > settings.anomaly_classes:
        chosen = np.random.default_rng([settings.seed, 8]).choice(
            len(classes), size=settings.anomaly_classes, replace=False)
        classes = [classes[index] for index in sorted(chosen)]
    x = context.evaluation_x()
    one_class = settings.anomaly_training_epochs > 0 and not model.custom_networks
    per_class_scores, training_examples = {}, {}
    if one_class:
        for normal in classes:
            fresh, count = _one_class_model(context, normal)
            per_class_scores[normal] = _anomaly_scores(fresh, x, settings)
            training_examples[str(normal)] = count
    else:
        shared = _anomaly_scores(model, x, settings)
        per_class_scores = {normal: shared for normal in classes}
    names = list(per_class_scores[classes[0]])
    auroc_by_score = {
        name: per_class_auroc(
            {normal: (per_class_scores[normal][name], labels != normal) for normal in classes}
        )
        for name in names
    }
    result = {
        "protocol": "one_class" if one_class else "given_model",
        "description": (
            "one-class: for each normal class a fresh copy of the model (same config) is "
            "trained on that class alone, then scores every evaluation example; anomalous = "
            "every other class"
            if one_class
            else "NOT one-class anomaly detection: the given model was trained on every class, "
            "so each AUROC only says how much better class c is modelled than the rest"
        ),
        "auroc": auroc_by_score,
        "score_definitions": {
            "reconstruction_error": "mean squared error of reconstruct(x)",
            "negative_elbo": "minus the model's ELBO (seeded)",
            "negative_log_likelihood": "minus the importance-sampled log p(x) with "
            f"k = {settings.anomaly_importance_samples}",
        },
        "classes": classes,
        "n_evaluation": int(len(x)),
        "importance_samples": settings.anomaly_importance_samples if model.has_likelihood else None,
        "seed": settings.seed,
    }
    if one_class:
        result["training"] = {
            "epochs": settings.anomaly_training_epochs,
            "max_examples_per_class": settings.anomaly_training_examples,
            "examples": training_examples,
            "batch_size": settings.anomaly_batch_size,
            "seed": settings.seed,
        }
    elif model.custom_networks and settings.anomaly_training_epochs > 0:
        result["reason"] = "custom networks cannot be copied, so the given model was used"
    return result


@metric_group(
    "denoising",
    "PSNR of reconstruct(corrupted) against the clean data, Gaussian noise and random masking, "
    "with the corrupted input's own PSNR for reference",
)
def _denoising(context: EvaluationContext) -> dict:
    settings, model = context.settings, context.model
    x = context.evaluation_x()
    if np.min(x) < 0 or np.max(x) > 1:
        return _unavailable("the corruptions and PSNR assume data in [0, 1]")
    result = {
        "available": True,
        "clean_reconstruction_psnr": psnr(x, model.reconstruct(x))["value"],
        "gaussian_noise": {},
        "masking": {},
        "noise": "x + N(0, std^2), clipped to [0, 1]",
        "mask": "a random share of each example's values set to 0",
        "seed": settings.seed,
        "seeds": "numpy default_rng([seed, 5, index]) per corruption",
    }
    for index, std in enumerate(settings.noise_levels):
        generator = np.random.default_rng([settings.seed, 5, index])
        corrupted = add_gaussian_noise(x, std, seed=generator)
        result["gaussian_noise"][f"{std:g}"] = {
            "std": float(std),
            **denoising_psnr(x, model.reconstruct(corrupted), corrupted),
        }
    for index, fraction in enumerate(settings.mask_fractions):
        generator = np.random.default_rng([settings.seed, 5, len(settings.noise_levels) + index])
        corrupted, _ = random_mask(x, fraction, seed=generator)
        result["masking"][f"{fraction:g}"] = {
            "fraction": float(fraction),
            **denoising_psnr(x, model.reconstruct(corrupted), corrupted),
        }
    return result


@metric_group(
    "imputation",
    "entries missing completely at random (20%, 50%) filled by the model (iterated "
    "reconstruction; importance sampling for MIWAE): RMSE on the missing entries, beside "
    "filling with the training mean",
)
def _imputation(context: EvaluationContext) -> dict:
    settings, model = context.settings, context.model
    x = context.evaluation_x()
    chosen = random_subset(len(x), settings.imputation_examples, settings.seed, stream=12)
    clean = x[chosen]
    train_mean = context.train_x().mean(axis=0)
    result = {"available": True, "examples": int(len(chosen)), "by_fraction": {},
              "method": "importance sampling (MIWAE)" if "observed" in model.uses else
              "iterated reconstruction from the training mean (20 rounds)",
              "mask": "each entry missing independently (MCAR)", "seed": settings.seed}
    for index, fraction in enumerate(settings.missing_fractions):
        generator = np.random.default_rng([settings.seed, 12, index])
        observed = generator.random(clean.shape) >= fraction
        if not (~observed).any():
            continue
        imputed = model.impute(np.where(observed, clean, np.nan), observed, start=train_mean,
                               seed=settings.seed)
        error = (imputed - clean)[~observed]
        baseline = (np.broadcast_to(train_mean, clean.shape) - clean)[~observed]
        result["by_fraction"][f"{fraction:g}"] = {
            "fraction": float(fraction),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "mean_imputation_rmse": float(np.sqrt(np.mean(baseline**2))),
            "missing_entries": int((~observed).sum()),
        }
    return result


@metric_group(
    "manipulation",
    "latent arithmetic: codes moved by the class vector (mean code of the target class minus "
    "that of the source class) and decoded; how often the classifier then sees the target "
    "class, and how far the results are from real data",
)
def _manipulation(context: EvaluationContext) -> dict:
    settings, model = context.settings, context.model
    train_labels = context.train_split.labels
    split = context.evaluation_split
    if train_labels is None or split.labels is None or context.classifier() is None:
        return _unavailable("the dataset has no labels to define class vectors with")
    classes = np.unique(train_labels)
    if len(classes) < 2:
        return _unavailable("needs at least two classes")
    codes = context.codes("train")
    centres = {int(value): codes[train_labels == value].mean(axis=0) for value in classes}
    generator = np.random.default_rng([settings.seed, 9])
    known = np.flatnonzero(np.isin(split.labels, classes))
    chosen = np.sort(generator.permutation(known)[: settings.manipulation_examples])
    source = split.labels[chosen]
    # Each example moves to another class, drawn uniformly among the others.
    shift = generator.integers(1, len(classes), len(chosen))
    positions = np.searchsorted(classes, source)
    target = classes[(positions + shift) % len(classes)]
    moved = context.codes()[chosen] + np.stack(
        [centres[int(t)] - centres[int(s)] for s, t in zip(source, target)])
    edited = model.decode(moved.astype(np.float32))
    features, probabilities, space = context.features(edited)
    realism = midpoint_realism(features, context.reference_features()[0], probabilities,
                               max_reference=None, seed=settings.seed,
                               train_distance=context.reference_spread())
    predicted = probabilities.argmax(axis=1)
    return {
        "available": True,
        "edit_success": float(np.mean(predicted == target)),
        "kept_source_class": float(np.mean(predicted == source)),
        "realism": realism,
        "edits": int(len(chosen)),
        "strength": 1.0,
        "vector": "mean training code of the target class minus that of the source class",
        "codes": _code_description(model),
        "feature_space": space,
        "seed": settings.seed,
    }


@metric_group(
    "variation",
    "several decoded z ~ q(z|x) per input (input noise for deterministic models): how varied "
    "they are and how faithful to the input (its class kept)",
)
def _variation(context: EvaluationContext) -> dict:
    settings, model = context.settings, context.model
    split = context.evaluation_split
    if split.labels is None or context.classifier() is None:
        return _unavailable("the dataset has no labels to judge faithfulness with")
    x = context.evaluation_x()
    chosen = random_subset(len(x), settings.variation_examples, settings.seed, stream=10)
    count = settings.variations
    if model.has_likelihood:
        source = "z ~ q(z|x), decoded (decoder means)"
        varied = model.vary(x[chosen], count, seed=settings.seed)
    else:
        source = (f"a deterministic model has one code per input: each variation encodes x plus "
                  f"N(0, {settings.variation_input_noise:g}^2) noise")
        noise = np.random.default_rng([settings.seed, 11]).standard_normal(
            (len(chosen), count, *x.shape[1:])).astype(np.float32)
        noisy = x[chosen][:, None] + settings.variation_input_noise * noise
        varied = model.reconstruct(noisy.reshape(-1, *x.shape[1:])).reshape(noisy.shape)
    flat = varied.reshape(len(chosen) * count, *x.shape[1:])
    features, probabilities, space = context.features(flat)
    features = features.reshape(len(chosen), count, -1)
    typical = context.reference_spread()
    spread = []
    for group in features.astype(np.float64):
        difference = group[:, None] - group[None, :]
        distances = np.sqrt((difference**2).sum(-1))
        spread.append(distances[np.triu_indices(count, 1)].mean())
    kept = probabilities.argmax(axis=1).reshape(len(chosen), count) == split.labels[chosen][
        :, None]
    return {
        "available": True,
        "diversity": float(np.mean(spread)) / typical if typical > 0 else None,
        "faithfulness": float(kept.mean()),
        "source": source,
        "inputs": int(len(chosen)),
        "variations": int(count),
        "diversity_definition": "mean pairwise feature distance between an input's "
        "variations, over the mean nearest-neighbour distance among training examples",
        "faithfulness_definition": "share of variations the classifier gives the input's class",
        "feature_space": space,
        "seed": settings.seed,
    }


@metric_group(
    "disentanglement",
    "against the data's known factors: beta-VAE and FactorVAE scores, MIG, DCI, SAP, "
    "modularity and explicitness (Locatello et al. 2019's protocols)",
)
def _disentanglement(context: EvaluationContext) -> dict:
    from .disentanglement import disentanglement_report, tabulate_representation

    truth = context.dataset.ground_truth
    if truth is None:
        return _unavailable("the data has no known generative factors")
    settings, model = context.settings, context.model
    train, test = settings.disentanglement_train_points, settings.disentanglement_test_points
    sizes = {"train_points": train, "eval_points": test, "test_points": test, "points": train,
             "variance_points": train, "n_estimators": settings.disentanglement_dci_trees}

    def representation(observations: np.ndarray) -> np.ndarray:
        return model.encode(observations.reshape(len(observations), *model.input_shape))

    # The beta-VAE and FactorVAE scores encode 3 x 64 observations per point: past the size of
    # a deterministic grid it is cheaper to encode every grid point once and look codes up.
    encodes = 3 * 64 * (train + test) + train
    tabulated = bool(truth.deterministic) and truth.num_combinations <= encodes
    if tabulated:
        representation = tabulate_representation(truth, representation)
    # DCI fits its factors' classifiers on as many threads as torch may use here (a study's
    # workers run one thread each); the numbers do not depend on it.
    report = disentanglement_report(truth, representation, seed=settings.seed,
                                    n_jobs=max(1, torch.get_num_threads()), **sizes)
    return {"available": True, **report, "sizes": sizes, "tabulated": tabulated,
            "codes": _code_description(model)}


# ----- how long an evaluation takes ----------------------------------------------------------
# Groups that train the feature classifier first (unless it is cached) and read training codes.
CLASSIFIER_GROUPS = ("generation", "manipulation", "variation")
TRAIN_CODE_GROUPS = ("generation", "structure", "manipulation")
# What a practical default caps (each a maximum, never a raise): it keeps an evaluation of a
# large image dataset to minutes on two cores; `aevae evaluate --full` runs the protocol as is.
PRACTICAL_CAPS = {
    "max_examples": 1000,
    "likelihood_examples": 500,
    "generated_samples": 1000,
    "reference_images": 1000,
    "max_train_examples": 10000,
    "classifier_min_steps": 200,
    "anomaly_training_epochs": 10,
    "anomaly_classes": 3,
    "interpolation_pairs": 50,
    "imputation_examples": 500,
    "manipulation_examples": 500,
}


def large_data(dataset: Dataset) -> bool:
    """Whether ``dataset`` is large enough for the practical caps: examples of 32 x 32 values or
    more (the feature classifier's convolutions then cost seconds a step on a CPU), or over
    100,000 training examples. MNIST (28 x 28, 60,000) is not; dSprites and CIFAR are."""
    return math.prod(dataset.shape) >= 1024 or len(dataset.train.x) > 100_000


def practical_settings(settings: EvaluationSettings) -> EvaluationSettings:
    """``settings`` with each of ``PRACTICAL_CAPS`` as an upper bound (None counts as no
    bound, so it is capped too)."""
    changes = {}
    for name, cap in PRACTICAL_CAPS.items():
        value = getattr(settings, name)
        if value is None or value > cap:
            changes[name] = cap
    return dataclasses.replace(settings, **changes)


@dataclass
class Speeds:
    """Seconds this model takes on this machine, measured once: per example encoded and
    decoded, per Adam step of the feature classifier (batch 256) and of a fresh model."""

    encode: float
    decode: float
    decode_rows: float  # per code decoded in the importance sampler's large batches
    classifier_step: float | None = None
    model_step: float | None = None
    model_fit: float = 0.0  # what one fit call costs beyond its steps


def _seconds(function: Callable) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def measure_speeds(model: Autoencoder, dataset: Dataset, names: list[str] | None = None,
                   settings: EvaluationSettings | None = None) -> Speeds:
    """Time a batch through the encoder and the decoder, and (when the groups need them) two
    steps of the feature classifier and two of a fresh copy of the model: a few seconds."""
    from ..models import make
    from .classifier import train_feature_classifier

    settings = settings or EvaluationSettings()
    names = list(METRIC_GROUPS) if names is None else list(names)
    model.eval()
    x = dataset.train.x[:256]
    model.encode(x[:8])  # the first call pays one-off costs
    encode = _seconds(lambda: model.encode(x)) / len(x)
    codes = np.asarray(model.encode(x), dtype=np.float32)
    decode = _seconds(lambda: model.decode(codes)) / len(x)
    rows = np.repeat(codes, max(1, 2048 // len(codes)), axis=0)
    decode_rows = _seconds(lambda: model.decode(rows)) / len(rows)
    speeds = Speeds(encode, decode, decode_rows)
    labels = dataset.train.labels
    if labels is not None and any(name in CLASSIFIER_GROUPS for name in names):
        classes = int(labels.max()) + 1

        def steps(count: int) -> float:  # one step per 256 examples
            return _seconds(lambda: train_feature_classifier(
                dataset.train.x[:count], labels[:count], epochs=1, holdout_fraction=0.0,
                n_classes=classes))

        with torch.random.fork_rng():
            if len(dataset.train.x) >= 1024:
                steps(256)  # the first steps set up the convolutions: not the usual pace
                speeds.classifier_step = max((steps(1024) - steps(256)) / 3, 1e-4)
            else:
                speeds.classifier_step = steps(len(dataset.train.x))
    if (labels is not None and "anomaly" in names and settings.anomaly_training_epochs > 0
            and model.training_refusal() is None):
        batch = settings.anomaly_batch_size

        def fit(count: int) -> float:  # one step per batch
            fresh = make(model.name, **model.config.to_dict()).to(model.device)
            return _seconds(lambda: fresh.fit(dataset.train.x[:count], epochs=1,
                                              batch_size=batch, device=model.device,
                                              progress=False))

        with torch.random.fork_rng():
            fit(batch)  # likewise
            one = fit(batch)
            if len(dataset.train.x) >= 3 * batch:
                speeds.model_step = max((fit(3 * batch) - one) / 2, 1e-4)
                speeds.model_fit = max(one - speeds.model_step, 0.0)
            else:
                speeds.model_step = one
    return speeds


# DCI's classifiers: seconds per tree, training point and code for scikit-learn's gradient
# boosting on one thread (measured: 2,000 points, 10 codes, 50 stages, 86 classes in 20.8 s;
# the protocol's 10,000 dSprites points at 100 stages in 387 s).
DCI_SECONDS_PER_TREE_POINT_CODE = 3e-7


def _dci_seconds(model: Autoencoder, ground_truth, settings: EvaluationSettings) -> float:
    """DCI's classifier time: one tree per class (one for two) per stage, per factor, spread
    over the threads evaluate gives it."""
    trees = settings.disentanglement_dci_trees * sum(
        1 if size == 2 else size for size in ground_truth.factor_sizes if size > 1)
    threads = max(1, min(torch.get_num_threads(), len(ground_truth.factor_sizes)))
    return (trees * settings.disentanglement_train_points * model.latent_dim
            * DCI_SECONDS_PER_TREE_POINT_CODE / threads)


def estimate_seconds(model: Autoencoder, dataset: Dataset, names: list[str] | None = None,
                     settings: EvaluationSettings | None = None, speeds: Speeds | None = None,
                     ) -> tuple[dict[str, float], dict[str, float]]:
    """(seconds per metric group, seconds of its largest parts) an ``evaluate`` call should
    take: the work each group does (examples encoded and decoded, importance samples, the
    feature classifier's and the one-class models' training steps) at the measured
    ``speeds``. A cached feature classifier makes it quicker than estimated."""
    settings = settings or EvaluationSettings()
    names = list(METRIC_GROUPS) if names is None else list(names)
    speeds = speeds or measure_speeds(model, dataset, names, settings)
    context = EvaluationContext(model, dataset, settings)
    split, train = context.evaluation_split, context.train_split
    n, n_train = len(split.x), len(train.x)
    both = speeds.encode + speeds.decode
    labelled = train.labels is not None and split.labels is not None
    parts: dict[str, float] = {}
    if labelled and speeds.classifier_step is not None:
        steps_per_epoch = math.ceil(0.9 * n_train / 256)
        steps = max(3 * steps_per_epoch, math.ceil(settings.classifier_min_steps
                                                   / steps_per_epoch) * steps_per_epoch)
        parts["feature classifier"] = steps * speeds.classifier_step
    feature = (speeds.classifier_step or 0.0) / 256 / 3  # one example through it, no gradient
    parts["training codes"] = n_train * speeds.encode
    if labelled and speeds.model_step is not None and "anomaly" in names:
        classes = len(np.unique(split.labels))
        if settings.anomaly_classes is not None:
            classes = min(classes, settings.anomaly_classes)
        per_class = min(settings.anomaly_training_examples, math.ceil(n_train / max(classes, 1)))
        steps = settings.anomaly_training_epochs * math.ceil(per_class
                                                             / settings.anomaly_batch_size)
        # Scores: reconstruction error, and for a model with a likelihood its ELBO and log p(x).
        scoring = (n * (settings.anomaly_importance_samples * speeds.decode_rows + 3 * both)
                   if model.has_likelihood else n * both)
        parts["one-class models"] = classes * (
            speeds.model_fit + steps * speeds.model_step + scoring)
    likely = min(n, settings.likelihood_examples or n)
    samples = settings.generated_samples
    work = {
        "reconstruction": 3 * n * both,
        "likelihood": (likely * (settings.importance_samples + sum(settings.bound_samples))
                       * speeds.decode_rows) if model.has_likelihood else 0.0,
        "latent": 2 * n * speeds.encode,
        "generation": (3 * samples * (speeds.decode + 2 * feature)
                       + min(n_train, settings.reference_images) * feature),
        "structure": 1.0,
        "interpolation": settings.interpolation_pairs * (settings.interpolation_steps + 2) * both,
        "anomaly": parts.get("one-class models", 0.0),
        "denoising": (len(settings.noise_levels) + len(settings.mask_fractions)) * n * both,
        "imputation": 20 * len(settings.missing_fractions) * min(n, settings.imputation_examples)
        * both,
        "manipulation": min(n, settings.manipulation_examples) * (both + feature),
        "variation": settings.variation_examples * settings.variations * (both + feature),
        "disentanglement": ((settings.disentanglement_train_points
                             + settings.disentanglement_test_points) * speeds.encode + 2.0
                            + _dci_seconds(model, dataset.ground_truth, settings))
        if dataset.ground_truth is not None else 0.0,
    }
    estimates = {name: 0.2 + work.get(name, 1.0) for name in names}
    # The classifier and the training codes are paid by the first group that needs them.
    for part, groups in (("feature classifier", CLASSIFIER_GROUPS),
                         ("training codes", TRAIN_CODE_GROUPS)):
        first = next((name for name in names if name in groups), None)
        if first is None or part not in parts:
            parts.pop(part, None)
            continue
        estimates[first] += parts[part]
    return estimates, parts


def available_metric_groups() -> list[tuple[str, str]]:
    return [(name, description) for name, (description, _) in METRIC_GROUPS.items()]


def evaluate(
    model: Autoencoder,
    dataset: Dataset,
    metrics: list[str] | None = None,
    settings: EvaluationSettings | None = None,
    context: EvaluationContext | None = None,
    progress: Callable[[str, int, int, float], None] | None = None,
) -> dict:
    """Run the named metric groups (default: all) and return a JSON-ready dict.

    ``seconds`` holds each group's wall time (the only entry that differs between two runs).
    Pass a ``context`` (of the same model, dataset and settings) to reuse what it computed,
    e.g. to draw figures from the same codes and samplers afterwards. ``progress(name, done,
    total, seconds)`` is called after each group.
    """
    if context is not None:
        settings = context.settings
    settings = settings or EvaluationSettings()
    if isinstance(metrics, str):  # "reconstruction" or "reconstruction,latent", not letters
        metrics = [name.strip() for name in metrics.split(",") if name.strip()]
    if not isinstance(dataset, Dataset):
        raise TypeError(f"evaluate needs an aevae.data.Dataset (load_dataset(...)), got "
                        f"{type(dataset).__name__}")
    names = list(METRIC_GROUPS) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in METRIC_GROUPS]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRIC_GROUPS)}"
        )
    model.eval()
    context = context or EvaluationContext(model, dataset, settings)
    from ..models.base import UnsupportedMethodError

    results, seconds = {}, {}
    for index, name in enumerate(names):
        started = time.perf_counter()
        try:
            results[name] = METRIC_GROUPS[name][1](context)
        except UnsupportedMethodError as error:  # e.g. M2 decodes only with a class
            results[name] = _unavailable(str(error))
        seconds[name] = time.perf_counter() - started
        if progress is not None:
            progress(name, index + 1, len(names), seconds[name])
    return {
        "model": model.name,
        "dataset": dataset.name,
        "split": context.split_name,
        "examples": int(len(context.evaluation_split.x)),
        "settings": asdict(settings),
        "metrics": results,
        "seconds": seconds,
    }
