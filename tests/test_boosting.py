"""The vectorised gradient boosting behind DCI against scikit-learn's GradientBoostingClassifier."""

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from aevae.metrics.boosting import fit_boosted_trees


def _problem(n_classes: int, discrete: bool, seed: int = 0, n: int = 500, n_features: int = 5):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n + 1000, n_features))
    if discrete:
        values = np.round(values * 2)  # many tied values, as factor indices have
    signal = values[:, 0] + 0.5 * values[:, 1] ** 2 + 0.3 * rng.normal(size=n + 1000)
    edges = np.quantile(signal[:n], np.linspace(0, 1, n_classes + 1)[1:-1])
    targets = np.digitize(signal, edges)
    return values[:n], targets[:n], values[n:]


def test_first_stages_are_scikit_learns_trees():
    values, targets, _ = _problem(3, discrete=False)
    reference = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(values, targets)
    ours = fit_boosted_trees(values, targets, n_estimators=3)
    np.testing.assert_allclose(ours.feature_importances_, reference.feature_importances_,
                               rtol=1e-9, atol=1e-12)
    tree = reference.estimators_[0, 0].tree_
    assert ours._features[0, 0, 0] == tree.feature[0]
    assert ours._thresholds[0, 0, 0] == pytest.approx(tree.threshold[0], rel=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3, 6])
@pytest.mark.parametrize("discrete", [False, True])
def test_importances_and_predictions_match_scikit_learn(n_classes, discrete):
    """At 100 stages the trees differ only where splits tie, which scikit-learn itself breaks
    by its random_state: ours must sit as close to it as its random states sit to each other."""
    values, targets, held_out = _problem(n_classes, discrete)
    references = [GradientBoostingClassifier(random_state=seed).fit(values, targets)
                  for seed in range(3)]
    ours = fit_boosted_trees(values, targets, n_estimators=100, seed=0)
    importances = np.array([model.feature_importances_ for model in references])
    spread = np.abs(importances[1:] - importances[0]).max()
    ours_gap = np.abs(importances - ours.feature_importances_).max()
    assert ours_gap <= max(3 * spread, 2e-3)
    assert ours.feature_importances_.sum() == pytest.approx(1.0)
    agreement = np.mean(ours.predict(held_out) == references[0].predict(held_out))
    references_agreement = min(np.mean(model.predict(held_out) == references[0].predict(held_out))
                               for model in references[1:])
    assert agreement >= min(references_agreement, 0.99) - 0.02
    assert np.mean(ours.predict(values) == references[0].predict(values)) >= 0.97


def test_few_distinct_values_are_split_exactly_whatever_max_bins():
    values, targets, held_out = _problem(4, discrete=True)
    exact = fit_boosted_trees(values, targets, n_estimators=20, max_bins=None, seed=3)
    binned = fit_boosted_trees(values, targets, n_estimators=20, max_bins=64, seed=3)
    np.testing.assert_array_equal(exact.feature_importances_, binned.feature_importances_)
    np.testing.assert_array_equal(exact.predict(held_out), binned.predict(held_out))


def test_binned_splits_stay_close_to_exact_ones():
    values, targets, held_out = _problem(5, discrete=False, n=2000)
    exact = fit_boosted_trees(values, targets, n_estimators=30, max_bins=None)
    binned = fit_boosted_trees(values, targets, n_estimators=30, max_bins=64)
    assert np.abs(exact.feature_importances_ - binned.feature_importances_).max() < 0.02
    assert np.mean(exact.predict(held_out) == binned.predict(held_out)) > 0.9


def test_same_seed_same_trees_and_informative_feature_wins():
    values, targets, _ = _problem(3, discrete=False)
    first = fit_boosted_trees(values, targets, n_estimators=10, seed=5)
    second = fit_boosted_trees(values, targets, n_estimators=10, seed=5)
    np.testing.assert_array_equal(first.feature_importances_, second.feature_importances_)
    np.testing.assert_array_equal(first._thresholds, second._thresholds)
    # the targets depend on features 0 and 1 only
    assert first.feature_importances_[:2].sum() > 0.8


def test_bad_input_is_refused():
    values, targets, _ = _problem(3, discrete=False, n=50)
    with pytest.raises(ValueError, match="finite"):
        fit_boosted_trees(np.where(values > 1, np.nan, values), targets)
    with pytest.raises(ValueError, match="two classes"):
        fit_boosted_trees(values, np.zeros(50))
    with pytest.raises(ValueError, match="targets"):
        fit_boosted_trees(values, targets[:40])
    with pytest.raises(ValueError, match="max_bins"):
        fit_boosted_trees(values, targets, max_bins=1)
    model = fit_boosted_trees(values, targets, n_estimators=2)
    with pytest.raises(ValueError, match="codes"):
        model.predict(values[:, :3])
