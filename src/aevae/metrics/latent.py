"""Latent-space metrics on encoder outputs: active units, KL, mutual information, prior mismatch.

All functions take numpy arrays of shape (N, D) (N examples, D latent dimensions) and
return JSON-serialisable dicts that echo their settings.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

from ._utils import (
    SeedLike,
    as_2d,
    chunk_rows,
    distinct_rows,
    kth_neighbour_distances,
    make_generator,
    nearest_distances,
    seed_record,
    squared_distance_blocks,
    subsample,
)

LOG_TWO_PI = math.log(2.0 * math.pi)


def active_units(posterior_means: np.ndarray, threshold: float = 0.01) -> dict:
    """Count active latent units (Burda et al. 2016, "Importance Weighted Autoencoders").

    Unit u is active when Var_x(E_q[z_u | x]) > threshold, the variance being taken over
    the examples (population variance, ddof=0).

    Args:
        posterior_means: (N, D) posterior means E_q[z | x_n] (or deterministic AE codes).
        threshold: activity threshold, 0.01 as in the paper.

    Returns:
        {"value": count, "n_dimensions", "variances": per-dimension list,
         "active": per-dimension bools, "threshold"}.
    """
    means = as_2d(posterior_means, "posterior_means")
    variances = means.var(axis=0)
    active = variances > threshold
    return {
        "value": int(active.sum()),
        "n_dimensions": int(means.shape[1]),
        "variances": variances.tolist(),
        "active": active.tolist(),
        "threshold": float(threshold),
    }


def _check_variances(variances: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    values = as_2d(variances, "variances")
    if values.shape != shape:
        raise ValueError(f"variances shape {values.shape} does not match means shape {shape}")
    if np.any(values <= 0.0):
        raise ValueError("variances must be strictly positive")
    return values


def kl_to_standard_normal(means: np.ndarray, variances: np.ndarray) -> dict:
    """KL(N(mu, var) || N(0, I)) averaged over examples: in total and per latent dimension.

    KL_d = 0.5 * (mu_d^2 + var_d - 1 - log var_d), averaged over the N examples.

    Args:
        means: (N, D) posterior means.
        variances: (N, D) posterior variances (not log-variances).

    Returns:
        {"total": sum over dimensions (nats per example), "per_dimension": list of D floats
        (nats per example), "unit"}.
    """
    mu = as_2d(means, "means")
    var = _check_variances(variances, mu.shape)
    kl = 0.5 * (mu**2 + var - 1.0 - np.log(var))
    per_dimension = kl.mean(axis=0)
    return {
        "total": float(per_dimension.sum()),
        "per_dimension": per_dimension.tolist(),
        "unit": "nats per example",
    }


def _log_posterior_density(
    points: np.ndarray, means: np.ndarray, variances: np.ndarray
) -> np.ndarray:
    """(len(points), len(means)) array of log N(points[i]; means[m], diag(variances[m]))."""
    inverse = 1.0 / variances
    constant = -0.5 * (np.log(variances).sum(axis=1) + (means**2 * inverse).sum(axis=1))
    constant -= 0.5 * means.shape[1] * LOG_TWO_PI
    quadratic = (points**2) @ inverse.T - 2.0 * points @ (means * inverse).T
    return constant[None, :] - 0.5 * quadratic


def mutual_information(
    means: np.ndarray,
    variances: np.ndarray,
    seed: SeedLike = 0,
    n_samples: int = 1,
    max_examples: int | None = None,
) -> dict:
    """Monte Carlo estimate of I(x; z) under the aggregate posterior.

    With q(z) = (1/N) sum_n q(z | x_n) over the N given examples (diagonal Gaussians),
    I(x; z) = E_{x_n, z ~ q(z|x_n)}[log q(z | x_n) - log q(z)], where log q(z) is a
    logsumexp over all N posteriors (computed in chunks). This is the estimator used in
    Hoffman & Johnson (2016, "ELBO surgery") and Chen et al. (2018). Since
    q(z) >= q(z | x_n) / N, the estimate is bounded above by log N (reported as "log_n").

    Args:
        means, variances: (N, D) posterior parameters (variances, not log-variances).
        seed: int or numpy Generator for the z samples (and the example subset).
        n_samples: z samples drawn per outer example.
        max_examples: if set, the outer expectation uses a random subset of this many
            examples (q(z) still uses all N); None uses all examples.

    Returns:
        {"value": nats, "log_n", "n_examples", "n_outer", "n_samples", "max_examples", "seed"}.
    """
    mu = as_2d(means, "means")
    var = _check_variances(variances, mu.shape)
    if n_samples < 1:
        raise ValueError("n_samples must be >= 1")
    generator = make_generator(seed)
    n_examples, n_dimensions = mu.shape
    outer = np.arange(n_examples)
    if max_examples is not None and max_examples < n_examples:
        outer = np.sort(generator.choice(n_examples, size=max_examples, replace=False))
    outer = np.repeat(outer, n_samples)
    noise = generator.standard_normal((outer.size, n_dimensions))
    log_n = math.log(n_examples)
    total = 0.0
    size = chunk_rows(outer.size, n_examples)
    for start in range(0, outer.size, size):
        index = outer[start : start + size]
        std = np.sqrt(var[index])
        points = mu[index] + std * noise[start : start + size]
        own = -0.5 * (
            (noise[start : start + size] ** 2).sum(axis=1)
            + np.log(var[index]).sum(axis=1)
            + n_dimensions * LOG_TWO_PI
        )
        aggregate = logsumexp(_log_posterior_density(points, mu, var), axis=1) - log_n
        total += float((own - aggregate).sum())
    return {
        "value": total / outer.size,
        "log_n": log_n,
        "n_examples": int(n_examples),
        "n_outer": int(outer.size // n_samples),
        "n_samples": int(n_samples),
        "max_examples": max_examples,
        "seed": seed_record(seed),
    }


def _kernel_sum(a: np.ndarray, b: np.ndarray, kernel, exclude_diagonal: bool) -> float:
    total = 0.0
    for start, block in squared_distance_blocks(a, b):
        values = kernel(block)
        if exclude_diagonal:
            rows = np.arange(values.shape[0])
            values[rows, start + rows] = 0.0
        total += float(values.sum())
    return total


def mmd_squared(x: np.ndarray, y: np.ndarray, kernel) -> float:
    """Unbiased MMD^2 estimate between samples x and y for a kernel of squared distance."""
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("unbiased MMD needs at least two samples on each side")
    xx = _kernel_sum(x, x, kernel, True) / (n * (n - 1))
    yy = _kernel_sum(y, y, kernel, True) / (m * (m - 1))
    xy = _kernel_sum(x, y, kernel, False) / (n * m)
    return xx + yy - 2.0 * xy


def _median_squared_distance(values: np.ndarray, generator: np.random.Generator) -> float:
    sample = subsample(values, 1000, generator)
    block = next(squared_distance_blocks(sample, sample, chunk_size=sample.shape[0]))[1]
    upper = block[np.triu_indices(sample.shape[0], k=1)]
    return float(np.median(upper))


def gaussian_kl_to_standard(mean: np.ndarray, covariance: np.ndarray) -> float:
    """Closed form KL(N(mean, covariance) || N(0, I)) in nats."""
    sign, log_determinant = np.linalg.slogdet(covariance)
    if sign <= 0:
        raise ValueError("covariance must be positive definite")
    dimension = mean.shape[0]
    return float(0.5 * (np.trace(covariance) + mean @ mean - dimension - log_determinant))


def prior_mismatch(
    codes: np.ndarray,
    seed: SeedLike = 0,
    n_prior: int | None = None,
    max_codes: int | None = 5000,
    covariance_eps: float = 1e-6,
) -> dict:
    """How far the aggregate posterior (the codes of the data) is from the prior N(0, I).

      * "mmd_imq": unbiased MMD^2 with the inverse multiquadratic kernel C / (C + ||x-y||^2),
        C = 2 * D (Tolstikhin et al. 2018, prior variance 1).
      * "mmd_rbf": unbiased MMD^2 with exp(-||x-y||^2 / h), h = median squared pairwise
        distance of the pooled codes and prior samples (median heuristic; up to 1000
        pooled points; "rbf_bandwidth" reports h).
      * "gaussian_kl": KL(N(m, S) || N(0, I)) of a Gaussian fitted to the codes
        (S gets covariance_eps * I added so collapsed dimensions stay finite).

    Holes inside the codes' own region are measured by :func:`latent_holes`, which does not
    depend on the codes' scale.

    Args:
        codes: (N, D) codes (posterior means or samples, or AE codes).
        seed: int or Generator; draws the prior samples and the code subset.
        n_prior: number of prior samples; None = number of codes used.
        max_codes: random subset of codes used for all parts (bounds the O(N^2) cost);
            None uses every code.
        covariance_eps: ridge added to the fitted covariance.

    Returns:
        dict with the values above plus the settings.
    """
    generator = make_generator(seed)
    values = subsample(as_2d(codes, "codes"), max_codes, generator)
    n_codes, dimension = values.shape
    if n_codes < 2:
        raise ValueError("prior_mismatch needs at least two codes")
    count = n_codes if n_prior is None else int(n_prior)
    prior = generator.standard_normal((count, dimension))

    scale = 2.0 * dimension
    mmd_imq = mmd_squared(values, prior, lambda d2: scale / (scale + d2))
    bandwidth = _median_squared_distance(np.concatenate([values, prior]), generator)
    bandwidth = max(bandwidth, 1e-12)
    mmd_rbf = mmd_squared(values, prior, lambda d2: np.exp(-d2 / bandwidth))

    mean = values.mean(axis=0)
    covariance = np.atleast_2d(np.cov(values, rowvar=False))
    covariance = covariance + covariance_eps * np.eye(dimension)
    gaussian_kl = gaussian_kl_to_standard(mean, covariance)
    return {
        "mmd_imq": float(mmd_imq),
        "imq_scale": scale,
        "mmd_rbf": float(mmd_rbf),
        "rbf_bandwidth": bandwidth,
        "gaussian_kl": gaussian_kl,
        "n_codes": int(n_codes),
        "n_prior": int(count),
        "max_codes": max_codes,
        "covariance_eps": float(covariance_eps),
        "seed": seed_record(seed),
    }


def gaussian_probes(codes: np.ndarray, count: int, seed: SeedLike = 0) -> np.ndarray:
    """``count`` points drawn from N(mean, covariance) of the codes: their own region, at their
    own scale (a collapsed dimension stays collapsed)."""
    values = as_2d(codes, "codes")
    generator = make_generator(seed)
    mean = values.mean(axis=0)
    covariance = np.atleast_2d(np.cov(values, rowvar=False))
    return generator.multivariate_normal(mean, covariance, size=count, method="eigh")


def latent_holes(
    codes: np.ndarray,
    seed: SeedLike = 0,
    n_probes: int | None = None,
    max_codes: int | None = 5000,
    percentile: float = 95.0,
) -> dict:
    """Holes in the region the codes occupy, independent of the codes' scale.

    Probes are drawn from a Gaussian fitted to the codes (their mean and covariance). A probe
    is "in a hole" when its nearest code is farther away than the ``percentile``-th percentile
    of the codes' own nearest-neighbour distances. If the codes themselves were Gaussian, the
    probes would be exchangeable with them and about (100 - percentile)% would count (the
    "expected_without_holes" baseline); clusters with gaps between them, rings and other
    shapes with empty regions score higher. Scaling or rotating the codes changes nothing.

    Args:
        codes: (N, D) codes.
        seed: int or Generator: the code subset and the probes.
        n_probes: probes drawn; None = the number of codes used.
        max_codes: random subset of codes (bounds the O(N^2) cost); None uses all.
        percentile: percentile of code-to-code nearest-neighbour distances used as radius.

    Returns:
        {"value": fraction of probes in holes, "expected_without_holes", "excess": value minus
        that baseline, "radius", settings}.
    """
    generator = make_generator(seed)
    values = subsample(as_2d(codes, "codes"), max_codes, generator).astype(np.float64)
    if values.shape[0] < 3:
        raise ValueError("latent_holes needs at least three codes")
    count = values.shape[0] if n_probes is None else int(n_probes)
    probes = gaussian_probes(values, count, generator)
    distinct = distinct_rows(values)  # repeated inputs give repeated codes, at distance 0
    radius = (float(np.percentile(kth_neighbour_distances(distinct, 1), percentile))
              if len(distinct) > 1 else 0.0)
    fraction = float(np.mean(nearest_distances(probes, values) > radius))
    expected = 1.0 - percentile / 100.0
    return {
        "value": fraction,
        "expected_without_holes": expected,
        "excess": fraction - expected,
        "radius": radius,
        "percentile": float(percentile),
        "probes": "N(mean, covariance) of the codes",
        "n_codes": int(values.shape[0]),
        "n_probes": int(count),
        "max_codes": max_codes,
        "seed": seed_record(seed),
    }
