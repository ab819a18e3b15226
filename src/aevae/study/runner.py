"""Running a study: prepare the data, plan roster x seeds, train and evaluate what the store has
not finished, and aggregate the answer.

Every run is claimed in the run store before it starts and marked finished only once its
metrics and figures are written, so a study killed at any point resumes by doing the missing
runs (a run killed mid-training resumes from its last epoch checkpoint).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import Dataset, load_dataset
from ..data.loading import DATA_FILE, absolute_path, recorded_data, recorded_labels
from ..data.preparation import choose_likelihood as _choose_likelihood
from ..data.preparation import data_kind, standardise, value_kind
from ..data.validation import rows_also_in
from ..io import atomic_write_json, one_line, read_json
from ..metrics.evaluate import METRIC_GROUPS, EvaluationContext, EvaluationSettings, evaluate
from ..models import model_class
from ..training import CHECKPOINT_FILE, Callback, TrainingDivergedError, resolve_device
from ..training.devices import usable_cores
from .artifacts import figure_arrays, save_figure_arrays
from .roster import DEFAULT_ROSTER, PRESETS, RosterEntry, parse_roster
from .settings import Budget, StudySettings, default_network
from .store import RUN_FILE, STORE_FILE, STUDY_FILE, RunStore
from .tasks import TASKS, DataInfo, ModelInfo, lookup, missing_needs
from .versions import other_versions, versions

RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.json"
BEGUN_FILE = "begun.json"  # the versions that began a run (a resume may be another install)
# Bump when what a finished run's files mean changes: old runs are then not reused.
RUN_FORMAT = 2
# Share of the data carved out as test (user data without one) and validation splits.
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
# Below these the figures are noise and some cannot be computed at all (a 10-component
# ex-post mixture, holes between three codes): refused before any training.
MIN_TRAINING_EXAMPLES = 20
MIN_TEST_EXAMPLES = 5
# Names the ``run_study`` call a process works for (its worker processes inherit it): each run
# records it beside its intervals, so a study counts only the work it did itself, not that of
# another study sharing the store.
INVOCATION_VARIABLE = "AEVAE_STUDY_INVOCATION"


def current_invocation() -> str | None:
    import os

    return os.environ.get(INVOCATION_VARIABLE)


# ----- the data ------------------------------------------------------------------------------
@dataclass
class PreparedData:
    dataset: Dataset
    info: DataInfo
    description: dict


def fingerprint(dataset: Dataset, preparation: dict) -> str:
    """A hash of the prepared splits, labels and preparation: what the runs were fed."""
    digest = hashlib.sha256()
    digest.update(json.dumps(preparation, sort_keys=True).encode())
    digest.update(str(dataset.dynamic_binarization).encode())
    for name, split in dataset.splits().items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(split.x).tobytes())
        for extra in (split.labels, split.factors):
            if extra is not None:
                digest.update(np.ascontiguousarray(extra).tobytes())
    return digest.hexdigest()[:16]


def data_record(settings: StudySettings, data: PreparedData) -> dict:
    """The run's data.json: how the CLI's commands on a run (evaluate, traverse, ...) load the
    same splits and rescaled values the study trained it on."""
    return {
        "data": recorded_data(settings.data),
        "data_dir": absolute_path(settings.data_dir),
        "labels": recorded_labels(settings.labels),
        "validation_fraction": VALIDATION_FRACTION,
        "test_fraction": TEST_FRACTION,
        "seed": settings.split_seed,
        "limit": settings.limit,
        "image_size": settings.image_size,
        "preparation": data.description["preparation"],
        # As `aevae train` records them: `sample --label` takes a class by its name, and a
        # .csv written from a run is headed with the table's own column names.
        **{key: data.description[key] for key in ("class_names", "feature_names")
           if data.description.get(key)},
    }


def _check_split_sizes(dataset: Dataset, limit: int | None) -> None:
    train, test = len(dataset.train), len(dataset.test) if dataset.test is not None else 0
    if train < MIN_TRAINING_EXAMPLES:
        cause = (f"--limit {limit} leaves {train}" if limit is not None and train == limit
                 else f"{train} left after the test and validation splits")
        raise ValueError(f"{dataset.name}: too few training examples for a study ({cause}; "
                         f"at least {MIN_TRAINING_EXAMPLES} needed)")
    if test < MIN_TEST_EXAMPLES:
        raise ValueError(f"{dataset.name}: too few test examples for a study ({test}, the "
                         f"{TEST_FRACTION:.0%} kept for testing; at least {MIN_TEST_EXAMPLES} "
                         f"needed: about {math.ceil(MIN_TEST_EXAMPLES / TEST_FRACTION)} "
                         "examples in all)")


def prepare_data(settings: StudySettings) -> PreparedData:
    """Load the data with fixed splits, pick the likelihood, rescale real-valued data."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # datasets with their own validation split keep it
        dataset = load_dataset(settings.data, data_dir=settings.data_dir, labels=settings.labels,
                               validation_fraction=VALIDATION_FRACTION,
                               test_fraction=TEST_FRACTION, seed=settings.split_seed,
                               image_size=settings.image_size, limit=settings.limit)
    if dataset.train.lengths is not None:
        raise ValueError(f"{dataset.name} holds padded sequences of different lengths: the study "
                         "compares models on fixed-size examples; see benchmarks/sequences.py "
                         "for the sequence models")
    _check_split_sizes(dataset, settings.limit)
    lowest, highest = dataset.value_range
    if lowest == highest:  # every model reconstructs it exactly: no question to answer
        raise ValueError(f"{dataset.name}: every value is {lowest:g}, so there is nothing to "
                         "learn or compare")
    values = value_kind(dataset.train.x)
    likelihood, reason = _choose_likelihood(values, settings.likelihood)
    preparation = {"transform": "none"}
    if likelihood == "bernoulli" and values == "real":
        raise ValueError(f"{dataset.name}: a bernoulli likelihood needs values in [0, 1], but "
                         f"they span {dataset.value_range[0]:g} to {dataset.value_range[1]:g}; "
                         "use --likelihood gaussian-learned")
    copies = (rows_also_in(dataset.test.x, dataset.train.x) if dataset.test is not None
              else 0)
    if values == "real":
        dataset, preparation = standardise(dataset)
    info = DataInfo(kind=data_kind(dataset.shape), values=value_kind(dataset.train.x),
                    labels=dataset.train.labels is not None, likelihood=likelihood,
                    factors=dataset.ground_truth is not None,
                    dimensions=math.prod(dataset.shape))
    splits = {name: len(split) for name, split in dataset.splits().items()}
    description = {
        "name": dataset.name,
        "source": settings.data,
        "description": dataset.description,
        "shape": list(dataset.shape),
        "kind": info.kind,
        "values": values,
        "likelihood": likelihood,
        "likelihood_reason": reason,
        "preparation": preparation,
        "splits": splits,
        "split_seed": settings.split_seed,
        # Said only where it cut the training split (a limit above its size changes nothing).
        "limit": settings.limit if splits["train"] == settings.limit else None,
        "test_copies_of_training": copies,
        "labels": info.labels,
        "class_names": list(dataset.class_names) if dataset.class_names else None,
        "feature_names": list(dataset.feature_names) if dataset.feature_names else None,
        "dynamic_binarization": dataset.dynamic_binarization,
        "fingerprint": fingerprint(dataset, preparation),
    }
    return PreparedData(dataset, info, description)


# ----- the plan ------------------------------------------------------------------------------
@dataclass
class RunPlan:
    id: str
    entry: RosterEntry
    seed: int
    options: dict  # make(model, **options)

    @property
    def closed_form(self) -> bool:
        return model_class(self.entry.model).closed_form


def roster_for(settings: StudySettings) -> tuple[list[RosterEntry], dict]:
    """The entries and, for a preset, its description. A roster given but empty (``--models
    ""``) is refused, not replaced by the default one."""
    if settings.preset is not None:
        if settings.preset not in PRESETS:
            raise ValueError(f"unknown preset {settings.preset!r}; known: "
                             f"{', '.join(PRESETS)}")
        preset = {"name": settings.preset, **PRESETS[settings.preset]}
        models = preset["models"] if settings.models is None else settings.models
        return parse_roster(models), preset
    return parse_roster(DEFAULT_ROSTER if settings.models is None else settings.models), {}


def shared_options(settings: StudySettings, data: PreparedData) -> dict:
    """What every neural model of the study shares: network, latent size, likelihood."""
    defaults = default_network(tuple(data.dataset.shape))
    options = {
        "input_shape": tuple(data.dataset.shape),
        "latent_dim": settings.latent_dim or defaults["latent_dim"],
        "network": settings.network or defaults["network"],
        "hidden": settings.hidden if settings.hidden is not None else defaults["hidden"],
        "likelihood": data.info.likelihood,
    }
    return options


def model_options(entry: RosterEntry, shared: dict, seed: int) -> dict:
    cls = model_class(entry.model)
    if cls.shares_network:
        options = dict(shared)
    else:  # a closed-form linear reference takes only the code size
        options = {"input_shape": shared["input_shape"], "latent_dim": shared["latent_dim"]}
    options.update(entry.options)
    options["seed"] = seed
    cls.Config.from_options(options)  # bad options fail here, before anything trains
    return options


def evaluation_settings(budget: Budget, seed: int) -> EvaluationSettings:
    return EvaluationSettings(**{**budget.evaluation, "seed": seed})


def study_tasks(settings: StudySettings) -> dict:
    """The tasks the study answers: all registered ones, or those ``settings.tasks`` names."""
    if settings.tasks is None:
        return dict(TASKS)
    names = [name.strip() for name in settings.tasks.split(",") if name.strip()]
    unknown = [name for name in names if name not in TASKS]
    if unknown or not names:
        raise ValueError(f"unknown task(s) {', '.join(unknown) or '(none named)'}; known: "
                         f"{', '.join(TASKS)}")
    return {name: TASKS[name] for name in names}


# What the health checks read (collapse, no better than the mean): evaluated whatever the
# tasks, since every run is checked before any of its figures is compared. Both are cheap.
HEALTH_GROUPS = {"reconstruction", "latent"}


def metric_groups(data: DataInfo, tasks: dict) -> list[str]:
    """The evaluation groups the tasks that fit this data need, and the health checks'."""
    needed = set(HEALTH_GROUPS)
    for task in tasks.values():
        if missing_needs(task.needs, data) is None:
            needed |= task.groups
    return [name for name in METRIC_GROUPS if name in needed]


def run_identity(entry: RosterEntry, options: dict, seed: int, data: PreparedData,
                 budget: Budget, device: str, cuda_graphs: bool = False) -> str:
    determined_by = {
        "format": RUN_FORMAT,
        "model": entry.model,
        "options": json.loads(json.dumps(options, default=list)),
        "data": data.description["fingerprint"],
        "seed": seed,
        # With the patience it waits: runs from before small data waited longer keep their
        # identity wherever it is unchanged.
        "training": {key: value for key, value in budget.run_training(
            budget.epoch_cap(len(data.dataset.train))).items() if key != "name"},
        "device": device,
    }
    if cuda_graphs and device == "cuda":  # replayed steps draw other noise: another run
        determined_by["cuda_graphs"] = True
    text = json.dumps(determined_by, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def plan_runs(settings: StudySettings, data: PreparedData, entries: list[RosterEntry]
              ) -> list[RunPlan]:
    budget = settings.training_budget
    shared = shared_options(settings, data)
    device = resolve_device(settings.device).type
    plans = []
    for seed in range(settings.seeds):
        for entry in entries:
            options = model_options(entry, shared, seed)
            plans.append(RunPlan(run_identity(entry, options, seed, data, budget, device,
                                              settings.cuda_graphs), entry, seed, options))
    first: dict[str, RunPlan] = {}
    for plan in plans:
        other = first.setdefault(plan.id, plan)
        if other.entry.key != plan.entry.key:
            # Entries that differ only by an option the study sets to the same value anyway
            # (ae and ae:latent_dim=8 where 8 is the data's default): the same runs, which
            # would be compared with themselves.
            given = {key: value for entry in (other.entry, plan.entry)
                     for key, value in entry.options.items()}
            raise ValueError(f"{other.entry.label} and {plan.entry.label} are the same model on "
                             f"this data (the study gives {plan.entry.model} "
                             + ", ".join(f"{key}={plan.options.get(key)}" for key in given)
                             + " either way): name it once")
    return plans


# ----- one run -------------------------------------------------------------------------------
def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def headline_metrics(metrics: dict) -> dict:
    """The tasks' figures of one run, flat: what ``aevae runs`` shows and filters on."""
    values = {}
    for task in TASKS.values():
        for metric in task.metrics:
            for path in metric.paths:
                value = lookup(metrics, path)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    values[f"{task.name}.{metric.name}"] = value
                    break
    return values


def missing_groups(result: dict, groups: list[str]) -> list[str]:
    """The evaluation groups a finished run lacks (a study asked for new tasks since)."""
    return [name for name in groups if name not in result["metrics"]]


def complete_run(plan: RunPlan, data: PreparedData, settings: StudySettings, store: RunStore,
                 groups: list[str]) -> dict:
    """A trained and evaluated run that lacks some groups: load its model, evaluate only those
    and add them to its metrics; no retraining."""
    from ..models import load

    directory = store.run_directory(plan.id)
    record, result = read_run(directory)
    todo = missing_groups(result, groups)
    if not todo:  # complete, but its row was lost or not marked finished: index it again
        store.finish(plan.id, metrics=headline_metrics(result["metrics"]),
                     train_seconds=record["train_seconds"],
                     evaluation_seconds=record["evaluation_seconds"],
                     versions=record["versions"], device=record["device"])
        return record
    device = resolve_device(settings.device)
    model = load(directory, device=device)
    started_at, started = time.time(), time.perf_counter()
    context = EvaluationContext(model, data.dataset,
                                evaluation_settings(settings.training_budget, plan.seed))
    added = evaluate(model, data.dataset, metrics=todo, context=context)
    result["metrics"].update(added["metrics"])
    result["seconds"].update(added["seconds"])
    seconds = time.perf_counter() - started
    record["evaluation_seconds"] += seconds
    before = record.get("intervals", [[record["started"], record["finished"]]])
    record["invocations"] = [*record.get("invocations", [None] * len(before)),
                             current_invocation()]
    record["intervals"] = [*before, [started_at, time.time()]]
    atomic_write_json(directory / METRICS_FILE, result)
    atomic_write_json(directory / RUN_FILE, record)
    store.finish(plan.id, metrics=headline_metrics(result["metrics"]),
                 train_seconds=record["train_seconds"],
                 evaluation_seconds=record["evaluation_seconds"], versions=record["versions"],
                 device=record["device"])
    return record


def execute_run(plan: RunPlan, data: PreparedData, settings: StudySettings, store: RunStore,
                groups: list[str]) -> dict:
    """Train (resuming a checkpoint if there is one), evaluate, draw the figure arrays; write
    them into the run directory and mark the run finished. Returns the run record. A complete
    run that lacks some groups only has those evaluated."""
    from ..models import make

    budget = settings.training_budget
    directory = store.run_directory(plan.id)
    if (found := read_run(directory)) is not None:
        if not (settings.retrain_other_versions and other_versions(found[0].get("versions"))):
            return complete_run(plan, data, settings, store, groups)
        discard_run(directory)  # asked for: trained afresh by the installed versions
    elif not (directory / CHECKPOINT_FILE).exists():
        discard_run(directory)  # a run killed before its first checkpoint starts afresh
    device = resolve_device(settings.device)
    dataset = data.dataset
    resuming = (directory / CHECKPOINT_FILE).exists()
    # The versions that began the run: a run killed and resumed by another install is
    # trained by both, and says so (its record held the last one's alone).
    began = read_json(directory / BEGUN_FILE) if resuming and (
        directory / BEGUN_FILE).is_file() else None
    if not resuming or not isinstance(began, dict):
        began = {"versions": versions()}
        atomic_write_json(directory / BEGUN_FILE, began)
    atomic_write_json(directory / DATA_FILE, data_record(settings, data))
    model = make(plan.entry.model, **plan.options)
    epoch_cap = budget.epoch_cap(len(dataset.train))
    started_at = time.time()
    started = time.perf_counter()
    trained_now = _EpochCount()
    with warnings.catch_warnings():
        # A run killed after its training, before its evaluation, has nothing left to train:
        # expected here, not advice for the user.
        warnings.filterwarnings("ignore", message=".*nothing to train", category=RuntimeWarning)
        model.fit(
            dataset.train.x, validation=dataset.validation.x,
            config=budget.training_config(epoch_cap, seed=plan.seed, device=device,
                                          cuda_graphs=settings.cuda_graphs), out=directory,
            resume=resuming, progress=False, callbacks=[trained_now],
            batch_transform=dataset.binarize if dataset.dynamic_binarization else None,
        )
    train_seconds = time.perf_counter() - started
    # Resumed: the epochs trained before count too (their own measured seconds).
    earlier = model.history_.epochs[:max(len(model.history_.epochs) - trained_now.count, 0)]
    train_seconds += sum(epoch.get("seconds") or 0.0 for epoch in earlier)
    started = time.perf_counter()
    context = EvaluationContext(model, dataset, evaluation_settings(budget, plan.seed))
    result = evaluate(model, dataset, metrics=groups, context=context)
    arrays = figure_arrays(context, images=data.info.kind == "images")
    evaluation_seconds = time.perf_counter() - started
    history = model.history_
    record = {
        "id": plan.id,
        "entry": plan.entry.key,
        "model": plan.entry.model,
        "options": json.loads(json.dumps(plan.options, default=list)),
        "dataset": data.description["name"],
        "data_fingerprint": data.description["fingerprint"],
        "seed": plan.seed,
        "budget": budget.name,
        "training": budget.run_training(epoch_cap),
        "epochs_run": len(history.epochs),
        "epoch_cap": epoch_cap,
        "best_epoch": history.best_epoch,
        "history": {key: [record.get(key) for record in history.epochs]
                    for key in ("epoch", "train_loss", "validation_loss",
                                "validation_reconstruction")},
        "train_seconds": train_seconds,
        "evaluation_seconds": evaluation_seconds,
        "versions": _versions_since(began.get("versions")),
        "device": describe_device(device),
        "started": started_at,
        "finished": time.time(),
    }
    if resuming:
        record["resumed_after_epoch"] = len(earlier)
    record["intervals"] = [[record["started"], record["finished"]]]  # spans of work on it
    record["invocations"] = [current_invocation()]  # the study call of each span
    save_figure_arrays(directory, arrays)
    atomic_write_json(directory / METRICS_FILE, result)
    atomic_write_json(directory / RUN_FILE, record)  # last: its presence means complete
    store.finish(plan.id, metrics=headline_metrics(result["metrics"]),
                 train_seconds=train_seconds, evaluation_seconds=evaluation_seconds,
                 versions=record["versions"], device=record["device"])
    return record


class _EpochCount(Callback):
    """Counts the epochs one ``fit`` call trains (a resumed run's history holds more)."""

    def __init__(self):
        self.count = 0

    def epoch_end(self, state, record) -> None:
        self.count += 1


def _versions_since(began: dict | None) -> dict:
    """This install's versions; where the install that began the run differed, "old, then
    new" (so it differs from either, and the report names the run under mixed versions)."""
    now = versions()
    if not isinstance(began, dict):
        return now
    return {key: value if began.get(key, value) == value else f"{began[key]}, then {value}"
            for key, value in now.items()}


def discard_run(directory: Path) -> None:
    """Remove a finished run's files to train it again; files the user wrote beside them stay.
    The record goes first: killed half-way, the directory reads as unfinished and the next
    study trains it, never as a run mixing two trainings."""
    from ..data.loading import DATA_FILE
    from ..ex_post import EX_POST_FILE
    from ..io import CONFIG_FILE, WEIGHTS_FILE
    from ..training.checkpoints import TRAINING_FILE
    from ..training.history import HISTORY_FILE
    from .artifacts import FIGURES_FILE

    for name in (RUN_FILE, METRICS_FILE, CHECKPOINT_FILE, FIGURES_FILE, WEIGHTS_FILE,
                 CONFIG_FILE, TRAINING_FILE, HISTORY_FILE, DATA_FILE, EX_POST_FILE, BEGUN_FILE):
        (directory / name).unlink(missing_ok=True)


# What a study reads from a finished run's record (run.json): checked, so a damaged file is
# one line naming it rather than a KeyError deep in the report.
RUN_KEYS = ("started", "finished", "epochs_run", "best_epoch", "train_seconds",
            "evaluation_seconds", "device", "versions", "history")


def read_run(directory: Path) -> tuple[dict, dict] | None:
    """(run record, evaluation result) of a finished run directory, or None if incomplete."""
    from ..io import CorruptFileError

    if not (directory / RUN_FILE).is_file() or not (directory / METRICS_FILE).is_file():
        return None
    record, result = read_json(directory / RUN_FILE), read_json(directory / METRICS_FILE)
    for path, content, keys, table in ((directory / RUN_FILE, record, RUN_KEYS, "history"),
                                       (directory / METRICS_FILE, result, ("metrics",),
                                        "metrics")):
        if not isinstance(content, dict):
            missing = list(keys)
        else:
            missing = [key for key in keys if key not in content]
            if not missing and not isinstance(content[table], dict):
                missing = [table]
        if missing:
            raise CorruptFileError(
                f"{path}: not a finished run's {path.name} (missing or damaged: "
                f"{', '.join(missing)}); delete the run's folder to train it again")
    return record, result


# ----- the study -----------------------------------------------------------------------------
def check_models_build(plans: list[RunPlan]) -> None:
    """Build each entry's model once, so a roster the data cannot take (a conv network on
    a table) is refused before any file is written, not by every run in its worker."""
    from ..models import make

    built = set()
    for plan in plans:
        if plan.entry.key in built:
            continue
        built.add(plan.entry.key)
        with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
            try:
                make(plan.entry.model, **plan.options)
            except ValueError as error:
                raise ValueError(f"{plan.entry.label}: {one_line(error)}") from None


def model_info(entry: RosterEntry, options: dict) -> ModelInfo:
    cls = model_class(entry.model)
    config = cls.Config.from_options(options)
    return ModelInfo(key=entry.key, model=entry.model, has_likelihood=cls.has_likelihood,
                     likelihood=config.likelihood, trains_prior=cls.trains_prior)


def open_store(settings: StudySettings, out: Path) -> RunStore:
    return RunStore(Path(settings.store) if settings.store else out / STORE_FILE)


def _check_same_study(out: Path, description: dict, settings, notify) -> None:
    """A study folder holds one study: another study of the same data may extend or change
    it (its runs stay in the store, its report describes the new settings, with a note), a
    study of other data goes into a folder of its own."""
    from ..io import read_json

    path = out / STUDY_FILE
    if not path.is_file():
        return
    try:
        previous = read_json(path)
    except (OSError, ValueError):
        return  # a damaged record is written anew
    if not isinstance(previous, dict):
        return
    data = previous.get("data") or {}
    # Other data: another data set, or another file (the same file with another --limit,
    # split seed, labels or image size is this data's study with other settings).
    if data.get("name") not in (None, description.get("name")) or (
            data.get("source") not in (None, description.get("source"))
            and data.get("fingerprint") != description.get("fingerprint")):
        raise ValueError(f"{out} holds a study of {data.get('name', 'other data')} "
                         f"({data.get('source')}), not of {description.get('source')}: study "
                         "other data into a folder of its own")
    changed = sorted(key for key, value in settings.to_dict().items()
                     if key in (previous.get("settings") or {})
                     and previous["settings"][key] != json.loads(json.dumps(value, default=list)))
    if not changed and data.get("fingerprint") not in (None, description.get("fingerprint")):
        changed = ["the data's content"]
    if changed:
        notify(f"note: {out} held this data's study with other settings ({', '.join(changed)}); "
               "its results and report now describe this one (earlier runs stay in the store)")


def run_study(settings: StudySettings, out, *, progress: bool = True,
              notify: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) the study described by ``settings`` into ``out``; returns the results
    (also written to ``results.json``, with ``report.html`` beside it).

    Every run trains and evaluates on one thread, so its numbers do not depend on how many
    runs share the machine; ``settings.workers`` processes work through the runs at once.
    ``settings.track == "mlflow"``: the study is then logged to MLflow from its files
    (``aevae.study.tracking``), reused runs included."""
    from ..report.html import write_report
    from .results import aggregate

    study_started = time.time()
    wall_started = time.perf_counter()
    out = Path(out)
    notify = notify or (lambda message: None)
    entries, preset = roster_for(settings)
    budget = settings.training_budget
    evaluation_settings(budget, 0)  # a bad evaluation override fails before any training
    device = resolve_device(settings.device)  # a bad device fails before anything is written
    if settings.executor == "ray":
        from .ray_executor import require_ray

        require_ray()  # so does a missing Ray
    if settings.track is not None:
        from ..tracking import require_mlflow

        require_mlflow()  # and a missing mlflow
    data = prepare_data(settings)
    plans = plan_runs(settings, data, entries)
    check_models_build(plans)
    tasks = study_tasks(settings)
    if settings.tasks is not None and all(missing_needs(task.needs, data.info) is not None
                                          for task in tasks.values()):
        reasons = "; ".join(f"{name}: {missing_needs(task.needs, data.info)}"
                            for name, task in tasks.items())
        raise ValueError(f"no task asked for fits {data.description['name']} ({reasons})")
    groups = metric_groups(data.info, tasks)
    workers = settings.workers or default_workers(device)
    tracking = None
    if settings.track == "mlflow":  # the tracking store opens (or fails) before any run starts
        from ..tracking import MLflowTracking

        tracking = MLflowTracking()
    _check_same_study(out, data.description, settings, notify)
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(settings, out)
    study = {
        "format": "aevae.study/1",
        "settings": settings.to_dict(),
        "budget": budget.to_dict(),
        "preset": preset,
        "data": data.description,
        "data_info": dataclasses.asdict(data.info),
        "shared_options": json.loads(json.dumps(shared_options(settings, data), default=list)),
        "roster": [{"key": entry.key, "model": entry.model, "options": entry.options,
                    "label": entry.label} for entry in entries],
        "models": {plan.entry.key: dataclasses.asdict(model_info(plan.entry, plan.options))
                   for plan in plans},
        "runs": [{"id": plan.id, "entry": plan.entry.key, "seed": plan.seed,
                  "path": str(store.run_directory(plan.id))} for plan in plans],
        "store": str(store.path),
        "metric_groups": groups,
        "tasks": list(tasks),
        "device": f"{device.type}: {workers} worker process(es), one thread each"
                  + (" (Ray tasks)" if settings.executor == "ray" else ""),
        "workers": workers,
        "versions": versions(),  # this install's: runs reused from others are named against it
    }
    atomic_write_json(out / STUDY_FILE, study)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    if budget.name == "full":
        notify(estimate_message(plans, data, budget, store, workers, groups=groups,
                                retrain_other_versions=settings.retrain_other_versions))
    import os
    import uuid

    invocation = uuid.uuid4().hex  # this call's mark on the runs it works on (and its workers)
    previous_invocation = os.environ.get(INVOCATION_VARIABLE)
    os.environ[INVOCATION_VARIABLE] = invocation
    try:
        if settings.executor == "ray":
            from .ray_executor import run_on_ray

            with _progress_bar(progress, plans, store) as bar:
                run_on_ray(settings, out, min(workers, len(plans)), bar)
        else:
            _run_locally(plans, data, settings, store, groups, out, workers, progress)
    finally:
        torch.set_num_threads(threads)
        store.close()
        if previous_invocation is None:
            os.environ.pop(INVOCATION_VARIABLE, None)
        else:
            os.environ[INVOCATION_VARIABLE] = previous_invocation
    results = aggregate(out, since=study_started, invocation=invocation)
    results["timing"] = study_timing(results["runs"], time.perf_counter() - wall_started,
                                     study_started)
    atomic_write_json(out / RESULTS_FILE, results)
    write_report(out, results)
    # Rendering the report counts towards the overhead the results report.
    results["timing"] = study_timing(results["runs"], time.perf_counter() - wall_started,
                                     study_started)
    atomic_write_json(out / RESULTS_FILE, results)
    if tracking is not None:
        from .tracking import log_study

        parent = log_study(out, results, tracking)
        notify(f"MLflow: the study is run {parent} (experiment {tracking.experiment_id}) in "
               f"{tracking.uri}")
    return results


def _run_locally(plans, data, settings, store, groups, out, workers: int,
                 progress: bool) -> None:
    """This process and workers - 1 helper processes work through the plan together."""
    helpers = [_start_worker(settings, out) for _ in range(min(workers, len(plans)) - 1)]
    try:
        with _progress_bar(progress, plans, store) as bar:
            work_through(plans, data, settings, store, groups, on_progress=bar)
        _join(helpers)
    finally:
        for helper in helpers:  # only left running if this process failed or was interrupted
            if helper.poll() is None:
                helper.terminate()


# GPU memory per study worker: its CUDA context, a small model and its data on the device,
# with room to spare; a large GPU is shared by several runs at once.
GPU_GIB_PER_WORKER = 10
MOST_GPU_WORKERS = 8


def default_workers(device: torch.device) -> int:
    """One process per CPU core (at most 4) on the CPU. On a GPU, several processes share it,
    each with its own CUDA context: one per 10 GiB of its memory, at most 8 and at most one per
    CPU core (each drives its kernels from one thread). Cores are those this process may run
    on (its affinity mask), not all the machine's."""
    cores = usable_cores()
    if device.type == "cuda":
        memory = torch.cuda.get_device_properties(device).total_memory / 2**30
        return max(1, min(MOST_GPU_WORKERS, cores, int(memory // GPU_GIB_PER_WORKER)))
    if device.type != "cpu":
        return 1
    return max(1, min(4, cores))


def _start_worker(settings: StudySettings, out: Path):
    import os
    import subprocess
    import sys

    payload = json.dumps({"settings": settings.to_dict(), "out": str(out),
                          "parent": os.getpid()})
    from .worker import COMMAND

    return subprocess.Popen([sys.executable, "-c", COMMAND, payload],
                            stdout=subprocess.DEVNULL)


def _join(helpers) -> None:
    failed = [helper.wait() for helper in helpers]
    if any(code in (130, -2) for code in failed):  # a worker was interrupted (Ctrl-C)
        raise KeyboardInterrupt
    if any(code != 0 for code in failed):
        raise RuntimeError(f"{sum(code != 0 for code in failed)} study worker process(es) "
                           "failed; see the messages above (their runs are marked failed in "
                           "the store)")


def study_timing(runs: list[dict], wall_seconds: float, since: float) -> dict:
    """Where the wall time went. Runs of this invocation may overlap (workers): the time any of
    them was training or evaluating is the union of their intervals; the rest is overhead.

    Counted are the runs this invocation worked on (``aggregate``'s ``intervals_now``): those it
    trained, and those it only evaluated (trained before, evaluated now for new tasks); runs of
    another study sharing the store, and complete runs only indexed again, are not."""
    executed = [run for run in runs if run.get("status") == "finished" and not run["reused"]]
    trained = [run for run in executed if run.get("trained_now", True)]
    evaluated = [run for run in executed if not run.get("trained_now", True)]

    def now(run: dict) -> list:
        if "intervals_now" in run:
            return run["intervals_now"]
        return [interval for interval in run["intervals"] if interval[0] >= since]

    intervals = sorted((start, end) for run in executed for start, end in now(run))
    busy, end = 0.0, -math.inf
    for start, finish in intervals:
        busy += max(finish - max(start, end), 0.0)
        end = max(end, finish)
    overhead = max(wall_seconds - busy, 0.0)
    return {
        "wall_seconds": wall_seconds,
        "busy_seconds": busy,
        "train_seconds": sum(run["train_seconds"] for run in trained),
        # A run only evaluated now: the time of its new evaluation, not its earlier one.
        "evaluation_seconds": sum(run["evaluation_seconds"] for run in trained)
        + sum(end - start for run in evaluated for start, end in now(run)),
        "overhead_seconds": overhead,
        "overhead_fraction": overhead / wall_seconds if wall_seconds > 0 else None,
        "runs_executed": len(executed),  # trained or evaluated by this invocation
        "runs_trained": len(trained),
        "runs_evaluated": len(evaluated),  # trained before, only evaluated now
        "note": "overhead = wall time during which no run of this invocation was training or "
        "evaluating (data loading, planning, the store, starting workers, aggregation, the "
        "report)",
    }


class _progress_bar:
    """One bar over the study's runs, counting those finished by any process."""

    def __init__(self, enabled: bool, plans: list[RunPlan], store: RunStore):
        from tqdm.auto import tqdm

        self.ids = [plan.id for plan in plans]
        self.store = store
        self.bar = tqdm(total=len(plans), unit="run", desc="study", smoothing=0.0,
                        disable=not enabled or None)

    def __call__(self, plan: RunPlan | None = None) -> None:
        if plan is not None:
            self.bar.set_postfix_str(f"{plan.entry.label}, seed {plan.seed}", refresh=False)
        self.bar.n = self.store.count_finished(self.ids)
        self.bar.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exception) -> None:
        self.bar.close()


def work_through(plans, data, settings, store, groups, on_progress=None,
                 stop: Callable[[], bool] | None = None) -> list[str]:
    """Claim and execute every planned run that is not finished, waiting for the ones another
    process holds, until done or ``stop()``. Returns the ids executed here."""
    executed = []
    pending = list(plans)
    while pending:
        waiting = []
        for plan in pending:
            if stop is not None and stop():
                return executed
            description = {"entry": plan.entry.key, "model": plan.entry.model,
                           "options": json.loads(json.dumps(plan.options, default=list)),
                           "dataset": data.description["name"],
                           "data_fingerprint": data.description["fingerprint"],
                           "seed": plan.seed, "budget": settings.training_budget.name}
            status = store.claim(plan.id, description)
            if status == "finished":
                found = read_run(store.run_directory(plan.id))
                # Files lost, a task added since (only evaluated), or other versions trained
                # it and the study asks for them retrained: claimed again.
                if found is None or missing_groups(found[1], groups) or (
                        settings.retrain_other_versions
                        and other_versions(found[0].get("versions"))):
                    status = store.claim(plan.id, description, redo=True)
            if status == "busy":
                waiting.append(plan)
                continue
            if status == "claimed":
                if on_progress is not None:
                    on_progress(plan)
                try:
                    execute_run(plan, data, settings, store, groups)
                    executed.append(plan.id)
                except TrainingDivergedError as error:
                    store.fail(plan.id, str(error))
                except Exception as error:
                    store.fail(plan.id, f"{type(error).__name__}: {error}")
                    raise
                except BaseException:
                    store.release(plan.id)
                    raise
            if on_progress is not None:
                on_progress()
        if waiting and len(waiting) == len(pending):
            time.sleep(0.5)  # another process holds these; wait for it
            if on_progress is not None:
                on_progress()
        pending = waiting
    return executed


def _duration(seconds: float) -> str:
    """A stated time: seconds under a minute (never "0 min"), minutes, hours and minutes."""
    if seconds < 1:
        return "under a second"
    if seconds < 60:
        return f"about {round(seconds)} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h {minutes} min" if hours else f"about {minutes} min"


def _evaluation_estimate(neural: list[RunPlan], data: PreparedData, budget: Budget,
                         groups: list[str] | None) -> tuple[float, str]:
    """Seconds of evaluation of the neural runs (all of them, one worker): every metric group's
    work (``metrics.evaluate.estimate_seconds``) at the speeds of an untrained copy of each
    model of the roster, timed here. The feature classifier is trained once per data set (and
    then cached), so it is counted once."""
    from ..metrics.evaluate import estimate_seconds
    from ..models import make

    names = list(METRIC_GROUPS) if groups is None else [
        name for name in groups if name in METRIC_GROUPS]
    settings = evaluation_settings(budget, 0)
    models = [json.dumps([plan.entry.model, plan.options], sort_keys=True, default=str)
              for plan in neural]
    per_model: dict[str, float] = {}
    classifier = 0.0
    with torch.random.fork_rng():
        for key, plan in zip(models, neural):
            if key not in per_model:
                estimates, parts = estimate_seconds(make(plan.entry.model, **plan.options),
                                                    data.dataset, names, settings)
                classifier = max(classifier, parts.get("feature classifier", 0.0))
                per_model[key] = sum(estimates.values()) - parts.get("feature classifier", 0.0)
    seconds = classifier + sum(per_model[key] for key in models)
    likelihood = f"log p(x) with k = {settings.importance_samples}; " if any(
        model_class(plan.entry.model).has_likelihood for plan in neural) and (
        "likelihood" in names) else ""
    anomaly = ("one-class anomaly models of "
               f"{settings.anomaly_training_epochs} epochs; " if "anomaly" in names
               and data.info.labels and settings.anomaly_training_epochs > 0 else "")
    return seconds, (f"{likelihood}{anomaly}every metric group, from encoder, decoder and "
                     "training steps timed here")


def estimate_message(plans: list[RunPlan], data: PreparedData, budget: Budget,
                     store: RunStore, workers: int, groups: list[str] | None = None,
                     retrain_other_versions: bool = False) -> str:
    """A stated expectation for a long budget, from timing a few training steps and the
    log p(x) estimator here. ``groups``: the metric groups evaluated (None: all);
    ``retrain_other_versions``: finished runs that other versions trained are to do again."""
    from ..models import make

    todo = [plan for plan in plans
            if (row := store.get(plan.id)) is None or row.status != "finished"
            or (retrain_other_versions and other_versions(row.versions))]
    neural = [plan for plan in todo if not plan.closed_form]
    if not neural:
        return f"expected time: {len(todo)} run(s) to do, all fast (closed form or reused)"
    probe = make(neural[0].entry.model, **neural[0].options)
    x = torch.from_numpy(data.dataset.train.x[: budget.batch_size * 12])
    optimizer = torch.optim.Adam(probe.parameters(), lr=budget.learning_rate)
    durations = []
    for index in range(12):
        started = time.perf_counter()
        batch = x[index * budget.batch_size:(index + 1) * budget.batch_size]
        loss = probe.loss(batch).loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        durations.append(time.perf_counter() - started)
    # The median of the steps after warm-up: one stall (page faults, a busy neighbour) must
    # not multiply the stated time.
    step = statistics.median(durations[2:])
    steps_per_epoch = math.ceil(len(data.dataset.train) / budget.batch_size)
    # The validation passes (forward only, on a tenth of the data) add a little.
    epochs = budget.epoch_cap(len(data.dataset.train))
    training = len(neural) * epochs * steps_per_epoch * step * 1.1 / workers
    evaluation, timed = _evaluation_estimate(neural, data, budget, groups)
    said = f"plus {_duration(evaluation / workers)} of evaluation ({timed})"
    return (f"expected time: up to {_duration(training)} of training for {len(neural)} "
            f"neural run(s) on {workers} worker(s) ({step * 1000:.1f} ms per step measured "
            f"here, {epochs} epochs at most), {said}; early stopping usually ends "
            "runs sooner")
