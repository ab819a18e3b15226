"""An autoencoder as a scikit-learn transformer: codes feeding a classifier, tuned by grid search.

``aevae.sklearn.AutoencoderTransformer`` standardises the features itself, so the pipeline is
just the transformer and a LogisticRegression, on scikit-learn's bundled 8x8 digits (no
download). GridSearchCV picks the code size (``latent_dim``) and the model ("ae" or "vae") by
cross-validated accuracy; the script prints every candidate, the best parameters and the
accuracy of the refitted pipeline on a held-out test split.

    python examples/sklearn_pipeline.py            # 1,347 training images, 3 folds, 100 epochs
    python examples/sklearn_pipeline.py --quick    # 600 training images, 2 folds, 10 epochs
"""

import argparse
import warnings

import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline

from aevae.sklearn import AutoencoderTransformer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer training images, folds and epochs (well under a minute)")
    parser.add_argument("--seed", type=int, default=0, help="split and model seed")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    if arguments.quick:  # one CPU thread: faster for these small networks on busy cores
        torch.set_num_threads(1)

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=arguments.seed)
    if quick:
        X_train, y_train = X_train[:600], y_train[:600]

    pipeline = Pipeline([
        ("codes", AutoencoderTransformer(hidden=(128,), epochs=10 if quick else 100,
                                         random_state=arguments.seed)),
        ("classify", LogisticRegression(max_iter=2000)),
    ])
    grid = {"codes__model": ["ae", "vae"],
            "codes__latent_dim": [4, 8] if quick else [4, 8, 16]}
    search = GridSearchCV(pipeline, grid, cv=2 if quick else 3, scoring="accuracy")
    with warnings.catch_warnings():  # an unscaled code can take LogisticRegression long
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X_train, y_train)

    print(f"digits: {len(X_train)} training and {len(X_test)} test images of 64 pixels")
    print("cross-validated accuracy per candidate:")
    for params, mean, std in zip(search.cv_results_["params"],
                                 search.cv_results_["mean_test_score"],
                                 search.cv_results_["std_test_score"]):
        print(f"  model={params['codes__model']:<3} latent_dim={params['codes__latent_dim']:<2}"
              f"  {mean:.3f} +- {std:.3f}")
    best = {name.split("__")[1]: value for name, value in search.best_params_.items()}
    print(f"best parameters: {best} (cross-validated accuracy {search.best_score_:.3f})")
    print(f"test accuracy: {search.score(X_test, y_test):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
