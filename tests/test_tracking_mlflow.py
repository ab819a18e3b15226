"""MLflow tracking: fit(log_to="mlflow") and `aevae compare --track mlflow`, read back from a
file store with MlflowClient; and the one-line error without the mlflow extra."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys

import numpy as np
import pytest

from aevae.cli import main
from aevae.models import make
from aevae.study import StudySettings, run_study
from aevae.training import HISTORY_FILE, MLflowLogger, fit

MISSING = "MLflow tracking needs the mlflow extra: pip install 'aevae[mlflow]'"


def _mlflow_installed() -> bool:
    try:
        return importlib.util.find_spec("mlflow") is not None
    except ValueError:  # sys.modules["mlflow"] is None: imports of it fail
        return False


needs_mlflow = pytest.mark.skipif(
    not _mlflow_installed(), reason="mlflow is not installed (pip install 'aevae[mlflow]')")


def tiny_data():
    rng = np.random.default_rng(0)
    return rng.random((96, 6)).astype(np.float32)


def tiny_model(name: str = "vae"):
    return make(name, input_shape=(6,), latent_dim=2, hidden=(8,), likelihood="bernoulli")


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A file store under tmp_path as MLFLOW_TRACKING_URI, and a client that reads it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "tracked" / "mlruns").as_uri())
    for variable in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "tracked" / "mlruns"


def client_for(path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # only to read back: fit needs none
    return MlflowClient(path.resolve().as_uri())


def history_rows(directory) -> list[dict]:
    with open(directory / HISTORY_FILE, newline="") as file:
        return list(csv.DictReader(file))


@needs_mlflow
def test_fit_logs_params_and_one_metric_per_epoch(store, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    x = tiny_data()
    model = tiny_model().fit(x[:80], validation=x[80:], epochs=3, batch_size=32,
                             out=tmp_path / "run", progress=False, log_to="mlflow")
    client = client_for(store, monkeypatch)
    [run] = client.search_runs(["0"])
    assert run.info.status == "FINISHED" and run.info.run_name == "vae"
    params = run.data.params
    assert params["model"] == "vae" and params["model.latent_dim"] == "2"
    assert params["model.hidden"] == "[8]"
    assert params["training.epochs"] == "3" and params["training.batch_size"] == "32"
    assert params["training.learning_rate"] == "0.001" and params["training.device"] == "cpu"
    rows = history_rows(tmp_path / "run")
    assert len(rows) == 3 == len(model.history_.epochs)
    logged = set(run.data.metrics)
    assert logged == set(rows[0]) - {"epoch"}  # every column, the seconds included
    for key in logged:
        history = client.get_metric_history(run.info.run_id, key)
        assert [metric.step for metric in history] == [1, 2, 3]
        assert [metric.value for metric in history] == pytest.approx(
            [float(row[key]) for row in rows], rel=1e-12)


@needs_mlflow
def test_fit_without_a_tracking_uri_logs_to_mlruns_here(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if mlflow.tracking.is_tracking_uri_set():
        pytest.skip("this process set a global MLflow tracking URI (mlflow.set_tracking_uri)")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    fit(tiny_model("ae"), tiny_data(), epochs=2, batch_size=48, progress=False,
        log_to="mlflow")
    [run] = client_for(tmp_path / "mlruns", monkeypatch).search_runs(["0"])
    assert run.data.params["model"] == "ae" and run.info.status == "FINISHED"
    assert not (tmp_path / "mlflow.db").exists()  # not MLflow 3's own default


@needs_mlflow
def test_fit_joins_the_active_run_and_leaves_it_open(store, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the fluent API's own calls
    with mlflow.start_run(run_name="mine") as active:
        fit(tiny_model(), tiny_data(), epochs=2, batch_size=48, progress=False,
            log_to="mlflow")
        client = client_for(store, monkeypatch)
        assert client.get_run(active.info.run_id).info.status == "RUNNING"
    run = client.get_run(active.info.run_id)
    assert run.info.status == "FINISHED" and run.data.params["model"] == "vae"
    assert len(client.get_metric_history(active.info.run_id, "train_loss")) == 2
    assert len(client.search_runs([active.info.experiment_id])) == 1


@needs_mlflow
@pytest.mark.parametrize("error, status", [(RuntimeError("disk full"), "FAILED"),
                                           (KeyboardInterrupt(), "KILLED")])
def test_a_fit_stopped_by_an_error_ends_its_run(store, monkeypatch, error, status):
    from aevae.training import Callback

    class Breaks(Callback):
        def epoch_end(self, state, record):
            raise error

    with pytest.raises(type(error)):
        fit(tiny_model(), tiny_data(), epochs=3, batch_size=48, progress=False,
            log_to="mlflow", callbacks=[Breaks()])
    [run] = client_for(store, monkeypatch).search_runs(["0"])
    assert run.info.status == status  # not left RUNNING
    assert len(client_for(store, monkeypatch).get_metric_history(
        run.info.run_id, "train_loss")) == 1


@needs_mlflow
def test_a_diverged_fit_ends_its_run_failed(store, monkeypatch, poison_loss):
    from aevae.training import TrainingDivergedError

    with pytest.raises(TrainingDivergedError):
        fit(poison_loss(tiny_model()), tiny_data(), epochs=3, batch_size=48, progress=False,
            log_to="mlflow")
    [run] = client_for(store, monkeypatch).search_runs(["0"])
    assert run.info.status == "FAILED"


@needs_mlflow
def test_a_closed_form_fit_logs_its_solve(store, monkeypatch):
    fit(make("pca", input_shape=(6,), latent_dim=2), tiny_data(), progress=False,
        log_to="mlflow")
    [run] = client_for(store, monkeypatch).search_runs(["0"])
    assert run.data.params["model"] == "pca" and "training.fit" in run.data.params
    assert set(run.data.metrics) == {"train_loss", "seconds"}


def test_log_to_accepts_only_mlflow():
    with pytest.raises(ValueError, match="unknown tracker 'tensorboard'; use 'mlflow'"):
        fit(tiny_model(), tiny_data(), epochs=1, progress=False, log_to="tensorboard")
    with pytest.raises(ValueError, match="unknown tracker"):
        StudySettings(track="wandb")


def test_fit_without_the_extra_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    model = tiny_model()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(ImportError) as raised:
        model.fit(tiny_data(), epochs=1, out=tmp_path / "run", progress=False, log_to="mlflow")
    assert str(raised.value) == MISSING
    with pytest.raises(ImportError, match="mlflow extra"):
        MLflowLogger()
    assert list(tmp_path.iterdir()) == []  # no run directory, no mlruns
    assert all((value == before[key]).all() for key, value in model.state_dict().items())


def test_compare_without_the_extra_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    code = main(["compare", "--data", "digits", "--models", "ae", "--seeds", "1", "--epochs",
                 "1", "--out", str(tmp_path / "study"), "--track", "mlflow", "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == f"aevae: error: {MISSING}\n" and captured.out == ""
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ImportError, match="mlflow extra"):  # the API says the same
        run_study(StudySettings(data="digits", models="ae", seeds=1, track="mlflow"),
                  tmp_path / "study", progress=False)
    assert list(tmp_path.iterdir()) == []


@needs_mlflow
def test_a_tracked_study_is_one_parent_run_with_a_child_per_run(store, tmp_path, monkeypatch,
                                                               tiny_budget):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    out = tmp_path / "digits-study"
    # Two worker processes: the runs they train are logged by the study's own process.
    settings = StudySettings(data="digits", models="pca,vae", seeds=1, budget=tiny_budget,
                             tasks="compression,likelihood", workers=2, track="mlflow")
    results = run_study(settings, out, progress=False)
    client = client_for(store, monkeypatch)
    runs = client.search_runs(["0"])
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.run_name == "digits-study" and parent.info.status == "FINISHED"
    assert parent.data.params["dataset"] == results["study"]["data"]["name"]
    assert parent.data.params["budget.epochs"] == "2"
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id)}
    assert artifacts == {"report.html", "results.json"}
    local = client.download_artifacts(parent.info.run_id, "results.json", str(tmp_path))
    with open(local) as file:
        assert json.load(file)["format"] == results["format"]

    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId")
                == parent.info.run_id]
    assert len(children) == len(results["runs"]) == 2
    by_model = {child.data.params["model"]: child for child in children}
    assert set(by_model) == {"pca", "vae"}
    for planned in results["runs"]:
        child = next(run for run in children
                     if run.data.tags["aevae.run_id"] == planned["id"])
        params = child.data.params
        assert params["entry"] == planned["entry"] and params["seed"] == "0"
        assert params["dataset"] == results["study"]["data"]["name"]
        assert params["budget"] == "tiny" and "training.seed" in params
        assert child.data.tags["aevae.reused"] == "false"
        rows = history_rows(out / "runs" / planned["id"])
        losses = client.get_metric_history(child.info.run_id, "train_loss")
        assert [metric.value for metric in losses] == pytest.approx(
            [float(row["train_loss"]) for row in rows], rel=1e-12)
        with open(out / "runs" / planned["id"] / "metrics.json") as file:
            figures = json.load(file)["metrics"]
        rate = figures["reconstruction"].get("rate")
        if isinstance(rate, float) and math.isfinite(rate):
            assert child.data.metrics["reconstruction.rate"] == pytest.approx(rate)
        assert all(math.isfinite(value) for value in child.data.metrics.values())
    vae = by_model["vae"]
    assert vae.data.params["model.latent_dim"] == "8" and vae.data.params["training.epochs"]
    assert len(client.get_metric_history(vae.info.run_id, "validation_loss")) == int(
        vae.data.metrics["epochs_run"])

    # Again: every run is reused from the store, and logged all the same.
    again = run_study(settings, out, progress=False)
    assert all(run["reused"] for run in again["runs"])
    runs = client.search_runs(["0"])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 2 and len(runs) == 6
    [second] = [run for run in parents if run.info.run_id != parent.info.run_id]
    reused = [run for run in runs if run.data.tags.get("mlflow.parentRunId")
              == second.info.run_id]
    assert {run.data.tags["aevae.reused"] for run in reused} == {"true"}
    for run in reused:
        first = next(child for child in children
                     if child.data.tags["aevae.run_id"] == run.data.tags["aevae.run_id"])
        assert run.data.params == first.data.params
        assert run.data.metrics == first.data.metrics
