"""Experiment tracking: TensorBoard event files (``fit(log_dir=...)``) and MLflow runs
(``fit(log_to="mlflow")``, ``aevae compare --track mlflow``).

TensorBoard: each epoch logs the loss terms (training and validation), the KL weight and the
epoch's time; the KL of each latent dimension (models with a posterior) and a grid of decoded
prior samples (image data) are logged too, as long as all logging stays within ``budget`` (2%)
of the time spent training: on tiny epochs the heavy items are thinned out instead of slowing
training, but the last epoch always gets them (at ``close``), so even a one-epoch run has both.
Needs the optional ``tensorboard`` package (``pip install aevae[tensorboard]``).

MLflow: ``MLflowLogger``, a training callback, logs the model's name and config and the
training options as params and every epoch's record as metrics (step = epoch), into the run
that is active or one it starts. ``MLflowTracking`` is the client both it and the study use:
the tracking URI is MLflow's own (``MLFLOW_TRACKING_URI``, ``mlflow.set_tracking_uri``), else
the file store ``./mlruns``. Needs the optional ``mlflow-skinny`` package
(``pip install 'aevae[mlflow]'``).
"""

from __future__ import annotations

import math
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from .training.callbacks import Callback

TRACKING_BUDGET = 0.02  # logging time as a share of training time
KL_EXAMPLES = 512  # validation examples the per-dimension KL is measured on
SAMPLE_GRID = 64


class TensorBoardLogger:
    """Writes one run's curves, per-dimension KL and sample grids to ``log_dir``."""

    def __init__(self, log_dir, budget: float = TRACKING_BUDGET):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError("log_dir needs TensorBoard: pip install 'aevae[tensorboard]' "
                              "(or pip install tensorboard)") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))
        # Creating the event file and its writer thread is a one-off cost, paid here rather
        # than inside the first epoch.
        self.writer.add_scalar("training/started", 1.0, 0)
        self.budget = budget
        self.training_seconds = 0.0
        self.logging_seconds = 0.0
        # What the per-dimension KL and the sample grid cost, measured after each time; the
        # first guess covers importing the image encoder.
        self.heavy_seconds = 0.25
        # The last epoch's model, validation data and step, until its heavy items are logged.
        self.pending: tuple | None = None

    def epoch_end(self, model, record: dict, validation: torch.Tensor | None) -> None:
        started = time.perf_counter()
        epoch = record["epoch"]
        self.training_seconds += record["seconds"]
        for key, value in record.items():
            if key.startswith(("train_", "validation_")):
                split, _, name = key.partition("_")
                self.writer.add_scalar(f"{name}/{split}", value, epoch)
        if "kl_weight" in record:  # a closed-form fit (pca, ppca) has none
            self.writer.add_scalar("training/kl_weight", record["kl_weight"], epoch)
        self.writer.add_scalar("training/seconds_per_epoch", record["seconds"], epoch)
        self.pending = (model, validation, epoch)
        if self._affordable(started):
            heavy_started = time.perf_counter()
            self._heavy(model, validation, epoch)
            self.heavy_seconds = time.perf_counter() - heavy_started
            self.pending = None
        # No flush here: the writer's own thread writes the queue out (and close() does).
        self.logging_seconds += time.perf_counter() - started

    def _affordable(self, now: float) -> bool:
        """Whether the heavy items fit in the budget with what logging has spent so far."""
        spent = self.logging_seconds + (time.perf_counter() - now) + self.heavy_seconds
        return spent <= self.budget * self.training_seconds

    def _heavy(self, model, validation: torch.Tensor | None, epoch: int) -> None:
        training = model.training
        model.eval()  # batch norm's running statistics stay training's own
        try:
            self._log_heavy(model, validation, epoch)
        finally:
            model.train(training)

    def _log_heavy(self, model, validation: torch.Tensor | None, epoch: int) -> None:
        if model.has_likelihood and validation is not None:
            usage = model.dimension_usage(validation[:KL_EXAMPLES])
            for dimension, value in enumerate(np.asarray(usage)):
                self.writer.add_scalar(f"kl_per_dimension/{dimension}", float(value), epoch)
        if len(model.input_shape) == 3 and model.input_shape[0] in (1, 3):
            from .report.figures import image_grid

            samples = model.sample(SAMPLE_GRID, seed=0)  # its own generator: training's RNG
            grid = image_grid(samples, columns=8)
            layout = "HW" if grid.ndim == 2 else "HWC"
            self.writer.add_image("samples/prior", grid, epoch, dataformats=layout)

    def close(self) -> None:
        if self.pending is not None:  # the final state is logged whatever the budget
            started = time.perf_counter()
            self._heavy(*self.pending)
            self.pending = None
            self.logging_seconds += time.perf_counter() - started
        self.writer.add_scalar("training/logging_share", self.logging_seconds
                               / max(self.training_seconds, 1e-9), 0)
        self.writer.close()


# ----- MLflow --------------------------------------------------------------------------------
TRACKERS = ("mlflow",)  # what fit(log_to=...) and aevae compare --track accept
MLFLOW_MISSING = "MLflow tracking needs the mlflow extra: pip install 'aevae[mlflow]'"
LOCAL_STORE = "mlruns"  # the file store in the working directory, when no URI is set
# MLflow's limits, the smallest any of its versions set: a param's text (500 before MLflow 1.28,
# 6000 since), a key's length, and what one log_batch call takes.
PARAM_LENGTH = 500
KEY_LENGTH = 250
PARAMS_PER_CALL = 100
METRICS_PER_CALL = 1000
_UNSAFE = re.compile(r"[^\w.\- /]")  # the characters every MLflow version accepts in a key


def require_mlflow():
    """The mlflow module, or ImportError with the one line that names the extra."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient  # noqa: F401  (a broken install fails here)
    except ImportError:
        raise ImportError(MLFLOW_MISSING) from None
    return mlflow


def check_tracker(name) -> str:
    """``name`` if it is a tracker (``TRACKERS``), else ValueError naming the ones there are."""
    if name not in TRACKERS:
        raise ValueError(f"unknown tracker {name!r}; use {', '.join(map(repr, TRACKERS))} "
                         "(TensorBoard: log_dir=)")
    return name


def tracking_callback(name) -> Callback:
    """The callback of ``fit(log_to=name)``; its checks (the name, the extra) come first."""
    check_tracker(name)
    return MLflowLogger()


def mlflow_key(key: str) -> str:
    """``key`` with the characters some MLflow versions refuse replaced by ``_``."""
    return _UNSAFE.sub("_", str(key)).strip("/")[:KEY_LENGTH] or "_"


def _leaves(values: dict, prefix: str = ""):
    """(the '.'-joined key, value) of every value in nested dicts that is not a dict."""
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaves(value, f"{name}.")
        else:
            yield name, value


def _is_number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def flat_params(values: dict, prefix: str = "") -> dict[str, str]:
    """Nested dicts as '.'-joined keys, every value as text (a tuple written as a list)."""
    return {mlflow_key(name): str(list(value) if isinstance(value, tuple) else value)
            [:PARAM_LENGTH] for name, value in _leaves(values, prefix)}


def finite_numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """The finite numeric scalars of nested dicts, by '.'-joined key (no booleans, no lists)."""
    return {mlflow_key(name): float(value) for name, value in _leaves(values, prefix)
            if _is_number(value) and math.isfinite(value)}


def epoch_metrics(record: dict) -> dict[str, float]:
    """An epoch record's numbers as metrics (its ``epoch`` is their step): the loss terms, the
    KL weight and the epoch's seconds."""
    return {mlflow_key(key): float(value) for key, value in record.items()
            if key != "epoch" and _is_number(value)}


def local_store_uri() -> str:
    return Path(LOCAL_STORE).resolve().as_uri()


class MLflowTracking:
    """An ``MlflowClient`` on the tracking URI MLflow resolves (``MLFLOW_TRACKING_URI``,
    ``mlflow.set_tracking_uri``; the active run's), else the file store ``./mlruns``, given
    as a ``file:`` URI so that MLflow 3's default (an SQLite database, which mlflow-skinny
    cannot open) is not used. The global tracking URI is left as it is.

    Recent MLflow releases refuse the file store unless ``MLFLOW_ALLOW_FILE_STORE`` is true:
    it is the one local store mlflow-skinny has, so around its own calls to a file store this
    sets the variable when it is unset (an explicit ``false`` is kept).

    experiment: a name (created if missing); otherwise the active run's, ``MLFLOW_EXPERIMENT_ID``,
    ``MLFLOW_EXPERIMENT_NAME``, ``mlflow.set_experiment``'s, or the default experiment.
    """

    def __init__(self, experiment: str | None = None):
        mlflow = require_mlflow()
        self.mlflow = mlflow
        self.active = mlflow.active_run()
        uri_set = getattr(mlflow.tracking, "is_tracking_uri_set", None)
        uri_set = uri_set() if uri_set is not None else bool(os.environ.get(
            "MLFLOW_TRACKING_URI"))
        uri = mlflow.get_tracking_uri() if uri_set or self.active else local_store_uri()
        parts = urlparse(uri)
        # file:, a path or a Windows drive letter: the file store ("databricks" is no path).
        self.file_store = parts.scheme == "file" or len(parts.scheme) == 1 or (
            parts.scheme == "" and not uri.startswith("databricks"))
        if self.file_store and not parts.netloc and len(parts.scheme) != 1:
            # Absolute: MLflow caches a store by its URI, and a relative one would follow the
            # working directory.
            uri = Path(parts.path).resolve().as_uri()
        self.uri = uri
        try:
            with self._allowed():
                self.client = mlflow.tracking.MlflowClient(self.uri)
                self.experiment_id = self._experiment(experiment)
        except mlflow.exceptions.MlflowException as error:
            raise ValueError(f"MLflow tracking store {self.uri}: "
                             f"{str(error.message).strip().splitlines()[0]}") from None

    @contextmanager
    def _allowed(self):
        variable = "MLFLOW_ALLOW_FILE_STORE"
        if not self.file_store or variable in os.environ:
            yield
            return
        os.environ[variable] = "true"
        try:
            yield
        finally:
            os.environ.pop(variable, None)

    def _experiment(self, name: str | None) -> str:
        if name is None and self.active is not None:
            return self.active.info.experiment_id
        if name is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return os.environ["MLFLOW_EXPERIMENT_ID"]
        name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if name is None:
            fluent = getattr(self.mlflow.tracking, "fluent", None)
            chosen = getattr(fluent, "_active_experiment_id", None)
            return chosen or "0"  # mlflow.set_experiment's, or the default experiment
        experiment = self.client.get_experiment_by_name(name)
        return (experiment.experiment_id if experiment is not None
                else self.client.create_experiment(name))

    @property
    def active_run_id(self) -> str | None:
        return None if self.active is None else self.active.info.run_id

    def start(self, name: str, *, parent: str | None = None, tags: dict | None = None,
              start_time: float | None = None) -> str:
        """A new run (``parent``: nested under that run); returns its id."""
        tags = dict(tags or {})
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        try:  # who, from where, which commit: the tags mlflow.start_run sets
            from mlflow.tracking.context.registry import resolve_tags

            tags = resolve_tags(tags)
        except Exception:  # the context is a courtesy: never a reason to fail
            pass
        with self._allowed():
            run = self.client.create_run(
                self.experiment_id, run_name=name, tags=tags,
                start_time=None if start_time is None else int(start_time * 1000))
        return run.info.run_id

    def log(self, run_id: str, *, params: dict | None = None, tags: dict | None = None,
            metrics: list[tuple[str, float, int, float | None]] = ()) -> None:
        """params and tags as text; metrics as (key, value, step, time.time() or None)."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        params = [Param(key, str(value)) for key, value in (params or {}).items()]
        tags = [RunTag(key, str(value)) for key, value in (tags or {}).items()]
        metrics = [Metric(key, value, now if at is None else int(at * 1000), step)
                   for key, value, step, at in metrics]
        with self._allowed():
            for start in range(0, len(params), PARAMS_PER_CALL):
                self.client.log_batch(run_id, params=params[start:start + PARAMS_PER_CALL])
            for start in range(0, len(tags), PARAMS_PER_CALL):
                self.client.log_batch(run_id, tags=tags[start:start + PARAMS_PER_CALL])
            for start in range(0, len(metrics), METRICS_PER_CALL):
                self.client.log_batch(run_id, metrics=metrics[start:start + METRICS_PER_CALL])

    def artifact(self, run_id: str, path) -> None:
        with self._allowed():
            self.client.log_artifact(run_id, str(path))

    def end(self, run_id: str, status: str = "FINISHED", end_time: float | None = None) -> None:
        with self._allowed():
            self.client.set_terminated(run_id, status, None if end_time is None
                                       else int(end_time * 1000))


def model_params(model) -> dict[str, str]:
    """``model`` (its name) and ``model.<option>`` for every option of its config."""
    description = model.describe() if hasattr(model, "describe") else dict(model)
    return {"model": description["model"], **flat_params(description["config"], "model.")}


class MLflowLogger(Callback):
    """A training callback that logs the fit to MLflow (rank 0 only under ``torchrun``).

    On fit start it joins the active MLflow run, or starts one (named ``run_name``, else the
    model's name, in ``experiment``; see ``MLflowTracking`` for the store), and logs as params
    the model's name and config (``model``, ``model.<option>``) and the training options as
    applied (``training.<option>``: training.json's values). Each epoch logs the record's
    numbers (``train_*``, ``validation_*``, ``kl_weight``, ``seconds``) as metrics with
    step = epoch. On fit end it ends the run it started (FAILED if training diverged or
    stopped on an error, KILLED on Ctrl-C); a joined run is left to its owner.

    Without mlflow installed, constructing it raises ImportError naming the extra, before
    anything trains or is written.
    """

    def __init__(self, *, experiment: str | None = None, run_name: str | None = None,
                 tags: dict | None = None):
        require_mlflow()
        self.experiment, self.run_name, self.tags = experiment, run_name, dict(tags or {})
        self.tracking: MLflowTracking | None = None
        self.run_id: str | None = None
        self.started_here = False

    def fit_start(self, state):
        if not state.processes.main:
            return
        self.tracking = MLflowTracking(self.experiment)
        self.run_id = self.tracking.active_run_id
        self.started_here = self.run_id is None
        if self.started_here:
            from . import __version__

            self.run_id = self.tracking.start(self.run_name or state.model.name,
                                              tags={"aevae.version": __version__, **self.tags})
        self.tracking.log(self.run_id, params={
            **model_params(state.model), **flat_params(state.training_record(), "training.")})

    def epoch_end(self, state, record):
        if self.run_id is not None:
            self.tracking.log(self.run_id, metrics=[
                (key, value, int(record["epoch"]), None)
                for key, value in epoch_metrics(record).items()])

    def fit_end(self, state):
        self._close("FINISHED")

    def fit_failed(self, state, error):  # divergence included: it raises inside the fit
        self._close("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")

    def _close(self, status: str) -> None:
        if self.run_id is not None and self.started_here:
            self.tracking.end(self.run_id, status)
        self.run_id = None
