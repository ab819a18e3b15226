"""IWAE, the mixture and VampPrior priors, flow posteriors and the two-layer hierarchical VAE:
training, persistence, the bounds they promise, and the densities behind them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import aevae
from aevae.distributions import DiagonalGaussian
from aevae.flows import InverseAutoregressiveFlow, PlanarFlow, make_flow
from aevae.models.iwae import importance_weighted_bound
from aevae.priors import MixtureOfGaussians, make_prior

SMALL = {"input_shape": (1, 8, 8), "hidden": (64,), "latent_dim": 4}
HIERARCHY = {"intermediate_latent_dim": 8, "intermediate_hidden": (32,)}
CASES = {
    "iwae": ("iwae", {}),
    "vamp_prior": ("vamp_prior", {"prior_options": {"pseudo_inputs": 50}}),
    "vae_mixture": ("vae", {"prior": "mixture", "prior_options": {"components": 5}}),
    "vae_flow_planar": ("vae_flow", {}),
    "vae_flow_iaf": ("vae_flow", {"flow": "iaf", "flow_hidden": (32,)}),
    "hierarchical_vae": ("hierarchical_vae", HIERARCHY),
    "hierarchical_vae_vamp": ("hierarchical_vae", {**HIERARCHY, "prior": "vamp",
                                                   "prior_options": {"pseudo_inputs": 20}}),
    "hierarchical_iwae": ("hierarchical_iwae", HIERARCHY),
}
_trained: dict[str, aevae.Autoencoder] = {}




def make(name: str, **options) -> aevae.Autoencoder:
    torch.manual_seed(0)
    return aevae.make(name, **{**SMALL, **options})


def trained(case: str, digits) -> aevae.Autoencoder:
    """Each case is trained once (3 epochs) and shared by the tests that only read it."""
    if case not in _trained:
        name, options = CASES[case]
        _trained[case] = make(name, **options).fit(
            digits.train.x, epochs=3, batch_size=64, progress=False, seed=0
        )
    return _trained[case]


def seeded_terms(model, x, seed=0) -> dict:
    torch.manual_seed(seed)
    return model.loss_terms(x)


def mean_elbo(model, x, repeats: int) -> np.ndarray:
    """Per-example ELBO averaged over ``repeats`` posterior draws."""
    torch.manual_seed(1)
    stacked = np.repeat(x[None], repeats, axis=0).reshape(-1, *x.shape[1:])
    return model.elbo(stacked).reshape(repeats, len(x)).mean(0)


def importance_sampled(model, x, k: int, seed: int = 2) -> np.ndarray:
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        weights = model.log_importance_weights(torch.as_tensor(x), k)
    return importance_weighted_bound(weights).numpy()


# ----- every model here: training, configuration, persistence, bounds -----------------------------
def test_models_are_registered_with_descriptions():
    names = dict(aevae.available_models())
    for name in ("iwae", "vamp_prior", "vae_flow", "hierarchical_vae", "hierarchical_iwae"):
        assert names[name]


@pytest.mark.parametrize("case", sorted(CASES))
def test_trains_and_round_trips(case, digits, tmp_path):
    model = trained(case, digits)
    losses = [record["train_loss"] for record in model.history_.epochs]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]

    config = model.config
    assert type(config).from_options(config.to_dict()) == config
    assert type(config).from_options(json.loads(json.dumps(config.to_dict()))) == config

    x = digits.test.x[:50]
    loaded = aevae.load(model.save(tmp_path))
    assert type(loaded) is type(model) and not loaded.custom_networks
    np.testing.assert_array_equal(loaded.encode(x), model.encode(x))
    np.testing.assert_array_equal(loaded.encode(x, return_variance=True)[1],
                                  model.encode(x, return_variance=True)[1])
    before, after = seeded_terms(model, x), seeded_terms(loaded, x)
    assert set(before) == set(after) and {"loss", "reconstruction", "kl", "elbo"} <= set(before)
    for key in before:
        assert np.isfinite(before[key]).all()
        np.testing.assert_array_equal(after[key], before[key])
    np.testing.assert_array_equal(loaded.sample(5, seed=3), model.sample(5, seed=3))
    assert model.sample(5, seed=3).shape == (5, 1, 8, 8)


@pytest.mark.parametrize("case", sorted(CASES))
def test_importance_sampled_estimate_is_above_the_elbo(case, digits):
    model = trained(case, digits)
    x = digits.test.x[:100]
    elbo = mean_elbo(model, x, repeats=10)
    estimate = importance_sampled(model, x, k=200)
    assert np.isfinite(estimate).all()
    assert estimate.mean() > elbo.mean()
    # The one-sample bound is the ELBO: equal in expectation.
    one_sample = np.mean([importance_sampled(model, x, k=1, seed=seed).mean()
                          for seed in range(10)])
    assert one_sample == pytest.approx(elbo.mean(), abs=0.5)


# ----- IWAE ------------------------------------------------------------------------------------
@pytest.mark.parametrize("prior", ["standard-normal", "mixture"])
def test_iwae_with_one_sample_is_the_vae(digits, prior):
    vae = make("vae", prior=prior)
    iwae = make("iwae", prior=prior, importance_samples=1)
    iwae.load_state_dict(vae.state_dict())
    x = torch.as_tensor(digits.train.x[:64])
    for kl_weight in (1.0, 0.3):
        torch.manual_seed(5)
        expected = vae.loss(x, kl_weight=kl_weight)
        torch.manual_seed(5)
        output = iwae.loss(x, kl_weight=kl_weight)
        assert torch.equal(output.loss, expected.loss)
        assert torch.equal(output.elbo, expected.elbo)
        assert torch.equal(output.terms["iwae_bound"], expected.elbo)
        for name in ("reconstruction", "kl"):
            assert torch.equal(output.terms[name], expected.terms[name])


def test_iwae_bound_is_above_the_elbo_and_grows_with_k(digits):
    model = trained("iwae", digits)
    x = digits.test.x[:200]
    bounds = {k: np.mean([importance_sampled(model, x, k, seed=seed).mean()
                          for seed in range(5)]) for k in (1, 5, 50)}
    assert bounds[1] < bounds[5] < bounds[50]
    assert bounds[5] > mean_elbo(model, x, repeats=5).mean()


def test_iwae_loss_is_minus_the_bound(digits):
    model = trained("iwae", digits)
    output = model.loss(torch.as_tensor(digits.test.x[:32]))
    assert torch.equal(output.loss, -output.terms["iwae_bound"])
    assert output.loss.shape == (32,)
    annealed = model.loss(torch.as_tensor(digits.test.x[:32]), kl_weight=0.0)
    assert torch.isfinite(annealed.loss).all()


def test_hierarchical_iwae_with_one_sample_is_the_hierarchical_vae(digits):
    vae = make("hierarchical_vae", **HIERARCHY)
    iwae = make("hierarchical_iwae", importance_samples=1, **HIERARCHY)
    iwae.load_state_dict(vae.state_dict())
    x = torch.as_tensor(digits.train.x[:64])
    torch.manual_seed(5)
    expected = vae.loss(x, kl_weight=0.5)
    torch.manual_seed(5)
    output = iwae.loss(x, kl_weight=0.5)
    assert torch.equal(output.loss, expected.loss)
    for name, value in expected.terms.items():
        assert torch.equal(output.terms[name], value)


def test_iwae_rejects_contradictory_options():
    with pytest.raises(ValueError, match="importance_samples"):
        make("iwae", importance_samples=0)
    with pytest.raises(ValueError, match="samples"):
        make("iwae", samples=3)


# ----- the mixture prior -----------------------------------------------------------------------
def test_one_component_mixture_is_the_gaussian():
    prior = MixtureOfGaussians(3, components=1)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[0.5, -1.0, 2.0]]))
        prior.log_variances.copy_(torch.tensor([[0.1, -0.7, 1.2]]))
    z = torch.randn(7, 5, 3)
    expected = DiagonalGaussian(prior.means[0], prior.log_variances[0]).log_prob(z)
    torch.testing.assert_close(prior.log_prob(z), expected)


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_mixture_density_integrates_to_one(latent_dim):
    torch.manual_seed(0)
    prior = MixtureOfGaussians(latent_dim, components=3).double()
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.3, -1.0, 1.5]))
        prior.log_variances.uniform_(-1.0, 0.5)
    axis = torch.linspace(-12.0, 12.0, 1201 if latent_dim == 1 else 601, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(*[axis] * latent_dim, indexing="ij"), -1)
    with torch.no_grad():
        density = prior.log_prob(grid).exp()
    for _ in range(latent_dim):
        density = torch.trapezoid(density, axis, dim=0)
    assert float(density) == pytest.approx(1.0, abs=1e-6)


def test_mixture_samples_match_its_moments():
    torch.manual_seed(0)
    prior = MixtureOfGaussians(2, components=4)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.0, 1.0, -0.5, 0.5]))
        prior.log_variances.uniform_(-2.0, 0.0)
    with torch.no_grad():
        samples = prior.sample(200_000, generator=torch.Generator().manual_seed(1))
        weights = prior.logits.softmax(-1)[:, None]
        mean = (weights * prior.means).sum(0)
        second = (weights * (prior.log_variances.exp() + prior.means.pow(2))).sum(0)
    torch.testing.assert_close(samples.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(samples.var(0), second - mean.pow(2), atol=0.03, rtol=0.02)
    first, again = (prior.sample(10, generator=torch.Generator().manual_seed(1))
                    for _ in range(2))
    torch.testing.assert_close(again, first)


def test_vae_with_mixture_prior_samples_from_it(digits):
    model = trained("vae_mixture", digits)
    with torch.no_grad():
        codes = model.sample_latent(50_000, seed=0)
        weights = model.prior.logits.softmax(-1)[:, None]
        mean = (weights * model.prior.means).sum(0)
    torch.testing.assert_close(codes.mean(0), mean, atol=0.05, rtol=0)
    # The Monte-Carlo KL to the mixture is positive on average (it is a KL).
    assert model.loss_terms(digits.test.x[:200])["kl"].mean() > 0


# ----- the VampPrior ---------------------------------------------------------------------------
def test_vamp_prior_is_the_mean_posterior_at_the_pseudo_inputs(digits):
    model = trained("vamp_prior", digits)
    prior = model.prior
    z = torch.randn(3, 11, model.latent_dim)
    with torch.no_grad():
        q = model.posterior(prior.pseudo_inputs)
        components = DiagonalGaussian(q.mean, q.log_variance).log_prob(z[..., None, :])
        expected = torch.logsumexp(components, -1) - math.log(len(q.mean))
        torch.testing.assert_close(prior.log_prob(z), expected, atol=1e-4, rtol=1e-5)


def test_vamp_prior_holds_no_second_encoder(digits):
    model = trained("vamp_prior", digits)
    state = model.state_dict()
    prior_keys = [key for key in state if key.startswith("prior.")]
    assert prior_keys == ["prior.raw_pseudo_inputs"]
    assert state["prior.raw_pseudo_inputs"].shape == (50, 1, 8, 8)
    encoder_keys = [key for key in state if "encoder" in key]
    assert encoder_keys == [f"encoder.{key}" for key in model.encoder.state_dict()]
    parameters = list(model.parameters())
    assert len({id(p) for p in parameters}) == len(parameters) == len(state)


def test_vamp_prior_after_loading_uses_the_loaded_encoder(digits, tmp_path):
    model = trained("vamp_prior", digits)
    loaded = aevae.load(model.save(tmp_path))
    assert loaded.prior.posterior.__self__ is loaded
    z = torch.randn(20, model.latent_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.prior.log_prob(z), model.prior.log_prob(z))


def test_vamp_pseudo_inputs_stay_in_the_unit_interval_for_bernoulli():
    bernoulli = make("vamp_prior", prior_options={"pseudo_inputs": 4})
    gaussian = make("vamp_prior", likelihood="gaussian", prior_options={"pseudo_inputs": 4})
    for model in (bernoulli, gaussian):
        with torch.no_grad():
            model.prior.raw_pseudo_inputs.uniform_(-2.0, 3.0)
    with torch.no_grad():
        assert 0.0 <= float(bernoulli.prior.pseudo_inputs.min())
        assert float(bernoulli.prior.pseudo_inputs.max()) <= 1.0
        assert float(gaussian.prior.pseudo_inputs.min()) < 0.0


def test_vamp_prior_samples_are_reproducible_and_differ_from_the_standard_normal(digits):
    model = trained("vamp_prior", digits)
    first, second = model.sample_latent(2000, seed=4), model.sample_latent(2000, seed=4)
    torch.testing.assert_close(first, second)
    with torch.no_grad():
        # Samples should score higher under the prior they came from than under N(0, I).
        gain = model.prior.log_prob(first) - make_prior("standard-normal", 4).log_prob(first)
    assert float(gain.mean()) > 0


# ----- flows ---------------------------------------------------------------------------------
def _jacobian_log_det(flow, z, context):
    jacobian = torch.autograd.functional.jacobian(lambda v: flow(v[None], context)[0][0], z)
    return jacobian, torch.linalg.slogdet(jacobian)[1]


@pytest.mark.parametrize("flow_name", ["planar", "iaf"])
def test_flow_log_det_matches_autograd(flow_name):
    torch.manual_seed(0)
    flow = make_flow(flow_name, 5, 3, length=3, hidden=(16, 16)).double()
    contexts = torch.randn(4, 3, dtype=torch.float64)
    z = torch.randn(4, 5, dtype=torch.float64)
    _, log_det = flow(z, contexts)
    for row in range(4):
        _, expected = _jacobian_log_det(flow, z[row], contexts[row:row + 1])
        torch.testing.assert_close(log_det[row], expected)
    # Leading sample dimensions see the same per-example maps.
    stacked, stacked_log_det = flow(torch.stack([z, z]), contexts)
    torch.testing.assert_close(stacked_log_det[1], log_det)


def test_planar_constraint_keeps_it_invertible():
    torch.manual_seed(0)
    u = torch.randn(1000, 6) * 5
    w = torch.randn(1000, 6) * 5
    # Include pairs that violate w^T u >= -1 badly before the constraint.
    u[:500] = -w[:500] * 3
    assert float(((w * u).sum(-1)).min()) < -1
    u_hat, w_dot_u_hat = PlanarFlow.constrain(u.double(), w.double())
    torch.testing.assert_close((w.double() * u_hat).sum(-1), w_dot_u_hat)
    assert float(w_dot_u_hat.min()) >= -1
    flow = PlanarFlow(6, 2, length=4)
    with torch.no_grad():
        u_hat, w, _, w_dot_u_hat = flow.layer_parameters(torch.randn(100, 2) * 10)
    torch.testing.assert_close((w * u_hat).sum(-1), w_dot_u_hat, atol=1e-4, rtol=1e-4)
    assert float(w_dot_u_hat.min()) >= -1


def test_iaf_steps_are_autoregressive():
    torch.manual_seed(0)
    flow = InverseAutoregressiveFlow(5, 3, length=2, hidden=(16,)).double()
    context = torch.randn(1, 3, dtype=torch.float64)
    z = torch.randn(5, dtype=torch.float64)
    for index, network in enumerate(flow.steps):

        def step(v, network=network):
            shift, gate = network(v[None], context)
            gate = torch.sigmoid(gate)
            return (gate * v + (1 - gate) * shift)[0]

        jacobian = torch.autograd.functional.jacobian(step, z)
        # Step 0 runs in the given order (lower triangular), step 1 in reverse (upper).
        triangle = torch.tril(jacobian) if index == 0 else torch.triu(jacobian)
        torch.testing.assert_close(jacobian, triangle, atol=0, rtol=0)
        assert (jacobian.diagonal() > 0).all()


def test_vae_flow_encode_variance_is_the_pushed_forward_covariance(digits):
    model = trained("vae_flow_iaf", digits)
    x = torch.as_tensor(digits.test.x[:3])
    codes, variance = model.encode(x, return_variance=True)
    with torch.no_grad():
        q0, context = model.inference(x)
    for row in range(3):
        jacobian = torch.autograd.functional.jacobian(
            lambda v, row=row: model.flow(v[None], context[row:row + 1])[0][0], q0.mean[row])
        expected = (jacobian.pow(2) * q0.variance[row]).sum(-1)
        torch.testing.assert_close(variance[row], expected, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(
            codes[row], model.flow(q0.mean[row:row + 1], context[row:row + 1])[0][0].detach())


# ----- the hierarchical VAE ----------------------------------------------------------------------
def test_hierarchical_elbo_is_below_the_importance_sampled_likelihood(digits):
    model = trained("hierarchical_vae", digits)
    x = digits.test.x[:5]
    elbo = mean_elbo(model, x, repeats=1000)
    estimate = importance_sampled(model, x, k=1000)
    assert (elbo < estimate).all()


def test_hierarchical_vae_structure(digits):
    model = trained("hierarchical_vae", digits)
    assert model.latent_dim == 4 and model.config.intermediate_latent_dim == 8
    x = torch.as_tensor(digits.test.x[:6])
    with torch.no_grad():
        q1 = model.intermediate_posterior(x)
        q2 = model.top_posterior(q1.mean)
        torch.testing.assert_close(model.encode(x), q2.mean)
        assert q1.mean.shape == (6, 8)
    terms = model.loss_terms(x)
    np.testing.assert_allclose(terms["kl"], terms["kl_intermediate"] + terms["kl_top"], rtol=1e-5)
    defaults = aevae.make("hierarchical_vae", input_shape=(1, 28, 28)).config
    assert (defaults.latent_dim, defaults.intermediate_latent_dim) == (50, 100)
    assert (defaults.hidden, defaults.intermediate_hidden) == ((200, 200), (100, 100))
    assert defaults.activation == "tanh"
