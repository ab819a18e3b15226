"""Gradient-boosted trees for DCI: scikit-learn's GradientBoostingClassifier, vectorised.

DCI (Eastwood & Williams 2018) as Locatello et al. (2019) run it reads the impurity-based
feature importances of scikit-learn's ``GradientBoostingClassifier`` with its defaults. That
classifier fits one regression tree per class per stage, one after another (on dSprites: 113
classes x 100 stages), which takes minutes at the protocol's 10,000 points. This module runs
the same algorithm with every class's tree grown at once, level by level, from histograms of
the residuals over each code's values:

* multinomial deviance (binomial for two classes), initial raw scores the log class priors;
* each stage, per class, a regression tree of depth ``max_depth`` on the negative gradient
  y - p, splits chosen by the Friedman MSE criterion, min 1 sample per leaf, a node with
  residual variance <= machine epsilon not split;
* leaf values by one Newton step, sum(y - p) / sum(p (1 - p)), times (K - 1) / K for K > 2
  classes (as scikit-learn keeps it), scaled by ``learning_rate``;
* feature importances: each split's decrease of the squared error divided by the number of
  training points, summed over all trees, normalised to sum to 1;
* codes are cast to float32 (as scikit-learn does) and thresholds lie halfway between the
  node's neighbouring values.

With ``max_bins=None`` a split may fall between any two distinct values, as in scikit-learn:
the tests check that its importances and predictions sit as close to scikit-learn's as
scikit-learn's own random states sit to each other. With ``max_bins=b`` a code with more than b
distinct values is cut at b quantile bins first (as histogram boosters do), which is faster
but not the same classifier: coarser splits overfit less, so DCI comes out slightly different
(measured in benchmarks/dci_agreement.py). Codes with at most b distinct values are still split
exactly. Ties between equally good splits go to a feature drawn from ``seed`` (scikit-learn's
random feature order does the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scikit-learn's tolerances: values closer than FEATURE_THRESHOLD are not split apart; a node
# whose residual variance is at most EPSILON is a leaf; a Newton step with a smaller
# denominator than TINY is 0.
FEATURE_THRESHOLD = 1e-7
EPSILON = np.finfo(np.float64).eps
TINY = 1e-150
# Splits whose criterion differs by less than this fraction are ties.
TIE_TOLERANCE = 1e-9
# Largest (classes x nodes x bins) histogram built in one piece (float64 entries).
HISTOGRAM_ENTRIES = 4_000_000


@dataclass
class _Bins:
    """Per-feature bins of the training values (bin b of feature f is column offsets[f] + b)."""

    columns: np.ndarray  # (n, F) int64 column of each value
    local: np.ndarray  # (F, n) int64 bin of each value within its feature
    feature: np.ndarray  # (T,) feature of each column
    lowest: np.ndarray  # (T,) smallest training value in the column
    highest: np.ndarray  # (T,) largest training value in the column
    offsets: np.ndarray  # (F + 1,)


def _make_bins(values: np.ndarray, max_bins: int | None) -> _Bins:
    n, n_features = values.shape
    columns = np.empty((n, n_features), dtype=np.int64)
    features, lowest, highest, offsets = [], [], [], [0]
    for f in range(n_features):
        column = values[:, f]
        order = np.argsort(column, kind="stable")
        ordered = column[order].astype(np.float64)
        # a new bin starts where the sorted values step by more than scikit-learn's tolerance
        starts = np.concatenate(([True], ordered[1:] > ordered[:-1] + FEATURE_THRESHOLD))
        distinct = np.cumsum(starts) - 1
        n_distinct = int(distinct[-1]) + 1
        if max_bins is not None and n_distinct > max_bins:
            # quantile bins over the points, never splitting one distinct value
            target = (np.arange(n) * max_bins) // n
            first = np.flatnonzero(starts)
            bin_of_distinct = np.maximum.accumulate(target[first])
            _, bin_of_distinct = np.unique(bin_of_distinct, return_inverse=True)
            binned = bin_of_distinct[distinct]
        else:
            binned = distinct
        n_bins = int(binned[-1]) + 1
        columns[order, f] = offsets[-1] + binned
        bin_starts = np.flatnonzero(np.concatenate(([True], binned[1:] != binned[:-1])))
        bin_ends = np.concatenate((bin_starts[1:], [n])) - 1
        lowest.append(ordered[bin_starts])
        highest.append(ordered[bin_ends])
        features.append(np.full(n_bins, f))
        offsets.append(offsets[-1] + n_bins)
    local = (columns - np.asarray(offsets[:-1])[None, :]).T.copy()
    return _Bins(columns, local, np.concatenate(features), np.concatenate(lowest),
                 np.concatenate(highest), np.asarray(offsets))


class BoostedTrees:
    """Fitted trees: ``predict``, ``decision_function`` and ``feature_importances_``."""

    def __init__(self, classes, init, features, thresholds, leaves, learning_rate,
                 feature_importances, n_features):
        self.classes_ = classes
        self._init = init  # (K_trees,) raw score before the first stage
        self._features = features  # (S, K_trees, 2**depth - 1) split feature per heap node
        self._thresholds = thresholds  # (S, K_trees, 2**depth - 1), +inf where not split
        self._leaves = leaves  # (S, K_trees, 2**depth) leaf values
        self._learning_rate = learning_rate
        self.feature_importances_ = feature_importances
        self.n_features_in_ = n_features

    def decision_function(self, values: np.ndarray) -> np.ndarray:
        """Raw scores (N, K_trees) of float codes (N, F)."""
        points = np.asarray(values, dtype=np.float32).astype(np.float64)
        if points.ndim != 2 or points.shape[1] != self.n_features_in_:
            raise ValueError(f"expected (N, {self.n_features_in_}) codes, got {points.shape}")
        n_stages, n_trees, n_internal = self._features.shape
        depth = int(np.log2(n_internal + 1))
        raw = np.tile(self._init, (points.shape[0], 1))
        rows = np.arange(points.shape[0])[None, :]
        trees = np.arange(n_trees)[:, None]
        for stage in range(n_stages):
            node = np.zeros((n_trees, points.shape[0]), dtype=np.int64)
            for _ in range(depth):
                feature = self._features[stage][trees, node]
                right = points[rows, feature] > self._thresholds[stage][trees, node]
                node = 2 * node + 1 + right
            raw += self._learning_rate * self._leaves[stage][trees, node - n_internal].T
        return raw

    def predict(self, values: np.ndarray) -> np.ndarray:
        raw = self.decision_function(values)
        if raw.shape[1] == 1:
            return self.classes_[(raw[:, 0] > 0).astype(np.int64)]
        return self.classes_[np.argmax(raw, axis=1)]


def _softmax(raw: np.ndarray) -> np.ndarray:
    """Softmax over the classes of raw scores (K, n)."""
    shifted = np.exp(raw - raw.max(axis=0, keepdims=True))
    return shifted / shifted.sum(axis=0, keepdims=True)


def _histograms(bins: _Bins, weights: np.ndarray, points: np.ndarray, slots: np.ndarray,
                n_slots: int, with_counts: bool = True):
    """Residual sums (and point counts) per (slot, column): entry i is point points[i] with
    residual weights[i] in slot slots[i] (all (P,) arrays). Returns (n_slots, T) arrays."""
    sums, counts = [], []
    for f in range(bins.local.shape[0]):
        width = int(bins.offsets[f + 1] - bins.offsets[f])
        index = slots * width + bins.local[f][points]
        sums.append(np.bincount(index, weights, minlength=n_slots * width)
                    .reshape(n_slots, width))
        if with_counts:
            counts.append(np.bincount(index, minlength=n_slots * width).reshape(n_slots, width))
    return np.concatenate(sums, axis=1), (np.concatenate(counts, axis=1) if with_counts
                                          else None)


def _best_splits(bins: _Bins, sums: np.ndarray, counts: np.ndarray, node_square: np.ndarray,
                 generator: np.random.Generator):
    """Best split of each node from its histograms.

    sums, counts: (M, T) per node and column; node_square (M,) sum of squared residuals.
    Returns (column (M,) of the last bin going left, -1 where the node is not split;
    threshold (M,); decrease of the squared error (M,))."""
    n_nodes, n_columns = sums.shape
    best_column = np.full(n_nodes, -1, dtype=np.int64)
    threshold = np.full(n_nodes, np.inf)
    decrease = np.zeros(n_nodes)
    chunk = max(1, HISTOGRAM_ENTRIES // n_columns)
    positions = np.arange(n_columns)
    feature_end = bins.offsets[1:][bins.feature]  # first column past each column's feature
    for start in range(0, n_nodes, chunk):
        rows = slice(start, min(n_nodes, start + chunk))
        node_sums, node_counts = sums[rows], counts[rows]
        # left = the node's points in this column and the columns below it of the same feature
        left_sum = np.concatenate([np.cumsum(node_sums[:, a:b], axis=1) for a, b in
                                   zip(bins.offsets[:-1], bins.offsets[1:])], axis=1)
        left_count = np.concatenate([np.cumsum(node_counts[:, a:b], axis=1) for a, b in
                                     zip(bins.offsets[:-1], bins.offsets[1:])], axis=1)
        total_sum = left_sum[:, bins.offsets[1] - 1]
        total_count = left_count[:, bins.offsets[1] - 1]
        right_sum = total_sum[:, None] - left_sum
        right_count = total_count[:, None] - left_count
        valid = (node_counts > 0) & (right_count > 0)
        # scikit-learn's Friedman MSE proxy: (n_r S_l - n_l S_r)^2 / (n_l n_r)
        difference = right_count * left_sum - left_count * right_sum
        proxy = np.full(difference.shape, -np.inf)
        np.divide(difference * difference, left_count * right_count, out=proxy, where=valid)
        # Equally good splits (within rounding) are ties. As scikit-learn visits the features
        # in a random order and keeps the first best, a tie goes to a random feature (then
        # to its first column), not to whichever summation order rounded up.
        best = proxy.max(axis=1)
        tolerance = TIE_TOLERANCE * np.abs(np.where(np.isfinite(best), best, 0.0))
        tied = proxy >= (best - tolerance)[:, None]
        tied_features = np.logical_or.reduceat(tied, bins.offsets[:-1], axis=1)
        priority = generator.random(tied_features.shape)
        chosen_feature = np.argmax(np.where(tied_features, priority, -1.0), axis=1)
        column = np.argmax(tied & (bins.feature[None, :] == chosen_feature[:, None]), axis=1)
        chosen = proxy[np.arange(column.size), column]
        mean = total_sum / np.maximum(total_count, 1)
        impurity = node_square[rows] / np.maximum(total_count, 1) - mean * mean
        split = np.isfinite(best) & (total_count >= 2) & (impurity > EPSILON)
        # threshold halfway between the node's last value going left and first going right
        above = ((positions[None, :] > column[:, None]) & (node_counts > 0)
                 & (positions[None, :] < feature_end[column][:, None]))
        following = np.argmax(above, axis=1)
        low = bins.highest[column]
        high = bins.lowest[following]
        midpoint = low / 2.0 + high / 2.0
        midpoint = np.where((midpoint == high) | ~np.isfinite(midpoint), low, midpoint)
        best_column[rows] = np.where(split, column, -1)
        threshold[rows] = np.where(split, midpoint, np.inf)
        decrease[rows] = np.where(split, chosen / np.maximum(total_count, 1), 0.0)
    return best_column, threshold, decrease


def fit_boosted_trees(
    values: np.ndarray,
    targets: np.ndarray,
    n_estimators: int = 100,
    max_depth: int = 3,
    learning_rate: float = 0.1,
    max_bins: int | None = None,
    seed: int | np.random.Generator = 0,
) -> BoostedTrees:
    """Fit scikit-learn's gradient boosting classifier (defaults as there) on codes (N, F)
    and integer targets (N,), all classes' trees at once. See the module docstring."""
    points = np.asarray(values, dtype=np.float32)
    if points.ndim != 2:
        raise ValueError(f"expected (N, F) codes, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError("codes must be finite")
    if max_depth < 1 or n_estimators < 1:
        raise ValueError("max_depth and n_estimators must be positive")
    if max_bins is not None and max_bins < 2:
        raise ValueError(f"max_bins must be at least 2 or None, got {max_bins}")
    classes, labels = np.unique(np.asarray(targets), return_inverse=True)
    n, n_features = points.shape
    if classes.size < 2:
        raise ValueError("targets need at least two classes")
    if labels.shape[0] != n:
        raise ValueError(f"{n} codes but {labels.shape[0]} targets")
    bins = _make_bins(points, max_bins)
    generator = np.random.default_rng(seed)
    n_classes = classes.size
    binary = n_classes == 2
    n_trees = 1 if binary else n_classes
    prior = np.clip(np.bincount(labels, minlength=n_classes) / n, EPSILON, 1 - EPSILON)
    init = np.array([np.log(prior[1] / prior[0])]) if binary else np.log(prior)
    onehot = (labels[None, :] == np.arange(n_classes)[:, None]).astype(np.float64)
    target = onehot[1:2] if binary else onehot  # (K_trees, n)
    raw = np.tile(init[:, None], (1, n))
    n_internal, n_leaves = 2**max_depth - 1, 2**max_depth
    features = np.zeros((n_estimators, n_trees, n_internal), dtype=np.int64)
    thresholds = np.full((n_estimators, n_trees, n_internal), np.inf)
    leaves = np.zeros((n_estimators, n_trees, n_leaves))
    importance = np.zeros(n_features)
    tree_rows = np.arange(n_trees)[:, None]
    factor = 1.0 if binary else (n_classes - 1) / n_classes
    n_columns = bins.feature.size
    every_tree = np.repeat(np.arange(n_trees), n)
    every_point = np.tile(np.arange(n), n_trees)
    columns_by_feature = bins.columns.T.ravel()  # feature f's columns at f * n
    point_rows = np.arange(n)[None, :]
    root_counts = np.bincount(bins.columns.ravel(), minlength=n_columns)[None, :]
    for stage in range(n_estimators):
        probability = 1.0 / (1.0 + np.exp(-raw)) if binary else _softmax(raw)
        residuals = target - probability
        node = np.zeros((n_trees, n), dtype=np.int64)
        flat_residuals = residuals.ravel()
        squares = flat_residuals**2
        square = np.bincount(every_tree, squares, minlength=n_trees)
        # the root: every tree's points, one column count for all trees
        sums, _ = _histograms(bins, flat_residuals, every_point, every_tree, n_trees,
                              with_counts=False)
        counts = np.broadcast_to(root_counts, sums.shape)
        for depth in range(max_depth):
            n_nodes = 2**depth
            if depth > 0:
                # histograms of left children only; a right child's is its parent's minus
                # its sibling's
                left = np.flatnonzero((node % 2 == 0).ravel())
                half = n_nodes // 2
                left_sums, left_counts = _histograms(
                    bins, flat_residuals[left], every_point[left],
                    every_tree[left] * half + node.ravel()[left] // 2, n_trees * half)
                sums = np.stack([left_sums, sums - left_sums], axis=1).reshape(-1, n_columns)
                counts = np.stack([left_counts, counts - left_counts], axis=1).reshape(
                    -1, n_columns)
                square = np.bincount((tree_rows * n_nodes + node).ravel(), squares,
                                     minlength=n_trees * n_nodes)
            flat_column, flat_threshold, flat_decrease = _best_splits(bins, sums, counts, square,
                                                                       generator)
            column = flat_column.reshape(n_trees, n_nodes)
            heap = n_nodes - 1 + np.arange(n_nodes)
            split = column >= 0
            split_feature = bins.feature[np.maximum(column, 0)]
            features[stage, :, heap] = np.where(split, split_feature, 0).T
            thresholds[stage, :, heap] = flat_threshold.reshape(n_trees, n_nodes).T
            np.add.at(importance, split_feature[split], flat_decrease[split.ravel()] / n)
            # a point goes right when its bin is above the node's last left bin
            point_column = columns_by_feature[split_feature[tree_rows, node] * n + point_rows]
            last_left = np.where(split, column, np.iinfo(np.int64).max)[tree_rows, node]
            node = 2 * node + (point_column > last_left)
        slots = (tree_rows * n_leaves + node).ravel()
        numerator = np.bincount(slots, flat_residuals, minlength=n_trees * n_leaves)
        hessian = (probability * (1.0 - probability)).ravel()
        denominator = np.bincount(slots, hessian, minlength=n_trees * n_leaves)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(np.abs(denominator) < TINY, 0.0, factor * numerator / denominator)
        leaves[stage] = step.reshape(n_trees, n_leaves)
        raw += learning_rate * leaves[stage][tree_rows, node]
    total = importance.sum()
    importances = importance / total if total > 0 else importance
    model = BoostedTrees(classes, init, features, thresholds, leaves, learning_rate,
                         importances, n_features)
    return model
