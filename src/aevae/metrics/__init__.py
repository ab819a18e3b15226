"""Metric cores: pure functions on numpy arrays that return JSON-serialisable dicts.

Randomness is always passed in (seed: int or numpy.random.Generator) and every result
echoes its settings. Model adapters build on these; nothing here needs a model.
"""

from .anomaly import auroc, one_class_auroc, per_class_auroc
from .classifier import (
    ARCHITECTURE_VERSION,
    FeatureClassifier,
    choose_architecture,
    classifier_cache_key,
    load_or_train_feature_classifier,
    train_feature_classifier,
)
from .denoising import add_gaussian_noise, denoising_psnr, random_mask
from .generation import (
    classifier_statistics,
    density_coverage,
    frechet_distance,
    frechet_distance_from_statistics,
    precision_recall,
    sample_quality,
)
from .interpolation import interpolation_smoothness, midpoint_realism
from .latent import (
    active_units,
    gaussian_kl_to_standard,
    gaussian_probes,
    kl_to_standard_normal,
    latent_holes,
    mmd_squared,
    mutual_information,
    prior_mismatch,
)
from .reconstruction import (
    PSNR_CAP_DB,
    bce,
    bce_per_example,
    mse,
    mse_per_example,
    psnr,
)
from .structure import (
    clustering,
    hungarian_accuracy,
    knn_accuracy,
    linear_probe_accuracy,
    select_per_class,
    silhouette,
)

__all__ = [
    "ARCHITECTURE_VERSION",
    "PSNR_CAP_DB",
    "FeatureClassifier",
    "active_units",
    "add_gaussian_noise",
    "auroc",
    "bce",
    "bce_per_example",
    "choose_architecture",
    "classifier_cache_key",
    "classifier_statistics",
    "clustering",
    "denoising_psnr",
    "density_coverage",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "gaussian_kl_to_standard",
    "hungarian_accuracy",
    "interpolation_smoothness",
    "gaussian_probes",
    "kl_to_standard_normal",
    "knn_accuracy",
    "latent_holes",
    "linear_probe_accuracy",
    "load_or_train_feature_classifier",
    "midpoint_realism",
    "mmd_squared",
    "mse",
    "mse_per_example",
    "mutual_information",
    "one_class_auroc",
    "per_class_auroc",
    "precision_recall",
    "prior_mismatch",
    "psnr",
    "random_mask",
    "sample_quality",
    "select_per_class",
    "silhouette",
    "train_feature_classifier",
]
