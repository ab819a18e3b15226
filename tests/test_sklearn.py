"""The scikit-learn facade: estimator checks, composition with scikit-learn, and its numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from aevae import NoLikelihoodError
from aevae.metrics.likelihood import log_likelihood_estimate
from aevae.sklearn import (
    AutoencoderOutlierDetector,
    AutoencoderTransformer,
    expected_failed_checks,
)

# Small enough that scikit-learn's ~50 checks per estimator take seconds.
TINY = dict(epochs=2, hidden=(8,), batch_size=16, importance_samples=8)


@parametrize_with_checks(
    [AutoencoderTransformer(**TINY), AutoencoderTransformer(model="ae", **TINY),
     AutoencoderOutlierDetector(**TINY),
     # A closed-form model, and a flow posterior.
     AutoencoderTransformer(model="ppca", **TINY),
     AutoencoderTransformer(model="vae_flow", **TINY)],
    expected_failed_checks=expected_failed_checks,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def low_rank(n=400, features=10, rank=3, noise=0.05, seed=0):
    """Data near a rank-``rank`` subspace, features on different scales and offsets."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, features))
    x += noise * rng.normal(size=x.shape)
    return x * rng.uniform(0.5, 20, size=features) + rng.uniform(-50, 50, size=features)


def test_ppca_score_samples_equal_scikit_learn_pca_on_raw_data():
    x = low_rank()
    reference = PCA(3).fit(x)
    raw = AutoencoderTransformer(model="ppca", latent_dim=3, standardize=False,
                                 random_state=0).fit(x)
    np.testing.assert_allclose(raw.score_samples(x), reference.score_samples(x),
                               rtol=1e-5, atol=1e-3)
    # Standardised internally, the density is still of the data as given: the log-determinant
    # of the standardisation is subtracted. PPCA is equivariant under one common scale and
    # shifts, so with equal feature scales it must match PCA on the raw data.
    same_scale = (x - x.mean(0)) / x.std(0) * 7.0 + np.arange(10) * 100.0
    standardised = AutoencoderTransformer(model="ppca", latent_dim=3, random_state=0)
    standardised.fit(same_scale)
    expected = PCA(3).fit(same_scale).score_samples(same_scale)
    np.testing.assert_allclose(standardised.scale_, 7.0, rtol=1e-9)
    np.testing.assert_allclose(standardised.score_samples(same_scale), expected,
                               rtol=1e-5, atol=1e-3)
    assert standardised.score(same_scale) == pytest.approx(expected.mean(), abs=1e-3)
    # ... and the Jacobian matters: 10 log 7 nats per example.
    assert abs(expected.mean() - PCA(3).fit(same_scale / 7.0).score(same_scale / 7.0)) > 19


@pytest.mark.parametrize("model", ["vae", "hierarchical_vae"])
def test_score_samples_agree_with_the_likelihood_metric(model):
    # score_samples is the likelihood metric's estimator (same k, seed = random_state) plus the
    # standardisation's log-determinant, for the VAE family and for models with their own
    # importance weights (here hierarchical_vae, scored one example at a time). Either way an
    # example's score depends on that example alone (to float precision: batches differ).
    x = low_rank(n=100)
    fitted = AutoencoderTransformer(model=model, epochs=5, importance_samples=2000,
                                    random_state=0).fit(x)
    mine = fitted.score_samples(x[:10])
    reference = log_likelihood_estimate(fitted.model_, fitted._standardised(x[:10]), k=2000,
                                        seed=0) - np.log(fitted.scale_).sum()
    np.testing.assert_allclose(mine, reference, rtol=1e-6)
    np.testing.assert_allclose(fitted.score_samples(x[:10][::-1]), mine[::-1], rtol=1e-6)


def test_transform_inverse_transform_and_reconstruction_near_pca():
    x = low_rank()
    model = AutoencoderTransformer(latent_dim=3, epochs=20, random_state=0).fit(x)
    codes = model.transform(x)
    assert codes.shape == (400, 3) and codes.dtype == np.float64
    assert model.inverse_transform(codes).shape == x.shape
    assert model.transform(x.astype(np.float32)).dtype == np.float32
    assert model.get_feature_names_out().tolist() == [
        "autoencodertransformer0", "autoencodertransformer1", "autoencodertransformer2"]
    # Reconstruction error on the standardised scale (every feature counts alike): the AE, a
    # non-linear PCA, comes close to PCA's on data near a 3-D subspace.
    scaler = StandardScaler().fit(x)
    pca = PCA(3).fit(scaler.transform(x))

    def error(restored):
        return np.mean((scaler.transform(restored) - scaler.transform(x)) ** 2)

    pca_error = error(scaler.inverse_transform(pca.inverse_transform(pca.transform(
        scaler.transform(x)))))
    ae = AutoencoderTransformer(model="ae", latent_dim=3, epochs=60, random_state=0).fit(x)
    ae_error = error(ae.inverse_transform(ae.transform(x)))
    assert pca_error < ae_error < 3 * pca_error + 1e-3, (ae_error, pca_error)


def test_pipeline_grid_search_and_clone_beside_pca():
    x, y = make_classification(n_samples=160, n_features=8, n_informative=4, random_state=0)
    for reducer, grid in ((PCA(), {"reduce__n_components": [1, 4]}),
                          (AutoencoderTransformer(epochs=5, hidden=(16,), random_state=0),
                           {"reduce__latent_dim": [1, 4]})):
        pipeline = Pipeline([("reduce", reducer), ("classify", LogisticRegression())])
        search = GridSearchCV(pipeline, grid, cv=2).fit(x, y)
        assert search.best_score_ > 0.6
        assert search.predict(x).shape == (160,)
    # Model selection by held-out log-likelihood, as with PCA.score: both pick the true rank.
    rng = np.random.default_rng(1)  # rank 3 plus isotropic noise: PPCA's own model
    data = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 10)) * 5 + rng.normal(size=(300, 10))
    picks = [GridSearchCV(estimator, grid, cv=3).fit(data).best_params_
             for estimator, grid in ((PCA(), {"n_components": [1, 3, 6]}),
                                     (AutoencoderTransformer(model="ppca", standardize=False),
                                      {"latent_dim": [1, 3, 6]}))]
    assert picks == [{"n_components": 3}, {"latent_dim": 3}]


def test_clone_and_get_params_round_trip():
    options = {"beta": 2.0}
    original = AutoencoderTransformer(model="beta_vae", latent_dim=3, hidden=(16, 8),
                                      options=options, epochs=2, random_state=5)
    params = original.get_params()
    twin = clone(original)
    assert twin.get_params() == params and twin.options is not options
    assert AutoencoderTransformer(**params).get_params() == params
    original.fit(low_rank(n=50))
    assert original.get_params() == params and options == {"beta": 2.0}
    assert original.model_.config.beta == 2.0 and original.model_.config.hidden == (16, 8)
    fresh = clone(original)
    assert not hasattr(fresh, "model_")
    fresh.set_params(latent_dim=4)
    assert fresh.fit(low_rank(n=50)).transform(low_rank(n=5)).shape == (5, 4)


def test_deterministic_models_have_no_likelihood():
    x = low_rank(n=60)
    model = AutoencoderTransformer(model="ae", epochs=2, random_state=0).fit(x)
    with pytest.raises(NoLikelihoodError, match="deterministic") as error:
        model.score_samples(x)
    assert isinstance(error.value, TypeError) and "\n" not in str(error.value)
    with pytest.raises(NoLikelihoodError, match="deterministic"):
        model.score(x)
    with pytest.raises(NoLikelihoodError, match="deterministic"):  # before training, not after
        AutoencoderOutlierDetector(model="ae", anomaly_score="elbo").fit(x)


def planted_outliers(n=1200, seed=0):
    """A correlated Gaussian cloud with 5% far points, shuffled; y = 1 marks them. The first
    half and the second half come from the same distribution."""
    rng = np.random.default_rng(seed)
    far = n // 20
    inliers = rng.normal(size=(n - far, 6)) @ rng.normal(size=(6, 6)) * 0.5
    directions = rng.normal(size=(far, 6))
    outliers = 6 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    x = np.vstack([inliers, outliers]) * 3.0 + 10.0
    y = np.r_[np.zeros(n - far), np.ones(far)].astype(int)
    order = rng.permutation(n)
    return x[order], y[order]


def test_detector_finds_planted_outliers_with_pyod_conventions():
    data, truth = planted_outliers()
    x, y, x_new, y_new = data[:600], truth[:600], data[600:], truth[600:]
    detector = AutoencoderOutlierDetector(contamination=0.05, random_state=0).fit(x)
    assert detector.anomaly_score_ == "elbo"
    assert roc_auc_score(y, detector.decision_scores_) > 0.95
    scores = detector.decision_function(x_new)  # higher = more abnormal
    assert roc_auc_score(y_new, scores) > 0.95
    np.testing.assert_array_equal(detector.score_samples(x_new), -scores)
    labels = detector.predict(x_new)
    assert set(np.unique(labels)) == {0, 1} and labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, (scores > detector.threshold_).astype(int))
    assert detector.labels_.mean() == pytest.approx(0.05, abs=0.004)
    np.testing.assert_array_equal(detector.predict(x), detector.labels_)
    assert (labels[y_new == 1] == 1).mean() > 0.8 and (labels[y_new == 0] == 1).mean() < 0.1
    # The deterministic AE scores by reconstruction error.
    ae = AutoencoderOutlierDetector(model="ae", epochs=30, contamination=0.05,
                                    random_state=0).fit(x)
    assert ae.anomaly_score_ == "reconstruction"
    assert roc_auc_score(y_new, ae.decision_function(x_new)) > 0.9


def test_trimmed_refits_train_without_the_rows_the_previous_fit_scores_highest(monkeypatch):
    data, truth = planted_outliers()
    x, y = data[:600], truth[:600]
    trained_on = []
    original = AutoencoderOutlierDetector._train

    def recording(self, rows):
        trained_on.append(rows.copy())
        return original(self, rows)

    monkeypatch.setattr(AutoencoderOutlierDetector, "_train", recording)
    detector = AutoencoderOutlierDetector(contamination=0.05, trimmed_refits=2,
                                          random_state=0).fit(x)
    assert len(trained_on) == 3 and detector.n_refit_rows_ == [570, 570]
    assert [len(rows) for rows in trained_on] == [600, 570, 570]
    standardised = detector._standardised(x)
    for rows in trained_on[1:]:  # the planted outliers were left out of the refits
        kept = {row.tobytes() for row in rows}
        left_out = np.array([row.tobytes() not in kept for row in standardised])
        assert left_out.sum() == 30 and y[left_out].mean() > 0.8
    # decision_scores_ are the last model's scores of every training row.
    np.testing.assert_allclose(detector.decision_scores_, detector.decision_function(x),
                               rtol=1e-5, atol=1e-4)
    assert roc_auc_score(y, detector.decision_scores_) > 0.95
    once = AutoencoderOutlierDetector(contamination=0.05, trimmed_refits=0,
                                      random_state=0).fit(x)
    assert once.n_refit_rows_ == []
    with pytest.raises(ValueError, match="trimmed_refits must be an integer >= 0, got -1"):
        AutoencoderOutlierDetector(trimmed_refits=-1).fit(x)


@pytest.mark.parametrize("model, score", [("vae", "auto"), ("vae", "likelihood"),
                                          ("ae", "auto")])
def test_detector_scores_are_finite_and_highest_for_rows_far_outside_training(model, score):
    """As in ODDS' arrhythmia: a feature almost constant in the training split makes
    standardised test values of 1e9 and more. Every finite row gets a finite score, and the
    rows farthest out score highest, so ranking metrics work."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    x[:, 2] = 1.0
    x[0, 2] = 1.0 + 1e-9  # nearly constant: a scale of about 7e-11
    normal = rng.normal(size=(20, 5))
    normal[:, 2] = 1.0
    far = normal[:4].copy()
    far[:, 2] = [2.0, 1e3, 1e150, -1e300]  # 1e10 to 1e310 standard units away
    far[3, 0] = 1e300
    detector = AutoencoderOutlierDetector(model=model, anomaly_score=score, epochs=5,
                                          importance_samples=8, random_state=0).fit(x)
    scores = detector.decision_function(np.vstack([normal, far]))
    assert np.isfinite(scores).all()
    assert scores[20:].min() > scores[:20].max()
    assert np.all(np.diff(scores[20:]) >= 0)  # farther out, higher
    truth = np.r_[np.zeros(20), np.ones(4)]
    assert roc_auc_score(truth, scores) == 1.0
    assert np.isfinite(detector.score_samples(far)).all()
    # Rows inside the widened training range are scored as before: nothing is clipped.
    inside = detector.decision_function(x[:50])
    np.testing.assert_allclose(inside, detector.decision_scores_[:50], rtol=1e-5, atol=1e-4)


def test_fixed_random_state_gives_identical_results():
    x = low_rank(n=120)

    def outputs(seed):
        model = AutoencoderTransformer(epochs=3, importance_samples=16, random_state=seed).fit(x)
        return model.transform(x), model.score_samples(x), model.sample(4, random_state=1)

    first, again, other = outputs(0), outputs(0), outputs(1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])
    detector = AutoencoderOutlierDetector(epochs=3, random_state=0)
    np.testing.assert_array_equal(detector.fit(x).decision_scores_,
                                  clone(detector).fit(x).decision_scores_)


def test_sample_in_original_units():
    x = low_rank(n=300)
    model = AutoencoderTransformer(model="ppca", latent_dim=3, random_state=0).fit(x)
    draws = model.sample(2000, random_state=0)
    assert draws.shape == (2000, 10)
    np.testing.assert_allclose(draws.mean(0), x.mean(0), atol=0.1 * x.std(0).max())
    np.testing.assert_array_equal(model.sample(5, random_state=3), model.sample(5, random_state=3))


@pytest.mark.parametrize("estimator", [AutoencoderTransformer(**TINY),
                                       AutoencoderOutlierDetector(**TINY)])
def test_bad_input_and_parameters_fail_the_scikit_learn_way(estimator):
    x = low_rank(n=40)
    with pytest.raises(NotFittedError):
        (estimator.transform if hasattr(estimator, "transform") else estimator.predict)(x)
    broken = x.copy()
    broken[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clone(estimator).fit(broken)
    fitted = clone(estimator).fit(x)
    with pytest.raises(ValueError, match="10 features"):
        fitted.score_samples(x[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        fitted.score_samples(broken)
    if hasattr(fitted, "sample"):
        with pytest.raises(ValueError, match="n_samples must be a positive integer"):
            fitted.sample(True)
    for bad in ({"latent_dim": 0}, {"epochs": 1.5}, {"validation_fraction": 1.0},
                {"options": {"seed": 3}}, {"model": "nonexistent"}, {"hidden": (8, -1)},
                {"hidden": (True, 8)},  # a bool is not a width (True was a width of 1)
                # A parameter of its own set in options would silently win over it.
                {"options": {"latent_dim": 5}}, {"options": {"hidden": (4,)}},
                {"options": {"likelihood": "gaussian"}}):
        unfitted = clone(estimator).set_params(**bad)  # stored unchecked, as scikit-learn does
        with pytest.raises(ValueError):
            unfitted.fit(x)
    if isinstance(estimator, AutoencoderOutlierDetector):
        for bad in ({"contamination": 0.7}, {"anomaly_score": "distance"}):
            with pytest.raises(ValueError):
                clone(estimator).set_params(**bad).fit(x)


def test_feature_names_from_a_data_frame():
    pandas = pytest.importorskip("pandas")
    x = pandas.DataFrame(low_rank(n=40), columns=[f"feature {i}" for i in range(10)])
    model = make_pipeline(AutoencoderTransformer(**TINY)).fit(x)
    assert model[0].feature_names_in_.tolist() == list(x.columns)


@pytest.mark.parametrize("loader", ["load_wine", "load_digits"])
def test_ppca_equals_pca_score_samples_only_without_standardisation(loader):
    # What the README states: equal with standardize=False; the default standardises first,
    # which is another model (gaps of 22.5 nats an example on wine, 1,650 on digits).
    import sklearn.datasets

    x, _ = getattr(sklearn.datasets, loader)(return_X_y=True)
    reference = PCA(4).fit(x).score_samples(x)
    raw = AutoencoderTransformer(model="ppca", latent_dim=4, standardize=False,
                                 random_state=0).fit(x)
    np.testing.assert_allclose(raw.score_samples(x), reference, rtol=1e-6, atol=1e-3)
    default = AutoencoderTransformer(model="ppca", latent_dim=4, random_state=0).fit(x)
    assert np.max(np.abs(default.score_samples(x) - reference)) > 10

