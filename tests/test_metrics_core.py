"""Known-answer tests for the metric cores in aevae.metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import linalg

from aevae import metrics

N_CLASSES = 5


def labelled_codes(kind: str, n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Codes for balanced labels: 'perfect' = one-hot labels + tiny noise, 'random' = noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % N_CLASSES
    if kind == "perfect":
        codes = np.eye(N_CLASSES)[labels] + 0.01 * rng.standard_normal((n, N_CLASSES))
    else:
        codes = rng.standard_normal((n, N_CLASSES))
    return codes, labels


# Structure: probes and clustering.


def test_probes_on_perfect_codes_are_perfect():
    train, train_labels = labelled_codes("perfect", seed=0)
    test, test_labels = labelled_codes("perfect", seed=1)
    probe = metrics.linear_probe_accuracy(train, train_labels, test, test_labels, seed=0)
    knn = metrics.knn_accuracy(train, train_labels, test, test_labels, seed=0)
    for result in (probe, knn):
        assert set(result["accuracy"]) == {"10", "100", "all"}
        assert min(result["accuracy"].values()) > 0.99
    assert probe["n_train"] == {"10": 50, "100": 500, "all": 500}
    assert knn["k_used"] == {"10": 5, "100": 5, "all": 5}


def test_knn_lowers_k_when_few_labels():
    train, train_labels = labelled_codes("perfect", seed=0)
    test, test_labels = labelled_codes("perfect", seed=1)
    result = metrics.knn_accuracy(
        train, train_labels, test, test_labels, labels_per_class=(1,), k=5, seed=0
    )
    assert result["k_used"] == {"1": 5}
    result = metrics.knn_accuracy(
        train[:3], train_labels[:3], test, test_labels, labels_per_class=(1,), k=5, seed=0
    )
    assert result["k_used"] == {"1": 3}


def test_a_label_budget_no_class_can_meet_is_not_measured():
    """With 22 labelled training examples the "10" and "100 labels per class" figures were
    the all-labels figure under other names (new-user audit)."""
    train, train_labels = labelled_codes("perfect", seed=0)
    test, test_labels = labelled_codes("perfect", seed=1)
    keep = np.concatenate([np.flatnonzero(train_labels == label)[:count]
                           for label, count in zip(range(N_CLASSES), (40, 7, 120, 120, 120))])
    for measure in (metrics.linear_probe_accuracy, metrics.knn_accuracy):
        result = measure(train[keep], train_labels[keep], test, test_labels, seed=0)
        assert result["accuracy"]["10"] is None and result["accuracy"]["100"] is None
        assert result["n_train"]["10"] is None and result["accuracy"]["all"] > 0.99
        assert result["unmet"] == {
            "10": "a class has only 7 labelled training example(s), fewer than 10",
            "100": "a class has only 7 labelled training example(s), fewer than 100"}
    full = metrics.linear_probe_accuracy(train, train_labels, test, test_labels, seed=0)
    assert "unmet" not in full  # every budget met: the result is as before
    # The study names the reason instead of "not measured".
    from aevae.study.tasks import TASKS
    from aevae.study.verdicts import _group_reason

    probe_10 = TASKS["few_labels"].metrics[0]
    by_seed = {0: {"structure": {"available": True, "linear_probe": result}}}
    by_seed[0]["structure"]["linear_probe"] = metrics.linear_probe_accuracy(
        train[keep], train_labels[keep], test, test_labels, seed=0)
    assert _group_reason(by_seed, probe_10).startswith("a class has only 7 labelled")


def test_probes_on_random_codes_are_at_chance():
    train, train_labels = labelled_codes("random", n=1000, seed=0)
    test, test_labels = labelled_codes("random", n=1000, seed=1)
    probe = metrics.linear_probe_accuracy(train, train_labels, test, test_labels, seed=0)
    knn = metrics.knn_accuracy(train, train_labels, test, test_labels, seed=0)
    for result in (probe, knn):
        for value in result["accuracy"].values():
            assert abs(value - 1 / N_CLASSES) < 0.07


def test_clustering_known_answers():
    codes, labels = labelled_codes("perfect")
    result = metrics.clustering(codes, labels, seed=0)
    assert result["n_clusters"] == N_CLASSES
    assert result["accuracy"] > 0.99 and result["nmi"] > 0.99 and result["ari"] > 0.99
    codes, labels = labelled_codes("random", n=1000)
    result = metrics.clustering(codes, labels, seed=0)
    assert abs(result["nmi"]) < 0.03 and abs(result["ari"]) < 0.03
    assert result["accuracy"] < 1 / N_CLASSES + 0.07


def test_hungarian_accuracy_ignores_cluster_names():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert metrics.hungarian_accuracy(labels, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    assert metrics.hungarian_accuracy(labels, np.array([0, 0, 0, 0, 0, 0])) == pytest.approx(1 / 3)


def test_silhouette_separates_good_and_random_codes():
    codes, labels = labelled_codes("perfect")
    assert metrics.silhouette(codes, labels)["value"] > 0.9
    codes, labels = labelled_codes("random")
    assert abs(metrics.silhouette(codes, labels)["value"]) < 0.1


# Anomaly detection.


def test_auroc_known_answers():
    labels = np.array([0] * 50 + [1] * 50)
    scores = np.linspace(0.0, 1.0, 100)
    assert metrics.one_class_auroc(scores, labels, normal_class=0)["value"] == 1.0
    assert metrics.one_class_auroc(-scores, labels, normal_class=0)["value"] == 0.0
    rng = np.random.default_rng(0)
    random_labels = rng.integers(0, 2, 4000)
    result = metrics.one_class_auroc(rng.random(4000), random_labels, normal_class=1)
    assert abs(result["value"] - 0.5) < 0.03
    assert result["n_normal"] + result["n_anomalous"] == 4000


def test_per_class_auroc_mean():
    is_anomalous = np.array([False, False, True, True])
    result = metrics.per_class_auroc(
        {0: (np.array([0.0, 0.1, 0.8, 0.9]), is_anomalous), 1: (np.arange(4)[::-1], is_anomalous)}
    )
    assert result["per_class"] == {"0": 1.0, "1": 0.0}
    assert result["value"] == 0.5


# Fréchet distance.


def test_frechet_distance_of_a_set_to_itself_is_zero():
    features = np.random.default_rng(0).standard_normal((500, 16))
    assert abs(metrics.frechet_distance(features, features)["value"]) < 1e-6


def test_frechet_distance_mean_shift_matches_closed_form():
    features = np.random.default_rng(0).standard_normal((500, 16))
    direction = np.ones(16) / 4.0
    values = []
    for scale in (0.5, 1.0, 2.0, 4.0):
        shift = scale * direction
        value = metrics.frechet_distance(features, features + shift)["value"]
        assert value == pytest.approx(shift @ shift, rel=1e-6, abs=1e-6)
        values.append(value)
    assert values == sorted(values)


def test_frechet_distance_from_statistics_trace_formula():
    rng = np.random.default_rng(0)
    mean_a, mean_b = rng.standard_normal(4), rng.standard_normal(4)
    diagonal_a, diagonal_b = rng.uniform(0.5, 2.0, 4), rng.uniform(0.5, 2.0, 4)
    result = metrics.frechet_distance_from_statistics(
        mean_a, np.diag(diagonal_a), mean_b, np.diag(diagonal_b)
    )
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum(
        (np.sqrt(diagonal_a) - np.sqrt(diagonal_b)) ** 2
    )
    assert result["value"] == pytest.approx(expected, rel=1e-9)
    # Non-commuting covariances: tr sqrt(A B) = tr sqrt(A^1/2 B A^1/2).
    factor_a, factor_b = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    covariance_a = factor_a @ factor_a.T + np.eye(4)
    covariance_b = factor_b @ factor_b.T + np.eye(4)
    root_a = linalg.sqrtm(covariance_a).real
    middle = np.linalg.eigvalsh(root_a @ covariance_b @ root_a)
    expected = (
        np.sum((mean_a - mean_b) ** 2)
        + np.trace(covariance_a)
        + np.trace(covariance_b)
        - 2 * np.sum(np.sqrt(middle))
    )
    result = metrics.frechet_distance_from_statistics(mean_a, covariance_a, mean_b, covariance_b)
    assert result["value"] == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_sampled_gaussians_approach_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 3))
    b = rng.standard_normal((20000, 3)) * np.array([1.0, 2.0, 3.0]) + 1.0
    expected = 3.0 + (0 + 1 + 4)  # mean term + sum (1 - sqrt(var))^2
    assert metrics.frechet_distance(a, b)["value"] == pytest.approx(expected, rel=0.05)


def test_frechet_distance_singular_covariance_is_finite():
    rng = np.random.default_rng(0)
    a = np.zeros((100, 4))
    a[:, 0] = rng.standard_normal(100)
    b = np.zeros((100, 4))
    b[:, 1] = rng.standard_normal(100)
    result = metrics.frechet_distance(a, b)
    # S_a S_b = 0, so the distance is ||mean_a - mean_b||^2 + tr S_a + tr S_b.
    mean_term = np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2)
    expected = mean_term + np.var(a[:, 0], ddof=1) + np.var(b[:, 1], ddof=1)
    assert result["value"] == pytest.approx(expected, rel=1e-6)
    # Constant (dead) features change nothing and need no ridge.
    padded = metrics.frechet_distance(np.c_[a, np.zeros(100)], np.c_[b, np.zeros(100)])
    assert padded["value"] == pytest.approx(result["value"], rel=1e-9)


# Precision / recall and density / coverage.


def test_precision_recall_density_coverage_same_and_disjoint():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((1000, 8))
    same = rng.standard_normal((1000, 8))
    pr = metrics.precision_recall(real, same, k=3)
    dc = metrics.density_coverage(real, same, k=5)
    assert pr["precision"] > 0.85 and pr["recall"] > 0.85
    assert 0.9 < dc["density"] < 1.15 and dc["coverage"] > 0.95
    pr = metrics.precision_recall(real, same + 20.0, k=3)
    dc = metrics.density_coverage(real, same + 20.0, k=5)
    assert pr["precision"] == 0.0 and pr["recall"] == 0.0
    assert dc["density"] == 0.0 and dc["coverage"] == 0.0


def test_neighbour_radii_are_the_kth_sorted_distances():
    from aevae.metrics._utils import kth_neighbour_distances
    from aevae.metrics.generation import neighbour_radii

    values = np.random.default_rng(3).standard_normal((300, 7))
    distances = np.sqrt(((values[:, None] - values[None]) ** 2).sum(-1))
    np.fill_diagonal(distances, np.inf)
    ordered = np.sort(distances, axis=1)
    radii = neighbour_radii(values, (1, 3, 5))
    for k in (1, 3, 5):
        np.testing.assert_allclose(radii[k], ordered[:, k - 1], rtol=1e-9)
        assert np.array_equal(kth_neighbour_distances(values, k), radii[k])
    with pytest.raises(ValueError, match="k must be in"):
        neighbour_radii(values, (300,))


def test_precision_recall_detects_mode_collapse():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((1000, 2))
    collapsed = 0.1 * rng.standard_normal((1000, 2))  # realistic but not diverse
    pr = metrics.precision_recall(real, collapsed, k=3)
    dc = metrics.density_coverage(real, collapsed, k=5)
    assert pr["precision"] > 0.95 and pr["recall"] < 0.2
    assert dc["coverage"] < 0.2


def test_sample_quality_bundle_is_json_and_deterministic():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((400, 6))
    fake = rng.standard_normal((400, 6)) + 0.5
    probabilities = rng.dirichlet(np.ones(4), size=400)
    first = metrics.sample_quality(real, fake, probabilities, max_samples=200, seed=3)
    second = metrics.sample_quality(real, fake, probabilities, max_samples=200, seed=3)
    assert json.dumps(first) == json.dumps(second)
    assert first["frechet_distance"]["value"] > 1.0
    assert first["precision_recall"]["n_real"] == 200


def test_classifier_statistics_known_answers():
    confident = np.eye(4)[np.arange(100) % 4]
    result = metrics.classifier_statistics(confident)
    assert result["mean_confidence"] == 1.0 and result["mean_entropy"] == 0.0
    assert result["marginal_entropy"] == pytest.approx(math.log(4))
    assert result["inception_score"] == pytest.approx(4.0)
    assert result["label_histogram"] == [25, 25, 25, 25]
    uniform = np.full((10, 4), 0.25)
    result = metrics.classifier_statistics(uniform)
    assert result["mean_confidence"] == 0.25
    assert result["mean_entropy"] == pytest.approx(math.log(4))
    assert result["inception_score"] == pytest.approx(1.0)


# Latent metrics.


def test_active_units_counts_varying_dimensions():
    rng = np.random.default_rng(0)
    means = 1e-3 * rng.standard_normal((1000, 8))
    means[:, [1, 4, 6]] = rng.standard_normal((1000, 3))
    result = metrics.active_units(means)
    assert result["value"] == 3
    assert result["active"] == [False, True, False, False, True, False, True, False]
    assert result["threshold"] == 0.01 and len(result["variances"]) == 8


def test_kl_to_standard_normal_matches_formula():
    zero = metrics.kl_to_standard_normal(np.zeros((10, 3)), np.ones((10, 3)))
    assert zero["total"] == 0.0 and zero["per_dimension"] == [0.0, 0.0, 0.0]
    means = np.array([[1.0, 0.0], [3.0, 0.0]])
    variances = np.array([[1.0, 2.0], [1.0, 0.5]])
    result = metrics.kl_to_standard_normal(means, variances)
    first = 0.5 * (1.0 + 9.0) / 2
    second = 0.5 * ((2.0 - 1.0 - math.log(2.0)) + (0.5 - 1.0 - math.log(0.5))) / 2
    assert result["per_dimension"] == pytest.approx([first, second])
    assert result["total"] == pytest.approx(first + second)


def test_mutual_information_bounds():
    n = 300
    ones = np.ones((n, 4))
    equal = metrics.mutual_information(np.zeros((n, 4)), ones, seed=0)
    assert abs(equal["value"]) < 1e-9
    means = 100.0 * np.random.default_rng(0).standard_normal((n, 4))
    far = metrics.mutual_information(means, 1e-4 * ones, seed=0, n_samples=2)
    assert far["log_n"] == pytest.approx(math.log(n))
    assert far["value"] == pytest.approx(math.log(n), abs=1e-6)
    middle = metrics.mutual_information(means / 100.0, 0.1 * ones, seed=0)
    assert 0.5 < middle["value"] < math.log(n)


def test_mutual_information_subsampled_outer_expectation():
    rng = np.random.default_rng(0)
    means = rng.standard_normal((400, 3))
    variances = np.full((400, 3), 0.2)
    full = metrics.mutual_information(means, variances, seed=0, n_samples=4)["value"]
    part = metrics.mutual_information(means, variances, seed=0, max_examples=200, n_samples=8)
    assert part["n_outer"] == 200
    assert part["value"] == pytest.approx(full, abs=0.15)


def test_prior_mismatch_known_answers():
    rng = np.random.default_rng(0)
    matched = metrics.prior_mismatch(rng.standard_normal((1000, 8)), seed=1)
    assert abs(matched["mmd_imq"]) < 0.005 and abs(matched["mmd_rbf"]) < 0.005
    assert matched["gaussian_kl"] < 0.05
    shifted = metrics.prior_mismatch(2.0 * rng.standard_normal((1000, 8)) + 1.0, seed=1)
    shrunk = metrics.prior_mismatch(0.1 * rng.standard_normal((1000, 8)), seed=1)
    for result in (shifted, shrunk):
        assert result["mmd_imq"] > 0.1 and result["mmd_rbf"] > 0.1
        assert result["gaussian_kl"] > 5.0


def test_latent_holes_on_constructed_codes():
    """Gaussian codes have no holes (about the 5% baseline); well-separated clusters and a ring
    do; the answer does not depend on the codes' scale or on collapsed dimensions."""
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal((2000, 8))
    plain = metrics.latent_holes(gaussian, seed=1)
    assert plain["expected_without_holes"] == pytest.approx(0.05)
    assert abs(plain["value"] - 0.05) < 0.02
    for scale in (1e-3, 1e3):
        assert metrics.latent_holes(scale * gaussian, seed=1)["value"] == plain["value"]
    collapsed = gaussian.copy()
    collapsed[:, :3] *= 1e-4  # inactive units
    assert abs(metrics.latent_holes(collapsed, seed=1)["value"] - 0.05) < 0.02
    centres = 5.0 * rng.standard_normal((10, 8))
    clusters = centres[rng.integers(0, 10, 2000)] + 0.3 * rng.standard_normal((2000, 8))
    assert metrics.latent_holes(clusters, seed=1)["value"] > 0.9
    angle = rng.uniform(0, 2 * np.pi, 2000)
    ring = np.c_[np.cos(angle), np.sin(angle)] + 0.05 * rng.standard_normal((2000, 2))
    assert metrics.latent_holes(ring, seed=1)["value"] > 0.5


def test_gaussian_kl_closed_form():
    codes = np.random.default_rng(0).standard_normal((2000, 3)) * np.array([1.0, 2.0, 0.5]) + 1.0
    result = metrics.prior_mismatch(codes, seed=0, covariance_eps=0.0)
    mean = codes.mean(axis=0)
    covariance = np.cov(codes, rowvar=False)
    expected = 0.5 * (np.trace(covariance) + mean @ mean - 3 - np.log(np.linalg.det(covariance)))
    assert result["gaussian_kl"] == pytest.approx(expected, rel=1e-9)
    variances = np.array([1.0, 4.0, 0.25])
    exact = 0.5 * (variances.sum() + 3.0 - 3.0 - np.log(variances).sum())
    assert metrics.gaussian_kl_to_standard(np.ones(3), np.diag(variances)) == pytest.approx(exact)


def test_mmd_squared_unbiased_for_identical_kernel_rows():
    x = np.zeros((5, 2))
    assert metrics.mmd_squared(x, x, lambda d2: np.exp(-d2)) == pytest.approx(0.0)


# Reconstruction and denoising.


def test_mse_bce_known_values():
    original = np.zeros((2, 2, 2))
    reconstruction = np.full((2, 2, 2), 0.5)
    reconstruction[1] = 0.0
    result = metrics.mse(original, reconstruction)
    assert result["per_example"] == [0.25, 0.0] and result["value"] == 0.125
    bce = metrics.bce(original, np.full((2, 2, 2), 0.5))
    assert bce["value"] == pytest.approx(4 * math.log(2))
    assert bce["per_feature"] == pytest.approx(math.log(2))
    exact = metrics.bce(np.ones((1, 3)), np.ones((1, 3)))
    assert np.isfinite(exact["value"]) and exact["value"] < 1e-5


def test_psnr_known_value_and_cap():
    original = np.zeros((2, 4))
    reconstruction = np.zeros((2, 4))
    reconstruction[0] = 0.1  # MSE 0.01 -> 20 dB
    result = metrics.psnr(original, reconstruction)
    assert result["per_example"] == pytest.approx([20.0, 100.0])
    assert result["capped"] and result["n_capped"] == 1
    same = metrics.psnr(original, original)
    assert same["value"] == 100.0 and same["n_capped"] == 2 and same["max_db"] == 100.0
    assert json.dumps(same)


def test_corruptions_and_denoising_psnr():
    x = np.random.default_rng(0).random((20, 50)).astype(np.float32)
    noisy = metrics.add_gaussian_noise(x, std=0.2, seed=0)
    assert noisy.dtype == np.float32 and noisy.min() >= 0.0 and noisy.max() <= 1.0
    assert np.array_equal(noisy, metrics.add_gaussian_noise(x, std=0.2, seed=0))
    corrupted, mask = metrics.random_mask(x, fraction=0.3, seed=0)
    assert mask.shape == x.shape and np.all(mask.sum(axis=1) == 15)
    assert np.all(corrupted[mask] == 0.0) and np.array_equal(corrupted[~mask], x[~mask])
    result = metrics.denoising_psnr(x, x, corrupted=noisy)
    assert result["value"] == 100.0 and result["capped"]
    assert result["gain"] == pytest.approx(100.0 - result["corrupted_psnr"])


# Interpolation.


def test_interpolation_smoothness_even_and_jumpy_paths():
    start, end = np.zeros(10), np.ones(10)
    weights = np.linspace(0.0, 1.0, 9)[:, None]
    even = (1 - weights) * start + weights * end
    jump = np.where(weights < 0.5, 0.0, 1.0) * np.ones(10)
    result = metrics.interpolation_smoothness(np.stack([even, even]))
    assert result["value"] == pytest.approx(1.0)
    assert result["mean_path_length"] == pytest.approx(math.sqrt(10))
    assert result["mean_straightness"] == pytest.approx(1.0)
    result = metrics.interpolation_smoothness(jump[None])
    assert result["value"] == pytest.approx(8.0)  # one jump among 8 steps


def test_midpoint_realism_ratio():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((1000, 4))
    on_manifold = metrics.midpoint_realism(rng.standard_normal((200, 4)), train, seed=0)
    off_manifold = metrics.midpoint_realism(rng.standard_normal((200, 4)) + 10.0, train, seed=0)
    assert 0.7 < on_manifold["value"] < 1.4
    assert off_manifold["value"] > 5.0
    probabilities = np.full((200, 2), 0.5)
    result = metrics.midpoint_realism(train[:200], train, probabilities, seed=0)
    given = metrics.midpoint_realism(train[:200], train, probabilities, seed=0,
                                     train_distance=result["mean_train_distance"])
    assert given == result  # the reference's own distance passed in: the same result
    assert result["value"] == pytest.approx(0.0, abs=1e-6)
    assert result["classifier"]["mean_confidence"] == 0.5


def test_spacings_are_measured_between_distinct_rows():
    """Training rows repeated six times made every nearest-neighbour distance zero, and the
    midpoint and variation figures divided by it some 1e7 (new-user audit)."""
    rng = np.random.default_rng(0)
    train, queries = rng.standard_normal((300, 4)), rng.standard_normal((100, 4))
    repeated = np.repeat(train, 6, axis=0)
    once = metrics.midpoint_realism(queries, train, max_reference=None)
    six_times = metrics.midpoint_realism(queries, repeated, max_reference=None)
    assert 0.5 < once["value"] < 2.0
    assert six_times["value"] == pytest.approx(once["value"])
    assert six_times["mean_train_distance"] == pytest.approx(once["mean_train_distance"])
    holes = metrics.latent_holes(train, seed=0)["radius"]
    assert metrics.latent_holes(repeated, seed=0)["radius"] == pytest.approx(holes)
    # Sample quality's balls too (precision, density and coverage were 0 for every sampler).
    from aevae.metrics.generation import ReferenceSet, density_coverage, sample_quality

    for reference in (train, repeated):
        quality = sample_quality(ReferenceSet(reference), queries, None)
        assert quality["precision_recall"]["precision"] > 0.6
        assert quality["density_coverage"]["coverage"] > 0.6
    assert metrics.precision_recall(repeated, queries) == metrics.precision_recall(train, queries)
    assert density_coverage(repeated, queries) == density_coverage(train, queries)
    # Without a repeat nothing changes, to the last bit.
    from aevae.metrics._utils import kth_neighbour_distances, mean_spacing

    assert mean_spacing(train) == float(kth_neighbour_distances(train, 1).mean())


# Determinism.


def test_randomised_metrics_repeat_with_the_same_seed():
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((300, 4))
    variances = np.full((300, 4), 0.3)
    labels = np.arange(300) % 3
    calls = [
        lambda seed: metrics.mutual_information(codes, variances, seed=seed, max_examples=100),
        lambda seed: metrics.prior_mismatch(codes, seed=seed, max_codes=200),
        lambda seed: metrics.linear_probe_accuracy(codes, labels, codes, labels, seed=seed),
        lambda seed: metrics.knn_accuracy(codes, labels, codes, labels, seed=seed),
        lambda seed: metrics.clustering(codes, labels, seed=seed),
        lambda seed: metrics.silhouette(codes, labels, sample_size=100, seed=seed),
        lambda seed: metrics.midpoint_realism(codes[:50], codes, max_reference=100, seed=seed),
    ]
    for call in calls:
        first, second = call(7), call(7)
        assert json.dumps(first) == json.dumps(second)
        assert first["seed"] == 7
    assert metrics.mutual_information(codes, variances, seed=1)["value"] != pytest.approx(
        metrics.mutual_information(codes, variances, seed=2)["value"], abs=1e-12
    )


def test_generator_seed_is_accepted():
    codes = np.random.default_rng(0).standard_normal((100, 2))
    result = metrics.prior_mismatch(codes, seed=np.random.default_rng(5))
    assert result["seed"] == "generator"
    with pytest.raises(TypeError):
        metrics.prior_mismatch(codes, seed=1.5)


# Feature classifier.


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    return x, data.target


def test_feature_classifier_learns_digits_and_caches(digits, tmp_path):
    x, labels = digits
    settings = {"min_steps": 300}
    classifier = metrics.load_or_train_feature_classifier(
        "digits", x, labels, tmp_path, seed=0, **settings
    )
    assert classifier.config["architecture"] == "mlp"
    assert classifier.test_accuracy > 0.9
    features = classifier.features(x)
    assert features.shape == (x.shape[0], 128)
    probabilities = classifier.probabilities(x[:20])
    assert probabilities.shape == (20, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    both = classifier.features_and_probabilities(x, batch_size=256)  # one pass, same numbers
    assert np.array_equal(both[0], features)
    assert np.array_equal(both[1], classifier.probabilities(x, batch_size=256))

    files = sorted(path.name for path in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors")
    config = json.loads((tmp_path / files[0]).read_text())
    assert config["test_accuracy"] == classifier.test_accuracy

    reloaded = metrics.load_or_train_feature_classifier(
        "digits", x, labels, tmp_path, seed=0, **settings
    )
    assert reloaded is not classifier
    assert np.array_equal(reloaded.features(x), features)
    assert reloaded.test_accuracy == classifier.test_accuracy

    retrained = metrics.train_feature_classifier(x, labels, seed=0, **settings)
    assert np.array_equal(retrained.features(x), features)  # same seed, same weights


def test_feature_classifier_picks_cnn_for_large_images():
    x = np.random.default_rng(0).random((64, 28, 28)).astype(np.float32)
    labels = np.arange(64) % 2
    classifier = metrics.train_feature_classifier(x, labels, seed=0, epochs=1, holdout_fraction=0)
    assert classifier.config["architecture"] == "cnn"
    assert classifier.config["input_shape"] == [1, 28, 28]
    assert classifier.test_accuracy is None
    assert classifier.features(x[:5]).shape == (5, 128)


def test_structure_metrics_refuse_labels_that_do_not_match_the_codes():
    """A shorter list trained on a prefix, a column broadcast to N x N, both silently."""
    from aevae.metrics import knn_accuracy, linear_probe_accuracy
    from aevae.metrics.structure import clustering, hungarian_accuracy

    rng = np.random.default_rng(0)
    codes, labels = rng.normal(size=(60, 2)), np.arange(60) % 3
    for probe in (linear_probe_accuracy, knn_accuracy):
        with pytest.raises(ValueError, match="train_labels: expected one label per code"):
            probe(codes, labels[:40], codes, labels, labels_per_class=(None,))
        with pytest.raises(ValueError, match="test_labels: expected one label per code"):
            probe(codes, labels, codes, labels[:, None], labels_per_class=(None,))
    with pytest.raises(ValueError, match="one assignment per label"):
        hungarian_accuracy(labels, labels[:30])
    with pytest.raises(ValueError, match="clustering_labels"):
        clustering(codes, labels[:10])
