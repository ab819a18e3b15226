"""Likelihood of a trained model: the ELBO, the importance-weighted bound and the
importance-sampled estimate of log p(x) (Burda et al. 2016).

With k samples z_i ~ q(z|x), log p(x) ~= log (1/k) sum_i p(x, z_i) / q(z_i|x). The same number is
the IWAE_k lower bound, which increases with k towards log p(x); Burda et al. report k = 5000.
The samples are processed in chunks with a running log-sum-exp, so memory stays bounded for any k.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..models.base import NoLikelihoodError

# Rows (examples x samples) decoded at once: bounds memory at rows x data size floats.
DEFAULT_MAX_ROWS = 32768


def _require_likelihood(model) -> None:
    if not getattr(model, "has_likelihood", False):
        raise NoLikelihoodError(
            f"{model.name} defines no likelihood p(x): a deterministic autoencoder has no ELBO and "
            "no log-likelihood; use reconstruction metrics, or an ex-post density on its codes"
        )


def log_likelihood_estimate(
    model,
    x,
    *,
    k: int = 5000,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
    batch_size: int | None = None,
) -> np.ndarray:
    """Per-example importance-sampled log p(x) in nats with ``k`` samples (= the IWAE_k bound).

    Examples are taken ``batch_size`` at a time and samples in chunks so that at most
    ``max_rows`` decoder rows are live; randomness comes from ``seed`` alone (the global torch
    RNG is left as it was).
    """
    _require_likelihood(model)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    tensor, _ = model._prepare(x)
    if batch_size is None:
        batch_size = max(1, min(len(tensor), max_rows // min(k, max_rows)))
    samples_per_chunk = max(1, min(k, max_rows // batch_size))
    results = []
    was_training = model.training
    model.eval()
    devices = [tensor.device] if tensor.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            for start in range(0, len(tensor), batch_size):
                batch = tensor[start : start + batch_size]
                running = None
                remaining = k
                while remaining > 0:
                    chunk = min(samples_per_chunk, remaining)
                    log_weights = torch.logsumexp(model.log_importance_weights(batch, chunk), 0)
                    running = (
                        log_weights if running is None else torch.logaddexp(running, log_weights)
                    )
                    remaining -= chunk
                results.append((running - math.log(k)).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(results).numpy()


def bits_per_dimension(log_likelihood_nats: np.ndarray | float, dimensions: int) -> float:
    """-log2 p(x) / D: the per-dimension figure image-model papers report."""
    return float(-np.mean(log_likelihood_nats) / (dimensions * math.log(2.0)))


def likelihood_report(
    model, x, *, k: int = 5000, seed: int = 0, max_rows: int = DEFAULT_MAX_ROWS
) -> dict:
    """ELBO, importance-sampled log p(x) and bits per dimension, with their settings."""
    _require_likelihood(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        elbo = np.asarray(model.elbo(np.asarray(x) if not torch.is_tensor(x) else x.cpu()))
    log_likelihood = log_likelihood_estimate(model, x, k=k, seed=seed, max_rows=max_rows)
    dimensions = math.prod(model.input_shape)
    count = len(log_likelihood)
    return {
        "elbo": float(np.mean(elbo)),
        "log_likelihood": float(np.mean(log_likelihood)),
        "negative_log_likelihood": float(-np.mean(log_likelihood)),
        "log_likelihood_standard_error": float(np.std(log_likelihood, ddof=1) / math.sqrt(count))
        if count > 1
        else None,
        "gap_log_likelihood_minus_elbo": float(np.mean(log_likelihood) - np.mean(elbo)),
        "bits_per_dimension": bits_per_dimension(log_likelihood, dimensions),
        "importance_samples": k,
        "examples": count,
        "seed": seed,
        "unit": "nats per example",
    }
