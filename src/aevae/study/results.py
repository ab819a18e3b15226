"""A study's answer from its files: read the plan and each run directory, then the task
tables, verdicts, claims and summary. ``aevae report`` calls this without training anything."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .answer import bottom_line, matchings, pairing_problem
from .health import assess
from .runner import read_run
from .store import load_study
from .tasks import TASKS, DataInfo, ModelInfo
from .verdicts import NOT_TESTED, health_sentences, judge_claims, summary, task_results

RESULTS_FORMAT = "aevae.study-results/1"


def aggregate(out, since: float | None = None, invocation: str | None = None) -> dict:
    """Everything the report shows, as JSON-ready data. Runs not (yet) finished are listed
    as missing and left out of the figures; runs with no interval of work from ``since`` (a
    time.time()) on count as reused. With ``invocation`` (``run_study``'s mark on its runs),
    intervals another study marked do not count either: a study sharing the store trained
    them."""
    study = load_study(out)
    labels = {entry["key"]: entry["label"] for entry in study["roster"]}
    by_entry: dict[str, dict[int, dict]] = {key: {} for key in labels}
    records: dict[str, dict[int, tuple[dict, dict]]] = {key: {} for key in labels}
    runs = []
    for planned in study["runs"]:
        found = read_run(Path(planned["path"]))
        if found is None:
            runs.append({**planned, "label": labels[planned["entry"]], "status": "missing"})
            continue
        record, result = found
        intervals = record.get("intervals", [[record["started"], record["finished"]]])
        marks = record.get("invocations") or []
        marks = [*marks, *[None] * (len(intervals) - len(marks))]
        ours = [since is not None and start >= since
                and (invocation is None or mark is None or mark == invocation)
                for (start, _), mark in zip(intervals, marks)]
        by_entry[planned["entry"]][int(planned["seed"])] = result["metrics"]
        records[planned["entry"]][int(planned["seed"])] = (record, result["metrics"])
        runs.append({
            **planned,
            "label": labels[planned["entry"]],
            "status": "finished",
            "reused": not any(ours),
            "trained_now": ours[0],
            "intervals": intervals,
            "intervals_now": [interval for interval, now in zip(intervals, ours) if now],
            "epochs_run": record["epochs_run"],
            "best_epoch": record["best_epoch"],
            "resumed_after_epoch": record.get("resumed_after_epoch"),
            "train_seconds": record["train_seconds"],
            "evaluation_seconds": record["evaluation_seconds"],
            "device": record["device"],
            "versions": record["versions"],
            "history": record["history"],
            "seconds_by_group": result.get("seconds", {}),
        })
    # Studies from before data_info held the dimensions: the data's recorded shape gives them.
    shape = study["data"].get("shape") if isinstance(study["data"], dict) else None
    info = DataInfo(**{"dimensions": math.prod(shape) if shape else None,
                       **study["data_info"]})
    # Labelled from the roster (a study written before models carried their label too).
    models = {key: ModelInfo(**{**values, "label": labels.get(key, "")})
              for key, values in study["models"].items()}
    failures = _failures(study, runs)
    # An entry whose every run failed stays in the tables, with the failure as its reason.
    measured = {key: seeds for key, seeds in by_entry.items() if seeds or key in failures}
    health = assess({key: seeds for key, seeds in records.items() if seeds}, models, failures)
    chosen = {name: TASKS[name] for name in study.get("tasks", TASKS) if name in TASKS}
    tasks = task_results(measured, models, info, chosen, health=health)
    pairs = matchings(study["roster"], study.get("preset"))
    answers = [{**pair, "bottom_line": bottom_line(tasks, pair["roles"]),
                "claims": judge_claims(tasks, roles=pair["roles"])} for pair in pairs]
    no_pair = None if pairs else pairing_problem(study["roster"], study.get("preset"))
    return {
        "format": RESULTS_FORMAT,
        "study": {**{key: study[key] for key in ("settings", "budget", "preset", "data",
                                                 "shared_options", "roster", "store",
                                                 "metric_groups", "device", "models")},
                  "versions": study.get("versions")},  # the install's that ran the study
        "labels": labels,
        "runs": runs,
        "tasks": tasks,
        # The AE-vs-VAE answer per matching (one, or one per value of a sweep).
        "answers": answers,
        "health": health,
        "health_sentences": health_sentences(health, labels),
        "claims": answers[0]["claims"] if answers else _untested(judge_claims(tasks), no_pair),
        "no_pair": no_pair,
        "summary": summary(tasks, labels),
        "skipped": [{"task": task["name"], "title": task["title"], "reason": task["skipped"]}
                    for task in tasks if task["skipped"]],
        "rate_distortion": _rate_distortion(by_entry),
        "library_versions": version_groups(runs),
    }


def version_groups(runs: list[dict]) -> list[dict]:
    """The finished runs grouped by the library versions that trained them, largest first: a
    store reuses runs across upgrades, and other versions can give other numbers."""
    groups: dict[str, dict] = {}
    for run in runs:
        if run["status"] != "finished":
            continue
        versions = run.get("versions") or {}
        group = groups.setdefault(json.dumps(versions, sort_keys=True),
                                  {"versions": versions, "runs": []})
        group["runs"].append(f"{run['label']} seed {run['seed']}")
    return sorted(groups.values(), key=lambda group: -len(group["runs"]))


def _failures(study: dict, runs: list[dict]) -> dict[str, dict[int, str]]:
    """Per entry and seed: the error of planned runs the store marks failed (a diverged run)."""
    missing = [run for run in runs if run["status"] == "missing"]
    path = Path(study.get("store") or "")
    if not missing or not path.is_file():
        return {}
    from .store import INTERRUPTED, RunStore, StoreError

    failures: dict[str, dict[int, str]] = {}
    try:
        with RunStore(path, read_only=True) as store:  # a report writes no run
            for run in missing:
                row = store.get(run["id"])
                # An interrupted run (its process gone) is unfinished work, not a failed one:
                # it is missing, and the next study trains it.
                if row is not None and row.status == "failed" and row.error != INTERRUPTED:
                    run["error"] = row.error
                    failures.setdefault(run["entry"], {})[int(run["seed"])] = row.error or ""
    except (StoreError, OSError):
        return {}
    return failures


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


def _untested(claims: list[dict], reason: str) -> list[dict]:
    """Every claim compares an AE with a VAE: without a pair none is tested, for one reason."""
    return [{**claim, "status": NOT_TESTED, "parts_tested": 0,
             "parts": [{**part, "status": NOT_TESTED, "reason": reason}
                       for part in claim["parts"]]} for claim in claims]
