"""Sample-quality metrics on feature vectors: Fréchet distance, precision/recall,
density/coverage, and statistics of a classifier's predictions on generated samples.

Features come from any extractor (see aevae.metrics.classifier for a small trained one).
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr

from ._utils import (
    SeedLike,
    as_2d,
    distinct_rows,
    make_generator,
    neighbour_radii,
    seed_record,
    squared_distance_blocks,
    subsample,
)


def _mean_and_covariance(features: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    values = as_2d(features, name)
    if values.shape[0] < 2:
        raise ValueError(f"{name} needs at least two rows for a covariance")
    return values.mean(axis=0), np.atleast_2d(np.cov(values, rowvar=False))


def _psd_root(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (negative round-off clamped)."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_statistics(
    mean_a: np.ndarray,
    covariance_a: np.ndarray,
    mean_b: np.ndarray,
    covariance_b: np.ndarray,
) -> dict:
    """Fréchet distance between N(mean_a, covariance_a) and N(mean_b, covariance_b).

    d^2 = ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2}). The trace of the root is taken
    as sum_i sqrt(lambda_i) over the eigenvalues of the symmetric S_a^{1/2} S_b S_a^{1/2}, which
    has the same eigenvalues as S_a S_b: exact for singular covariances (constant features,
    fewer samples than features), with no ridge and no complex round-off to discard.
    "min_eigenvalue" reports the most negative round-off clamped to zero.
    """
    mu_a = np.atleast_1d(np.asarray(mean_a, dtype=np.float64))
    mu_b = np.atleast_1d(np.asarray(mean_b, dtype=np.float64))
    sigma_a = np.atleast_2d(np.asarray(covariance_a, dtype=np.float64))
    sigma_b = np.atleast_2d(np.asarray(covariance_b, dtype=np.float64))
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError("statistics of a and b must have the same dimension")
    difference = mu_a - mu_b
    root_a = _psd_root(sigma_a)
    middle = root_a @ sigma_b @ root_a
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_root = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    value = float(difference @ difference + np.trace(sigma_a) + np.trace(sigma_b)
                  - 2.0 * trace_root)
    return {
        "value": max(value, 0.0),
        "method": "eigenvalues of S_a^1/2 S_b S_a^1/2",
        "min_eigenvalue": float(min(eigenvalues.min(), 0.0)),
    }


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> dict:
    """Fréchet distance (FID-style, Heusel et al. 2017) between two feature sets (N, F).

    Gaussians are fitted with the sample mean and unbiased covariance of each set.
    Returns {"value", "method", "min_eigenvalue", "n_a", "n_b"}.
    """
    mean_a, covariance_a = _mean_and_covariance(features_a, "features_a")
    mean_b, covariance_b = _mean_and_covariance(features_b, "features_b")
    result = frechet_distance_from_statistics(mean_a, covariance_a, mean_b, covariance_b)
    result["n_a"] = int(np.shape(features_a)[0])
    result["n_b"] = int(np.shape(features_b)[0])
    return result


def _manifold_overlap(real: np.ndarray, fake: np.ndarray, real_radii: dict[int, np.ndarray],
                      fake_radii: np.ndarray, k_precision_recall: int,
                      k_density_coverage: int) -> tuple[dict, dict]:
    """Precision/recall and density/coverage from one pass over the fake-to-real distances."""
    precision_limit = real_radii[k_precision_recall] ** 2
    density_limit = real_radii[k_density_coverage] ** 2
    recall_limit = fake_radii**2
    precise = np.empty(fake.shape[0], dtype=bool)
    recalled = np.zeros(real.shape[0], dtype=bool)
    covered = np.zeros(real.shape[0], dtype=bool)
    memberships = 0
    for start, block in squared_distance_blocks(fake, real):
        stop = start + block.shape[0]
        precise[start:stop] = (block <= precision_limit[None, :]).any(axis=1)
        recalled |= (block <= recall_limit[start:stop, None]).any(axis=0)
        inside = block <= density_limit[None, :]
        memberships += int(inside.sum())
        covered |= inside.any(axis=0)
    sizes = {"n_real": int(real.shape[0]), "n_fake": int(fake.shape[0])}
    return (
        {"precision": float(precise.mean()), "recall": float(recalled.mean()),
         "k": int(k_precision_recall), **sizes},
        {"density": memberships / (k_density_coverage * fake.shape[0]),
         "coverage": float(covered.mean()), "k": int(k_density_coverage), **sizes},
    )


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its points with radius the distance
    to the k-th nearest neighbour within the set. Precision is the fraction of fake
    samples inside the real manifold; recall the fraction of real samples inside the fake
    manifold.

    Returns {"precision", "recall", "k", "n_real", "n_fake"}.
    """
    real_values = distinct_rows(as_2d(real, "real"))  # repeats would make balls of radius 0
    fake_values = as_2d(fake, "fake")
    real_radii = neighbour_radii(real_values, (k,))
    fake_radii = neighbour_radii(fake_values, (k,))[k]
    return _manifold_overlap(real_values, fake_values, real_radii, fake_radii, k, k)[0]


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict:
    """Density and coverage (Naeem et al. 2020).

    With B_i the ball around real sample i of radius its k-th nearest-neighbour distance
    among the real samples:
      density = (1 / (k M)) sum_j sum_i 1[fake_j in B_i]   (about 1 for matching distributions,
                can exceed 1),
      coverage = (1 / N) sum_i 1[some fake_j in B_i].

    Returns {"density", "coverage", "k", "n_real", "n_fake"}.
    """
    real_values = distinct_rows(as_2d(real, "real"))
    fake_values = as_2d(fake, "fake")
    real_radii = neighbour_radii(real_values, (k,))
    # Recall is not reported here: any radii serve for the unused fake-side balls.
    return _manifold_overlap(real_values, fake_values, real_radii,
                             np.zeros(fake_values.shape[0]), k, k)[1]


class ReferenceSet:
    """Real features prepared once for many ``sample_quality`` calls (several samplers, one
    data set): their mean and covariance, a seeded subset of at most ``max_samples`` rows and
    its nearest-neighbour radii."""

    def __init__(self, features: np.ndarray, *, max_samples: int | None = 10000,
                 seed: SeedLike = 0, ks: tuple[int, ...] = (3, 5)):
        self.features = as_2d(features, "real_features")
        if self.features.shape[0] < 2:
            raise ValueError("real_features needs at least two rows for a covariance")
        self.mean = self.features.mean(axis=0)
        self.covariance = np.atleast_2d(np.cov(self.features, rowvar=False))
        self.max_samples = max_samples
        self.seed = seed
        # Distinct rows: data with repeated rows would give their balls a radius of 0 (the
        # generator's own repeats count: a sampler that repeats itself covers less).
        self.subset = distinct_rows(subsample(self.features, max_samples, make_generator(seed)))
        self.radii = neighbour_radii(self.subset, tuple(ks))


def classifier_statistics(probabilities: np.ndarray) -> dict:
    """Statistics of class predictions p(y | x) on a set of samples.

    Returns:
        "mean_confidence": mean over samples of max_y p(y | x),
        "mean_entropy": mean per-sample entropy (nats; low = confident/recognisable),
        "marginal_entropy": entropy of the mean predicted distribution (high = diverse),
        "normalised_marginal_entropy": marginal_entropy / log C,
        "inception_score": exp(marginal_entropy - mean_entropy) = exp E[KL(p(y|x) || p(y))],
        "label_histogram": counts of argmax labels per class, "n_classes", "n_samples".
    """
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError("probabilities must be a non-empty (N, C) array")
    if np.any(values < 0.0) or not np.allclose(values.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("each row of probabilities must be a distribution")
    values = values / values.sum(axis=1, keepdims=True)
    n_classes = values.shape[1]
    mean_entropy = float(entr(values).sum(axis=1).mean())
    marginal_entropy = float(entr(values.mean(axis=0)).sum())
    histogram = np.bincount(values.argmax(axis=1), minlength=n_classes)
    return {
        "mean_confidence": float(values.max(axis=1).mean()),
        "mean_entropy": mean_entropy,
        "marginal_entropy": marginal_entropy,
        "normalised_marginal_entropy": marginal_entropy / np.log(n_classes)
        if n_classes > 1
        else 0.0,
        "inception_score": float(np.exp(marginal_entropy - mean_entropy)),
        "label_histogram": histogram.tolist(),
        "n_classes": int(n_classes),
        "n_samples": int(values.shape[0]),
    }


def sample_quality(
    real_features: np.ndarray | ReferenceSet,
    fake_features: np.ndarray,
    fake_probabilities: np.ndarray | None = None,
    k_precision_recall: int = 3,
    k_density_coverage: int = 5,
    max_samples: int | None = 10000,
    seed: SeedLike = 0,
) -> dict:
    """Bundle of sample-quality metrics on features of real and generated samples.

    Fréchet distance uses all features; precision/recall and density/coverage use random
    subsets of at most max_samples rows per side (O(N^2) distances; None = all), drawn with
    seed. classifier_statistics is included when fake_probabilities is given. Pass a
    ``ReferenceSet`` (same max_samples and seed) to reuse the real side's statistics across
    calls.

    Returns {"frechet_distance", "precision_recall", "density_coverage",
    "classifier" (or None), "max_samples", "seed"}.
    """
    reference = real_features
    if not isinstance(reference, ReferenceSet):
        reference = ReferenceSet(real_features, max_samples=max_samples, seed=seed,
                                 ks=(k_precision_recall, k_density_coverage))
    elif reference.max_samples != max_samples or seed_record(reference.seed) != seed_record(seed):
        raise ValueError("the ReferenceSet was prepared with another max_samples or seed")
    fake_values = as_2d(fake_features, "fake_features")
    if fake_values.shape[0] < 2:
        raise ValueError("fake_features needs at least two rows for a covariance")
    generator = make_generator(seed)
    subsample(reference.features, max_samples, generator)  # the real draw, as the set made it
    fake_subset = subsample(fake_values, max_samples, generator)
    frechet = frechet_distance_from_statistics(
        reference.mean, reference.covariance, fake_values.mean(axis=0),
        np.atleast_2d(np.cov(fake_values, rowvar=False)))
    frechet.update(n_a=int(reference.features.shape[0]), n_b=int(fake_values.shape[0]))
    fake_radii = neighbour_radii(fake_subset, (k_precision_recall,))[k_precision_recall]
    overlap = _manifold_overlap(reference.subset, fake_subset, reference.radii, fake_radii,
                                k_precision_recall, k_density_coverage)
    return {
        "frechet_distance": frechet,
        "precision_recall": overlap[0],
        "density_coverage": overlap[1],
        "classifier": None
        if fake_probabilities is None
        else classifier_statistics(fake_probabilities),
        "max_samples": max_samples,
        "seed": seed_record(seed),
    }
