"""The model core: closed forms, likelihoods against torch.distributions, gradients, persistence."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import distributions, nn

import aevae
from aevae.distributions import DiagonalGaussian
from aevae.likelihoods import make_likelihood
from aevae.nets.mlp import GatedLinear


def test_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    mean, log_variance = torch.randn(4, 3), torch.randn(4, 3) * 0.5
    q = DiagonalGaussian(mean, log_variance)
    z = q.rsample(200_000)
    prior = distributions.Normal(0.0, 1.0)
    monte_carlo = (q.log_prob(z) - prior.log_prob(z).sum(-1)).mean(0)
    torch.testing.assert_close(q.kl_to_standard_normal(), monte_carlo, atol=0.02, rtol=0)
    reference = distributions.kl_divergence(
        distributions.Normal(mean, (0.5 * log_variance).exp()), prior).sum(-1)
    torch.testing.assert_close(q.kl_to_standard_normal(), reference)


def test_diagonal_gaussian_log_prob_matches_torch():
    mean, log_variance = torch.randn(5, 4), torch.randn(5, 4)
    z = torch.randn(7, 5, 4)
    expected = distributions.Normal(mean, (0.5 * log_variance).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(DiagonalGaussian(mean, log_variance).log_prob(z), expected)


@pytest.mark.parametrize(
    "name, options",
    [("bernoulli", {}), ("gaussian", {"sigma": 0.3}), ("gaussian-learned", {}),
     ("gaussian-learned", {"per_dimension": True})],
)
def test_likelihoods_match_torch_distributions(name, options):
    torch.manual_seed(1)
    shape = (1, 4, 4)
    likelihood = make_likelihood(name, shape, **options)
    output = torch.randn(6, *shape)
    if name == "bernoulli":
        x = torch.bernoulli(torch.full((6, *shape), 0.4))
        reference = distributions.Bernoulli(logits=output)
    else:
        x = torch.rand(6, *shape)
        if name == "gaussian-learned":
            with torch.no_grad():
                likelihood.log_sigma.copy_(torch.randn_like(likelihood.log_sigma) * 0.3)
            scale = likelihood.log_sigma.exp().expand_as(output)
        else:
            scale = torch.full_like(output, options["sigma"])
        reference = distributions.Normal(output, scale)
    expected = reference.log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(likelihood.log_prob(x, output), expected)
    # Leading Monte-Carlo sample dimensions broadcast over the data.
    stacked = likelihood.log_prob(x, output.expand(3, *output.shape))
    torch.testing.assert_close(stacked, expected.expand(3, -1))


def test_student_t_likelihood_reads_location_scale_and_degrees_of_freedom_from_the_decoder(
        tmp_path):
    torch.manual_seed(2)
    shape = (3, 4)
    likelihood = make_likelihood("student-t", shape)
    assert likelihood.output_shape(shape) == (9, 4)
    output = torch.randn(5, 9, 4)
    x = torch.randn(5, *shape) * 3
    location, raw_scale, raw_df = output.chunk(3, dim=1)
    reference = distributions.StudentT(torch.nn.functional.softplus(raw_df) + 3.0, location,
                                       torch.nn.functional.softplus(raw_scale) + 1e-3)
    torch.testing.assert_close(likelihood.log_prob(x, output),
                               reference.log_prob(x).flatten(1).sum(1))
    torch.testing.assert_close(likelihood.mean(output), location)
    stacked = likelihood.log_prob(x, output.expand(2, *output.shape))  # sample dimensions
    assert stacked.shape == (2, 5)
    assert likelihood.sample(output).shape == x.shape
    with pytest.raises(ValueError, match="3 outputs per data value"):
        likelihood.log_prob(x, torch.randn(5, *shape))
    # A model with it builds a decoder of three outputs per value, trains, saves and loads.
    model = aevae.make("vae", input_shape=(6,), latent_dim=2, hidden=(8,),
                       likelihood="student-t", seed=0)
    assert model.decoder_output(torch.zeros(4, 2)).shape == (4, 18)
    data = np.random.default_rng(0).standard_t(4, size=(64, 6)).astype(np.float32)
    model.fit(data, epochs=2, batch_size=16, progress=False)
    assert model.reconstruct(data[:3]).shape == (3, 6)
    model.save(tmp_path / "student")
    loaded = aevae.load(tmp_path / "student")
    np.testing.assert_array_equal(loaded.reconstruct(data[:3]), model.reconstruct(data[:3]))


def test_learned_sigma_receives_gradient():
    likelihood = make_likelihood("gaussian-learned", (5,), per_dimension=True)
    likelihood.log_prob(torch.rand(8, 5), torch.zeros(8, 5)).sum().backward()
    assert likelihood.log_sigma.grad is not None and torch.all(likelihood.log_sigma.grad != 0)


def test_gradients_flow_through_the_reparameterized_sample():
    torch.manual_seed(0)
    model = aevae.make("vae", input_shape=(1, 8, 8), latent_dim=4, hidden=(16,))
    x = torch.rand(10, 1, 8, 8)
    model.loss(x).terms["reconstruction"].sum().backward()
    # The reconstruction term reaches the encoder only through z = mean + std * eps.
    for parameter in model.encoder.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    mean = torch.zeros(3, requires_grad=True)
    log_variance = torch.zeros(3, requires_grad=True)
    DiagonalGaussian(mean, log_variance).rsample().sum().backward()
    assert torch.all(mean.grad == 1) and log_variance.grad.abs().sum() > 0


def test_vae_loss_is_reconstruction_plus_kl_in_nats_per_example():
    torch.manual_seed(0)
    model = aevae.make("vae", input_shape=(1, 8, 8), latent_dim=4, hidden=(16,))
    output = model.loss(torch.rand(10, 1, 8, 8))
    assert output.loss.shape == (10,)
    torch.testing.assert_close(output.loss, output.terms["reconstruction"] + output.terms["kl"])
    torch.testing.assert_close(output.elbo, -output.loss)
    assert torch.all(output.terms["kl"] >= 0)


def test_monte_carlo_samples_average_the_reconstruction_term():
    torch.manual_seed(0)
    model = aevae.make("vae", input_shape=(6,), latent_dim=2, hidden=(8,), samples=2000)
    x = torch.rand(3, 6)
    model.eval()
    with torch.no_grad():
        many = model.loss(x).terms["reconstruction"]
        q = model.posterior(x)
        z = q.rsample(2000)
        direct = -model.reconstruction_log_prob(x, z).mean(0)
    torch.testing.assert_close(many, direct, atol=0.1, rtol=0)


def test_ae_and_vae_share_the_reconstruction_scale():
    # Same networks and likelihood: an AE's loss and a VAE's reconstruction term use one unit.
    torch.manual_seed(0)
    ae = aevae.make("ae", input_shape=(6,), latent_dim=2, hidden=(8,))
    vae = aevae.make("vae", input_shape=(6,), latent_dim=2, hidden=(8,))
    assert isinstance(ae.likelihood, type(vae.likelihood))
    x = torch.bernoulli(torch.full((4, 6), 0.5))
    z = torch.zeros(4, 2)
    for model in (ae, vae):
        expected = distributions.Bernoulli(logits=model.decoder(z)).log_prob(x).sum(1)
        torch.testing.assert_close(model.reconstruction_log_prob(x, z), expected)


def test_save_load_gives_bit_identical_outputs(tmp_path, digits):
    x = digits.test.x[:50]
    for name in ("ae", "vae"):
        model = aevae.make(name, input_shape=digits.shape, latent_dim=4, hidden=(32,),
                           norm="batch")
        model.fit(digits.train.x[:200], epochs=1, batch_size=50, progress=False)
        model.save(tmp_path / name)
        loaded = aevae.load(tmp_path / name)
        assert type(loaded) is type(model) and loaded.config == model.config
        np.testing.assert_array_equal(loaded.encode(x), model.encode(x))
        np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
        np.testing.assert_array_equal(loaded.sample(5, seed=3), model.sample(5, seed=3))


def test_saved_model_is_safetensors_and_json_only(tmp_path):
    model = aevae.make("vae", input_shape=(5,), latent_dim=2, hidden=(4,))
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert (tmp_path / "model.safetensors").read_bytes()[8:9] == b"{"  # a JSON header, no pickle


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        aevae.load(tmp_path)
    with pytest.raises(ValueError, match="unknown model 'nope'; known: .*vae"):
        aevae.make("nope")
    with pytest.raises(ValueError, match="unknown option.*latent_size"):
        aevae.make("vae", input_shape=(4,), latent_size=3)
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        aevae.make("vae", input_shape=(4,), likelihood="poisson")
    with pytest.raises(ValueError, match="latent_dim must be at least 1"):
        aevae.make("ae", input_shape=(4,), latent_dim=0)


def test_custom_networks(tmp_path):
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4))
    decoder = torch.nn.Linear(2, 6)
    model = aevae.make("vae", input_shape=(6,), latent_dim=2, encoder=encoder, decoder=decoder)
    assert model.encode(np.random.rand(3, 6)).shape == (3, 2)
    model.save(tmp_path)
    with pytest.raises(ValueError, match="custom networks"):
        aevae.load(tmp_path)
    loaded = aevae.load(tmp_path, encoder=torch.nn.Sequential(torch.nn.Flatten(),
                                                              torch.nn.Linear(6, 4)),
                        decoder=torch.nn.Linear(2, 6))
    np.testing.assert_array_equal(loaded.decoder.weight.detach(), decoder.weight.detach())


@pytest.mark.parametrize("network, shape", [("mlp", (1, 8, 8)), ("conv", (1, 28, 28)),
                                            ("conv", (3, 64, 64)), ("conv", (1, 8, 8)),
                                            ("linear", (12,))])
def test_networks_round_trip_shapes(network, shape):
    model = aevae.make("vae", input_shape=shape, latent_dim=3, network=network, hidden=(16,))
    x = np.random.rand(2, *shape).astype(np.float32)
    assert model.reconstruct(x).shape == (2, *shape)
    assert model.sample(3).shape == (3, *shape)


def test_gated_mlp_layers_are_value_times_sigmoid_gate():
    model = aevae.make("vae", input_shape=(1, 8, 8), latent_dim=3, hidden=(16, 8),
                       activation="gated")
    gated = [layer for layer in model.encoder.modules() if isinstance(layer, GatedLinear)]
    assert [layer.value.out_features for layer in gated] == [16, 8]
    x = torch.randn(5, 64)
    layer = gated[0]
    expected = (x @ layer.value.weight.T + layer.value.bias) * torch.sigmoid(
        x @ layer.gate.weight.T + layer.gate.bias)
    torch.testing.assert_close(layer(x), expected)
    # No elementwise activation follows a gated layer; the linear parameters double.
    plain = aevae.make("vae", input_shape=(1, 8, 8), latent_dim=3, hidden=(16, 8))
    assert not any(isinstance(module, nn.Tanh | nn.ReLU) for module in model.encoder.modules())
    hidden_weights = 64 * 16 + 16 + 16 * 8 + 8
    assert (sum(p.numel() for p in model.encoder.parameters())
            == sum(p.numel() for p in plain.encoder.parameters()) + hidden_weights)
    with pytest.raises(ValueError, match="unknown activation 'gated'"):
        aevae.make("vae", input_shape=(1, 28, 28), network="conv", activation="gated")


def test_vamp_prior_refuses_a_batch_normalised_encoder():
    with pytest.raises(ValueError, match="batch norm"):
        aevae.make("vamp_prior", input_shape=(1, 8, 8), hidden=(16,), norm="batch")
    aevae.make("vamp_prior", input_shape=(1, 8, 8), hidden=(16,), norm="layer")


def test_conv_rejects_unsupported_images():
    with pytest.raises(ValueError, match="up to 64x64"):
        aevae.make("vae", input_shape=(1, 100, 100), network="conv")
    with pytest.raises(ValueError, match="square images"):
        aevae.make("vae", input_shape=(1, 28, 20), network="conv")


def test_public_api_encode_decode_interpolate(digits):
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=4, hidden=(16,))
    x = digits.test.x[:6]
    means, variances = model.encode(x, return_variance=True)
    assert means.shape == variances.shape == (6, 4) and np.all(variances > 0)
    torch.manual_seed(0)
    sample = model.encode(x, sample=True)
    assert not np.allclose(sample, means)
    path = model.interpolate(x[0], x[1], steps=7)
    assert path.shape == (7, *digits.shape)
    np.testing.assert_allclose(path[0], model.decode(means[:1])[0], atol=1e-6)
    np.testing.assert_allclose(path[-1], model.decode(means[1:2])[0], atol=1e-6)
    assert model.interpolate(x[:2], x[2:4], steps=3).shape == (2, 3, *digits.shape)
    as_tensor = model.encode(torch.from_numpy(x))
    assert isinstance(as_tensor, torch.Tensor)
    terms = model.loss_terms(x)
    assert set(terms) == {"loss", "reconstruction", "kl", "elbo"}
    with pytest.raises(ValueError, match="single example"):
        model.encode(x[0])
    with pytest.raises(ValueError, match="expected codes shaped"):
        model.decode(np.zeros((2, 5)))


def test_ae_has_no_likelihood(digits):
    model = aevae.make("ae", input_shape=digits.shape, latent_dim=4, hidden=(16,))
    with pytest.raises(aevae.NoLikelihoodError, match="defines no likelihood"):
        model.elbo(digits.test.x[:4])
    with pytest.raises(aevae.NoLikelihoodError, match="no variance"):
        model.encode(digits.test.x[:4], return_variance=True)
    assert set(model.loss_terms(digits.test.x[:4])) == {"loss", "reconstruction"}


def test_gaussian_likelihood_constant_is_exact():
    likelihood = make_likelihood("gaussian", (3,), sigma=1.0)
    value = likelihood.log_prob(torch.zeros(1, 3), torch.zeros(1, 3))
    assert math.isclose(float(value), -1.5 * math.log(2 * math.pi), rel_tol=1e-6)


@pytest.mark.parametrize("name", sorted(aevae.models.MODELS))
def test_every_model_builds_the_same_weights_from_the_same_seed(name):
    # Sequence models read (steps, features); the rest take a small image.
    shape = (8, 3) if name in ("sequence_vae", "vrnn") else (1, 8, 8)
    build = lambda seed: aevae.make(name, input_shape=shape, latent_dim=4,  # noqa: E731
                                    hidden=(16,), seed=seed)
    torch.manual_seed(123)
    first = build(0).state_dict()
    torch.manual_seed(456)  # the caller's global random state must not matter
    second = build(0).state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    other = build(1).state_dict()
    assert any(not torch.equal(first[key], other[key]) for key in first
               if first[key].is_floating_point() and first[key].numel() > 1)


def test_any_vae_can_take_the_vamp_prior(digits):
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=4, hidden=(16,),
                       prior="vamp", prior_options={"pseudo_inputs": 20})
    model.fit(digits.train.x[:200], epochs=1, batch_size=50, progress=False)
    assert np.all(np.isfinite(model.loss_terms(digits.test.x[:10])["elbo"]))
    assert model.sample(3, seed=0).shape == (3, *digits.shape)


def test_every_model_class_declares_its_flags():
    # Declared on the base class with their defaults, so callers read them as plain attributes.
    for name, cls in aevae.models.MODELS.items():
        assert issubclass(cls, aevae.models.base.Autoencoder), name
        assert isinstance(cls.closed_form, bool), name
        assert isinstance(cls.shares_network, bool), name
        assert cls.exact_log_likelihood is None or callable(cls.exact_log_likelihood), name
    base = aevae.models.base.Autoencoder
    assert (base.closed_form, base.shares_network, base.exact_log_likelihood) == (False, True, None)
    for name in ("pca", "ppca"):
        cls = aevae.models.MODELS[name]
        assert cls.closed_form and not cls.shares_network, name
    assert aevae.models.MODELS["ppca"].exact_log_likelihood is not None
    assert aevae.models.MODELS["pca"].exact_log_likelihood is None
    vae = aevae.models.MODELS["vae"]
    assert not vae.closed_form and vae.shares_network and vae.exact_log_likelihood is None


def test_only_the_same_shape_or_its_flat_values_are_read(digits):
    from aevae.data import DataError

    images = np.random.default_rng(0).random((20, 3, 8, 8), dtype=np.float32)
    model = aevae.make("ae", input_shape=(3, 8, 8), network="conv", latent_dim=3, seed=0)
    channels_last = images.transpose(0, 2, 3, 1)
    with pytest.raises(DataError, match="channels last\\? move them first"):
        model.fit(channels_last, epochs=1, progress=False)
    model.fit(images, epochs=1, progress=False)
    with pytest.raises(ValueError, match="examples are shaped \\(8, 8, 3\\) but the model "
                                         "expects \\(3, 8, 8\\); channels last"):
        model.encode(channels_last)
    np.testing.assert_array_equal(model.encode(images.reshape(20, -1)), model.encode(images))
    # Grey images without their channel axis are read as they are: (N, 8, 8) for (1, 8, 8).
    grey = aevae.make("ae", input_shape=(1, 8, 8), network="conv", latent_dim=3, seed=0)
    flat = digits.test.x[:10].reshape(10, 8, 8)
    grey.fit(flat, epochs=1, progress=False)
    np.testing.assert_array_equal(grey.encode(flat), grey.encode(flat[:, None]))
    with pytest.raises(ValueError, match="single example"):
        grey.encode(flat[:1])
    mlp = aevae.make("ae", input_shape=(2, 3), latent_dim=2, hidden=(4,), seed=0)
    with pytest.raises(ValueError, match="only the same shape, or its values flattened"):
        mlp.encode(np.zeros((4, 3, 2), np.float32))


def test_a_bernoulli_decoder_scores_only_values_in_its_support(digits):
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=3, hidden=(16,), seed=0)
    pixels = (digits.test.x[:4] * 255).astype(np.uint8)
    for score in (lambda: model.log_likelihood(pixels, k=4), lambda: model.elbo(pixels),
                  lambda: model.loss_terms(digits.test.x[:4] - 0.5)):
        with pytest.raises(ValueError, match="bernoulli decoder scores values in \\[0, 1\\] "
                                             "only"):
            score()
    assert model.encode(pixels).shape == (4, 3)  # encoding is not scoring


def test_whole_number_options_take_numpy_integers_and_refuse_fractions(digits, tmp_path):
    x = digits.train.x[:64]
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=3, hidden=(8,), seed=0)
    model.fit(x, epochs=np.int64(1), seed=np.int64(2), batch_size=np.int32(32), progress=False)
    np.testing.assert_array_equal(model.sample(2, seed=np.int64(1)), model.sample(2, seed=1))
    decoded, chosen = model.traverse(x[:8], dimensions=np.int64(2), steps=np.int64(3))
    assert decoded.shape == (2, 3, *digits.shape) and len(chosen) == 2
    for options, message in (({"epochs": 1.5}, "epochs must be a whole number"),
                             ({"seed": -1}, "seed must be at least 0"),
                             ({"seed": "3"}, "seed must be a whole number"),
                             ({"patience": 1.5}, "patience must be a whole number"),
                             ({"learning_rate": "fast"}, "learning_rate must be a number")):
        with pytest.raises(ValueError, match=message):
            model.fit(x, progress=False, **options)
    with pytest.raises(ValueError, match="k must be a whole number"):
        model.log_likelihood(x[:2], k=1.5)
    with pytest.raises(ValueError, match="unknown device 'bogus'"):
        aevae.load(model.save(tmp_path / "saved"), device="bogus")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(FileExistsError, match="it is a file, and a model is saved as a folder"):
        model.save(tmp_path / "a-file")


def _batch_fields(model, shape: tuple[int, ...]) -> dict:
    """The fields beside x that ``model`` reads, for a batch of six examples of ``shape``."""
    fields = {}
    if "labels" in model.uses:
        fields = {"labels": torch.arange(6) % 2,
                  "label_known": torch.tensor([True, False] * 3)}
    if "lengths" in model.uses:
        fields["lengths"] = torch.full((6,), shape[0])
    return fields


@pytest.mark.parametrize("name", sorted(set(aevae.models.MODELS) - {"pca", "ppca"}))
def test_a_model_that_reads_corrupted_values_is_scored_on_the_clean_ones(name, monkeypatch):
    """Corruption (input_noise_std, input_mask_fraction) changes what the network reads; the
    likelihood must still score the clean x (the denoising criterion), in every model."""
    from aevae.data.batch import Batch

    shape = (8, 3) if name in ("sequence_vae", "vrnn") else (1, 8, 8)
    model = aevae.make(name, input_shape=shape, latent_dim=4, hidden=(16,), seed=0,
                       input_noise_std=0.1)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(0)) * 0.5
    monkeypatch.setattr(model, "corrupt", lambda values: values + 0.5)  # read: [0.5, 1)
    scored = []
    likelihood = type(model.likelihood)
    plain = likelihood.elementwise_log_prob

    def recording(self, values, output):
        scored.append(values.detach().clone())
        return plain(self, values, output)

    monkeypatch.setattr(likelihood, "elementwise_log_prob", recording)
    fields = _batch_fields(model, shape)
    model.train()
    model.batch_loss(Batch(x, **fields))
    assert scored, "the training loss scored nothing through the likelihood"
    assert all(float(values.max()) < 0.5 for values in scored)  # the clean x, every time


# Models whose objective or solution is written for N(0, I), that learn their own prior (vrnn),
# or that never fit their codes to one (the deterministic AEs): they refuse another prior.
STANDARD_NORMAL_ONLY = {"ae", "beta_tcvae", "conditional_ae", "cvae", "denoising_ae", "m2",
                        "miwae", "pca", "ppca", "rae", "sparse_ae", "vrnn"}


@pytest.mark.parametrize("name", sorted(aevae.models.MODELS))
def test_a_model_that_takes_a_learnt_prior_trains_it(name):
    """A model that accepts the mixture prior must train against it (its KL to that prior, so
    the prior's means get a gradient), not against N(0, I) while sampling from the mixture."""
    from aevae.data.batch import Batch

    shape = (8, 3) if name in ("sequence_vae", "vrnn") else (1, 8, 8)
    options = dict(input_shape=shape, latent_dim=4, hidden=(16,), seed=0, prior="mixture",
                   prior_options={"components": 3})
    if name in STANDARD_NORMAL_ONLY:
        with pytest.raises(ValueError, match="prior"):
            aevae.make(name, **options)
        return
    model = aevae.make(name, **options)
    fields = _batch_fields(model, shape)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(0))
    model.train()
    model.batch_loss(Batch(x, **fields)).loss.mean().backward()
    gradient = model.prior.means.grad
    if name == "adversarial_ae":  # the prior is the fixed target its codes are pushed to
        assert gradient is None
        return
    assert gradient is not None and float(gradient.abs().max()) > 0


@pytest.mark.parametrize("name", sorted(aevae.models.MODELS))
def test_free_bits_either_change_the_training_loss_or_are_refused(name):
    """An option a model takes must do something: free bits of 5 nats per dimension lift every
    dimension's KL to the floor, so a model that takes them trains a larger loss."""
    from aevae.data.batch import Batch

    shape = (8, 3) if name in ("sequence_vae", "vrnn") else (1, 8, 8)
    options = dict(input_shape=shape, latent_dim=4, hidden=(16,), seed=0)
    if "free_bits" not in {field.name for field in
                           dataclasses.fields(aevae.models.MODELS[name].Config)}:
        return  # not an option of this model: make() refuses it by name
    try:
        model = aevae.make(name, free_bits=5.0, **options)
    except ValueError as refused:
        assert "free_bits" in str(refused) or "free bits" in str(refused)
        return
    plain = aevae.make(name, **options)
    fields = _batch_fields(model, shape)
    batch = Batch(torch.rand(6, *shape, generator=torch.Generator().manual_seed(0)), **fields)
    losses = []
    for each in (plain, model):
        each.train()
        torch.manual_seed(0)
        with torch.no_grad():
            losses.append(float(each.batch_loss(batch).loss.mean()))
    assert losses[1] > losses[0] + 1.0, losses


def test_reversed_and_flipped_array_views_are_read_like_copies(digits):
    """x[::-1] and np.flip give numpy views with negative strides, which torch refuses: every
    entry point reads them as it reads the same values copied."""
    x = digits.test.x[:40]
    model = aevae.make("vae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    reversed_view, flipped = x[::-1], np.flip(x, -1)
    np.testing.assert_array_equal(model.encode(reversed_view), model.encode(x[::-1].copy()))
    np.testing.assert_array_equal(model.reconstruct(flipped), model.reconstruct(flipped.copy()))
    codes = model.encode(x)
    np.testing.assert_array_equal(model.decode(codes[::-1]), model.decode(codes[::-1].copy()))
    torch.manual_seed(0)
    elbo = model.elbo(reversed_view)
    torch.manual_seed(0)
    np.testing.assert_array_equal(elbo, model.elbo(x[::-1].copy()))
    observed = np.ones_like(x, dtype=bool)
    np.testing.assert_array_equal(model.impute(reversed_view, observed[::-1]),
                                  model.impute(x[::-1].copy(), observed))
    cvae = aevae.make("cvae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    labels = digits.test.labels[:40]
    cvae.fit(reversed_view, labels=labels[::-1], epochs=1, progress=False)
    np.testing.assert_array_equal(cvae.decode(codes[::-1], labels=labels[::-1]),
                                  cvae.decode(codes[::-1].copy(), labels=labels[::-1].copy()))


def test_options_refused_for_training_still_load_from_runs_older_versions_saved(tmp_path):
    """Options a model now refuses to train with (a prior it never fits, free bits its
    objective ignored) are refused by make() and fit(), not by load(): runs saved by older
    versions keep loading."""
    for name, options in (("ae", {"prior": "mixture"}), ("beta_tcvae", {"free_bits": 1.0})):
        old = aevae.models.MODELS[name](input_shape=(1, 8, 8), latent_dim=2, hidden=(8,),
                                        **options)  # as an older version built it
        old.save(tmp_path / name)
        loaded = aevae.load(tmp_path / name)
        assert loaded.encode(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 2)
        with pytest.raises(ValueError, match="prior|free bits"):
            aevae.make(name, input_shape=(1, 8, 8), latent_dim=2, hidden=(8,), **options)
        with pytest.raises(ValueError, match="prior|free bits"):
            loaded.fit(np.zeros((10, 1, 8, 8), np.float32), epochs=1, progress=False)


def test_an_older_run_with_a_refused_option_is_evaluated_without_retraining_copies(digits):
    """The one-class anomaly protocol trains fresh copies of the model: for a configuration
    now refused for training (a run an older version saved) it says why it cannot."""
    from aevae.metrics.evaluate import EvaluationSettings, evaluate

    old = aevae.models.MODELS["beta_tcvae"](input_shape=digits.shape, latent_dim=2,
                                            hidden=(8,), free_bits=0.5)
    result = evaluate(old, digits, ["anomaly"], EvaluationSettings(max_examples=100))
    anomaly = result["metrics"]["anomaly"]
    assert not anomaly["available"] and "cannot be trained: free bits" in anomaly["reason"]


def test_a_file_system_without_locks_trains_without_the_run_lock(tmp_path, digits,
                                                                   monkeypatch):
    import errno
    import fcntl

    def no_locks(handle, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    model = aevae.make("ae", input_shape=digits.shape, latent_dim=2, hidden=(8,), seed=0)
    with pytest.warns(RuntimeWarning, match="cannot lock it"):
        model.fit(digits.train.x[:100], epochs=1, out=tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("name", sorted(set(aevae.models.MODELS) - {"pca", "ppca"}))
def test_every_model_steps_under_bf16_autocast(name):
    """docs/training.md: precision="bf16" trains every model on the CPU. A mixed batch (half
    labelled) takes every path of m2, whose float32 buffers once refused bf16 terms."""
    from aevae.data.batch import Batch

    shape = (8, 3) if name in ("sequence_vae", "vrnn") else (1, 8, 8)
    model = aevae.make(name, input_shape=shape, latent_dim=4, hidden=(16,), seed=0)
    batch = Batch(torch.rand(6, *shape, generator=torch.Generator().manual_seed(0)),
                  **_batch_fields(model, shape))
    model.train()
    losses = []
    for autocast in (False, True):
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model.batch_loss(batch).loss.mean()
        loss.backward()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[1] == pytest.approx(losses[0], rel=0.05, abs=0.5)
