"""The regularised variants (beta-VAE, free bits, fixed-variance VAE, WAE-MMD, AAE, RAE, sparse
and denoising AEs) and ex-post density estimation, on the small sklearn digits data."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

import aevae
from aevae.data import load_dataset
from aevae.distributions import DiagonalGaussian
from aevae.ex_post import ExPostSampler
from aevae.io import load_tensors
from aevae.models.wae_mmd import mmd_inverse_multiquadratic

SMALL = {"input_shape": (1, 8, 8), "hidden": (64,), "latent_dim": 6}
CASES = {
    "beta_vae": ("beta_vae", {}),
    "beta_vae_capacity": ("beta_vae", {"capacity_max": 5.0, "capacity_steps": 50,
                                       "gamma": 10.0}),
    "vae_free_bits": ("vae", {"free_bits": 0.5}),
    "fixed_variance_vae": ("fixed_variance_vae", {}),
    "wae_mmd": ("wae_mmd", {}),
    "adversarial_ae": ("adversarial_ae", {}),
    "rae": ("rae", {}),
    "rae_gradient_penalty": ("rae", {"regularizer": "gradient_penalty"}),
    "sparse_ae_l1": ("sparse_ae", {"sparsity": "l1"}),
    "sparse_ae_kl": ("sparse_ae", {"sparsity": "kl"}),
    "denoising_ae": ("denoising_ae", {}),
}


@functools.cache
def images() -> np.ndarray:
    """The digits training images, (1437, 1, 8, 8) in [0, 1]."""
    return load_dataset("digits").train.x




def build(name: str, **options):
    torch.manual_seed(0)
    return aevae.make(name, **{**SMALL, **options})


@functools.cache
def trained(case: str):
    """Each case trained once for the whole module (3 epochs, batch 64)."""
    name, options = CASES[case]
    return build(name, **options).fit(images(), epochs=3, batch_size=64, progress=False, seed=0)


# ----- every model ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_trains_with_finite_terms_and_improving_loss(case):
    model = trained(case)
    losses = model.history_.column("train_loss")
    assert len(losses) == 3
    assert losses[-1] < losses[0]
    for name, values in model.loss_terms(images()[:300]).items():
        assert np.isfinite(values).all(), name


@pytest.mark.parametrize("case", CASES)
def test_save_and_load_give_identical_codes(case, tmp_path):
    model = trained(case)
    model.save(tmp_path)
    loaded = aevae.load(tmp_path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.encode(images()), model.encode(images()))


@pytest.mark.parametrize("case", CASES)
def test_config_round_trips_through_json(case):
    config = trained(case).config
    options = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_options(options) == config


def test_new_models_are_registered_with_descriptions():
    described = dict(aevae.available_models())
    for name, _ in CASES.values():
        assert described[name]


# ----- beta-VAE and controlled capacity --------------------------------------------------
def test_beta_vae_weights_the_kl_by_four():
    model = build("beta_vae")
    assert model.config.beta == 4.0
    model.eval()
    output = model.loss(torch.from_numpy(images()[:64]))
    expected = output.terms["reconstruction"] + 4.0 * output.terms["kl"]
    torch.testing.assert_close(output.loss, expected)
    torch.testing.assert_close(output.elbo, -(output.terms["reconstruction"]
                                              + output.terms["kl"]))


def test_capacity_rises_linearly_to_its_maximum():
    model = build("beta_vae", capacity_max=25.0, capacity_steps=1000, gamma=1000.0)
    assert model.capacity(0) == 0.0
    assert model.capacity(500) == pytest.approx(12.5)
    assert model.capacity(1000) == 25.0
    assert model.capacity(5000) == 25.0
    assert model.capacity(None) == 25.0  # evaluation: the final target

    output = model.loss(torch.from_numpy(images()[:64]), step=500)
    terms = output.terms
    expected = terms["reconstruction"] + 1000.0 * (terms["kl"] - 12.5).abs()
    torch.testing.assert_close(output.loss, expected)
    with pytest.raises(ValueError, match="capacity"):
        build("beta_vae").capacity(0)


# ----- free bits -------------------------------------------------------------------------
def test_free_bits_floor_the_training_loss_but_not_the_kl_or_elbo():
    model = build("vae", free_bits=0.5)
    x = torch.from_numpy(images()[:256])
    with torch.no_grad():
        kl_per_dimension = model.posterior(x).kl_to_standard_normal_per_dimension().mean(0)
    assert (kl_per_dimension < 0.5).all()  # untrained: every dimension under the floor

    model.train()
    output = model.loss(x)
    reconstruction, kl = output.terms["reconstruction"], output.terms["kl"]
    expected = reconstruction.mean() + model.latent_dim * 0.5
    torch.testing.assert_close(output.loss.mean(), expected)
    torch.testing.assert_close(output.elbo, -(reconstruction + kl))

    model.eval()  # outside training the loss is the plain negative ELBO
    output = model.loss(x)
    torch.testing.assert_close(output.loss, -output.elbo)


def test_free_bits_objective_and_gradient_per_dimension():
    model = build("vae", free_bits=0.5)
    # Dimension 0 sits well above the floor, dimension 1 below it, the rest at zero KL.
    mean = torch.zeros(4, model.latent_dim)
    mean[:, 0] = torch.tensor([1.0, 2.0, 1.5, 0.5])
    mean[:, 1] = 0.3
    mean.requires_grad_(True)
    q = DiagonalGaussian(mean, torch.zeros_like(mean))
    kl = q.kl_to_standard_normal()
    penalty = model.free_bits_kl(q, kl)

    per_dimension = 0.5 * mean.detach().pow(2).mean(0)
    expected = torch.clamp(per_dimension, min=0.5).sum()
    torch.testing.assert_close(penalty.mean(), expected)
    penalty.mean().backward()
    # Only the dimension above the floor is pushed; the others gain nothing from shrinking.
    assert mean.grad[:, 0].abs().sum() > 0
    assert (mean.grad[:, 1:] == 0).all()


# ----- fixed-variance VAE ----------------------------------------------------------------
def test_fixed_variance_vae_kl_is_half_the_squared_mean():
    model = trained("fixed_variance_vae")
    x = images()[:300]
    mean, variance = model.encode(x, return_variance=True)
    np.testing.assert_array_equal(variance, np.ones_like(variance))
    kl = model.loss_terms(x)["kl"]
    np.testing.assert_allclose(kl, 0.5 * (mean ** 2).sum(1), rtol=1e-5, atol=1e-5)


def test_fixed_variance_vae_has_importance_weights():
    model = trained("fixed_variance_vae")
    assert model.has_likelihood and model.posterior_parameters == 1
    x = torch.from_numpy(images()[:50])
    with torch.no_grad():
        weights = model.log_importance_weights(x, 8)
        bound = model.importance_weighted_bound(x, 64)
    assert weights.shape == (8, 50)
    assert torch.isfinite(weights).all() and torch.isfinite(bound).all()


# ----- WAE-MMD ---------------------------------------------------------------------------
def test_mmd_is_near_zero_for_two_prior_samples_and_large_for_a_shift():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(500, 8, generator=generator)
    second = torch.randn(500, 8, generator=generator)
    # The U-statistic is unbiased; over 200 seeds at n = 500, d = 8 its spread is about 0.0023
    # (largest |value| 0.011), so 0.015 is a generous bound. A shift of 0.5 in every dimension
    # gave at least 0.19.
    assert abs(float(mmd_inverse_multiquadratic(first, second))) < 0.015
    assert float(mmd_inverse_multiquadratic(first, second + 0.5)) > 0.1
    with pytest.raises(ValueError):
        mmd_inverse_multiquadratic(first[:1], second)


def test_mmd_by_hand_on_a_tiny_sample():
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 2.0], [0.0, 0.0]])

    def kernel(u, v):
        distance = float(((u - v) ** 2).sum())
        return sum(2 * 2 * s / (2 * 2 * s + distance) for s in (0.1, 0.2, 0.5, 1, 2, 5, 10))

    within_a = 2 * kernel(a[0], a[1]) / 2
    within_b = sum(kernel(b[i], b[j]) for i in range(3) for j in range(3) if i != j) / 6
    across = sum(kernel(u, v) for u in a for v in b) / 6
    expected = within_a + within_b - 2 * across
    assert float(mmd_inverse_multiquadratic(a, b)) == pytest.approx(expected, rel=1e-5)


def test_wae_spreads_the_batch_mmd_over_examples():
    model = build("wae_mmd")
    assert model.config.mmd_weight == 10.0
    output = model.loss(torch.from_numpy(images()[:64]))
    mmd = output.terms["mmd"]
    assert mmd.shape == (64,) and (mmd == mmd[0]).all()
    torch.testing.assert_close(output.loss.mean(),
                               output.terms["reconstruction"].mean() + 10.0 * mmd[0])


# ----- adversarial AE --------------------------------------------------------------------
def test_aae_discriminator_is_trained_only_by_its_own_optimizer(tmp_path):
    model = build("adversarial_ae")
    discriminator = list(model.discriminator.parameters())
    auxiliary = {id(p) for p in model.auxiliary_parameters()}
    assert auxiliary == {id(p) for p in discriminator}
    networks = list(model.encoder.parameters()) + list(model.decoder.parameters())
    assert not auxiliary & {id(p) for p in networks}
    before = [p.detach().clone() for p in discriminator]

    model.fit(images(), epochs=1, batch_size=64, progress=False, seed=0, out=tmp_path)
    _, metadata = load_tensors(tmp_path / "checkpoint.safetensors")
    main = metadata["optimizers"]["optimizer"]["param_groups"][0]["params"]
    side = metadata["optimizers"]["auxiliary_optimizer"]["param_groups"][0]["params"]
    assert len(main) == len(networks) and len(side) == len(discriminator)
    assert any(not torch.equal(old, new) for old, new in zip(before, discriminator))


def test_aae_losses_by_hand():
    model = build("adversarial_ae")
    x = torch.from_numpy(images()[:32])
    output = model.loss(x)
    with torch.no_grad():
        probability = torch.sigmoid(model.discriminator(model.encoder(x))).squeeze(-1)
    torch.testing.assert_close(output.terms["adversarial"], -probability.log())
    assert model.auxiliary_loss(x).dim() == 0


# ----- RAE -------------------------------------------------------------------------------
def test_rae_l2_terms_by_hand():
    model = build("rae", code_penalty_weight=0.1, decoder_penalty_weight=0.01)
    model.eval()
    x = torch.from_numpy(images()[:64])
    with torch.no_grad():
        output = model.loss(x)
        z = model.encoder(x)
        squared_norm = sum(float(p.pow(2).sum()) for p in model.decoder.parameters())
    terms = output.terms
    torch.testing.assert_close(terms["code_penalty"], 0.5 * z.pow(2).sum(1))
    torch.testing.assert_close(terms["decoder_penalty"], torch.full((64,), squared_norm))
    torch.testing.assert_close(output.loss, terms["reconstruction"] + 0.1
                               * terms["code_penalty"] + 0.01 * terms["decoder_penalty"])


def test_rae_gradient_penalty_estimates_the_jacobian_norm():
    # A linear decoder has the constant Jacobian W: the penalty averages to ||W||_F^2.
    model = build("rae", regularizer="gradient_penalty", hidden=())
    weight = model.decoder.body[-1].weight
    penalty = model.loss_terms(images())["decoder_penalty"]
    expected = float(weight.detach().pow(2).sum())
    assert penalty.mean() == pytest.approx(expected, rel=0.1)
    # In training the penalty is differentiable with respect to the decoder.
    model.train()
    model.loss(torch.from_numpy(images()[:16])).terms["decoder_penalty"].sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


# ----- sparse AE -------------------------------------------------------------------------
def test_sparse_ae_l1_penalty_by_hand():
    model = trained("sparse_ae_l1")
    x = images()[:200]
    codes = model.encode(x)
    terms = model.loss_terms(x)
    np.testing.assert_allclose(terms["sparsity"], np.abs(codes).sum(1), rtol=1e-5)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + terms["sparsity"],
                               rtol=1e-5)


def test_sparse_ae_kl_penalty_by_hand():
    model = trained("sparse_ae_kl")
    x = images()[:200]
    codes = model.encode(x).astype(np.float64)
    active = (1.0 / (1.0 + np.exp(-codes))).mean(0)
    rho = 0.05
    expected = (rho * np.log(rho / active) + (1 - rho) * np.log((1 - rho) / (1 - active))).sum()
    sparsity = model.loss_terms(x)["sparsity"]
    np.testing.assert_allclose(sparsity, np.full(200, expected), rtol=1e-4)


def test_denoising_ae_corrupts_by_default():
    model = build("denoising_ae")
    assert model.config.input_noise_std == 0.3
    assert isinstance(model, aevae.AE)


# ----- ex-post density estimation ---------------------------------------------------------
def test_ex_post_sampler_on_an_ae(tmp_path):
    model = trained("denoising_ae")
    sampler = ExPostSampler().fit(model, images(), components=10, seed=0)
    latent = sampler.sample_latent(100, seed=3)
    assert latent.shape == (100, model.latent_dim) and latent.dtype == np.float32
    np.testing.assert_array_equal(latent, sampler.sample_latent(100, seed=3))
    assert not np.array_equal(latent, sampler.sample_latent(100, seed=4))
    samples = sampler.sample(50, seed=1)
    assert samples.shape == (50, 1, 8, 8)
    assert samples.min() >= 0.0 and samples.max() <= 1.0

    sampler.save(tmp_path)
    text = (tmp_path / "ex_post.json").read_text()
    assert json.loads(text)["covariance"] == "full"
    loaded = ExPostSampler.load(tmp_path, model)
    np.testing.assert_array_equal(loaded.sample(50, seed=1), samples)
    np.testing.assert_array_equal(loaded.log_density(latent), sampler.log_density(latent))

    model.save(tmp_path)  # with the model beside it, load needs nothing else
    np.testing.assert_array_equal(ExPostSampler.load(tmp_path).sample(50, seed=1), samples)


@pytest.mark.parametrize("covariance", ["full", "tied", "diag", "spherical"])
def test_ex_post_log_density_matches_scikit_learn(covariance):
    from sklearn.mixture import GaussianMixture

    from aevae.ex_post import covariance_floor

    model = trained("rae")
    codes = model.encode(images()).astype(np.float64)
    sampler = ExPostSampler().fit(model, images(), components=4, covariance=covariance, seed=0)
    reference = GaussianMixture(4, covariance_type=covariance, random_state=0,
                                reg_covar=covariance_floor(codes)).fit(codes)
    np.testing.assert_allclose(sampler.log_density(codes), reference.score_samples(codes),
                               rtol=1e-8, atol=1e-8)
    # The sampler draws from the fitted mixture: its mean matches the mixture's.
    draws = sampler.sample_latent(20000, seed=0)
    mixture_mean = sampler.weights_ @ sampler.means_
    spread = np.sqrt(codes.var(0) / 20000)
    assert (np.abs(draws.mean(0) - mixture_mean) < 6 * spread).all()


@pytest.mark.parametrize("case", CASES)
def test_ex_post_works_for_every_model(case):
    model = trained(case)
    sampler = ExPostSampler().fit(model, images(), components=3, seed=0)
    samples = sampler.sample(10, seed=0)
    assert samples.shape == (10, 1, 8, 8) and np.isfinite(samples).all()


def test_ex_post_latents_differ_from_a_vae_prior():
    model = trained("vae_free_bits")
    sampler = ExPostSampler().fit(model, images(), components=10, seed=0)
    ex_post = sampler.sample_latent(2000, seed=0)
    prior = model.sample_latent(2000, seed=0).numpy()
    # The posterior means fill only part of N(0, I): ex-post draws are far more probable under
    # the fitted density than prior draws are.
    gap = sampler.log_density(ex_post).mean() - sampler.log_density(prior).mean()
    assert gap > 1.0
    assert not math.isclose(float(ex_post.var()), float(prior.var()), rel_tol=0.1)


@pytest.mark.parametrize("name, options", [
    ("beta_vae", {"capacity_max": 5.0, "free_bits": 0.5}),
    ("beta_vae", {"capacity_max": -1.0}),
    ("vae", {"free_bits": -0.1}),
    ("wae_mmd", {"mmd_weight": -1.0}),
    ("rae", {"regularizer": "spectral"}),
    ("sparse_ae", {"sparsity": "l2"}),
    ("sparse_ae", {"sparsity": "kl", "sparsity_target": 1.0}),
    ("adversarial_ae", {"discriminator_hidden": (0,)}),
])
def test_bad_options_are_refused(name, options):
    with pytest.raises(ValueError):
        aevae.make(name, **SMALL, **options)


# ----- the disentanglement study's models ---------------------------------------------------
@pytest.mark.parametrize("name, term", [("beta_tcvae", "total_correlation"),
                                        ("factor_vae", "total_correlation"),
                                        ("dip_vae_i", "covariance_penalty"),
                                        ("dip_vae_ii", "covariance_penalty")])
def test_disentangling_models_train_and_report_their_term(name, term, digits, tmp_path):
    import aevae

    options = {"discriminator_hidden": (32, 32)} if name == "factor_vae" else {}
    model = aevae.make(name, input_shape=digits.shape, latent_dim=4, hidden=(32,), seed=0,
                       **options)
    model.fit(digits.train.x, epochs=2, batch_size=64, progress=False, out=tmp_path / name)
    terms = model.loss_terms(digits.test.x[:100])
    assert set(terms) >= {"loss", "reconstruction", "kl", "elbo", term}
    assert all(np.isfinite(value).all() for value in terms.values())
    np.testing.assert_allclose(terms["elbo"], -(terms["reconstruction"] + terms["kl"]),
                               rtol=1e-5)
    again = aevae.load(tmp_path / name)
    np.testing.assert_array_equal(again.encode(digits.test.x[:5]), model.encode(digits.test.x[:5]))


def test_beta_tcvae_reads_its_training_size_once_and_again_after_loading_weights(digits):
    import aevae

    model = aevae.make("beta_tcvae", input_shape=digits.shape, latent_dim=4, hidden=(32,))
    model.prepare_training(None, 1000)
    assert model.training_size_value() == 1000
    other = aevae.make("beta_tcvae", input_shape=digits.shape, latent_dim=4, hidden=(32,))
    other.prepare_training(None, 250)
    model.load_state_dict(other.state_dict())
    assert model.training_size_value() == 250 == int(model.training_size)


def test_total_correlation_estimates():
    import torch

    from aevae.distributions import DiagonalGaussian
    from aevae.models.beta_tcvae import minibatch_total_correlation
    from aevae.models.dip_vae import covariance_penalty
    from aevae.models.factor_vae import permute_dimensions

    generator = torch.Generator().manual_seed(0)
    # Codes that repeat one coordinate in every dimension are dependent: their minibatch TC
    # estimate is above that of independent codes of the same spread (by about log of the
    # number of batch neighbours within a posterior width: the estimator saturates).
    shared = torch.randn(256, 1, generator=generator).expand(256, 3)
    independent = torch.randn(256, 3, generator=generator)
    small = torch.full((256, 3), -6.0)
    dependent_tc = minibatch_total_correlation(shared, DiagonalGaussian(shared, small), 256)
    independent_tc = minibatch_total_correlation(independent, DiagonalGaussian(independent,
                                                                               small), 256)
    assert dependent_tc.mean() > independent_tc.mean() + 1.0
    # Shuffling each dimension across the batch keeps every marginal.
    z = torch.randn(64, 4, generator=generator)
    shuffled = permute_dimensions(z)
    assert torch.equal(shuffled.sort(0).values, z.sort(0).values)
    assert not torch.equal(shuffled, z)
    # The DIP penalty vanishes at the identity and counts off-diagonal and diagonal parts.
    assert covariance_penalty(torch.eye(3), 10.0, 100.0) == 0
    covariance = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    assert covariance_penalty(covariance, 10.0, 100.0) == pytest.approx(10 * 0.5 + 100 * 1.0)


def test_traversals_sweep_one_dimension_at_a_time(digits):
    import aevae

    model = aevae.make("ae", input_shape=digits.shape, latent_dim=3, hidden=(16,), seed=0)
    decoded, dimensions = model.traverse(digits.test.x[:100], dimensions=2, steps=5)
    assert decoded.shape == (2, 5, *digits.shape) and len(dimensions) == 2
    usage = model.dimension_usage(digits.test.x[:100])
    assert usage[dimensions[0]] == usage.max()
    fixed, chosen = model.traverse(digits.test.x[:100], dimensions=[2], steps=3, span=0.0)
    assert list(chosen) == [2] and np.allclose(fixed[0, 0], fixed[0, 2])
    with pytest.raises(ValueError, match="dimensions must lie"):
        model.traverse(digits.test.x[:10], dimensions=[5])


def test_score_function_vae_is_the_vae_with_another_unbiased_encoder_gradient(digits):
    import aevae

    x = torch.from_numpy(digits.train.x[:64])
    reference = aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0)
    means = {}
    for name, options in (("vae", {}), ("score_function_vae", {"baseline": "leave_one_out"})):
        model = aevae.make(name, input_shape=digits.shape, latent_dim=2, hidden=(16,), seed=0,
                           **options)
        model.load_state_dict(reference.state_dict())
        torch.manual_seed(0)
        output = model.loss(x)
        torch.manual_seed(0)
        expected = reference.loss(x)
        # The same objective and terms: the surrogate adds nothing to the value.
        torch.testing.assert_close(output.loss, expected.loss)
        draws = []
        for _ in range(300):
            model.zero_grad()
            model.loss(x).loss.mean().backward()
            draws.append(torch.cat([p.grad.flatten() for p in model.encoder.parameters()]))
        means[name] = torch.stack(draws).mean(0)
    cosine = torch.nn.functional.cosine_similarity(means["vae"], means["score_function_vae"],
                                                   dim=0)
    assert cosine > 0.9  # both estimate the same gradient
    with pytest.raises(ValueError, match="unknown baseline"):
        aevae.make("score_function_vae", input_shape=digits.shape, baseline="nope")


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_score_function_vae_stays_unbiased_with_a_monte_carlo_kl(beta):
    """With a mixture prior the KL is log q(z|x) - log p(z) at the draw: its gradient must come
    through the score too (at the fixed draw alone it has mean zero and the encoder would never
    learn the prior). Averaged over 20,000 draws of one input, the encoder's output gradient
    matches the reparameterized VAE's."""
    import aevae

    options = dict(input_shape=(5,), latent_dim=2, hidden=(8,), seed=0, prior="mixture",
                   prior_options={"components": 3}, beta=beta)
    reference = aevae.make("vae", **options)
    with torch.no_grad():
        reference.prior.means.mul_(2.0)  # away from N(0, I): a large KL gradient
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]]).repeat(20_000, 1)

    def output_gradient(model):
        total = 0.0
        for seed in range(4):
            torch.manual_seed(seed)
            model.zero_grad()
            model.loss(x, kl_weight=0.5).loss.mean().backward()
            total = total + list(model.encoder.parameters())[-1].grad  # (mean, log-variance)
        return total / 4

    score = aevae.make("score_function_vae", **options)
    score.load_state_dict(reference.state_dict())
    reference.train(), score.train()
    expected, got = output_gradient(reference), output_gradient(score)
    assert expected.abs().max() > 0.2
    torch.testing.assert_close(got, expected, atol=0.03, rtol=0)
