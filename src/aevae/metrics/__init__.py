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
from .disentanglement import (
    DISENTANGLEMENT_METRICS,
    TabulatedRepresentation,
    beta_vae_score,
    compute_beta_vae_score,
    compute_dci,
    compute_factor_vae_score,
    compute_mig,
    compute_modularity_explicitness,
    compute_sap,
    dci,
    dci_from_importance,
    discrete_mutual_information,
    disentanglement_report,
    factor_entropies,
    factor_vae_score,
    histogram_discretize,
    mig,
    modularity_explicitness,
    sample_factor_codes,
    sap,
    tabulate_representation,
)
from .generation import (
    ReferenceSet,
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
    "DISENTANGLEMENT_METRICS",
    "PSNR_CAP_DB",
    "ReferenceSet",
    "FeatureClassifier",
    "TabulatedRepresentation",
    "active_units",
    "add_gaussian_noise",
    "auroc",
    "bce",
    "bce_per_example",
    "beta_vae_score",
    "choose_architecture",
    "classifier_cache_key",
    "classifier_statistics",
    "clustering",
    "compute_beta_vae_score",
    "compute_dci",
    "compute_factor_vae_score",
    "compute_mig",
    "compute_modularity_explicitness",
    "compute_sap",
    "dci",
    "dci_from_importance",
    "denoising_psnr",
    "density_coverage",
    "discrete_mutual_information",
    "disentanglement_report",
    "factor_entropies",
    "factor_vae_score",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "gaussian_kl_to_standard",
    "gaussian_probes",
    "histogram_discretize",
    "hungarian_accuracy",
    "interpolation_smoothness",
    "kl_to_standard_normal",
    "knn_accuracy",
    "latent_holes",
    "linear_probe_accuracy",
    "load_or_train_feature_classifier",
    "midpoint_realism",
    "mig",
    "mmd_squared",
    "modularity_explicitness",
    "mse",
    "mse_per_example",
    "mutual_information",
    "one_class_auroc",
    "per_class_auroc",
    "precision_recall",
    "prior_mismatch",
    "psnr",
    "random_mask",
    "sample_factor_codes",
    "sample_quality",
    "sap",
    "select_per_class",
    "silhouette",
    "tabulate_representation",
    "train_feature_classifier",
]


def __getattr__(name: str):
    # The model adapter, on first use (the cores here need no model): makes
    # `aevae.metrics.evaluate.evaluate(model, dataset)` work after a plain `import aevae`.
    if name == "evaluate":
        import importlib

        return importlib.import_module(".evaluate", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
