"""Bad input to the Python API is refused by name, not truncated, cast or left to torch: the
cases an audit of the API found passing silently (each failed on the code before)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import aevae
from aevae.data import DataError, NpyStream


@pytest.fixture(scope="module")
def small(digits):
    x = digits.train.x[:120]

    def make(name, **options):
        return aevae.make(name, input_shape=digits.shape, hidden=(8,), latent_dim=2, seed=0,
                          **options)

    return x, digits.train.labels[:120], make


def test_a_negative_batch_size_is_refused_not_left_as_uninitialised_memory(small):
    x, _, make = small
    vae = make("vae")
    with pytest.raises(ValueError, match="batch_size must be a whole number of at least 1"):
        vae.log_likelihood(x[:3], k=2, batch_size=-1)
    with pytest.raises(ValueError, match="seed must be a whole number"):
        vae.log_likelihood(x[:3], k=2, seed=1.5)


def test_fractional_labels_and_masks_other_than_zero_and_one_are_refused(small):
    x, labels, make = small
    with pytest.raises(DataError, match="labels: expected whole numbers, got fractional"):
        make("cvae").fit(x, labels=labels + 0.7, epochs=1, progress=False)
    cvae = make("cvae")
    with pytest.raises(ValueError, match="a single class is a whole number, got 1.9"):
        cvae.encode(x[:4], labels=1.9)
    with pytest.raises(ValueError, match="codes holds 1 NaN"):
        cvae.decode(np.array([[np.nan, 0.0]]), labels=1)
    with pytest.raises(ValueError, match="labels must be classes 0..9"):
        make("m2").sample(2, labels=10)
    observed = np.ones(x.shape) * 0.5
    with pytest.raises(DataError, match="a mask holds 0 and 1"):
        make("miwae").fit(x, observed=observed, epochs=1, progress=False)
    with pytest.raises(ValueError, match="codes holds 1 NaN"):
        aevae.make("sequence_vae", input_shape=(8, 3), hidden=(8,), latent_dim=2).decode(
            np.array([[np.nan, 0.0]]))


def test_a_stream_is_checked_against_the_models_likelihood(small, tmp_path):
    """0-255 values trained a Bernoulli AE to a negative loss; a typo in likelihood= was
    accepted and checked nothing."""
    x, _, make = small
    np.save(tmp_path / "pixels.npy", (x * 255).astype(np.int64))
    with pytest.raises(ValueError, match="unknown likelihood 'bernouli'"):
        NpyStream(tmp_path / "pixels.npy", likelihood="bernouli")
    with pytest.raises(DataError, match="outside \\[0, 1\\].*divide by 255"):
        make("ae").fit(NpyStream(tmp_path / "pixels.npy"), epochs=1, progress=False)


def test_impute_refuses_misspelt_options_and_empty_draws(small):
    x, _, make = small
    observed = np.random.default_rng(0).random(x.shape) > 0.3
    missing = np.where(observed, x, np.nan)
    with pytest.raises(TypeError, match="unexpected option\\(s\\) iteratoins"):
        make("vae").impute(missing, observed, iteratoins=3)
    with pytest.raises(ValueError, match="samples must be a whole number of at least 1"):
        make("miwae").impute(missing, observed, samples=0)
    with pytest.raises(ValueError, match="start must be one value or one per data dimension"):
        make("vae").impute(missing, observed, start=np.zeros(3))
    # The other method's options are taken (callers pass one set to any model).
    assert make("vae").impute(missing, observed, seed=3, iterations=1).shape == x.shape


def test_study_settings_read_widths_and_counts_as_given():
    from aevae.study import StudySettings

    assert StudySettings(hidden="64").hidden == (64,)  # it was (6, 4)
    assert StudySettings(hidden="64,32").hidden == (64, 32)
    for options in ({"hidden": (8.9,)}, {"seeds": 1.5}, {"seeds": "3"}, {"workers": 1.5}):
        with pytest.raises(ValueError):
            StudySettings(**options)


def test_evaluate_takes_a_group_name_as_text_and_refuses_an_array(small, digits):
    from aevae.metrics.evaluate import EvaluationSettings, evaluate

    x, _, make = small
    model = make("ae")
    result = evaluate(model, digits, "reconstruction", EvaluationSettings(max_examples=50))
    assert set(result["metrics"]) == {"reconstruction"}  # not r, e, c, o, ...
    with pytest.raises(TypeError, match="evaluate needs an aevae.data.Dataset"):
        evaluate(model, x, ["reconstruction"])


def test_own_networks_are_held_to_the_documented_shapes():
    """A 3-wide encoder for a 2-d VAE trained and scored on a broadcast log-variance; a 4-wide
    one gave an AE 4-d codes; a function passed as encoder was taken."""
    from torch import nn

    decoder = nn.Sequential(nn.Linear(2, 64), nn.Unflatten(1, (1, 8, 8)))

    def make(name, encoder, decoder=decoder):
        return aevae.make(name, input_shape=(1, 8, 8), latent_dim=2, encoder=encoder,
                          decoder=decoder)

    for name, width in (("vae", 3), ("ae", 4)):
        with pytest.raises(ValueError, match=f"encoder= gives outputs shaped \\(2, {width}\\)"):
            make(name, nn.Sequential(nn.Flatten(), nn.Linear(64, width)))
    with pytest.raises(TypeError, match="encoder= must be a torch.nn.Module"):
        make("ae", lambda x: x)
    with pytest.raises(ValueError, match="decoder= gives outputs shaped \\(2, 63\\)"):
        make("ae", nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), nn.Linear(2, 63))
    norm = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.BatchNorm1d(4))
    make("vae", norm)  # the right shape is taken, and the probe moved no statistics
    assert float(norm[2].num_batches_tracked) == 0 and norm.training


def test_a_tampered_ex_post_density_is_refused_on_load(small, tmp_path):
    import json

    from aevae.ex_post import ExPostSampler
    from aevae.io import CorruptFileError

    x, _, make = small
    model = make("ae")
    sampler = ExPostSampler().fit(model, x, components=3)
    sampler.save(tmp_path)
    saved = json.loads((tmp_path / "ex_post.json").read_text())
    for change in ({"weights": saved["weights"][:2]},           # sampled the first two only
                   {"weights": [0.5, 0.5, 0.5]},                # failed when sampling
                   {"covariances": saved["covariances"][:2]}):  # an IndexError when sampling
        (tmp_path / "ex_post.json").write_text(json.dumps({**saved, **change}))
        with pytest.raises(CorruptFileError, match="not a valid ex-post density"):
            ExPostSampler.load(tmp_path, model)


@pytest.mark.parametrize("options, message", [
    ({"importance_samples": 0}, "importance_samples must be a whole number of at least 1"),
    ({"max_examples": 1.5}, "max_examples must be a whole number of at least 2 or None"),
    ({"seed": -1}, "seed must be a whole number of at least 0"),
    ({"anomaly_training_epochs": True}, "anomaly_training_epochs must be a whole number"),
    ({"missing_fractions": (0.2, 1.0)}, "missing_fractions must be a sequence of fractions"),
    ({"noise_levels": "0.1"}, "noise_levels must be a sequence of positive"),
    ({"labels_per_class": (10, None, 0)}, "labels_per_class must be a sequence"),
    ({"variation_input_noise": float("nan")}, "variation_input_noise must be a finite number"),
])
def test_evaluation_settings_refuse_counts_and_fractions_by_name(options, message):
    from aevae.metrics.evaluate import EvaluationSettings

    with pytest.raises(ValueError, match=message):
        EvaluationSettings(**options)


def test_evaluation_settings_read_back_from_json_are_the_same_settings():
    import dataclasses
    import json

    from aevae.metrics.evaluate import EvaluationSettings

    settings = EvaluationSettings(labels_per_class=(10, None), bound_samples=(1, 5))
    again = EvaluationSettings(**json.loads(json.dumps(dataclasses.asdict(settings))))
    assert again == settings  # lists from JSON become the tuples they were


def test_a_study_refuses_a_bad_evaluation_override_before_training(tmp_path):
    from aevae.study.runner import run_study
    from aevae.study.settings import BUDGETS, Budget, StudySettings

    budget = Budget(**{**BUDGETS["quick"].to_dict(), "evaluation": {"generated_samples": 0}})
    settings = StudySettings(data="digits", models=["ae"], seeds=1, budget=budget, workers=1)
    with pytest.raises(ValueError, match="generated_samples must be a whole number"):
        run_study(settings, tmp_path / "study", progress=False)
    assert not (tmp_path / "study").exists()


def test_a_batch_transform_that_leaves_the_likelihood_s_range_or_shape_is_refused(small):
    x, _, make = small
    with pytest.raises(DataError, match=r"batch_transform returned values in \[0, 255\]; the "
                                        r"bernoulli likelihood needs them in \[0, 1\]"):
        make("vae").fit(x, epochs=1, batch_size=40, progress=False,
                        batch_transform=lambda batch: batch * 255)
    with pytest.raises(DataError, match=r"batch_transform returned \(40, 32\), not a batch of "
                                        r"examples shaped \(1, 8, 8\)"):
        make("vae").fit(x, epochs=1, batch_size=40, progress=False,
                        batch_transform=lambda batch: batch.reshape(len(batch), -1)[:, :32])
    # A transform that keeps the range trains (dynamic binarization, the documented use).
    make("vae").fit(x, epochs=1, batch_size=40, progress=False,
                    batch_transform=lambda batch: torch.bernoulli(batch))


def test_inputs_far_from_the_training_scale_give_finite_figures_not_nan():
    # The encoder's log-variance went past float32's exp() range (inf std, NaN codes and
    # log-likelihoods; in a study one such test example stopped everything with "variances
    # must be strictly positive"). Outside training it is kept within the bound.
    from aevae.distributions import LOG_VARIANCE_BOUND

    x = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    for likelihood in ("gaussian", "gaussian-learned", "student-t"):
        vae = aevae.make("vae", input_shape=(5,), latent_dim=2, hidden=(32,),
                         likelihood=likelihood, seed=0)
        vae.fit(x, epochs=3, progress=False)
        far = 1e6 * x[:50]
        _, variance = vae.encode(far, return_variance=True)
        assert np.isfinite(variance).all() and (variance > 0).all()
        assert np.isfinite(vae.log_likelihood(far, k=10)).all()
        assert np.isfinite(vae.elbo(far)).all()
        _, trained = vae.encode(x, return_variance=True)
        assert np.abs(np.log(trained)).max() < LOG_VARIANCE_BOUND / 2  # far inside
    # Training is left alone: unstandardised data at that scale still stops it loudly.
    from aevae.training import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match="check the data scale"):
        aevae.make("vae", input_shape=(5,), latent_dim=2, hidden=(32,),
                   likelihood="gaussian-learned", seed=0).fit(1e5 * x, epochs=5, progress=False)


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e-6, 1e-8])
def test_ppca_and_the_ex_post_density_do_not_depend_on_the_data_s_units(scale):
    # Both had absolute floors (a noise variance of 1e-12; scikit-learn's reg_covar 1e-6)
    # that dominated small-scale data: PPCA's exact log p(x) was 26 nats off at 1e-8 and the
    # ex-post samples 300x too wide at 1e-6.
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(300, 5))
    x = (scale * base).astype(np.float32)
    ppca = aevae.make("ppca", input_shape=(5,), latent_dim=2).fit(x)
    exact = PCA(2).fit(x.astype(np.float64)).score(x.astype(np.float64))
    assert ppca.exact_log_likelihood(x).mean() == pytest.approx(exact, abs=1e-3)
    pca = aevae.make("pca", input_shape=(5,), latent_dim=2).fit(x)
    samples = aevae.ExPostSampler().fit(pca, x, components=3).sample(2000, seed=0)
    assert np.allclose(samples.std(axis=0) / x.std(axis=0), 1.0, atol=0.06)


def test_a_roster_naming_one_model_twice_through_a_default_option_is_refused(tmp_path):
    # ae:latent_dim=8 is ae on digits (8 is its default latent size): the same runs, which
    # the study compared with themselves ("tie ... [0, 0]") and counted twice.
    from aevae.study.runner import run_study
    from aevae.study.settings import StudySettings

    settings = StudySettings(data="digits", models="ae,ae:latent_dim=8,vae", seeds=1,
                             workers=1)
    with pytest.raises(ValueError, match=r"ae and ae \(latent_dim=8\) are the same model on "
                                         r"this data .* name it once"):
        run_study(settings, tmp_path / "study", progress=False)
    assert not (tmp_path / "study").exists()


def test_a_standardised_data_set_s_log_density_is_also_given_in_the_data_s_own_units(tmp_path):
    # The CLI and the study standardise real-valued data; log p(x) was of the standardised
    # values but labelled "on the data's scale" (58 nats apart on data at scale 1e5).
    from aevae.data import load_dataset
    from aevae.data.preparation import standardise
    from aevae.metrics.evaluate import EvaluationSettings, evaluate
    from aevae.sklearn import AutoencoderTransformer

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 2)) @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(400, 5)))
    x = x * np.array([1e5, 1.0, 1e-3, 10.0, 1.0]) + 7.0
    np.save(tmp_path / "x.npy", x)
    data, record = standardise(load_dataset(tmp_path / "x.npy", test_fraction=0.25, seed=0))
    assert data.log_jacobian == pytest.approx(-np.log(record["scale"]).sum())
    ppca = aevae.make("ppca", input_shape=(5,), latent_dim=2).fit(data.train.x)
    figures = evaluate(ppca, data, ["likelihood"], EvaluationSettings(importance_samples=50))
    likelihood = figures["metrics"]["likelihood"]
    assert "of the standardised values the model was trained on" in likelihood["unit"]
    assert likelihood["exact_log_likelihood_data_units"] == pytest.approx(
        likelihood["exact_log_likelihood"] + data.log_jacobian)
    assert likelihood["bits_per_dimension_data_units"] == pytest.approx(
        -likelihood["log_likelihood_data_units"] / (5 * np.log(2)))
    # The same model through the scikit-learn facade (which standardises the same way) scores
    # the evaluated rows, back in their own units, alike.
    scale, mean = np.asarray(record["scale"]), np.asarray(record["mean"])
    facade = AutoencoderTransformer(model="ppca", latent_dim=2).fit(data.train.x * scale + mean)
    evaluated = data.test.x
    assert facade.score(evaluated * scale + mean) == pytest.approx(
        likelihood["exact_log_likelihood_data_units"], abs=1e-2)


def test_every_count_of_the_evaluation_settings_is_checked():
    # A count added to EvaluationSettings without a minimum in _COUNTS would go unchecked.
    import dataclasses

    from aevae.metrics import evaluate as module

    counts = {field.name for field in dataclasses.fields(module.EvaluationSettings)
              if str(field.type).startswith("int")}
    assert counts == set(module._COUNTS)
    assert module._OPTIONAL_COUNTS == {field.name for field in dataclasses.fields(
        module.EvaluationSettings) if str(field.type) == "int | None"}


def test_a_kl_schedule_on_a_model_without_a_kl_term_is_said_to_change_nothing(small):
    x, _, make = small
    with pytest.warns(RuntimeWarning, match="ae's loss has no term kl_schedule scales"):
        make("ae").fit(x, epochs=1, progress=False, kl_schedule="linear:10")
    with warnings.catch_warnings(record=True) as caught:  # models it weighs stay quiet
        warnings.simplefilter("always")
        for name in ("vae", "wae_mmd"):
            make(name).fit(x, epochs=1, progress=False, kl_schedule="linear:10")
    assert not [item for item in caught if "kl_schedule" in str(item.message)]
