"""What happens around the training loop, as callbacks over one ``TrainingState``.

Hooks, called in list order: ``fit_start`` (after the model, optimizers and data are ready),
``epoch_start``, ``batch_end`` (only for callbacks that define it: it runs every step),
``epoch_end`` (with the epoch's record, already in the history), ``fit_end``, and
``divergence`` (a non-finite loss; may return words for the error message).

- ``BestValidation``: tracks the best validation epoch, stops early after ``patience`` epochs
  without improvement, and restores the best weights at the end (``restore_best``);
- ``RunFiles``: the run directory (refuses to overwrite, resumes, writes each epoch's
  checkpoint, keeps the last good one on divergence);
- ``TensorBoard``: curves, per-dimension KL and sample grids;
- ``MLflowLogger`` (in ``aevae.tracking``): params and per-epoch metrics in an MLflow run;
- ``Progress``: a progress bar per epoch and a line per epoch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import TRAINING_FILE, RunDirectory, RunLock
from .history import TrainingHistory


@dataclass
class TrainingState:
    """What the loop and its callbacks share."""

    model: torch.nn.Module
    config: object  # TrainingConfig
    history: TrainingHistory
    processes: object  # Distributed
    device: torch.device
    schedule: object
    generator: torch.Generator | None = None
    stepper: object = None  # TrainingStep; None for a closed-form solve
    graphs: object = None  # GraphedSteps when the steps replay from a CUDA graph
    validation: object = None  # Batch on the device
    steps_per_epoch: int = 1
    step: int = 0
    epoch: int = 0
    stale_epochs: int = 0
    best_state: dict | None = None
    best_restored: bool = False
    closed_form_record: dict | None = None  # training.json of a closed-form solve
    extra: dict = field(default_factory=dict)

    def training_record(self) -> dict:
        """training.json: the solve's record, or the options as this run applies them."""
        return self.closed_form_record or self.config.record(
            schedule=self.schedule, device=self.device, processes=self.processes.world)


class Callback:
    """Override the hooks you need; each gets the shared state."""

    def fit_start(self, state: TrainingState) -> None:
        pass

    def epoch_start(self, state: TrainingState) -> None:
        pass

    def epoch_end(self, state: TrainingState, record: dict) -> None:
        pass

    def fit_end(self, state: TrainingState) -> None:
        pass

    def divergence(self, state: TrainingState, loss: float) -> str | None:
        return None

    def fit_failed(self, state: TrainingState, error: BaseException) -> None:
        """Training stopped on ``error`` (divergence, a bad batch, Ctrl-C), anywhere from
        fit_start to fit_end (perhaps before this callback's own fit_start ran); it is raised
        again once every callback has been told."""


class BestValidation(Callback):
    """Early stopping and best-state restore from the validation loss (KL weight 1)."""

    def epoch_end(self, state, record):
        if state.validation is None or state.stepper is None:  # nothing to stop in a solve
            return
        current = record["validation_loss"]
        history = state.history
        if history.best_validation_loss is None or current < history.best_validation_loss:
            history.best_validation_loss, history.best_epoch = current, record["epoch"]
            state.best_state = {k: v.detach().clone()
                                for k, v in state.model.state_dict().items()}
            state.stale_epochs = 0
        else:
            state.stale_epochs += 1
            patience = state.config.patience
            if patience is not None and state.stale_epochs >= patience:
                history.stopped_early = True

    def fit_end(self, state):
        if state.config.restore_best and state.best_state is not None:
            state.model.load_state_dict(state.best_state)
            state.best_restored = True


class RunFiles(Callback):
    """The run directory ``out``: nothing but its lock file is written before the first epoch
    is done, so a run that fails earlier leaves no files or folders behind."""

    def __init__(self, out, *, resume: bool = False, files: dict | None = None):
        self.run = RunDirectory(out)
        self.lock = RunLock(out)
        self.resume, self.files = resume, dict(files or {})
        self.pending: dict = {}
        self.deferred = False

    @property
    def directory(self) -> Path:
        return self.run.directory

    def fit_start(self, state):
        processes = state.processes
        if processes.main:
            self.run.check_writable()  # before the lock makes any folder
            self.lock.acquire()  # given back by fit_end or fit_failed, whatever fails next
            self.run.prepare(self.resume, solved=state.stepper is None,
                             model=state.model.name)
        processes.barrier()  # rank 0 has checked the directory (and raised if it must)
        record = state.training_record()
        if state.stepper is not None and self.run.checkpoint.exists():  # resuming
            self._check_continues(state, record)
            state.step, state.stale_epochs, state.best_state = self.run.resume(
                state.model, state.stepper.optimizers, state.generator, state.history,
                state.stepper.precision.scaler)
            if state.validation is None and any(
                    epoch.get("validation_loss") is not None for epoch in state.history.epochs):
                raise ValueError(f"cannot resume {self.directory} without validation data: the "
                                 "run was trained with it, and its best epoch is chosen by it")
            patience = state.config.patience
            done = len(state.history.epochs)
            if state.history.stopped_early:
                # Stopped by its patience or by a callback: it goes on unless this patience
                # would stop it again at once (no patience, or a larger one, trains it further).
                if patience is None or state.stale_epochs < patience:
                    state.history.stopped_early = False
                elif processes.main and done < state.config.epochs:
                    warnings.warn(f"{self.directory} stopped early at epoch {done} ({patience} "
                                  "epochs without improvement): nothing to train; a larger "
                                  "patience trains it further", RuntimeWarning, stacklevel=2)
            if processes.main and done >= state.config.epochs:
                warnings.warn(f"{self.directory} has trained {done} epoch(s) already, at least "
                              f"epochs={state.config.epochs}: nothing to train; more epochs "
                              "train it further", RuntimeWarning, stacklevel=2)
        elif self.resume and state.stepper is not None:
            warnings.warn(f"nothing to resume in {self.directory} (no checkpoint): training "
                          "from the first epoch", RuntimeWarning, stacklevel=2)
        # Written with the first checkpoint: until then a failure has nothing to clean up.
        self.pending = {TRAINING_FILE: record, **self.files}

    def _check_continues(self, state, record: dict) -> None:
        """A resume continues the run as it was trained: an option that changes what a step
        does is refused (the checkpoint's optimizer state would silently keep the old one)."""
        from ..io import read_json

        path = self.directory / TRAINING_FILE
        saved = read_json(path) if path.is_file() else {}
        if not isinstance(saved, dict):
            return  # a damaged record: the checkpoint's own checks decide
        for name in CONTINUED_OPTIONS:
            if str(saved.get(name)).startswith("<"):
                continue  # a function's repr (a custom KL schedule) names no value to compare
            if name in saved and saved[name] != record.get(name):
                raise ValueError(
                    f"cannot resume {self.directory} with {name} {record.get(name)!r}: the run "
                    f"was trained with {saved[name]!r} (a resume continues it as it was; give "
                    "the same value, or train into a new folder)")

    def epoch_end(self, state, record):
        if not self.deferred:  # else the EpochWriter writes, after every other callback
            self.write_epoch(state)

    def writer(self) -> Callback:
        """The callback that writes each epoch's files instead, to put last, so that the
        checkpoint holds what every other callback did (an early stop it decided)."""
        self.deferred = True
        return EpochWriter(self)

    def write_epoch(self, state):
        if not state.processes.main:
            return
        if state.stepper is None:  # a closed-form solve: weights and files, no checkpoint
            self.run.write_solution(state.model, state.history, self.pending)
        else:
            progress = {"step": state.step, "stale_epochs": state.stale_epochs,
                        "best_state": state.best_state or {}}
            if (scaler := state.stepper.precision.scaler) is not None:
                progress["scaler"] = scaler.state_dict()  # fp16's learnt loss scale
            self.run.write_epoch(state.model, state.stepper.optimizers, state.generator,
                                 state.history, progress, self.pending)
        self.pending = {}

    def fit_end(self, state):
        if state.best_restored and state.processes.main:
            state.model.save(self.run.directory)
        self.lock.release()

    def fit_failed(self, state, error):
        self.lock.release()

    def divergence(self, state, loss):
        return self.run.restore_last_good(state.model)


class EpochWriter(Callback):
    """RunFiles' epoch files and checkpoint, written after every other callback's epoch_end."""

    def __init__(self, run_files: RunFiles):
        self.run_files = run_files

    def epoch_end(self, state, record):
        self.run_files.write_epoch(state)


# Training options a resume must keep: each changes what a step does.
CONTINUED_OPTIONS = ("batch_size", "learning_rate", "optimizer", "weight_decay", "seed",
                     "gradient_clip", "kl_schedule", "labelled_per_batch")


class TensorBoard(Callback):
    """TensorBoard curves, per-dimension KL and sample grids in ``log_dir`` (rank 0)."""

    def __init__(self, log_dir):
        self.log_dir, self.logger = log_dir, None

    def fit_start(self, state):
        if state.processes.main:
            from ..tracking import TensorBoardLogger

            self.logger = TensorBoardLogger(self.log_dir)

    def epoch_end(self, state, record):
        if self.logger is not None:
            valid = state.validation
            self.logger.epoch_end(state.model, record, None if valid is None else valid.x)

    def fit_end(self, state):
        if self.logger is not None:
            self.logger.close()
            self.logger = None

    def fit_failed(self, state, error):
        self.fit_end(state)  # the epochs logged so far reach the disk


def tracker(log_to) -> Callback:
    """The callback of ``fit(log_to=...)`` (``aevae.tracking.TRACKERS``), checked at once."""
    from ..tracking import tracking_callback

    return tracking_callback(log_to)


class Progress(Callback):
    """A bar per epoch where stderr is a terminal, and a line per epoch (rank 0)."""

    def __init__(self):
        self.bar = None

    def epoch_start(self, state):
        if not state.processes.main:
            return
        from tqdm.auto import tqdm

        # disable=None: no per-batch bar when stderr is not a terminal (logs keep the lines).
        self.bar = tqdm(total=state.steps_per_epoch,
                        desc=f"epoch {state.epoch}/{state.config.epochs}", leave=False,
                        mininterval=0.5, disable=None)

    def fit_failed(self, state, error):
        self._close_bar()  # the error message starts on a clean line

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def batch_end(self, state):
        if self.bar is not None and not self.bar.disable:
            self.bar.update(1)
            if state.step % 25 == 0:  # reading the loss waits for the device: not every step
                self.bar.set_postfix(loss=f"{state.stepper.running_loss():.3f}",
                                     refresh=False)

    def epoch_end(self, state, record):
        if not state.processes.main or state.stepper is None:  # a closed-form solve is quiet
            return
        from tqdm.auto import tqdm

        self._close_bar()
        shown = [f"{key}={value:.4f}" for key, value in record.items()
                 if key.startswith(("train_", "validation_"))]
        tqdm.write(f"epoch {record['epoch']}/{state.config.epochs} " + " ".join(shown)
                   + f" ({record['seconds']:.1f}s)")
