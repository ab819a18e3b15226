"""The model adapters of aevae.metrics.evaluate: wiring, settings echoed, seeding, the CLI.

The metric cores' known answers are tested in test_metrics_core.py; here a small VAE trained on
digits for a few epochs goes through every group.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import aevae
from aevae.data import Split
from aevae.data.containers import assemble_dataset
from aevae.metrics.evaluate import EvaluationSettings, available_metric_groups, evaluate

NEW_GROUPS = ["structure", "interpolation", "anomaly", "denoising"]




def small_settings(**changes) -> EvaluationSettings:
    options = dict(
        importance_samples=50,
        generated_samples=300,
        interpolation_pairs=40,
        reference_images=500,
        anomaly_training_epochs=2,
        anomaly_training_examples=60,
        anomaly_importance_samples=10,
        silhouette_examples=200,
    )
    options.update(changes)
    return EvaluationSettings(**options)


@pytest.fixture(scope="module")
def vae(digits):
    model = aevae.make("vae", input_shape=(1, 8, 8), latent_dim=8, hidden=(64,))
    return model.fit(digits.train.x, epochs=5, progress=False)


@pytest.fixture(scope="module")
def autoencoder(digits):
    model = aevae.make("ae", input_shape=(1, 8, 8), latent_dim=8, hidden=(64,))
    return model.fit(digits.train.x, epochs=5, progress=False)


def numbers(value, path=""):
    """Every (path, number) in a nested result."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numbers(item, f"{path}[{index}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def test_every_group_is_finite_echoes_settings_and_repeats(vae, digits):
    settings = small_settings()
    first = evaluate(vae, digits, settings=settings)
    second = evaluate(vae, digits, settings=settings)
    assert set(first["metrics"]) == {name for name, _ in available_metric_groups()}
    bad = [path for path, value in numbers(first["metrics"]) if not math.isfinite(value)]
    assert not bad
    first.pop("seconds"), second.pop("seconds")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    json.dumps(first)  # JSON-ready

    metrics = first["metrics"]
    assert first["settings"]["seed"] == 0 and first["settings"]["anomaly_training_epochs"] == 2
    likelihood = metrics["likelihood"]
    assert likelihood["available"] and likelihood["importance_samples"] == 50
    assert likelihood["examples"] == len(digits.test)
    assert len(likelihood["per_example"]["elbo"]) == len(digits.test)
    assert likelihood["elbo"] <= likelihood["log_likelihood"] + 0.5

    latent = metrics["latent"]
    kl = latent["kl_to_standard_normal"]
    assert len(kl["per_dimension"]) == vae.latent_dim
    assert kl["total"] == pytest.approx(sum(kl["per_dimension"]))
    # The aggregate posterior (draws) is closer to N(0, I) than the posterior means are.
    assert (latent["aggregate_posterior_mismatch"]["mmd_imq"]
            < latent["prior_mismatch"]["mmd_imq"])
    assert set(metrics["generation"]) >= {"prior", "ex_post", "code_gaussian"}

    structure = metrics["structure"]
    assert structure["linear_probe"]["labels_per_class"] == [10, 100, None]
    assert set(structure["knn"]["accuracy"]) == {"10", "100", "all"}
    assert structure["n_train"] == len(digits.train) and structure["n_test"] == len(digits.test)
    assert structure["linear_probe"]["accuracy"]["all"] > 0.5  # well above chance (0.1)
    assert {"accuracy", "nmi", "ari"} <= set(structure["clustering"])

    interpolation = metrics["interpolation"]
    assert interpolation["pairs"] == 40 and interpolation["steps"] == 10
    assert interpolation["smoothness"]["value"] >= 1.0
    assert interpolation["midpoint_realism"]["n_reference"] == 500
    assert interpolation["feature_space"] == "classifier"
    assert 0 < interpolation["midpoint_realism"]["classifier"]["mean_confidence"] <= 1

    anomaly = metrics["anomaly"]
    assert anomaly["protocol"] == "one_class"
    assert anomaly["training"]["epochs"] == 2 and anomaly["importance_samples"] == 10
    assert set(anomaly["auroc"]) == {
        "reconstruction_error",
        "negative_elbo",
        "negative_log_likelihood",
    }
    for score in anomaly["auroc"].values():
        assert len(score["per_class"]) == 10
        assert score["value"] == pytest.approx(np.mean(list(score["per_class"].values())))

    denoising = metrics["denoising"]
    assert set(denoising["gaussian_noise"]) == {"0.1", "0.3", "0.5"}
    assert set(denoising["masking"]) == {"0.25", "0.5"}
    noisy = [denoising["gaussian_noise"][level]["corrupted_psnr"] for level in ("0.1", "0.5")]
    assert noisy[0] > noisy[1]  # more noise, lower PSNR of the corrupted input

    generation = metrics["generation"]
    assert generation["generated_samples"] == 300
    assert "prior" in generation


def test_the_real_side_of_sample_quality_is_shared_between_runs(vae, autoencoder, digits):
    # A study worker evaluates many runs: the reference images' features and neighbour radii
    # are computed once per (feature extractor, reference images, seed).
    from aevae.metrics.evaluate import EvaluationContext
    from aevae.metrics.generation import ReferenceSet

    earlier = EvaluationContext(vae, digits, small_settings())
    first = earlier.reference_set()
    later = EvaluationContext(autoencoder, digits, small_settings())
    assert later.reference_set() is first
    # The features are kept with it, not computed again.
    assert later.reference_features() is earlier.reference_features()
    assert EvaluationContext(vae, digits, small_settings(seed=1)).reference_set() is not first
    assert EvaluationContext(
        vae, digits, small_settings(reference_images=400)).reference_set() is not first
    fresh = ReferenceSet(first.features, seed=0)
    assert all(np.array_equal(fresh.radii[k], first.radii[k]) for k in (3, 5))


def test_the_reference_spread_is_computed_once_for_every_realism_figure(
        vae, autoencoder, digits, monkeypatch):
    # Midpoints, edits and variations are all measured in units of the reference features'
    # mean nearest-neighbour distance: one computation serves the three groups and later runs.
    from aevae.metrics import evaluate as module
    from aevae.metrics._utils import kth_neighbour_distances, mean_spacing

    module._REFERENCE_MEMOS.clear()
    calls = []

    def counted(values):
        calls.append(1)
        return mean_spacing(values)

    monkeypatch.setattr(module, "mean_spacing", counted)
    groups = ["interpolation", "manipulation", "variation"]
    settings = small_settings(reference_images=300, seed=5)
    first = evaluate(vae, digits, metrics=groups, settings=settings)["metrics"]
    assert calls == [1]
    later = evaluate(autoencoder, digits, metrics=groups, settings=settings)["metrics"]
    assert calls == [1]
    context = module.EvaluationContext(vae, digits, settings)
    features = np.asarray(context.reference_features()[0], dtype=np.float64)
    expected = float(kth_neighbour_distances(features, 1).mean())
    for metrics in (first, later):
        assert metrics["interpolation"]["midpoint_realism"]["mean_train_distance"] == expected
        assert metrics["interpolation"]["endpoint_realism"]["mean_train_distance"] == expected
        assert metrics["manipulation"]["realism"]["mean_train_distance"] == expected


def test_autoencoder_has_no_likelihood_but_every_other_group(autoencoder, digits):
    result = evaluate(
        autoencoder,
        digits,
        metrics=["likelihood", "latent", *NEW_GROUPS],
        settings=small_settings(interpolation_pairs=10),
    )
    likelihood = result["metrics"]["likelihood"]
    assert likelihood["available"] is False and "no likelihood" in likelihood["reason"]
    latent = result["metrics"]["latent"]
    assert "kl_to_standard_normal" not in latent and "aggregate_posterior_mismatch" not in latent
    assert 0 <= latent["holes"]["value"] <= 1
    assert set(result["metrics"]["anomaly"]["auroc"]) == {"reconstruction_error"}
    assert result["metrics"]["structure"]["available"]


def out_of_distribution_dataset(digits):
    """Class 0: digits; class 1: the same images inverted (1 - x), clearly unlike digits."""

    def split(part, size):
        images = part.x[:size]
        x = np.concatenate([images, 1.0 - images])
        labels = np.repeat([0, 1], len(images))
        return Split(x, labels)

    return assemble_dataset(
        "digits-and-inverted",
        split(digits.train, 400),
        None,
        split(digits.test, 100),
        description="test data",
    )


def test_anomaly_detects_an_out_of_distribution_class(vae, digits):
    dataset = out_of_distribution_dataset(digits)
    result = evaluate(
        vae,
        dataset,
        metrics=["anomaly"],
        settings=small_settings(anomaly_training_epochs=15, anomaly_training_examples=400),
    )
    anomaly = result["metrics"]["anomaly"]
    assert anomaly["protocol"] == "one_class"
    assert anomaly["training"]["examples"] == {"0": 400, "1": 400}
    for score in anomaly["auroc"].values():
        assert score["per_class"]["0"] > 0.9  # digits normal: inverted images stand out

    # Without training, the given model scores: said plainly, not called one-class.
    given = evaluate(
        vae, dataset, metrics=["anomaly"], settings=small_settings(anomaly_training_epochs=0)
    )
    assert given["metrics"]["anomaly"]["protocol"] == "given_model"
    assert "NOT one-class" in given["metrics"]["anomaly"]["description"]


def test_groups_without_labels_say_so(vae, digits):
    unlabelled = assemble_dataset(
        "unlabelled",
        Split(digits.train.x),
        None,
        Split(digits.test.x[:50]),
        description="no labels",
    )
    result = evaluate(
        vae,
        unlabelled,
        metrics=["structure", "anomaly", "interpolation", "generation"],
        settings=small_settings(interpolation_pairs=10),
    )
    assert result["metrics"]["structure"]["available"] is False
    assert result["metrics"]["anomaly"]["available"] is False
    # Without a classifier, samples and midpoints are compared with data in data space.
    space = "data principal components"
    assert result["metrics"]["interpolation"]["feature_space"].startswith(space)
    generation = result["metrics"]["generation"]
    assert generation["feature_space"].startswith(space) and "feature_classifier" not in generation
    assert generation["prior"]["classifier"] is None
    assert generation["prior"]["frechet_distance"]["value"] > 0


def test_unknown_group_is_a_clear_error(vae, digits):
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(vae, digits, metrics=["nonsense"])


def test_cli_evaluate_writes_metrics_json(tmp_path, capsys):
    from aevae.cli import main

    run = tmp_path / "run"
    assert (
        main(["train", "vae", "--data", "digits", "--epochs", "2", "--out", str(run), "--quiet"])
        == 0
    )
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--metrics",
                "reconstruction,likelihood",
                "--importance-samples",
                "50",
            ]
        )
        == 0
    )
    written = json.loads((run / "metrics.json").read_text())
    assert set(written["metrics"]) == {"reconstruction", "likelihood"}
    assert written["metrics"]["likelihood"]["importance_samples"] == 50
    assert written["settings"]["importance_samples"] == 50
    printed = capsys.readouterr().out
    assert "log p(x), importance sampled" in printed and "metrics.json" in printed
    assert "Compression" in printed and "reconstruction MSE" in printed


def test_estimates_count_each_groups_own_work(vae, autoencoder, digits):
    from aevae.metrics.evaluate import (
        estimate_seconds,
        large_data,
        measure_speeds,
        practical_settings,
    )

    settings = EvaluationSettings(anomaly_training_epochs=2, anomaly_classes=2,
                                  importance_samples=50)
    names = [name for name, _ in available_metric_groups()]
    speeds = measure_speeds(vae, digits, names, settings)
    assert speeds.classifier_step > 0 and speeds.model_step > 0 and speeds.encode > 0
    estimates, parts = estimate_seconds(vae, digits, names, settings, speeds)
    assert set(estimates) == set(names) and all(value > 0 for value in estimates.values())
    # The feature classifier is paid by the first group that trains it, the one-class models
    # by anomaly; the longer protocol costs more.
    assert estimates["generation"] >= parts["feature classifier"]
    assert estimates["anomaly"] >= parts["one-class models"] > 0
    longer = EvaluationSettings(anomaly_training_epochs=20, anomaly_classes=2,
                                importance_samples=500)
    slower, _ = estimate_seconds(vae, digits, names, longer, speeds)
    assert slower["anomaly"] > estimates["anomaly"]
    assert slower["likelihood"] > estimates["likelihood"]
    # A model without a likelihood scores anomalies by reconstruction alone: more importance
    # samples cost it nothing.
    more_samples = dataclasses.replace(settings, anomaly_importance_samples=1000)
    assert (estimate_seconds(vae, digits, ["anomaly"], more_samples, speeds)[0]["anomaly"]
            > estimates["anomaly"])
    plain = measure_speeds(autoencoder, digits, ["anomaly"], settings)
    assert (estimate_seconds(autoencoder, digits, ["anomaly"], more_samples, plain)[0]
            == estimate_seconds(autoencoder, digits, ["anomaly"], settings, plain)[0])
    # Caps only ever lower a setting; MNIST-sized data is not "large", 32 x 32 images are.
    capped = practical_settings(EvaluationSettings(max_examples=500))
    assert capped.max_examples == 500 and capped.generated_samples == 1000
    assert capped.classifier_min_steps == 200 and capped.max_train_examples == 10000
    assert not large_data(digits)
    big = assemble_dataset("big", Split(np.zeros((20, 1, 32, 32), np.float32)), None, None,
                           description="32 x 32 images")
    assert large_data(big)
