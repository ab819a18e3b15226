"""A study's answer from its files: read the plan and each run directory, then the task
tables, verdicts, claims and summary. ``aevae report`` calls this without training anything."""

from __future__ import annotations

from pathlib import Path

from ..io import read_json
from .runner import STUDY_FILE, read_run
from .tasks import TASKS, DataInfo, ModelInfo
from .verdicts import judge_claims, summary, task_results

RESULTS_FORMAT = "aevae.study-results/1"


def load_study(out) -> dict:
    path = Path(out) / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{out} holds no study: {STUDY_FILE} is missing (run `aevae "
                                "compare --out DIR` first)")
    return read_json(path)


def aggregate(out, since: float | None = None) -> dict:
    """Everything the report shows, as JSON-ready data. Runs not (yet) finished are listed
    as missing and left out of the figures; runs started before ``since`` (a time.time())
    count as reused."""
    study = load_study(out)
    labels = {entry["key"]: entry["label"] for entry in study["roster"]}
    by_entry: dict[str, dict[int, dict]] = {key: {} for key in labels}
    runs = []
    for planned in study["runs"]:
        found = read_run(Path(planned["path"]))
        if found is None:
            runs.append({**planned, "label": labels[planned["entry"]], "status": "missing"})
            continue
        record, result = found
        intervals = record.get("intervals", [[record["started"], record["finished"]]])
        by_entry[planned["entry"]][int(planned["seed"])] = result["metrics"]
        runs.append({
            **planned,
            "label": labels[planned["entry"]],
            "status": "finished",
            "reused": since is None or all(start < since for start, _ in intervals),
            "trained_now": since is not None and intervals[0][0] >= since,
            "intervals": intervals,
            "epochs_run": record["epochs_run"],
            "best_epoch": record["best_epoch"],
            "train_seconds": record["train_seconds"],
            "evaluation_seconds": record["evaluation_seconds"],
            "device": record["device"],
            "versions": record["versions"],
            "history": record["history"],
            "seconds_by_group": result.get("seconds", {}),
        })
    info = DataInfo(**study["data_info"])
    models = {key: ModelInfo(**values) for key, values in study["models"].items()}
    measured = {key: seeds for key, seeds in by_entry.items() if seeds}
    chosen = {name: TASKS[name] for name in study.get("tasks", TASKS) if name in TASKS}
    tasks = task_results(measured, models, info, chosen)
    return {
        "format": RESULTS_FORMAT,
        "study": {key: study[key] for key in ("settings", "budget", "preset", "data",
                                              "shared_options", "roster", "store",
                                              "metric_groups", "device")},
        "labels": labels,
        "runs": runs,
        "tasks": tasks,
        "claims": judge_claims(tasks),
        "summary": summary(tasks, labels),
        "rate_distortion": _rate_distortion(by_entry),
    }


def _rate_distortion(by_entry: dict[str, dict[int, dict]]) -> dict:
    """Per entry and seed: (KL, reconstruction term) for models with a KL term."""
    points = {}
    for key, seeds in by_entry.items():
        pairs = []
        for seed, metrics in sorted(seeds.items()):
            reconstruction = metrics.get("reconstruction", {})
            rate = reconstruction.get("rate")
            distortion = reconstruction.get("negative_log_likelihood_of_reconstruction")
            if rate is not None and distortion is not None:
                pairs.append({"seed": seed, "rate": rate, "distortion": distortion})
        if pairs:
            points[key] = pairs
    return points
