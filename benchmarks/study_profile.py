"""Where a study's time goes: seconds per run in training and in each evaluation group.

Runs a study (default: the full budget on digits, one seed, pca, ae, vae and wae_mmd, one worker
so that runs do not share the cores) or reads a finished one (``--from DIR``), then tabulates
each run's training seconds (run.json) and every metric group's seconds (metrics.json), and
each part's share of the whole; the last line projects the time of the same roster with
``--project-seeds`` seeds on ``--project-workers`` workers (default 3 on 2, the six-hour goal of
a full MNIST study on a 2-core machine).

Writes benchmarks/results/study_profile_<data>.{json,md}.

    python benchmarks/study_profile.py [--data digits] [--models pca,ae,vae,wae_mmd]
                                       [--budget full] [--seeds 1] [--from STUDY_DIR]
                                       [--project-seeds 3] [--project-workers 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from aevae.study import StudySettings, run_study

RESULTS = Path(__file__).resolve().parent / "results"


def profile(study: Path) -> list[dict]:
    """One row per finished run of ``study`` (those its results.json lists, else those in its
    runs folder): model, seed, training seconds, seconds per metric group."""
    rows = []
    results = study / "results.json"
    if results.is_file():  # the study's own runs, wherever its run store keeps them
        runs = [Path(run["path"]) / "run.json" for run in json.loads(results.read_text())["runs"]]
        runs = [run for run in runs if run.is_file()]
    else:
        runs = list((study / "runs").glob("*/run.json"))
    for run in runs:
        record = json.loads(run.read_text())
        metrics_path = run.parent / "metrics.json"
        groups = json.loads(metrics_path.read_text())["seconds"] if metrics_path.is_file() else {}
        rows.append({"model": record["entry"], "seed": record["seed"],
                     "epochs_run": record["epochs_run"], "training": record["train_seconds"],
                     "evaluation": record["evaluation_seconds"], "groups": groups,
                     "started": record.get("started") or 0.0})
    rows.sort(key=lambda row: (row["seed"], row["started"], row["model"]))  # as the study ran
    return rows


def _hours_or_minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def markdown(rows: list[dict], title: str, projected_seeds: int = 3, workers: int = 2) -> str:
    groups = list(dict.fromkeys(name for row in rows for name in row["groups"]))
    total = sum(row["training"] + row["evaluation"] for row in rows) or 1.0
    lines = [f"# {title}", "", "Seconds per run (one worker, one thread); the last row is each "
             "part's share of the study's training and evaluation time. \"other\" is evaluation "
             "time outside the metric groups (encoding the training codes, figure arrays).", "",
             "| run | epochs | training | " + " | ".join(groups) + " | other | total |",
             "|---" * (len(groups) + 5) + "|"]
    for row in rows:
        other = row["evaluation"] - sum(row["groups"].values())
        cells = [f"{row['groups'].get(name, 0.0):.1f}" for name in groups]
        lines.append(f"| {row['model']} seed {row['seed']} | {row['epochs_run']} | "
                     f"{row['training']:.1f} | " + " | ".join(cells)
                     + f" | {other:.1f} | {row['training'] + row['evaluation']:.1f} |")
    shares = [sum(row["groups"].get(name, 0.0) for row in rows) / total for name in groups]
    other = sum(row["evaluation"] - sum(row["groups"].values()) for row in rows) / total
    training = sum(row["training"] for row in rows) / total
    lines.append(f"| share of the whole | | {training:.0%} | "
                 + " | ".join(f"{share:.0%}" for share in shares) + f" | {other:.0%} | 100% |")
    seeds = len({row["seed"] for row in rows}) or 1
    wall = total * projected_seeds / seeds / workers
    lines += ["", f"In all: {len(rows)} runs, {total / 60:.1f} min of training and evaluation "
              f"({seeds} seed{'s' if seeds > 1 else ''}). At that rate the same roster with "
              f"{projected_seeds} seeds on {workers} workers (one thread each, one per core) "
              f"takes about **{_hours_or_minutes(wall)}** (runs are independent; the study's own "
              "set-up and report, a minute or two, come on top)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--models", default="pca,ae,vae,wae_mmd")
    parser.add_argument("--budget", default="full")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--from", dest="study", help="a finished study folder to read instead")
    parser.add_argument("--project-seeds", type=int, default=3,
                        help="seeds of the projected study (default: 3)")
    parser.add_argument("--project-workers", type=int, default=2,
                        help="workers of the projected study (default: 2, one per core here)")
    arguments = parser.parse_args()
    if arguments.study and not (Path(arguments.study) / "study.json").is_file():
        parser.error(f"{arguments.study} is not a study folder (no study.json)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        study = Path(arguments.study) if arguments.study else Path(folder) / "study"
        if not arguments.study:
            run_study(StudySettings(data=arguments.data, models=arguments.models,
                                    seeds=arguments.seeds, budget=arguments.budget,
                                    device=arguments.device, workers=1), study, progress=False)
        settings = json.loads((study / "study.json").read_text()).get("settings", {})
        rows = profile(study)
    name = settings.get("data", arguments.data)
    title = (f"Where a study's time goes: {name}, {settings.get('budget', arguments.budget)} "
             "budget")
    result = {"settings": {**vars(arguments), "study": settings}, "rows": rows,
              "seconds": time.perf_counter() - started,
              "machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "processor": platform.processor() or platform.machine()}}
    stem = Path(str(name)).stem.replace("/", "-")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"study_profile_{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(rows, title, arguments.project_seeds, arguments.project_workers)
    (RESULTS / f"study_profile_{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
