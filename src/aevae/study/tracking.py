"""A study in MLflow (``aevae compare --track mlflow``): one parent run named after the study
folder, and nested in it one run per planned run of the study.

Everything is logged by the study's own process once the study is done, from the files of the
run store (run.json, metrics.json, history.csv, training.json, config.json), so worker
processes and Ray tasks need no MLflow, and a run reused from the store is logged exactly as
one trained now: the MLflow experiment is complete whichever runs were reused.

Each nested run: params ``model``, ``model.<option>`` (its config), ``training.<option>``
(training.json), ``entry`` and ``entry.<option>`` (the roster entry), ``seed``, ``dataset``,
``data_fingerprint``, ``budget``, ``epoch_cap``; the metrics of every epoch (step = epoch, from
history.csv); the evaluation's finite numbers, flattened with '.'-joined keys
(``reconstruction.rate``, ...), with ``train_seconds``, ``evaluation_seconds``, ``epochs_run``
and ``best_epoch``; tags ``aevae.run_id``, ``aevae.run_path``, ``aevae.reused``. A planned run
that failed (diverged) is logged FAILED with its error. The parent run: the study's settings,
budget and data as params, its timing as metrics, and report.html and results.json as
artifacts.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..io import read_json
from ..tracking import MLflowTracking, finite_numbers, flat_params, model_params
from ..training import HISTORY_FILE, TRAINING_FILE

REPORT_FILES = ("report.html", "results.json")


def read_history(directory: Path) -> list[dict[str, float]]:
    """history.csv's rows as numbers (a blank cell: left out)."""
    path = directory / HISTORY_FILE
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            values = {}
            for key, text in row.items():
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    values[key] = value
            if "epoch" in values:
                rows.append(values)
    return rows


def _history_from_record(record: dict) -> list[dict[str, float]]:
    """The columns run.json keeps, for a run directory without history.csv."""
    columns = record.get("history") or {}
    epochs = columns.get("epoch") or []
    return [{key: float(values[index]) for key, values in columns.items()
             if index < len(values) and isinstance(values[index], (int, float))}
            for index in range(len(epochs))]


def run_params(run: dict, record: dict, directory: Path, entry_options: dict) -> dict:
    params = {"entry": run["entry"], "seed": run["seed"]}
    params.update(flat_params(entry_options, "entry."))
    config = directory / "config.json"
    if config.is_file():
        params.update(model_params(read_json(config)))
    else:
        params["model"] = record["model"]
        params.update(flat_params(record.get("options", {}), "model."))
    training = directory / TRAINING_FILE
    params.update(flat_params(read_json(training) if training.is_file()
                              else record.get("training", {}), "training."))
    for key in ("dataset", "data_fingerprint", "budget", "epoch_cap"):
        if key in record:
            params[key] = record[key]
    return {key: str(value) for key, value in params.items()}


def run_metrics(record: dict, result: dict, history: list[dict[str, float]]
                ) -> list[tuple[str, float, int, float | None]]:
    """Per-epoch metrics (stamped at the epoch's end, from the run's start and the epochs'
    seconds) and the final figures (step 0, stamped at the run's end)."""
    metrics = []
    clock = record.get("started")
    for row in history:
        if clock is not None and "seconds" in row:
            clock += row["seconds"]
        step = int(row["epoch"])
        metrics += [(key, value, step, clock) for key, value in row.items() if key != "epoch"]
    figures = finite_numbers(result.get("metrics", {}))
    figures.update(finite_numbers({key: record.get(key) for key in (
        "train_seconds", "evaluation_seconds", "epochs_run", "best_epoch")}))
    finished = record.get("finished")
    metrics += [(key, value, 0, finished) for key, value in figures.items()]
    return metrics


def log_study(out, results: dict, tracking: MLflowTracking | None = None) -> str:
    """Log the study in ``out`` (its ``results``, as ``run_study`` returns them) to MLflow;
    returns the parent run's id. ``tracking``: the client (default: a new one)."""
    from .runner import read_run

    tracking = tracking or MLflowTracking()
    out = Path(out).resolve()
    study = results["study"]
    parent = tracking.start(out.name, parent=tracking.active_run_id,
                            tags={"aevae.study": str(out)})
    data = study.get("data", {})
    params = flat_params({key: value for key, value in study["settings"].items()
                          if key != "budget"}, "settings.")
    params.update(flat_params({key: value for key, value in study["budget"].items()
                               if key != "description"}, "budget."))
    params.update({"dataset": data.get("name"), "data_fingerprint": data.get("fingerprint"),
                   "likelihood": data.get("likelihood"), "runs": len(results["runs"])})
    tracking.log(parent, params={key: str(value) for key, value in params.items()},
                 metrics=[(f"timing.{key}", value, 0, None) for key, value in
                          finite_numbers(results.get("timing") or {}).items()])
    entries = {entry["key"]: entry.get("options") or {} for entry in study.get("roster", [])}
    for run in results["runs"]:
        _log_run(tracking, parent, run, entries.get(run["entry"], {}), read_run)
    for name in REPORT_FILES:
        if (out / name).is_file():
            tracking.artifact(parent, out / name)
    tracking.end(parent, "FINISHED")
    return parent


def _log_run(tracking: MLflowTracking, parent: str, run: dict, entry_options: dict,
             read_run) -> None:
    name = f"{run.get('label', run['entry'])}, seed {run['seed']}"
    directory = Path(run["path"])
    tags = {"aevae.run_id": run["id"], "aevae.run_path": str(directory)}
    found = read_run(directory) if run["status"] == "finished" else None
    if found is None:
        if run.get("error") is None:  # neither done nor failed: nothing to say yet
            return
        child = tracking.start(name, parent=parent, tags=tags)
        tracking.log(child, params={"entry": run["entry"], "seed": str(run["seed"])},
                     tags={"aevae.error": run["error"][:5000]})
        tracking.end(child, "FAILED")
        return
    record, result = found
    history = read_history(directory) or _history_from_record(record)
    child = tracking.start(name, parent=parent, start_time=record.get("started"),
                           tags={**tags, "aevae.reused": str(bool(run.get("reused"))).lower()})
    tracking.log(child, params=run_params(run, record, directory, entry_options),
                 metrics=run_metrics(record, result, history))
    tracking.end(child, "FINISHED", end_time=record.get("finished"))
