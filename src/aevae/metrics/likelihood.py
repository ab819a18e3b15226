"""Likelihood of a trained model: the ELBO, the importance-weighted bound and the
importance-sampled estimate of log p(x) (Burda et al. 2016).

With k samples z_i ~ q(z|x), log p(x) ~= log (1/k) sum_i p(x, z_i) / q(z_i|x). The same number is
the IWAE_k lower bound, which increases with k towards log p(x); Burda et al. report k = 5000.
Samples are processed in chunks with a running log-sum-exp, so memory stays bounded for any k.

This is the one implementation of the estimate: ``Autoencoder.log_likelihood`` and the
scikit-learn facade's ``score_samples`` call :func:`log_likelihood_estimate`, so for the same
model, data, k and seed the three agree to float precision.

Randomness: each example draws its samples from its own stream, seeded by ``seed`` and the
example's values (:func:`example_seeds`), so its estimate depends on that example alone: not on
its position in ``x``, on which other examples share its batch, on ``likelihood_examples`` or on
``max_rows`` (beyond float rounding), while different examples' Monte-Carlo errors stay
independent and average out over a data set. On the fast path (below) the noise comes from a CPU
generator (the same numbers on every device); on the generic path each example is scored on its
own, with torch's RNG seeded by its stream's seed.

Speed (see benchmarks/likelihood_throughput.py): for models with a diagonal Gaussian posterior
(the VAE and the variants that keep its importance weights) the estimator encodes each example
once, takes log q(z|x) from the standard-normal noise directly, and for a Bernoulli decoder
computes log p(x|z) = sum_j x_j l_j - softplus(l_j) with the first sum as a batched matrix-vector
product, instead of the elementwise cross-entropy against a broadcast copy of x. Other models
fall back to their own ``log_importance_weights``.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import is_whole
from ..distributions import LOG_2PI, DiagonalGaussian
from ..likelihoods import Bernoulli
from ..models.base import NoLikelihoodError

# Decoder rows (examples x samples) live at once: bounds memory at about rows x data size x 3
# floats. 8192 rows of 784 logits (25 MiB) stay in a 32 MiB L3 cache, which measured faster on
# the 2-core development machine than 32768 rows (see benchmarks/likelihood_throughput.py).
DEFAULT_MAX_ROWS = 8192
# Chunks are a multiple of this many samples (when k is split), so the per-example noise stream
# is drawn in whole blocks whatever max_rows is.
SAMPLE_BLOCK = 16


def _require_likelihood(model) -> None:
    if not getattr(model, "has_likelihood", False):
        raise NoLikelihoodError(
            f"{model.name} defines no likelihood p(x): a deterministic autoencoder has no ELBO and "
            "no log-likelihood; use reconstruction metrics, or an ex-post density on its codes"
        )


def _uses_vae_weights(model) -> bool:
    """Whether the model's importance weights are the VAE's: Gaussian q, prior, likelihood."""
    from ..models.vae import VAE

    return isinstance(model, VAE) and (
        type(model).log_importance_weights is VAE.log_importance_weights
    )


def _decoder_log_prob(model, batch: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x|z) for z shaped (B, S, D) and x shaped (B, ...): (B, S)."""
    output = model.decoder_output(z)
    if type(model.likelihood) is Bernoulli:
        logits = output.reshape(z.shape[0], z.shape[1], -1)
        flat_x = batch.reshape(batch.shape[0], -1, 1)
        data_term = torch.bmm(logits, flat_x).squeeze(-1)  # sum_j x_j l_j
        return data_term - F.softplus(logits).sum(-1)
    return model.likelihood.log_prob(batch[:, None], output)


def example_seeds(seed: int, tensor: torch.Tensor) -> list[int]:
    """Seed of each example's own sample stream, well mixed from ``seed`` and the example's
    values (as float32 bytes): the same example gets the same stream wherever it stands."""
    rows = tensor.detach().float().cpu().reshape(len(tensor), -1).numpy()
    return [
        int(np.random.SeedSequence([int(seed), int.from_bytes(
            hashlib.blake2b(row.tobytes(), digest_size=16).digest(), "little")]
        ).generate_state(1, np.uint64)[0])
        for row in rows
    ]


def _log_mean_exp_vae(model, batch, k, samples_per_chunk, seeds) -> torch.Tensor | None:
    """log (1/k) sum_i w_i per example for a VAE-style model; None if q is not Gaussian."""
    q = model.posterior(batch)
    if not isinstance(q, DiagonalGaussian):
        return None
    mean, std = q.mean, q.std
    dimensions = mean.shape[-1]
    log_q_constant = -0.5 * q.log_variance.sum(-1, keepdim=True) - 0.5 * dimensions * LOG_2PI
    running = torch.full((len(batch),), -math.inf, dtype=torch.float64, device=batch.device)
    # Each example's k draws in one call: torch draws a short tensor (under 16 numbers) by
    # another method than a long one, so drawing chunk by chunk would make the numbers depend
    # on the chunk sizes, that is on max_rows. k x D numbers per example: max(max_rows, k) x D
    # in all, as many as the decoder's rows hold already.
    every_noise = torch.stack([
        torch.randn(k, dimensions, generator=torch.Generator().manual_seed(example),
                    dtype=mean.dtype)
        for example in seeds
    ])
    done = 0
    while done < k:
        count = min(samples_per_chunk, k - done)
        noise = every_noise[:, done:done + count].to(batch.device)
        z = torch.addcmul(mean[:, None], std[:, None], noise)  # (B, S, D)
        log_q = log_q_constant - 0.5 * noise.pow(2).sum(-1)
        log_weights = _decoder_log_prob(model, batch, z) + model.prior.log_prob(z) - log_q
        running = torch.logaddexp(running, torch.logsumexp(log_weights.double(), dim=1))
        done += count
    return running - math.log(k)


def _log_mean_exp_generic(model, batch, k, samples_per_chunk, seed) -> torch.Tensor:
    """Same quantity through the model's own ``log_importance_weights`` (any model). The
    caller passes one example at a time, so that its samples do not depend on its batch."""
    torch.manual_seed(int(seed))
    running = torch.full((len(batch),), -math.inf, dtype=torch.float64, device=batch.device)
    done = 0
    while done < k:
        count = min(samples_per_chunk, k - done)
        log_weights = model.log_importance_weights(batch, count)  # (count, B)
        running = torch.logaddexp(running, torch.logsumexp(log_weights.double(), dim=0))
        done += count
    return running - math.log(k)


def _chunk_sizes(count: int, k: int, max_rows: int, batch_size: int | None) -> tuple[int, int]:
    """(examples per batch, samples per chunk) with examples x samples <= max_rows."""
    for name, value in (("max_rows", max_rows), ("batch_size", batch_size)):
        if value is not None and (not is_whole(value) or value < 1):
            raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    if batch_size is None:
        batch_size = max(1, min(count, max_rows // min(k, max_rows)))
    samples = max(1, min(k, max_rows // batch_size))
    if samples < k and samples >= SAMPLE_BLOCK:
        samples -= samples % SAMPLE_BLOCK
    return batch_size, samples


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

    Examples are taken ``batch_size`` at a time (on the generic path one at a time) and samples
    in chunks so that at most ``max_rows`` decoder rows are live; randomness comes from ``seed``
    and each example's values (the global torch RNG is left as it was). This is
    the single implementation behind ``Autoencoder.log_likelihood`` and the scikit-learn
    facade's ``score_samples``. Raises NoLikelihoodError for a model without a likelihood.
    """
    _require_likelihood(model)
    model.require("log_likelihood")
    if not is_whole(k) or k < 1:
        raise ValueError(f"k must be a whole number of at least 1, got {k!r}")
    k = int(k)
    if not is_whole(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    tensor, _ = model._prepare(x, scored=True)
    batch_size, samples_per_chunk = _chunk_sizes(len(tensor), k, max_rows, batch_size)
    _, generic_samples_per_chunk = _chunk_sizes(1, k, max_rows, 1)
    fast = _uses_vae_weights(model)
    seeds = example_seeds(seed, tensor)
    # Filled in place: small tensors kept alive between the large transient ones fragment the
    # C heap (glibc), which then grew without bound over 10,000 examples.
    output = np.empty(len(tensor), dtype=np.float64)
    was_training = model.training
    model.eval()
    devices = [tensor.device] if tensor.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            for start in range(0, len(tensor), batch_size):
                batch = tensor[start : start + batch_size]
                estimate = None
                if fast:
                    estimate = _log_mean_exp_vae(
                        model, batch, k, samples_per_chunk, seeds[start : start + len(batch)]
                    )
                if estimate is None:
                    estimate = torch.cat([
                        _log_mean_exp_generic(
                            model, batch[index : index + 1], k, generic_samples_per_chunk,
                            seeds[start + index],
                        )
                        for index in range(len(batch))
                    ])
                output[start : start + len(batch)] = estimate.cpu().numpy()
                del estimate
    finally:
        model.train(was_training)
    return output


def bits_per_dimension(log_likelihood_nats: np.ndarray | float, dimensions: int) -> float:
    """-log2 p(x) / D: the per-dimension figure image-model papers report."""
    return float(-np.mean(log_likelihood_nats) / (dimensions * math.log(2.0)))


def _standard_error(values: np.ndarray) -> float | None:
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None


def likelihood_report(
    model,
    x,
    *,
    k: int = 5000,
    seed: int = 0,
    max_rows: int = DEFAULT_MAX_ROWS,
    bound_samples: tuple[int, ...] = (1, 5, 50),
    per_example: bool = True,
) -> dict:
    """ELBO, IWAE bounds for small k, importance-sampled log p(x) (k samples) and bits per
    dimension, with their settings; per-example ELBO and log p(x) when ``per_example``."""
    _require_likelihood(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        elbo = np.asarray(model.elbo(np.asarray(x) if not torch.is_tensor(x) else x.cpu()))
    log_likelihood = log_likelihood_estimate(model, x, k=k, seed=seed, max_rows=max_rows)
    bounds = {
        str(samples): float(
            np.mean(log_likelihood_estimate(model, x, k=samples, seed=seed + 1, max_rows=max_rows))
        )
        for samples in bound_samples
    }
    dimensions = math.prod(model.input_shape)
    result = {
        "elbo": float(np.mean(elbo)),
        "elbo_standard_error": _standard_error(elbo),
        "importance_weighted_bounds": bounds,
        "log_likelihood": float(np.mean(log_likelihood)),
        "negative_log_likelihood": float(-np.mean(log_likelihood)),
        "log_likelihood_standard_error": _standard_error(log_likelihood),
        "gap_log_likelihood_minus_elbo": float(np.mean(log_likelihood) - np.mean(elbo)),
        "bits_per_dimension": bits_per_dimension(log_likelihood, dimensions),
        "importance_samples": k,
        "bound_samples": list(bound_samples),
        "examples": len(log_likelihood),
        "dimensions": dimensions,
        "likelihood": model.config.likelihood,
        "max_rows": max_rows,
        "seed": seed,
        "unit": "nats per example (bits per dimension: -log2 p(x) / dimensions"
        + ("" if model.likelihood.needs_unit_interval else "; a continuous density's figure on "
           "the data's scale, not the discretised 8-bit one image-model papers report") + ")",
        "estimator": "log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. 2016); "
        "each bound uses its own samples (seed + 1)",
    }
    if per_example:
        result["per_example"] = {
            "elbo": elbo.astype(np.float64).tolist(),
            "log_likelihood": log_likelihood.astype(np.float64).tolist(),
        }
    return result
