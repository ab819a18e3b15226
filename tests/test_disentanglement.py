"""Procedural dSprites and the disentanglement metrics: known answers at small sizes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from aevae import metrics
from aevae.data import DataError, DSprites, GroundTruthData, Split, load_dataset, small_dsprites
from aevae.data import dsprites as dsprites_module

# ----- the renderer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_grid() -> DSprites:
    return DSprites()


def factors_of(**chosen) -> np.ndarray:
    """One row of factor indices, the rest at (square, smallest, 0 rad, centre)."""
    row = {"shape": 0, "scale": 0, "orientation": 0, "x_position": 16, "y_position": 16}
    row.update(chosen)
    return np.array([[row[name] for name in dsprites_module.FACTOR_NAMES]])


def centroid(image: np.ndarray) -> tuple[float, float]:
    rows, columns = np.nonzero(image)
    return float(columns.mean()), float(rows.mean())


def test_grid_layout_and_index_round_trip(full_grid):
    assert full_grid.factor_names == ("shape", "scale", "orientation", "x_position", "y_position")
    assert full_grid.factor_sizes == (3, 6, 40, 32, 32)
    assert full_grid.num_combinations == 737_280
    assert full_grid.observation_shape == (1, 64, 64)
    indices = np.random.default_rng(0).integers(0, 737_280, size=2000)
    corners = np.array([0, 1, 32, 1024, 737_279])
    all_indices = np.concatenate([indices, corners])
    factors = full_grid.index_to_factors(all_indices)
    np.testing.assert_array_equal(full_grid.factors_to_index(factors), all_indices)
    # Mixed radix, shape slowest and y position fastest (the original file's order).
    np.testing.assert_array_equal(
        full_grid.index_to_factors(corners),
        [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0], [2, 5, 39, 31, 31]],
    )
    assert full_grid.orientation_values[-1] < 2 * math.pi
    np.testing.assert_allclose(full_grid.scale_values, np.linspace(0.5, 1.0, 6))
    with pytest.raises(ValueError):
        full_grid.index_to_factors([737_280])
    with pytest.raises(ValueError):
        full_grid.factors_to_index([[3, 0, 0, 0, 0]])


def pixelwise_reference(values: np.ndarray, size: int) -> np.ndarray:
    """Every pixel of one sprite, tested one by one in float64 (no window, no batching)."""
    shape, scale, angle, x, y = values
    centres = np.arange(size) + 0.5
    margin = dsprites_module.POSITION_MARGIN
    column = (margin + (1 - 2 * margin) * x) * size
    row = (margin + (1 - 2 * margin) * y) * size
    unit = size * dsprites_module.UNIT * scale
    dx = (centres[None, :] - column) / unit
    dy = (row - centres[:, None]) / unit
    u = math.cos(angle) * dx + math.sin(angle) * dy
    v = -math.sin(angle) * dx + math.cos(angle) * dy
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 1
    if shape == 1:
        a, b = dsprites_module.ELLIPSE_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1
    v = v + dsprites_module.HEART_SHIFT
    return (u**2 + v**2 - 1) ** 3 <= u**2 * v**3


def test_batched_rendering_matches_a_pixelwise_reference(full_grid):
    factors = full_grid.sample_factors(300, np.random.default_rng(1))
    images = full_grid.render(factors)
    assert images.dtype == np.uint8 and images.shape == (300, 64, 64)
    assert set(np.unique(images)) <= {0, 1}
    values = full_grid.factor_values(factors)
    differing = sum(int((pixelwise_reference(row, 64) != image).sum())
                    for row, image in zip(values, images))
    assert differing <= 3  # float32 rounding on the outline only
    again = full_grid.render(factors[::-1])[::-1]
    np.testing.assert_array_equal(images, again)  # batch order changes nothing


def test_position_scale_and_shape_change_the_image(full_grid):
    xs = [centroid(full_grid.render(factors_of(x_position=i))[0])[0] for i in (0, 8, 16, 31)]
    ys = [centroid(full_grid.render(factors_of(y_position=i))[0])[1] for i in (0, 8, 16, 31)]
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    assert xs[-1] - xs[0] > 30 and ys[-1] - ys[0] > 30
    for shape in range(3):
        areas = [int(full_grid.render(factors_of(shape=shape, scale=s)).sum()) for s in range(6)]
        assert np.all(np.diff(areas) > 0)
        assert 0.2 < math.sqrt(areas[-1]) / 64 < 0.5  # scale 1 spans a third to a half
    shapes = full_grid.render(np.concatenate([factors_of(shape=s, scale=5) for s in range(3)]))
    for a in range(3):
        for b in range(a + 1, 3):
            assert (shapes[a] != shapes[b]).sum() > 20
    # Corners of the position grid keep the sprite inside the image.
    corner = full_grid.render(factors_of(shape=2, scale=5, x_position=31, y_position=31))[0]
    assert corner[-1].sum() == 0 and corner[:, -1].sum() == 0


def test_orientation_rotates_with_the_shapes_own_symmetry(full_grid):
    def image(shape, orientation):
        return full_grid.render(factors_of(shape=shape, scale=5, orientation=orientation))[0]

    # A quarter turn is 10 of the 40 orientations: a square looks the same, an ellipse needs a
    # half turn, a heart a full one.
    assert (image(0, 0) != image(0, 10)).sum() <= 2
    assert (image(0, 0) != image(0, 5)).sum() > 20
    assert (image(1, 0) != image(1, 20)).sum() <= 2
    assert (image(1, 0) != image(1, 10)).sum() > 20
    assert (image(2, 0) != image(2, 20)).sum() > 20


def test_color_and_noisy_variants():
    factors = small_dsprites().sample_factors(50, np.random.default_rng(0))
    masks = small_dsprites().render(factors)[:, None].astype(bool)
    color = small_dsprites("color")
    images = color.sample_observations_from_factors(factors, np.random.default_rng(3))
    assert images.shape == (50, 3, 32, 32) and images.dtype == np.float32
    assert np.all(images[np.broadcast_to(~masks, images.shape)] == 0)
    for image, mask in zip(images, masks[:, 0]):
        channel_values = image[:, mask]
        assert np.all(channel_values.min(axis=1) == channel_values.max(axis=1))
        assert np.all((channel_values >= 0.5) & (channel_values <= 1.0))
    again = color.sample_observations_from_factors(factors, np.random.default_rng(3))
    np.testing.assert_array_equal(images, again)
    noisy = small_dsprites("noisy")
    images = noisy.sample_observations_from_factors(factors, np.random.default_rng(4))
    assert images.shape == (50, 3, 32, 32)
    assert np.all(images[np.broadcast_to(masks, images.shape)] == 1.0)
    background = images[np.broadcast_to(~masks, images.shape)]
    assert background.min() >= 0.0 and background.max() < 1.0
    assert abs(background.mean() - 0.5) < 0.02
    assert not noisy.deterministic and small_dsprites().deterministic
    with pytest.raises(ValueError, match="random_state"):
        noisy.sample_observations_from_factors(factors)
    with pytest.raises(ValueError):
        DSprites("sepia")


def test_load_dsprites_small():
    dataset = load_dataset("dsprites-small")
    truth = dataset.ground_truth
    assert truth.factor_sizes == (3, 2, 5, 8, 8) and dataset.factor_sizes == truth.factor_sizes
    assert dataset.factor_names == truth.factor_names
    assert len(dataset.train) == 1728 and len(dataset.test) == 192
    assert dataset.shape == (1, 32, 32) and dataset.train.x.dtype == np.float32
    assert dataset.value_range == (0.0, 1.0) and dataset.class_names == dsprites_module.SHAPE_NAMES
    assert "labels = shape" in dataset.description
    indices = [truth.factors_to_index(split.factors) for split in (dataset.train, dataset.test)]
    np.testing.assert_array_equal(np.sort(np.concatenate(indices)), np.arange(1920))
    render = truth.sample_observations_from_factors
    for split in (dataset.train, dataset.test):
        np.testing.assert_array_equal(split.labels, split.factors[:, 0])
        np.testing.assert_array_equal(split.x, render(split.factors))
    carved = load_dataset("dsprites-small", validation_fraction=0.1, limit=500)
    assert len(carved.train) == 500 and carved.validation.factors is not None
    for split in (carved.train, carved.validation):
        np.testing.assert_array_equal(split.x, render(split.factors))
    assert "factors=(500, 5)" in repr(carved.train)
    with pytest.raises(DataError, match="factors"):
        Split(np.zeros((3, 1, 2, 2), np.float32), factors=np.zeros((2, 5), np.int64))


def test_sprites_dataset_draws_disjoint_subsets():
    dataset = dsprites_module.sprites_dataset("tiny", small_dsprites("color"), 100, 20)
    truth = dataset.ground_truth
    train, test = (truth.factors_to_index(s.factors) for s in (dataset.train, dataset.test))
    assert len(set(train) | set(test)) == 120 and np.all(np.diff(train) > 0)
    assert dataset.train.x.shape == (100, 3, 32, 32)
    same = dsprites_module.sprites_dataset("tiny", small_dsprites("color"), 100, 20)
    np.testing.assert_array_equal(dataset.train.x, same.train.x)


# ----- the metrics on a ground truth whose observations are its factors --------------------


class FactorGrid(GroundTruthData):
    """Observations are the factor indices themselves, so representations are easy to write."""

    factor_names = ("a", "b", "c", "d")
    factor_sizes = (3, 4, 6, 8)
    observation_shape = (4,)
    deterministic = True

    def sample_observations_from_factors(self, factors, random_state=None):
        return np.asarray(factors, dtype=np.float32)


GRID = FactorGrid()
N_FACTORS = 4
PERMUTATION = np.array([2, 0, 3, 1])


def rotation() -> np.ndarray:
    """45-degree rotations mixing factors (a, b) and (c, d)."""
    half = math.sqrt(0.5)
    block = np.array([[half, -half], [half, half]])
    matrix = np.zeros((4, 4))
    matrix[:2, :2] = matrix[2:, 2:] = block
    return matrix


def random_codes(observations: np.ndarray) -> np.ndarray:
    """Noise unrelated to the factors, yet a fixed function of its input (deterministic)."""
    seed = int(observations.sum() * 1000 + len(observations))
    return np.random.default_rng(seed).standard_normal((len(observations), N_FACTORS))


REPRESENTATIONS = {
    "identity": lambda x: x.astype(np.float64),
    "permuted": lambda x: x[:, PERMUTATION].astype(np.float64),
    "rotated": lambda x: (x / np.array(FactorGrid.factor_sizes)) @ rotation(),
    "constant": lambda x: np.zeros((len(x), N_FACTORS)),
    "random": random_codes,
}
SMALL = {"batch_size": 32, "train_points": 300, "eval_points": 200, "variance_points": 1000,
         "points": 1000, "test_points": 400, "n_estimators": 15}
CHANCE = 1 / N_FACTORS
# With an uninformative second-best code at chance accuracy, SAP's best possible value.
SAP_CEILING = 1 - np.mean([1 / size for size in FactorGrid.factor_sizes])


@pytest.fixture(scope="module")
def reports() -> dict:
    return {name: metrics.disentanglement_report(GRID, representation, seed=0, **SMALL)
            for name, representation in REPRESENTATIONS.items()}


def test_identity_scores_near_one(reports):
    scores = reports["identity"]["scores"]
    assert scores["beta_vae_score"] == 1.0 and scores["factor_vae_score"] == 1.0
    for name in ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness",
                 "modularity", "explicitness"):
        assert scores[name] > 0.95, name
    assert abs(scores["sap"] - SAP_CEILING) < 0.03


def test_constant_scores_zero_or_chance(reports):
    scores = reports["constant"]["scores"]
    assert abs(scores["beta_vae_score"] - CHANCE) < 0.1  # logistic regression at chance
    assert reports["constant"]["results"]["factor_vae_score"]["n_active"] == 0
    for name in ("factor_vae_score", "mig", "dci_disentanglement", "dci_completeness", "sap",
                 "modularity"):
        assert scores[name] == 0.0, name
    assert scores["explicitness"] == 0.5


def test_random_scores_near_zero_or_chance(reports):
    scores = reports["random"]["scores"]
    assert abs(scores["beta_vae_score"] - CHANCE) < 0.1
    assert abs(scores["factor_vae_score"] - CHANCE) < 0.15
    assert abs(scores["explicitness"] - 0.5) < 0.05
    for name in ("mig", "sap"):
        assert scores[name] < 0.05, name
    for name in ("dci_disentanglement", "dci_completeness"):
        assert scores[name] < 0.15, name
    # Modularity is the exception: the finite-sample MI bias differs between factors.
    assert scores["modularity"] < reports["identity"]["scores"]["modularity"] - 0.1


def test_permuting_the_codes_changes_nothing(reports):
    identity, permuted = reports["identity"]["scores"], reports["permuted"]["scores"]
    for name, value in identity.items():
        assert permuted[name] == pytest.approx(value, abs=0.01), name
    for name in ("factor_vae_score", "mig", "sap", "modularity"):
        assert permuted[name] == pytest.approx(identity[name], abs=1e-12), name


def test_mixed_codes_score_in_between(reports):
    identity, rotated = reports["identity"]["scores"], reports["rotated"]["scores"]
    floor = {name: max(reports["constant"]["scores"][name], reports["random"]["scores"][name])
             for name in identity}
    for name in ("beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement",
                 "dci_completeness", "sap"):
        assert floor[name] - 0.05 <= rotated[name] < identity[name] - 0.2, name
    assert floor["modularity"] - 0.05 <= rotated["modularity"] < identity["modularity"] - 0.1
    # A rotation keeps the information: informativeness and explicitness stay high.
    assert rotated["dci_informativeness"] > 0.95 and rotated["explicitness"] > 0.95


def test_report_echoes_settings_and_is_json(reports):
    report = reports["identity"]
    assert set(report["seconds"]) == set(metrics.DISENTANGLEMENT_METRICS)
    assert all(seconds >= 0 for seconds in report["cpu_seconds"].values())
    results = report["results"]
    assert results["mig"]["points"] == 1000 and results["mig"]["bins"] == 20
    assert results["dci"]["train_points"] == 300 and results["dci"]["n_estimators"] == 15
    assert results["factor_vae_score"]["prune_threshold"] == 0.05
    assert results["beta_vae_score"]["batch_size"] == 32
    assert results["sap"]["classifier"] == "tree" and results["sap"]["seed"] == 0
    assert report["ground_truth"]["factor_sizes"] == [3, 4, 6, 8]
    json.dumps(report)
    with pytest.raises(TypeError, match="n_neighbours"):
        metrics.disentanglement_report(GRID, REPRESENTATIONS["identity"], n_neighbours=3)
    with pytest.raises(ValueError, match="unknown metrics"):
        metrics.disentanglement_report(GRID, REPRESENTATIONS["identity"], metrics=("irs",))


def test_same_seed_same_numbers(reports):
    cheap = ("beta_vae_score", "factor_vae_score", "mig", "sap")
    again = metrics.disentanglement_report(GRID, random_codes, seed=0, metrics=cheap, **{
        key: value for key, value in SMALL.items() if key != "n_estimators"})
    for name in cheap:
        assert again["results"][name] == reports["random"]["results"][name]
    # An int seed is the same stream as a Generator made from it.
    alone = metrics.compute_mig(GRID, random_codes, np.random.default_rng(0), points=1000)
    assert alone["value"] == reports["random"]["results"]["mig"]["value"]
    other = metrics.compute_factor_vae_score(GRID, random_codes, seed=1, batch_size=32,
                                             train_points=300, eval_points=200,
                                             variance_points=1000)
    assert other["train_votes"] != reports["random"]["results"]["factor_vae_score"]["train_votes"]


def test_chunk_size_and_tabulation_change_nothing():
    truth = small_dsprites()
    moments = image_moments
    sizes = {"batch_size": 16, "train_points": 100, "eval_points": 50, "variance_points": 400,
             "points": 400, "test_points": 200}
    chosen = ("beta_vae_score", "factor_vae_score", "mig", "sap")
    direct = metrics.disentanglement_report(truth, moments, 0, metrics=chosen, chunk_size=4096,
                                            **sizes)
    table = metrics.tabulate_representation(truth, moments, chunk_size=500)
    assert table.codes.shape == (1920, 4)
    looked_up = metrics.disentanglement_report(truth, table, 0, metrics=chosen, chunk_size=7,
                                               **sizes)
    assert looked_up["scores"] == pytest.approx(direct["scores"], abs=1e-9)
    assert direct["scores"]["mig"] > 0.2  # moments do see position and scale
    with pytest.raises(ValueError, match="deterministic"):
        metrics.tabulate_representation(small_dsprites("noisy"), moments)
    # The random variants draw their noise in the same order whatever the chunk size.
    noisy = small_dsprites("noisy")
    a = metrics.compute_mig(noisy, moments, 0, points=300, chunk_size=300)
    b = metrics.compute_mig(noisy, moments, 0, points=300, chunk_size=64)
    assert a["value"] == b["value"]


def image_moments(observations: np.ndarray) -> np.ndarray:
    """Area, centroid and spread of each image: a crude hand-made representation."""
    images = observations.max(axis=1)
    grid = np.arange(images.shape[-1]) + 0.5
    area = images.sum(axis=(1, 2))
    x = images.sum(axis=1) @ grid / area
    y = images.sum(axis=2) @ grid / area
    spread = images.sum(axis=1) @ grid**2 / area - x**2
    return np.stack([area, x, y, spread], axis=1)


# ----- cores: known answers ---------------------------------------------------------------


def test_dci_from_importance_known_answers():
    perfect = metrics.dci_from_importance(np.eye(3))
    assert perfect["disentanglement"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["completeness"] == pytest.approx(1.0, abs=1e-6)
    uniform = metrics.dci_from_importance(np.ones((3, 3)))
    assert uniform["disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert uniform["completeness"] == pytest.approx(0.0, abs=1e-6)
    # One code serving both factors: not disentangled; each factor uses one code: complete.
    shared = metrics.dci_from_importance(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert shared["disentanglement"] == pytest.approx(0.0, abs=1e-6)
    assert shared["completeness"] == pytest.approx(1.0, abs=1e-6)
    assert metrics.dci_from_importance(np.zeros((2, 2)))["disentanglement"] == 0.0


def test_dci_known_answers_and_threads_change_nothing(rng):
    sizes = (2, 5, 8)
    factors = np.stack([rng.integers(0, size, 600) for size in sizes] + [np.zeros(600, int)], 1)
    codes = factors[:, :3] + 0.05 * rng.standard_normal((600, 3))  # code d = factor d
    train, test = slice(0, 400), slice(400, None)

    def run(values, n_jobs):
        return metrics.dci(values[train], factors[train], values[test], factors[test], seed=3,
                           n_estimators=10, n_jobs=n_jobs)

    perfect = run(codes, 1)
    assert perfect["disentanglement"] > 0.95 and perfect["completeness"] > 0.95
    assert perfect["informativeness_per_factor"][:3] == [1.0, 1.0, 1.0]
    # The constant factor: no classifier, zero importance, its one value always right.
    assert perfect["informativeness_per_factor"][3] == 1.0
    assert np.asarray(perfect["importance_matrix"])[:, 3].tolist() == [0.0, 0.0, 0.0]
    assert "GradientBoostingClassifier" in perfect["model"] and "max_bins" not in perfect
    # Codes shuffled against the factors carry no information about them.
    noise = codes[rng.permutation(600)]
    shuffled = run(noise, 1)
    assert shuffled["disentanglement"] < 0.5 and shuffled["completeness"] < 0.5
    assert shuffled["informativeness"] < 0.7
    # Each classifier has its own random state: threads change no number, even where the
    # importances are spread by chance.
    threaded = run(noise, 2)
    assert threaded["importance_matrix"] == shuffled["importance_matrix"]
    assert threaded == shuffled
    assert run(codes, 2) == perfect and run(codes, None) == perfect
    with pytest.raises(ValueError, match="n_jobs"):
        run(codes, 0)


def test_mutual_information_and_mig_known_answers(rng):
    codes = rng.integers(0, 5, size=(2000, 3))
    factors = rng.integers(0, 4, size=(2000, 2))
    ours = metrics.discrete_mutual_information(codes, factors)
    for d in range(3):
        for k in range(2):
            assert ours[d, k] == pytest.approx(mutual_info_score(factors[:, k], codes[:, d]))
    values = rng.standard_normal(500)
    expected = np.digitize(values, np.histogram(values, 20)[1][:-1]) - 1
    np.testing.assert_array_equal(metrics.histogram_discretize(values, 20)[:, 0], expected)
    # Code 0 copies factor 0, code 1 copies it too: the gap is 0 for factor 0.
    factor = rng.integers(0, 4, size=(1000, 1))
    assert metrics.mig(np.hstack([factor, factor]), factor)["value"] == pytest.approx(0.0)
    assert metrics.mig(np.hstack([factor, rng.standard_normal((1000, 1))]),
                       factor)["value"] > 0.95


def test_factor_vae_majority_vote():
    train = np.array([[8, 1], [2, 9]])  # factor 0 -> code 0, factor 1 -> code 1
    evaluation = np.array([[5, 5], [0, 10]])
    result = metrics.factor_vae_score(train, evaluation)
    assert result["assignment"] == [0, 1]
    assert result["train_accuracy"] == pytest.approx(17 / 20)
    assert result["value"] == pytest.approx(15 / 20)
