"""Disentanglement metrics on ground-truth data (Locatello et al. 2019's protocols).

Two layers:

* **Cores** on arrays: :func:`mig`, :func:`dci` (and :func:`dci_from_importance`), :func:`sap`,
  :func:`modularity_explicitness`, and for the two intervention-based scores the last step
  (:func:`beta_vae_score` on the difference features, :func:`factor_vae_score` on the votes).
  Codes are (N, D) floats, factors (N, K) integer factor indices.
* **Protocols** that sample a ground-truth dataset (anything with ``factor_sizes``,
  ``sample_factors`` and ``sample_observations_from_factors``, see
  :class:`aevae.data.GroundTruthData`) through a ``representation``: a function from
  observations (N, *observation_shape) float32 to codes (N, D), numpy in and out. A model's
  ``encode`` is one (``representation=model.encode``: the posterior means). The ``compute_*``
  functions and :func:`disentanglement_report`, which runs them all and times each one.

The default sizes and settings are those of disentanglement_lib's ``unsupervised_study_v1``
configurations; every setting is an argument and is echoed in the result. Randomness comes from
``seed`` (an int or a numpy Generator): the same seed gives the same numbers. An int seed
starts each metric's own stream, so a metric run alone matches the same metric in a report.

Observations are rendered and encoded ``chunk_size`` at a time; the chunk size only trades
memory for speed (the random draws are made in the same order whatever it is). For a ground
truth whose observations are a fixed function of the factors (``deterministic = True``, plain
dSprites), :func:`tabulate_representation` encodes every grid point once; passing the table as
the representation then replaces all rendering and encoding by look-ups, with the same results.
A representation object with a ``codes_for_factors(factors)`` method is used that way.
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from ..training.devices import usable_cores
from ._utils import SeedLike, as_2d, make_generator, seed_record, sklearn_random_state

Representation = Callable[[np.ndarray], np.ndarray]

DEFAULT_CHUNK_SIZE = 1024
SAP_CLASSIFIERS = ("tree", "linear_svm")


# ----- helpers shared by the cores ------------------------------------------------------------


def _factor_array(factors: np.ndarray, n_rows: int, name: str) -> np.ndarray:
    values = np.asarray(factors)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != n_rows:
        raise ValueError(f"{name} must have shape ({n_rows}, n_factors), got {values.shape}")
    if values.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer factor indices, got dtype {values.dtype}")
    return values.astype(np.int64)


def _codes_and_factors(codes, factors, name: str) -> tuple[np.ndarray, np.ndarray]:
    values = as_2d(codes, f"{name}_codes")
    return values, _factor_array(factors, values.shape[0], f"{name}_factors")


def histogram_discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """(N, D) int bin of each code: ``bins`` equal-width bins between each dimension's minimum
    and maximum (disentanglement_lib's histogram discretizer; a constant dimension is one bin).
    """
    values = as_2d(codes, "codes")
    if bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    discrete = np.empty(values.shape, dtype=np.int64)
    for column in range(values.shape[1]):
        edges = np.histogram_bin_edges(values[:, column], bins=bins)
        discrete[:, column] = np.digitize(values[:, column], edges[:-1]) - 1
    return discrete


def _as_categories(values: np.ndarray) -> tuple[np.ndarray, int]:
    categories, inverse = np.unique(values, return_inverse=True)
    return inverse.reshape(-1), categories.size


def discrete_mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(D, K) mutual information in nats between each discrete code column and each factor
    (plug-in estimate from the joint histogram, as sklearn's mutual_info_score)."""
    codes = np.asarray(discrete_codes)
    codes = codes[:, None] if codes.ndim == 1 else codes
    factor_values = _factor_array(factors, codes.shape[0], "factors")
    n = codes.shape[0]
    result = np.zeros((codes.shape[1], factor_values.shape[1]))
    factor_columns = [_as_categories(factor_values[:, k]) for k in range(factor_values.shape[1])]
    for d in range(codes.shape[1]):
        code, code_count = _as_categories(codes[:, d])
        code_marginal = np.bincount(code, minlength=code_count) / n
        for k, (factor, factor_count) in enumerate(factor_columns):
            joint = np.bincount(code * factor_count + factor, minlength=code_count * factor_count)
            joint = joint.reshape(code_count, factor_count) / n
            factor_marginal = joint.sum(axis=0)
            outer = code_marginal[:, None] * factor_marginal[None, :]
            present = joint > 0
            result[d, k] = max(0.0, float(np.sum(joint[present] * np.log(joint[present]
                                                                          / outer[present]))))
    return result


def factor_entropies(factors: np.ndarray) -> np.ndarray:
    """(K,) empirical entropy of each factor in nats."""
    values = np.asarray(factors)
    values = values[:, None] if values.ndim == 1 else values
    entropies = np.zeros(values.shape[1])
    for k in range(values.shape[1]):
        _, counts = np.unique(values[:, k], return_counts=True)
        p = counts / counts.sum()
        entropies[k] = float(-np.sum(p * np.log(p)))
    return entropies


def _top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column: largest minus second-largest entry (the second is 0 with a single row)."""
    ordered = np.sort(matrix, axis=0)[::-1]
    second = ordered[1] if ordered.shape[0] > 1 else np.zeros(ordered.shape[1])
    return ordered[0] - second


# ----- cores on arrays --------------------------------------------------------------------------


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> dict:
    """Mutual information gap (Chen et al. 2018), discrete estimator as in disentanglement_lib.

    Each code dimension is cut into ``bins`` equal-width bins; I(code_d; factor_k) is the
    plug-in mutual information; per factor, the gap between the two most informative codes is
    divided by the factor's entropy H(factor_k). MIG is the mean over factors, in [0, 1].
    A perfect code for a factor with more values than ``bins`` cannot reach 1 (binning loses
    information). Factors constant in the sample (entropy 0) are left out of the mean.

    Returns {"value", "per_factor", "mutual_information" (D x K, nats), "entropies", "bins",
    "n_points", "n_codes", "excluded_factors"}.
    """
    values, factor_values = _codes_and_factors(codes, factors, "mig")
    information = discrete_mutual_information(histogram_discretize(values, bins), factor_values)
    entropies = factor_entropies(factor_values)
    gaps = _top_two_gap(information)
    informative = entropies > 0
    per_factor = np.where(informative, gaps / np.where(informative, entropies, 1.0), np.nan)
    value = float(np.mean(per_factor[informative])) if informative.any() else 0.0
    return {
        "value": value,
        "per_factor": [None if math.isnan(v) else float(v) for v in per_factor],
        "mutual_information": information.tolist(),
        "entropies": entropies.tolist(),
        "bins": int(bins),
        "n_points": int(values.shape[0]),
        "n_codes": int(values.shape[1]),
        "excluded_factors": np.flatnonzero(~informative).tolist(),
    }


def dci_from_importance(importance: np.ndarray) -> dict:
    """Disentanglement and completeness (Eastwood & Williams 2018) of a (D, K) importance
    matrix R (code d's importance for predicting factor k, non-negative).

    Disentanglement: per code, 1 - H_K(P_d.) with P_dk = R_dk / sum_k R_dk (entropy in base K),
    averaged with weights sum_k R_dk / sum R. Completeness: per factor, 1 - H_D(P_.k) with
    P_dk = R_dk / sum_d R_dk (base D), averaged with weights sum_d R_dk / sum R. As in
    disentanglement_lib, 1e-11 is added to R inside the entropies. An all-zero matrix (a
    representation no model could use) scores 0 on both.
    """
    matrix = np.asarray(importance, dtype=np.float64)
    if matrix.ndim != 2 or (matrix < 0).any():
        raise ValueError("importance must be a non-negative (D, K) matrix")
    n_codes, n_factors = matrix.shape

    def one_minus_entropy(rows: np.ndarray, base: int) -> np.ndarray:
        if base < 2:
            return np.ones(rows.shape[0])
        p = rows + 1e-11
        p = p / p.sum(axis=1, keepdims=True)
        return 1.0 - (-(p * np.log(p)).sum(axis=1) / math.log(base))

    per_code = one_minus_entropy(matrix, n_factors)
    per_factor = one_minus_entropy(matrix.T, n_codes)
    total = matrix.sum()
    if total > 0:
        disentanglement = float(np.sum(per_code * matrix.sum(axis=1) / total))
        completeness = float(np.sum(per_factor * matrix.sum(axis=0) / total))
    else:
        disentanglement = completeness = 0.0
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "disentanglement_per_code": per_code.tolist(),
        "completeness_per_factor": per_factor.tolist(),
    }


def _dci_factor(train_values: np.ndarray, train_target: np.ndarray, test_values: np.ndarray,
                test_target: np.ndarray, n_estimators: int, max_depth: int,
                learning_rate: float, random_state: int) -> tuple[np.ndarray, float, float]:
    """One factor's classifier: (feature importances, train accuracy, test accuracy). The
    importances' absolute values, as disentanglement_lib takes: an unused code's importance can
    come out of scikit-learn a round-off below zero (-2e-17)."""
    model = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                       learning_rate=learning_rate, random_state=random_state)
    model.fit(train_values, train_target)
    return (np.abs(model.feature_importances_),
            float(np.mean(model.predict(train_values) == train_target)),
            float(np.mean(model.predict(test_values) == test_target)))


def dci(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    seed: SeedLike = 0,
    n_estimators: int = 100,
    max_depth: int = 3,
    learning_rate: float = 0.1,
    n_jobs: int | None = None,
) -> dict:
    """DCI (Eastwood & Williams 2018) with gradient-boosted trees, as in disentanglement_lib.

    One scikit-learn GradientBoostingClassifier per factor predicts the factor from all codes,
    with scikit-learn's defaults (``n_estimators``, ``max_depth``, ``learning_rate``), as the
    reference does, and ``random_state`` drawn from ``seed`` plus the factor's index; its
    impurity-based feature importances (absolute values, as the reference takes) form column k
    of the (D, K) importance matrix (see :func:`dci_from_importance`). Informativeness is the
    mean test accuracy over factors (chance: the frequency of each factor's commonest value). A
    factor with a single value in the training sample gets zero importance.

    The factors' classifiers are fitted at once on ``n_jobs`` threads (scikit-learn's tree
    building releases the GIL), factors with the most values first.
    ``None``: as many threads as there are factors to fit, at most the CPU cores this process
    may use (``os.cpu_count()``, or fewer by ``os.sched_getaffinity``); 1: one factor after
    another in this thread. Each classifier has its own fixed random state, so the numbers are
    the same whatever ``n_jobs`` is. A factor with many values costs the most (one tree per
    value per stage): at the protocol's 10,000 points dSprites' 40 orientations take minutes.

    Returns {"disentanglement", "completeness", "informativeness" (test accuracy),
    "informativeness_train", per-code/per-factor lists, "importance_matrix", settings}.
    """
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral)
                               or n_jobs < 1):
        raise ValueError(f"n_jobs must be a positive int or None, got {n_jobs!r}")
    train_values, train_targets = _codes_and_factors(train_codes, train_factors, "train")
    test_values, test_targets = _codes_and_factors(test_codes, test_factors, "test")
    random_state = sklearn_random_state(seed)
    n_factors = train_targets.shape[1]
    importance = np.zeros((train_values.shape[1], n_factors))
    train_accuracy, test_accuracy = [1.0] * n_factors, [0.0] * n_factors
    values_per_factor = [np.unique(train_targets[:, k]).size for k in range(n_factors)]
    fitted = []
    for k in range(n_factors):
        if values_per_factor[k] < 2:
            constant = train_targets[0, k]
            test_accuracy[k] = float(np.mean(test_targets[:, k] == constant))
        else:
            fitted.append(k)
    # The costliest factors (one tree per value per stage) start first, so that the last
    # classifier to finish is a cheap one; the order changes no number.
    fitted.sort(key=lambda k: -values_per_factor[k])
    def fit_factor(k: int):
        return _dci_factor(train_values, train_targets[:, k], test_values, test_targets[:, k],
                           n_estimators, max_depth, learning_rate, random_state + k)

    workers = min(len(fitted), usable_cores() if n_jobs is None else int(n_jobs))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(fit_factor, fitted))
    else:
        outcomes = [fit_factor(k) for k in fitted]
    for k, (importances, train_score, test_score) in zip(fitted, outcomes):
        importance[:, k] = importances
        train_accuracy[k], test_accuracy[k] = train_score, test_score
    result = dci_from_importance(importance)
    result.update(
        informativeness=float(np.mean(test_accuracy)),
        informativeness_train=float(np.mean(train_accuracy)),
        informativeness_per_factor=test_accuracy,
        importance_matrix=importance.tolist(),
        model="scikit-learn's GradientBoostingClassifier, one per factor",
        n_estimators=int(n_estimators),
        max_depth=int(max_depth),
        learning_rate=float(learning_rate),
        n_train=int(train_values.shape[0]),
        n_test=int(test_values.shape[0]),
        seed=seed_record(seed),
    )
    return result


def _sap_classifier(kind: str, n_classes: int, random_state: int):
    if kind == "tree":
        return DecisionTreeClassifier(max_leaf_nodes=max(2, n_classes), random_state=random_state)
    return LinearSVC(C=0.01, class_weight="balanced", random_state=random_state)


def sap(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    classifier: str = "tree",
    seed: SeedLike = 0,
) -> dict:
    """Separated attribute predictability (Kumar et al. 2018) for discrete factors.

    Score matrix S (D x K): test accuracy of a classifier predicting factor k from code d alone,
    trained on the train points. SAP = mean over factors of the gap between the two best codes
    (the second is 0 with a single code).

    ``classifier``:
      * "tree" (default): a decision tree on the one code with at most as many leaves as the
        factor has values, i.e. a set of thresholds; a code that is any monotone function of the
        factor predicts it perfectly.
      * "linear_svm": disentanglement_lib's LinearSVC(C=0.01, class_weight="balanced"). On one
        feature its one-vs-rest lines cannot carve out the middle values of a factor with many
        values, so even a perfect code scores low on position and orientation; kept to compare
        with published numbers.

    Even a perfect representation scores below 1: the second-best code, uninformative, still
    gets about chance accuracy, so the ceiling is about 1 - mean_k(1 / n_values_k).

    Returns {"value", "per_factor", "score_matrix", "classifier", "n_train", "n_test", "seed"}.
    """
    if classifier not in SAP_CLASSIFIERS:
        raise ValueError(f"classifier must be one of {SAP_CLASSIFIERS}, got {classifier!r}")
    train_values, train_targets = _codes_and_factors(train_codes, train_factors, "train")
    test_values, test_targets = _codes_and_factors(test_codes, test_factors, "test")
    random_state = sklearn_random_state(seed)
    n_codes, n_factors = train_values.shape[1], train_targets.shape[1]
    scores = np.zeros((n_codes, n_factors))
    for k in range(n_factors):
        classes = np.unique(train_targets[:, k])
        for d in range(n_codes):
            if classes.size < 2:
                scores[d, k] = float(np.mean(test_targets[:, k] == classes[0]))
                continue
            model = _sap_classifier(classifier, classes.size, random_state)
            with warnings.catch_warnings():  # LinearSVC on one feature often stops at max_iter
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(train_values[:, d : d + 1], train_targets[:, k])
            predicted = model.predict(test_values[:, d : d + 1])
            scores[d, k] = float(np.mean(predicted == test_targets[:, k]))
    gaps = _top_two_gap(scores)
    return {
        "value": float(np.mean(gaps)),
        "per_factor": gaps.tolist(),
        "score_matrix": scores.tolist(),
        "classifier": classifier,
        "n_train": int(train_values.shape[0]),
        "n_test": int(test_values.shape[0]),
        "seed": seed_record(seed),
    }


def _fit_logistic(features: np.ndarray, targets: np.ndarray, regularisation: float,
                  max_iter: int, random_state: int) -> tuple[LogisticRegression, bool]:
    """(model, converged): lbfgs logistic regression; reaching ``max_iter`` is recorded in the
    result instead of warned about (the fit is still deterministic)."""
    model = LogisticRegression(C=regularisation, solver="lbfgs", max_iter=max_iter,
                               random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, targets)
    return model, bool(np.all(model.n_iter_ < max_iter))


def _modularity(information: np.ndarray) -> np.ndarray:
    """Per code: 1 - sum_{k != k*} I_k^2 / ((K - 1) I_k*^2), 0 for a code with no information."""
    squared = information**2
    largest = squared.max(axis=1)
    n_factors = squared.shape[1]
    if n_factors < 2:
        return (largest > 0).astype(np.float64)
    safe = np.where(largest > 0, largest, 1.0)
    deviation = (squared.sum(axis=1) - largest) / (safe * (n_factors - 1))
    return np.where(largest > 0, 1.0 - deviation, 0.0)


def _macro_auc(targets: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float:
    """Mean over classes of the one-vs-rest AUC of that class's probability (classes absent
    from ``targets``, or making up all of it, are skipped)."""
    scores = []
    for column, value in enumerate(classes):
        positive = targets == value
        if 0 < positive.sum() < positive.size:
            scores.append(roc_auc_score(positive, probabilities[:, column]))
    return float(np.mean(scores)) if scores else 0.5


def modularity_explicitness(
    train_codes: np.ndarray,
    train_factors: np.ndarray,
    test_codes: np.ndarray,
    test_factors: np.ndarray,
    bins: int = 20,
    seed: SeedLike = 0,
    max_iter: int = 1000,
    regularisation: float = 1.0,
) -> dict:
    """Modularity and explicitness (Ridgeway & Mozer 2018), as in disentanglement_lib.

    Modularity: from the (D, K) mutual information of the train codes (``bins`` equal-width
    bins) with the factors, per code 1 - (sum of squared MI with all but its main factor) /
    ((K - 1) x squared MI with its main factor), 0 for a code carrying no information; averaged
    over codes (so unused codes count as 0). A random representation does not score 0: the
    finite-sample bias of the MI estimate differs between factors.

    Explicitness: codes standardised with the train mean and standard deviation; per factor a
    logistic regression (lbfgs, multinomial, C = ``regularisation``, ``max_iter``) is trained
    on all codes, and scored by the mean over classes of the one-vs-rest ROC AUC of its
    predicted probabilities; averaged over factors. Chance is 0.5.

    Returns {"modularity", "explicitness" (test), "explicitness_train", per-code / per-factor
    lists, "mutual_information", "not_converged_factors" (fits that reached ``max_iter``),
    settings}.
    """
    train_values, train_targets = _codes_and_factors(train_codes, train_factors, "train")
    test_values, test_targets = _codes_and_factors(test_codes, test_factors, "test")
    information = discrete_mutual_information(
        histogram_discretize(train_values, bins), train_targets
    )
    per_code = _modularity(information)
    mean = train_values.mean(axis=0)
    scale = train_values.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    train_standard = (train_values - mean) / scale
    test_standard = (test_values - mean) / scale
    random_state = sklearn_random_state(seed)
    train_auc, test_auc, not_converged = [], [], []
    for k in range(train_targets.shape[1]):
        classes = np.unique(train_targets[:, k])
        if classes.size < 2:
            train_auc.append(0.5)
            test_auc.append(0.5)
            continue
        model, converged = _fit_logistic(train_standard, train_targets[:, k], regularisation,
                                         max_iter, random_state)
        if not converged:
            not_converged.append(k)
        train_auc.append(_macro_auc(train_targets[:, k], model.predict_proba(train_standard),
                                    model.classes_))
        test_auc.append(_macro_auc(test_targets[:, k], model.predict_proba(test_standard),
                                   model.classes_))
    return {
        "modularity": float(per_code.mean()),
        "modularity_per_code": per_code.tolist(),
        "explicitness": float(np.mean(test_auc)),
        "explicitness_train": float(np.mean(train_auc)),
        "explicitness_per_factor": test_auc,
        "mutual_information": information.tolist(),
        "bins": int(bins),
        "max_iter": int(max_iter),
        "regularisation": float(regularisation),
        "not_converged_factors": not_converged,
        "n_train": int(train_values.shape[0]),
        "n_test": int(test_values.shape[0]),
        "seed": seed_record(seed),
    }


def beta_vae_score(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    seed: SeedLike = 0,
    max_iter: int = 1000,
    regularisation: float = 1.0,
) -> dict:
    """Last step of the beta-VAE score (Higgins et al. 2017): a linear classifier that tells,
    from a difference feature, which factor was held fixed.

    Features are rows of mean |code(x1) - code(x2)| over a batch of pairs that share one factor;
    labels are that factor's index. The classifier is sklearn's LogisticRegression (lbfgs,
    multinomial, C = ``regularisation``, ``max_iter``, ``random_state`` from ``seed``) on the
    raw features, as disentanglement_lib. The score is the evaluation accuracy; chance is
    1 / n_factors (a constant representation gets about that).
    """
    train_values = as_2d(train_features, "train_features")
    eval_values = as_2d(eval_features, "eval_features")
    train_targets = np.asarray(train_labels).reshape(-1)
    eval_targets = np.asarray(eval_labels).reshape(-1)
    classes = np.unique(train_targets)
    converged = True
    if classes.size < 2:
        predicted_train = np.full(train_targets.shape, classes[0])
        predicted_eval = np.full(eval_targets.shape, classes[0])
    else:
        model, converged = _fit_logistic(train_values, train_targets, regularisation, max_iter,
                                         sklearn_random_state(seed))
        predicted_train = model.predict(train_values)
        predicted_eval = model.predict(eval_values)
    eval_accuracy = float(np.mean(predicted_eval == eval_targets))
    return {
        "value": eval_accuracy,
        "eval_accuracy": eval_accuracy,
        "train_accuracy": float(np.mean(predicted_train == train_targets)),
        "classifier": "sklearn LogisticRegression (lbfgs)",
        "converged": converged,
        "max_iter": int(max_iter),
        "regularisation": float(regularisation),
        "n_train": int(train_values.shape[0]),
        "n_eval": int(eval_values.shape[0]),
        "seed": seed_record(seed),
    }


def factor_vae_score(train_votes: np.ndarray, eval_votes: np.ndarray) -> dict:
    """Last step of the FactorVAE score (Kim & Mnih 2018): a majority-vote classifier.

    ``votes[k, d]`` counts the batches with factor k held fixed in which code dimension d had
    the smallest normalised variance. Each dimension is assigned the factor it voted for most
    often in ``train_votes`` (ties: the lower factor index); the score is the fraction of
    ``eval_votes`` that agree with that assignment.
    """
    train = np.asarray(train_votes, dtype=np.int64)
    evaluation = np.asarray(eval_votes, dtype=np.int64)
    if train.ndim != 2 or train.shape != evaluation.shape:
        raise ValueError("train_votes and eval_votes must be (K, D) arrays of the same shape")
    assignment = np.argmax(train, axis=0)
    columns = np.arange(train.shape[1])

    def accuracy(votes: np.ndarray) -> float:
        total = votes.sum()
        return float(votes[assignment, columns].sum() / total) if total else 0.0

    eval_accuracy = accuracy(evaluation)
    return {
        "value": eval_accuracy,
        "eval_accuracy": eval_accuracy,
        "train_accuracy": accuracy(train),
        "assignment": assignment.tolist(),
        "train_votes": train.tolist(),
        "eval_votes": evaluation.tolist(),
    }


# ----- sampling through a representation --------------------------------------------------------


@dataclass(frozen=True, repr=False)
class TabulatedRepresentation:
    """The codes of every grid point of a deterministic ground truth, row = grid index."""

    codes: np.ndarray
    factor_sizes: tuple[int, ...]

    def codes_for_factors(self, factors: np.ndarray) -> np.ndarray:
        index = np.zeros(factors.shape[0], dtype=np.int64)
        for column, size in enumerate(self.factor_sizes):
            index = index * size + factors[:, column]
        return self.codes[index]

    def __repr__(self) -> str:
        sizes = self.factor_sizes
        return f"TabulatedRepresentation(codes={self.codes.shape}, factor_sizes={sizes})"


def _check_codes(codes, n_rows: int) -> np.ndarray:
    values = np.asarray(codes, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[0] != n_rows:
        raise ValueError(
            f"the representation must return ({n_rows}, n_codes) codes, got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("the representation returned non-finite codes")
    return values


def tabulate_representation(
    ground_truth, representation: Representation, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> TabulatedRepresentation:
    """Encode every grid point of a deterministic ground truth once (in grid-index order).

    Pass the result as ``representation`` to the ``compute_*`` functions: they then look codes
    up by factors instead of rendering and encoding, and give the same numbers. Worth it when
    the protocols would encode more observations than the grid holds (the beta-VAE and
    FactorVAE scores alone encode about 2.9 million at the default sizes; dSprites has 737,280).
    """
    if not getattr(ground_truth, "deterministic", False):
        raise ValueError("only a deterministic ground truth (observations fixed by the factors) "
                         "can be tabulated")
    sizes = tuple(int(size) for size in ground_truth.factor_sizes)
    total = int(np.prod(sizes, dtype=np.int64))
    parts = []
    for start in range(0, total, chunk_size):
        factors = ground_truth.index_to_factors(np.arange(start, min(total, start + chunk_size)))
        observations = ground_truth.sample_observations_from_factors(factors, None)
        parts.append(_check_codes(representation(observations), factors.shape[0]))
    return TabulatedRepresentation(np.concatenate(parts), sizes)


def _encode_factors(ground_truth, representation, factors: np.ndarray,
                    generator: np.random.Generator, chunk_size: int) -> np.ndarray:
    """(N, D) float64 codes of fresh observations of ``factors``."""
    lookup = getattr(representation, "codes_for_factors", None)
    if lookup is not None:
        return _check_codes(lookup(factors), factors.shape[0])
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    parts = []
    for start in range(0, factors.shape[0], chunk_size):
        part = factors[start : start + chunk_size]
        observations = ground_truth.sample_observations_from_factors(part, generator)
        parts.append(_check_codes(representation(observations), part.shape[0]))
    return np.concatenate(parts)


def sample_factor_codes(
    ground_truth, representation: Representation, n: int, seed: SeedLike = 0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, D) float64, factors (n, K) int64) for n grid points drawn uniformly."""
    generator = make_generator(seed)
    factors = ground_truth.sample_factors(int(n), generator)
    return _encode_factors(ground_truth, representation, factors, generator, chunk_size), factors


def _grouped_factors(ground_truth, n_groups: int, batch_size: int,
                     generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(held fixed (G,), factors (G, B, K)): in group g every row shares factor held[g]."""
    n_factors = len(ground_truth.factor_sizes)
    held = generator.integers(0, n_factors, size=n_groups)
    factors = ground_truth.sample_factors(n_groups * batch_size, generator)
    return held, factors.reshape(n_groups, batch_size, n_factors)


def _describe(ground_truth) -> dict:
    describe = getattr(ground_truth, "describe", None)
    if describe is not None:
        return describe()
    return {"class": type(ground_truth).__name__,
            "factor_sizes": [int(size) for size in ground_truth.factor_sizes]}


def _beta_vae_features(ground_truth, representation, n_points: int, batch_size: int,
                       generator: np.random.Generator, chunk_size: int):
    held, first = _grouped_factors(ground_truth, n_points, batch_size, generator)
    second = ground_truth.sample_factors(n_points * batch_size, generator)
    second = second.reshape(first.shape)
    groups = np.arange(n_points)
    second[groups, :, held] = first[groups, :, held]
    shape = first.shape
    codes_first = _encode_factors(ground_truth, representation, first.reshape(-1, shape[2]),
                                  generator, chunk_size)
    codes_second = _encode_factors(ground_truth, representation, second.reshape(-1, shape[2]),
                                   generator, chunk_size)
    difference = np.abs(codes_first - codes_second).reshape(n_points, batch_size, -1)
    return difference.mean(axis=1), held


def compute_beta_vae_score(
    ground_truth,
    representation: Representation,
    seed: SeedLike = 0,
    batch_size: int = 64,
    train_points: int = 10000,
    eval_points: int = 5000,
    max_iter: int = 1000,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict:
    """beta-VAE score (Higgins et al. 2017) with disentanglement_lib's protocol.

    Each point: a factor k drawn uniformly, ``batch_size`` pairs of grid points drawn uniformly
    that share factor k's value; the feature is the mean absolute difference of the pairs'
    codes and the label is k. ``train_points`` points train :func:`beta_vae_score`'s logistic
    regression, ``eval_points`` fresh points score it. The value is the evaluation accuracy
    (1 for a perfect representation; chance 1 / n_factors).
    """
    generator = make_generator(seed)
    train = _beta_vae_features(ground_truth, representation, train_points, batch_size,
                               generator, chunk_size)
    evaluation = _beta_vae_features(ground_truth, representation, eval_points, batch_size,
                                    generator, chunk_size)
    result = beta_vae_score(*train, *evaluation, seed=generator, max_iter=max_iter)
    result.update(
        chance=1.0 / len(ground_truth.factor_sizes),
        batch_size=int(batch_size),
        train_points=int(train_points),
        eval_points=int(eval_points),
        chunk_size=int(chunk_size),
        ground_truth=_describe(ground_truth),
        seed=seed_record(seed),
    )
    return result


def _factor_vae_votes(ground_truth, representation, n_points: int, batch_size: int,
                      generator: np.random.Generator, chunk_size: int,
                      global_variance: np.ndarray, active: np.ndarray) -> np.ndarray:
    held, factors = _grouped_factors(ground_truth, n_points, batch_size, generator)
    groups = np.arange(n_points)
    factors[groups, :, held] = factors[groups, 0, held][:, None]
    codes = _encode_factors(ground_truth, representation, factors.reshape(-1, factors.shape[2]),
                            generator, chunk_size)
    local_variance = codes.reshape(n_points, batch_size, -1).var(axis=1, ddof=1)
    active_index = np.flatnonzero(active)
    ratio = local_variance[:, active_index] / global_variance[active_index]
    chosen = active_index[np.argmin(ratio, axis=1)]
    votes = np.zeros((len(ground_truth.factor_sizes), global_variance.size), dtype=np.int64)
    np.add.at(votes, (held, chosen), 1)
    return votes


def compute_factor_vae_score(
    ground_truth,
    representation: Representation,
    seed: SeedLike = 0,
    batch_size: int = 64,
    train_points: int = 10000,
    eval_points: int = 5000,
    variance_points: int = 10000,
    prune_threshold: float = 0.05,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict:
    """FactorVAE score (Kim & Mnih 2018) with disentanglement_lib's protocol.

    The codes of ``variance_points`` random grid points give each dimension's variance
    (ddof = 1); dimensions whose standard deviation is below ``prune_threshold`` are collapsed
    and take no part. Each vote: a factor k drawn uniformly, ``batch_size`` grid points sharing
    factor k's value; the active dimension with the smallest variance over the batch relative
    to its global variance (i.e. of the codes divided by their global standard deviation) votes
    for k. ``train_points`` votes fit :func:`factor_vae_score`'s majority-vote classifier,
    ``eval_points`` fresh votes score it. With no active dimension (a constant representation)
    the score is 0, as in disentanglement_lib.
    """
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (a variance over the batch)")
    generator = make_generator(seed)
    codes, _ = sample_factor_codes(ground_truth, representation, variance_points, generator,
                                   chunk_size)
    global_variance = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_variance) >= prune_threshold
    settings = {
        "active_dimensions": np.flatnonzero(active).tolist(),
        "n_active": int(active.sum()),
        "n_codes": int(active.size),
        "chance": 1.0 / len(ground_truth.factor_sizes),
        "batch_size": int(batch_size),
        "train_points": int(train_points),
        "eval_points": int(eval_points),
        "variance_points": int(variance_points),
        "prune_threshold": float(prune_threshold),
        "chunk_size": int(chunk_size),
        "ground_truth": _describe(ground_truth),
        "seed": seed_record(seed),
    }
    if not active.any():
        return {"value": 0.0, "eval_accuracy": 0.0, "train_accuracy": 0.0, **settings}
    votes = [
        _factor_vae_votes(ground_truth, representation, count, batch_size, generator, chunk_size,
                          global_variance, active)
        for count in (train_points, eval_points)
    ]
    result = factor_vae_score(*votes)
    result.update(settings)
    return result


def _train_test_codes(ground_truth, representation, seed: SeedLike, train_points: int,
                      test_points: int, chunk_size: int):
    generator = make_generator(seed)
    train = sample_factor_codes(ground_truth, representation, train_points, generator, chunk_size)
    test = sample_factor_codes(ground_truth, representation, test_points, generator, chunk_size)
    return generator, train, test


def _protocol_settings(ground_truth, seed: SeedLike, chunk_size: int, **sizes) -> dict:
    return {**{key: int(value) for key, value in sizes.items()}, "chunk_size": int(chunk_size),
            "ground_truth": _describe(ground_truth), "seed": seed_record(seed)}


def compute_mig(
    ground_truth,
    representation: Representation,
    seed: SeedLike = 0,
    points: int = 10000,
    bins: int = 20,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict:
    """:func:`mig` on the codes of ``points`` random grid points."""
    codes, factors = sample_factor_codes(ground_truth, representation, points, seed, chunk_size)
    result = mig(codes, factors, bins=bins)
    result.update(_protocol_settings(ground_truth, seed, chunk_size, points=points))
    return result


def compute_dci(
    ground_truth,
    representation: Representation,
    seed: SeedLike = 0,
    train_points: int = 10000,
    test_points: int = 5000,
    n_estimators: int = 100,
    max_depth: int = 3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    n_jobs: int | None = None,
) -> dict:
    """:func:`dci` trained on ``train_points`` and tested on ``test_points`` random grid points
    (``n_jobs``: threads fitting the factors' classifiers, see :func:`dci`)."""
    generator, train, test = _train_test_codes(ground_truth, representation, seed,
                                               train_points, test_points, chunk_size)
    result = dci(*train, *test, seed=generator, n_estimators=n_estimators, max_depth=max_depth,
                 n_jobs=n_jobs)
    result.update(_protocol_settings(ground_truth, seed, chunk_size, train_points=train_points,
                                     test_points=test_points))
    return result


def compute_sap(
    ground_truth,
    representation: Representation,
    seed: SeedLike = 0,
    train_points: int = 10000,
    test_points: int = 5000,
    classifier: str = "tree",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict:
    """:func:`sap` trained on ``train_points`` and tested on ``test_points`` random grid points
    (discrete factors, disentanglement_lib's ``continuous_factors=False``)."""
    generator, train, test = _train_test_codes(ground_truth, representation, seed,
                                               train_points, test_points, chunk_size)
    result = sap(*train, *test, classifier=classifier, seed=generator)
    result.update(_protocol_settings(ground_truth, seed, chunk_size, train_points=train_points,
                                     test_points=test_points))
    return result


def compute_modularity_explicitness(
    ground_truth,
    representation: Representation,
    seed: SeedLike = 0,
    train_points: int = 10000,
    test_points: int = 5000,
    bins: int = 20,
    max_iter: int = 1000,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict:
    """:func:`modularity_explicitness` on ``train_points`` and ``test_points`` random grid
    points (modularity uses the train points only)."""
    generator, train, test = _train_test_codes(ground_truth, representation, seed,
                                               train_points, test_points, chunk_size)
    result = modularity_explicitness(*train, *test, bins=bins, seed=generator, max_iter=max_iter)
    result.update(_protocol_settings(ground_truth, seed, chunk_size, train_points=train_points,
                                     test_points=test_points))
    return result


# Name in the report -> protocol function; the order is the order they run in.
DISENTANGLEMENT_METRICS: dict[str, Callable[..., dict]] = {
    "beta_vae_score": compute_beta_vae_score,
    "factor_vae_score": compute_factor_vae_score,
    "mig": compute_mig,
    "dci": compute_dci,
    "sap": compute_sap,
    "modularity_explicitness": compute_modularity_explicitness,
}

# Headline numbers of the report: name -> (metric, key in its result).
HEADLINE_SCORES = {
    "beta_vae_score": ("beta_vae_score", "value"),
    "factor_vae_score": ("factor_vae_score", "value"),
    "mig": ("mig", "value"),
    "dci_disentanglement": ("dci", "disentanglement"),
    "dci_completeness": ("dci", "completeness"),
    "dci_informativeness": ("dci", "informativeness"),
    "sap": ("sap", "value"),
    "modularity": ("modularity_explicitness", "modularity"),
    "explicitness": ("modularity_explicitness", "explicitness"),
}


def disentanglement_report(
    ground_truth,
    representation: Representation,
    seed: SeedLike = 0,
    *,
    metrics: tuple[str, ...] | None = None,
    **settings,
) -> dict:
    """Run the disentanglement metrics (all by default, else the names in ``metrics``) and time
    each one.

    Keyword ``settings`` (sizes such as ``train_points=500``, ``eval_points``, ``test_points``,
    ``points``, ``variance_points``, ``batch_size``, ``bins``, ``n_estimators``,
    ``chunk_size``, and DCI's ``n_jobs``) go to every selected metric whose function takes them;
    a setting no selected metric takes is an error. An int seed starts each metric afresh, so
    each number equals that metric run alone; a Generator is shared and consumed in turn.

    Returns {"scores": headline numbers by name, "results": each metric's full result,
    "seconds": wall time of each metric, "cpu_seconds": its CPU time (this process, all
    threads), "metrics", "ground_truth", "seed"}.
    """
    names = tuple(DISENTANGLEMENT_METRICS) if metrics is None else tuple(metrics)
    unknown = [name for name in names if name not in DISENTANGLEMENT_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(DISENTANGLEMENT_METRICS)}")
    accepted = {name: set(inspect.signature(DISENTANGLEMENT_METRICS[name]).parameters)
                for name in names}
    unused = [key for key in settings if not any(key in keys for keys in accepted.values())]
    if unused:
        raise TypeError(f"no selected disentanglement metric takes {unused}")
    results, seconds, cpu_seconds = {}, {}, {}
    for name in names:
        keywords = {key: value for key, value in settings.items() if key in accepted[name]}
        start, cpu_start = time.perf_counter(), time.process_time()
        results[name] = DISENTANGLEMENT_METRICS[name](ground_truth, representation, seed,
                                                      **keywords)
        seconds[name] = time.perf_counter() - start
        cpu_seconds[name] = time.process_time() - cpu_start
    scores = {headline: float(results[metric][key])
              for headline, (metric, key) in HEADLINE_SCORES.items() if metric in results}
    return {
        "scores": scores,
        "results": results,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "metrics": list(names),
        "ground_truth": _describe(ground_truth),
        "seed": seed_record(seed),
    }
