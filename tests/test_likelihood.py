"""The importance-sampled log p(x) against closed forms, its chunking, seeding and the AE case."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

import aevae
from aevae.metrics import likelihood
from aevae.models import MODELS
from aevae.models.vae import VAE

DATA_DIMENSIONS, LATENT_DIMENSIONS, SIGMA = 6, 3, 0.5




class GenericWeightsVAE(VAE):
    """Overrides log_importance_weights, so the estimator takes its generic path."""

    name = "test_generic_weights_vae"

    def log_importance_weights(self, x, k):
        return super().log_importance_weights(x, k)


def linear_gaussian(orthogonal: bool, seed: int = 0, model_class=None):
    """A linear VAE with fixed-sigma Gaussian decoder, p(x) = N(b, W W^T + sigma^2 I), and
    the encoder set to the exact posterior mean with (inflated, if correlated) marginal
    variances. Returns (model, exact distribution p(x), exact posterior precision)."""
    generator = torch.Generator().manual_seed(seed)
    options = dict(
        input_shape=(DATA_DIMENSIONS,),
        latent_dim=LATENT_DIMENSIONS,
        network="linear",
        likelihood="gaussian",
        likelihood_options={"sigma": SIGMA},
    )
    model = model_class(**options) if model_class else aevae.make("vae", **options)
    weight = torch.randn(DATA_DIMENSIONS, LATENT_DIMENSIONS, generator=generator)
    if orthogonal:  # W^T W diagonal: the exact posterior is a diagonal Gaussian
        basis, _ = torch.linalg.qr(weight)
        weight = basis * torch.tensor([2.0, 1.0, 0.5])
    bias = 0.3 * torch.randn(DATA_DIMENSIONS, generator=generator)
    precision = torch.eye(LATENT_DIMENSIONS) + weight.T @ weight / SIGMA**2
    covariance = torch.linalg.inv(precision)
    variance = torch.diagonal(covariance) * (1.0 if orthogonal else 1.5)
    gain = covariance @ weight.T / SIGMA**2  # posterior mean = gain (x - b)
    with torch.no_grad():
        model.decoder.body[0].weight.copy_(weight)
        model.decoder.body[0].bias.copy_(bias)
        encoder = model.encoder.body[-1]
        encoder.weight.zero_()
        encoder.weight[:LATENT_DIMENSIONS] = gain
        encoder.bias[:LATENT_DIMENSIONS] = -gain @ bias
        encoder.bias[LATENT_DIMENSIONS:] = variance.log()
    marginal = MultivariateNormal(bias, weight @ weight.T + SIGMA**2 * torch.eye(DATA_DIMENSIONS))
    return model.eval(), marginal, precision, variance


def test_exact_posterior_gives_exact_log_likelihood_on_both_paths():
    # With q(z|x) = p(z|x) every importance weight equals p(x): any k is exact.
    for model_class in (None, GenericWeightsVAE):
        model, marginal, _, _ = linear_gaussian(orthogonal=True, model_class=model_class)
        x = marginal.sample((50,))
        exact = marginal.log_prob(x).double().numpy()
        for k in (1, 7, 100):
            estimate = likelihood.log_likelihood_estimate(model, x, k=k, seed=k)
            np.testing.assert_allclose(estimate, exact, atol=2e-4)


def test_estimate_converges_to_the_exact_value_and_bounds_are_ordered():
    model, marginal, precision, variance = linear_gaussian(orthogonal=False, seed=1)
    # q is wider than p(z|x)/2 in every direction: the weights have finite variance.
    assert torch.linalg.eigvalsh(2 * precision - torch.diag(1 / variance)).min() > 0
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = marginal.sample(torch.Size([1000]))
        elbo = float(np.mean(model.elbo(x).numpy()))
    exact = marginal.log_prob(x).double().numpy()
    errors, means = {}, {}
    for k in (1, 5, 50, 5000):
        # Small k: average 20 independent estimates, so the ordering is not noise.
        repeats = [
            likelihood.log_likelihood_estimate(model, x, k=k, seed=seed)
            for seed in range(20 if k <= 50 else 1)
        ]
        errors[k] = float(np.mean(np.abs(repeats[0] - exact)))
        means[k] = float(np.mean(repeats))
    assert errors[5000] < 0.05
    assert errors[5000] < errors[1] / 20
    # ELBO <= IWAE_5 <= IWAE_50 <= IWAE_5000 <= log p(x), on average over examples.
    assert elbo < means[5] < means[50] < means[5000] < float(np.mean(exact)) + 0.005


def test_bernoulli_fused_log_prob_matches_the_likelihood():
    torch.manual_seed(0)
    model = aevae.make("vae", input_shape=(1, 4, 4), latent_dim=3, hidden=(8,)).eval()
    x = torch.rand(5, 1, 4, 4)  # grey levels: the general x l - softplus(l) form
    z = torch.randn(5, 7, 3)
    fused = likelihood._decoder_log_prob(model, x, z)
    reference = model.reconstruction_log_prob(x[:, None].expand(5, 7, 1, 4, 4), z)
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-4)


@pytest.fixture(scope="module")
def bernoulli_model():
    torch.manual_seed(0)
    model = aevae.make("vae", input_shape=(1, 8, 8), latent_dim=4, hidden=(32,)).eval()
    x = (torch.rand(6, 1, 8, 8) < 0.3).float()
    return model, x


def test_chunking_keeps_the_estimate_and_bounds_memory(bernoulli_model):
    model, x = bernoulli_model
    rows = []
    hook = model.decoder.register_forward_hook(
        lambda module, inputs, output: rows.append(len(inputs[0]))
    )
    try:
        small = likelihood.log_likelihood_estimate(model, x, k=5000, seed=3, max_rows=256)
    finally:
        hook.remove()
    assert max(rows) <= 256 and sum(rows) == 6 * 5000
    large = likelihood.log_likelihood_estimate(model, x, k=5000, seed=3, max_rows=40000)
    odd = likelihood.log_likelihood_estimate(model, x, k=5000, seed=3, max_rows=999)
    # The same draws however they are chunked: equal to float rounding, not to Monte-Carlo
    # error, down to chunks of under 16 random numbers (which torch draws by another method).
    for estimate in (large, odd):
        np.testing.assert_allclose(estimate, small, rtol=0, atol=1e-6)
    whole = likelihood.log_likelihood_estimate(model, x, k=37, seed=3)
    for rows_at_once in (1, 3, 16):
        np.testing.assert_allclose(
            likelihood.log_likelihood_estimate(model, x, k=37, seed=3, max_rows=rows_at_once),
            whole, rtol=0, atol=1e-6)


def test_estimate_is_seeded_and_leaves_the_global_rng_alone(bernoulli_model):
    model, x = bernoulli_model
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = likelihood.log_likelihood_estimate(model, x, k=64, seed=9)
    assert torch.equal(torch.get_rng_state(), before)
    np.testing.assert_array_equal(first, likelihood.log_likelihood_estimate(model, x, k=64, seed=9))
    assert not np.array_equal(first, likelihood.log_likelihood_estimate(model, x, k=64, seed=10))
    # An example's estimate does not depend on which examples share its batch.
    batched = likelihood.log_likelihood_estimate(model, x, k=64, seed=9, batch_size=4)
    np.testing.assert_allclose(batched, first, rtol=1e-6)


def test_report_echoes_settings_and_is_consistent(bernoulli_model):
    model, x = bernoulli_model
    report = likelihood.likelihood_report(model, x, k=100, seed=2, bound_samples=(1, 10))
    assert report["importance_samples"] == 100 and report["seed"] == 2
    assert set(report["importance_weighted_bounds"]) == {"1", "10"}
    assert len(report["per_example"]["log_likelihood"]) == len(x)
    expected_bits = -report["log_likelihood"] / (64 * math.log(2))
    assert report["bits_per_dimension"] == pytest.approx(expected_bits)
    assert report["gap_log_likelihood_minus_elbo"] == pytest.approx(
        report["log_likelihood"] - report["elbo"]
    )
    assert all(math.isfinite(value) for value in report["importance_weighted_bounds"].values())


def test_autoencoder_has_no_likelihood():
    model = aevae.make("ae", input_shape=(1, 8, 8), latent_dim=4, hidden=(16,))
    x = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(aevae.NoLikelihoodError, match="defines no likelihood"):
        likelihood.log_likelihood_estimate(model, x, k=10)
    with pytest.raises(aevae.NoLikelihoodError):
        likelihood.likelihood_report(model, x, k=10)


def test_bad_arguments():
    model = aevae.make("vae", input_shape=(1, 8, 8), latent_dim=4, hidden=(16,))
    x = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="k must be"):
        likelihood.log_likelihood_estimate(model, x, k=0)
    with pytest.raises(ValueError, match="max_rows"):
        likelihood.log_likelihood_estimate(model, x, k=5, max_rows=0)


# Models that read labels score labelled batches: tests/test_labels.py.
LIKELIHOOD_MODELS = sorted(name for name, cls in MODELS.items()
                           if cls.has_likelihood and not cls.uses)


@pytest.mark.parametrize("name", LIKELIHOOD_MODELS)
def test_every_model_with_a_likelihood_agrees_with_its_own_weights(name, monkeypatch):
    # The fast path (VAE-style weights) and the model's own log_importance_weights estimate
    # the same IWAE_k expectation; models that override the weights always take their own.
    model = aevae.make(name, input_shape=(1, 8, 8), latent_dim=4, hidden=(16,)).eval()
    x = (torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    fast = likelihood.log_likelihood_estimate(model, x, k=2000, seed=0)
    assert np.all(np.isfinite(fast))
    monkeypatch.setattr(likelihood, "_uses_vae_weights", lambda model: False)
    generic = likelihood.log_likelihood_estimate(model, x, k=2000, seed=0)
    assert abs(fast.mean() - generic.mean()) < 0.1


def resident_megabytes() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_memory_stays_flat_over_many_examples():
    # A regression: results kept as small tensors between the large transient decoder outputs
    # fragmented the C heap, and memory grew by ~4 MB per example (23 GB on MNIST's test set).
    model = aevae.make("vae", input_shape=(1, 28, 28), latent_dim=4, hidden=(32,)).eval()
    x = (torch.rand(150, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.2).float()
    likelihood.log_likelihood_estimate(model, x[:20], k=5000)
    before = resident_megabytes()
    likelihood.log_likelihood_estimate(model, x, k=5000)
    assert resident_megabytes() - before < 50  # the old code grew by about 90 MB here


def test_model_metric_and_facade_give_the_same_estimate(digits):
    # One estimator behind the three: the same model, data, k and seed give the same numbers.
    from aevae.sklearn import AutoencoderTransformer

    x = digits.train.x[:400].reshape(400, -1).astype(np.float64)
    k, seed = 200, 3
    facade = AutoencoderTransformer(model="vae", latent_dim=4, hidden=(32,), epochs=2,
                                    importance_samples=k, random_state=seed).fit(x)
    data = facade._standardised(x[:60])
    own = facade.model_.log_likelihood(data, k, seed)
    metric = likelihood.log_likelihood_estimate(facade.model_, data, k=k, seed=seed)
    np.testing.assert_array_equal(own, metric)
    np.testing.assert_allclose(facade.score_samples(x[:60]) - facade._log_jacobian, metric,
                               rtol=1e-6)
    # An example's estimate depends on that example alone, not on its position or batch.
    np.testing.assert_allclose(facade.model_.log_likelihood(data[::-1].copy(), k, seed), own[::-1],
                               rtol=1e-6)
    np.testing.assert_allclose(facade.model_.log_likelihood(data, k, seed, max_rows=1000), own,
                               rtol=1e-6)
