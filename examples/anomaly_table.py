"""Anomaly detection on a table: aevae's outlier detector (AE and VAE) against IsolationForest.

The table is an ODDS outlier set (cardio by default) read from ``$AEVAE_DATA_DIR/odds/NAME.mat``
when it is there; otherwise scikit-learn's bundled breast-cancer table with all benign rows and
30 malignant ones as the anomalies. Each detector is fitted on 60% of the rows without labels
(``contamination`` = the outlier share) and ranks the other 40%; the script prints ROC AUC and
average precision (higher is better; a random ranking scores 0.5 and the outlier share).

    python examples/anomaly_table.py                   # cardio, 100 epochs
    python examples/anomaly_table.py --data wbc --quick   # 20 epochs
"""

import argparse

import numpy as np
import torch
from scipy.io import loadmat
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from aevae.data import data_directory
from aevae.sklearn import AutoencoderOutlierDetector


def load_table(name: str, seed: int):
    """(X, y with 1 = outlier, description)."""
    path = data_directory() / "odds" / f"{name}.mat"
    if path.is_file():
        contents = loadmat(path)
        return contents["X"].astype(float), contents["y"].ravel().astype(int), f"ODDS {name}"
    X, y = load_breast_cancer(return_X_y=True)  # 0 = malignant, 1 = benign
    malignant = np.random.default_rng(seed).choice(np.flatnonzero(y == 0), 30, replace=False)
    keep = np.concatenate([np.flatnonzero(y == 1), malignant])
    return X[keep], (y[keep] == 0).astype(int), f"breast cancer ({path} not found)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cardio", help="ODDS set name (default: cardio)")
    parser.add_argument("--seed", type=int, default=0, help="split and model seed")
    parser.add_argument("--quick", action="store_true", help="20 epochs instead of 100")
    arguments = parser.parse_args(argv)
    seed = arguments.seed
    if arguments.quick:  # one CPU thread: faster for these small networks on busy cores
        torch.set_num_threads(1)

    X, y, description = load_table(arguments.data, seed)
    X_train, X_test, _, y_test = train_test_split(X, y, test_size=0.4, stratify=y,
                                                  random_state=seed)
    share = float(y.mean())
    print(f"{description}: {len(X)} rows, {X.shape[1]} features, {share:.1%} outliers; "
          f"fitted on {len(X_train)} rows without labels, scored on {len(X_test)}")
    epochs = 20 if arguments.quick else 100
    detectors = {
        "aevae AE": AutoencoderOutlierDetector(model="ae", contamination=share, epochs=epochs,
                                               random_state=seed),
        "aevae VAE": AutoencoderOutlierDetector(model="vae", contamination=share,
                                                epochs=epochs, random_state=seed),
        "IsolationForest": IsolationForest(contamination=share, random_state=seed),
    }
    for name, detector in detectors.items():
        detector.fit(X_train)
        # score_samples is higher for more normal rows in both (scikit-learn's convention).
        scores = -detector.score_samples(X_test)
        print(f"{name:<16} ROC AUC {roc_auc_score(y_test, scores):.3f}   "
              f"average precision {average_precision_score(y_test, scores):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
