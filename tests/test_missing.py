"""Missing data: MIWAE's bound counts observed entries only, imputation leaves them
bit-identical, iterated reconstruction for the other models, the CLI and the study task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aevae
from aevae.cli import main
from aevae.data.batch import Batch


@pytest.fixture(scope="module")
def table():
    from sklearn.datasets import load_wine

    values = load_wine().data.astype(np.float32)
    values = (values - values.mean(0)) / values.std(0)
    observed = np.random.default_rng(0).random(values.shape) >= 0.3
    return values, observed


@pytest.fixture(scope="module")
def miwae(table):
    values, observed = table
    model = aevae.make("miwae", input_shape=(13,), latent_dim=4, hidden=(32,),
                       likelihood="gaussian-learned", importance_samples=5, seed=0)
    return model.fit(np.where(observed, values, np.nan), observed=observed, epochs=60,
                     batch_size=32, progress=False)


def test_missing_entries_change_no_term(miwae, table):
    values, observed = table
    other = np.where(observed, values, 1e3).astype(np.float32)  # garbage where missing
    for fill in (values, other):
        torch.manual_seed(0)
        terms = miwae.loss_terms(fill, observed=observed)
        if fill is values:
            first = terms
    for key in first:
        np.testing.assert_array_equal(first[key], terms[key])
    # Without the mask every entry counts, and the bound is another number.
    torch.manual_seed(0)
    complete = miwae.loss_terms(values)
    assert not np.allclose(complete["reconstruction"], first["reconstruction"])


def test_imputation_keeps_observed_entries_and_beats_the_mean(miwae, table):
    values, observed = table
    holes = np.where(observed, values, np.nan)
    imputed = miwae.impute(holes, observed, samples=200)
    assert np.array_equal(imputed[observed], values[observed])  # bit for bit
    assert np.isfinite(imputed).all()
    error = np.sqrt(np.mean((imputed - values)[~observed] ** 2))
    mean_error = np.sqrt(np.mean(values[~observed] ** 2))  # the mean of standardised data is 0
    assert error < 0.9 * mean_error
    several = miwae.impute(holes[:6], observed[:6], samples=100, multiple=4)
    assert several.shape == (6, 4, 13)
    assert np.array_equal(several[:, 2][observed[:6]], values[:6][observed[:6]])
    assert not np.allclose(several[:, 0], several[:, 1])  # draws differ where missing
    np.testing.assert_array_equal(miwae.impute(holes, observed, samples=50, seed=3),
                                  miwae.impute(holes, observed, samples=50, seed=3))


def test_any_model_imputes_by_iterated_reconstruction(table):
    values, observed = table
    model = aevae.make("ae", input_shape=(13,), latent_dim=4, hidden=(32,),
                       likelihood="gaussian", seed=0)
    model.fit(values, epochs=40, batch_size=32, progress=False)
    imputed = model.impute(np.where(observed, values, np.nan), observed, iterations=10)
    assert np.array_equal(imputed[observed], values[observed])
    assert np.sqrt(np.mean((imputed - values)[~observed] ** 2)) < 1.0
    with pytest.raises(ValueError, match="shaped like x"):
        model.impute(values, observed[:, :5])
    with pytest.raises(ValueError, match="miwae does not use labels|ae does not use observed"):
        model.fit(values, observed=observed, epochs=1, progress=False)


def test_miwae_trains_on_batches_with_and_without_masks(table):
    values, observed = table
    model = aevae.make("miwae", input_shape=(13,), latent_dim=2, hidden=(8,),
                       likelihood="gaussian", fill="learned", seed=0)
    output = model.batch_loss(Batch(torch.from_numpy(values)))
    assert torch.isfinite(output.loss).all()
    with pytest.raises(ValueError, match="unknown fill"):
        aevae.make("miwae", input_shape=(13,), fill="mean")


def test_cli_impute(miwae, table, tmp_path, capsys):
    values, observed = table
    miwae.save(tmp_path / "run")
    np.save(tmp_path / "holes.npy", np.where(observed, values, np.nan))
    assert main(["impute", str(tmp_path / "run"), "--input", str(tmp_path / "holes.npy"),
                 "--out", str(tmp_path / "filled.npy"), "--samples", "50"]) == 0
    filled = np.load(tmp_path / "filled.npy")
    assert np.array_equal(filled[observed], values[observed]) and np.isfinite(filled).all()
    assert "imputed" in capsys.readouterr().out
    np.save(tmp_path / "full.npy", values)
    assert main(["impute", str(tmp_path / "run"), "--input", str(tmp_path / "full.npy"),
                 "--out", str(tmp_path / "x.npy")]) == 2
    assert "no entry is missing" in capsys.readouterr().err


def test_the_study_answers_the_imputation_question(tmp_path, tiny_budget):
    from aevae.study import StudySettings, run_study

    results = run_study(StudySettings(data="digits", models="ae,vae", seeds=2,
                                      budget=tiny_budget, tasks="imputation"),
                        tmp_path / "study", progress=False)
    imputation = results["tasks"][0]
    assert imputation["name"] == "imputation"
    for metric in imputation["metrics"]:
        for row in metric["rows"].values():
            assert row["available"] and 0 < row["mean"] < 1
