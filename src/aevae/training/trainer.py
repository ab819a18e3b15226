"""``Trainer``: the one training loop every model shares, and ``fit``, its keyword front.

The loop itself is small: a data source serves each epoch's batches, ``TrainingStep`` takes
the steps, and callbacks do the rest (early stopping and best weights, the run directory,
TensorBoard, progress). A closed-form model (pca, ppca) goes through the same trainer with one
solve instead of epochs, so its run directory holds the same files.
"""

from __future__ import annotations

import contextlib
import inspect
import time
import warnings

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.batch import FIELDS, Batch
from ..data.streaming import NpyStream
from ..schedules import make_schedule
from . import batches as batching
from . import graphs
from .callbacks import (
    BestValidation,
    Callback,
    Progress,
    RunFiles,
    TensorBoard,
    TrainingState,
    tracker,
)
from .config import TrainingConfig
from .devices import Precision, resolve_device
from .distributed import Distributed
from .history import TrainingHistory
from .sources import data_source
from .step import TrainingStep, compile_wanted


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """``Trainer(config, callbacks).fit(model, data, validation)``.

    data: an array or tensor, a ``Batch`` (x with the labels, masks or lengths the model
        reads), a ``torch.utils.data.Dataset`` or an ``NpyStream``. validation: in memory; its
        loss at KL weight 1 is recorded each epoch and drives early stopping and best-weight
        restore (``config.patience``, ``config.restore_best``).
    batch_transform: applied to each training batch's x (e.g. dynamic binarization).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its share of every global
    batch and gradients are averaged, so a step equals one process's step on the whole batch;
    only rank 0 writes files, logs and shows progress.
    """

    def __init__(self, config: TrainingConfig | None = None, callbacks=(), *,
                 batch_transform=None):
        self.config = config if config is not None else TrainingConfig()
        self.callbacks: list[Callback] = [BestValidation(), *callbacks]
        self.per_step = [callback for callback in self.callbacks
                         if hasattr(callback, "batch_end")]
        self.batch_transform = batch_transform

    def fit(self, model, data, validation=None) -> TrainingHistory:
        if (refused := model.training_refusal()) is not None:
            raise ValueError(refused)
        if model.closed_form:
            return self._solve(model, data, validation)
        state, source = self._start(model, data, validation)
        # Every callback hears of a failure, in fit_start (a refused resume) and fit_end
        # too: what one of them took at the start (the run folder's lock) is given back.
        with self._reporting_failure(state):
            self._emit("fit_start", state)
            for epoch in range(len(state.history.epochs) + 1, self.config.epochs + 1):
                if state.history.stopped_early:
                    break
                self._epoch(state, source, epoch)
            self._emit("fit_end", state)
        state.processes.barrier()  # nobody reads the run before rank 0 has written it
        return state.history

    def _emit(self, hook: str, state: TrainingState, *arguments) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(state, *arguments)

    @contextlib.contextmanager
    def _reporting_failure(self, state: TrainingState):
        """Tells every callback (``fit_failed``) when training stops on an exception, then
        raises it again; a callback failing in turn only warns, so the cause is what surfaces."""
        try:
            yield
        except BaseException as error:
            for callback in self.callbacks:
                try:
                    callback.fit_failed(state, error)
                except Exception as secondary:  # noqa: BLE001 (the first error matters)
                    warnings.warn(f"{type(callback).__name__}.fit_failed failed: {secondary}",
                                  RuntimeWarning, stacklevel=2)
            raise

    def _start(self, model, data, validation) -> tuple[TrainingState, object]:
        """Check the data, place it and the model, seed, and build the step."""
        config = self.config
        if config.patience is not None and validation is None:
            raise ValueError("early stopping (patience) needs validation data")
        schedule = (config.kl_schedule if callable(config.kl_schedule)
                    else make_schedule(config.kl_schedule))
        if config.kl_schedule is not None and not model.weighs_kl:
            warnings.warn(f"{model.name}'s loss has no term kl_schedule scales (no KL): it "
                          "changes nothing", RuntimeWarning, stacklevel=2)
        device = resolve_device(config.device)
        precision = Precision(config.precision, device)
        source = data_source(model, data, config.labelled_per_batch)
        valid = None
        if validation is not None:
            valid = batching.as_training_batch(model, validation, "validation data")
        if "labels" in model.uses and "label_known" not in model.uses:  # conditioned on y
            for name, batch in (("training data", source.batch), ("validation data", valid)):
                if batch is not None and batch.labels is None:
                    raise ValueError(f"{model.name} is conditioned on a label: the {name} "
                                     "needs labels too (a Batch(x, labels=y))")
        processes = Distributed.from_environment(device)
        device = processes.local_device(device)
        if processes.enabled and config.batch_size < processes.world:
            raise ValueError(f"batch_size {config.batch_size} is smaller than the "
                             f"{processes.world} processes sharing each batch")
        for name, count in (("training data", len(source)),
                            ("validation data", None if valid is None else len(valid))):
            if processes.enabled and count is not None and count < processes.world:
                raise ValueError(f"{name}: {count} example(s) cannot be shared by the "
                                 f"{processes.world} processes (every one needs at least one)")
        fewest = processes.world * batching.smallest_share(model)
        if fewest > 1 and min(config.batch_size, len(source)) < fewest:
            raise ValueError(
                f"batch norm needs at least two examples a step in each process: batch_size "
                f"{config.batch_size} and {len(source)} training example(s) give fewer than "
                f"{fewest}" + (f" over {processes.world} processes" if processes.enabled else
                               "") + "; use a larger batch or norm='layer'")
        source.place(device)
        if valid is not None:
            valid = valid.take(slice(processes.rank, None, processes.world)).to(device)
        model.to(device)
        model.prepare_training(source.batch, len(source), config.labelled_per_batch)

        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        processes.broadcast_state(model)
        steps = source.steps_per_epoch(config.batch_size)
        stepper = TrainingStep(
            model, optimizer=config.optimizer, learning_rate=config.learning_rate,
            weight_decay=config.weight_decay, gradient_clip=config.gradient_clip,
            precision=precision, distributed=processes, device=device,
            compile=compile_wanted(config.compile, device, config.epochs * steps))
        state = TrainingState(model, config, TrainingHistory(), processes, device, schedule,
                              generator=generator, stepper=stepper, validation=valid,
                              steps_per_epoch=steps)
        if config.cuda_graphs:
            reason = graphs.why_not(model, stepper, source, device=device,
                                    optimizer=config.optimizer, transform=self.batch_transform,
                                    processes=processes)
            if reason is None:
                state.graphs = graphs.GraphedSteps(stepper, source.batch, config.batch_size,
                                                   device)
            else:
                warnings.warn(f"cuda_graphs: this run steps eagerly: {reason}", RuntimeWarning,
                              stacklevel=4)
        return state, source

    def _epoch(self, state: TrainingState, source, epoch: int) -> None:
        started = time.perf_counter()
        state.epoch = epoch
        stepper, transform = state.stepper, self.batch_transform
        state.model.train()
        stepper.reset_sums()
        captured = state.graphs
        if state.processes.rank > 0:
            # Its own noise (the same draws in every process would correlate), seeded by the
            # step at each epoch: only rank 0's RNG state is checkpointed, and a resume
            # starts at an epoch, so a resumed run draws what it would have drawn.
            torch.manual_seed(state.config.seed + 1_000_003 * state.processes.rank + state.step)
        batches = source.epoch_indices(state) if captured is not None else source.epoch(state)
        self._emit("epoch_start", state)
        weight = state.schedule(state.step)
        for index, batch in enumerate(batches):
            weight = state.schedule(state.step)
            if captured is not None:  # batch: indices into the resident data
                if not captured.step(batch, weight, state.step):
                    stepper(source.batch.take(batch), weight, state.step)
            else:
                if transform is not None:
                    checked = batch.replace(x=transform(batch.x))
                    if index == 0:  # one look an epoch: it costs a device sync
                        batching.check_transformed(state.model, checked.x)
                    batch = checked
                stepper(batch, weight, state.step)
            state.step += 1
            bad = stepper.bad_loss(state.step)
            if bad is not None:
                self._diverged(state, bad)
            for callback in self.per_step:
                callback.batch_end(state)
        bad = stepper.bad_loss(state.step, force=True)
        if bad is not None:
            self._diverged(state, bad)
        record = {"epoch": epoch, **stepper.epoch_sums(), "kl_weight": float(weight)}
        if state.validation is not None:
            # Scored at KL weight 1: the model's own objective, not the schedule's.
            record.update(_validation_means(state.model, state.validation, state.processes))
        record["seconds"] = time.perf_counter() - started
        state.history.epochs.append(record)
        self._emit("epoch_end", state, record)

    def _diverged(self, state: TrainingState, loss: float) -> None:
        notes = [note for callback in self.callbacks
                 if (note := callback.divergence(state, loss)) is not None]
        kept = "".join(notes) or "; no checkpoint was written yet"
        raise TrainingDivergedError(
            f"training diverged: loss is {loss} at epoch {state.epoch}, step {state.step}"
            f"{kept}. Try a lower learning rate or gradient clipping (in a new run: a resume "
            "keeps the run's own), or check the data scale")

    def _solve(self, model, data, validation) -> TrainingHistory:
        """A closed-form model: one solve on the training data, recorded as epoch 1."""
        started = time.perf_counter()
        if isinstance(data, (Dataset, NpyStream)):
            raise ValueError(f"{model.name} is solved in closed form on data in memory, not "
                             "on a stream")
        train = batching.as_training_batch(model, data, "training data")
        valid = None
        if validation is not None:
            valid = batching.as_training_batch(model, validation, "validation data")
        # Under torchrun every process solves the same problem (the solution does not depend on
        # the process), and only rank 0 writes: the run folder's files and lock are its alone.
        processes = Distributed.from_environment(torch.device("cpu"))
        state = TrainingState(model, self.config, TrainingHistory(), processes,
                              torch.device("cpu"), None, validation=valid, epoch=1,
                              closed_form_record=model.solve_record(
                                  len(train), None if valid is None else len(valid),
                                  self.config.seed))
        values = train.x.numpy()
        with self._reporting_failure(state):
            self._emit("fit_start", state)
            model.solve(values, self.config.seed)
            record = {"epoch": 1,
                      "train_loss": float(np.mean(model.loss_terms(values)["loss"]))}
            if valid is not None:
                for name, terms in model.loss_terms(valid.x.numpy()).items():
                    record[f"validation_{name}"] = float(np.mean(terms))
            record["seconds"] = time.perf_counter() - started
            state.history.epochs.append(record)
            self._emit("epoch_end", state, record)
            self._emit("fit_end", state)
        processes.barrier()  # nobody reads the run before rank 0 has written it
        return state.history


def _validation_means(model, valid, processes: Distributed) -> dict[str, float]:
    terms = model.batch_loss_terms(valid)
    names = list(terms)
    sums = torch.stack([terms[name].double().sum() for name in names]
                       + [torch.tensor(float(len(valid)), dtype=torch.float64,
                                       device=valid.x.device)])
    sums = processes.sum(sums)
    return {f"validation_{name}": float(sums[index] / sums[-1])
            for index, name in enumerate(names)}


def fit(model, x, *, validation=None, out=None, resume: bool = False, progress: bool = True,
        log_dir=None, log_to: str | None = None, run_files: dict | None = None,
        batch_transform=None, callbacks=(), config: TrainingConfig | None = None,
        **options) -> TrainingHistory:
    """Train ``model`` on ``x``: ``Trainer(config, callbacks).fit(model, x, validation)``.

    options: the fields of ``TrainingConfig`` (epochs, batch_size, learning_rate, ...; they
        override ``config``'s), and the batch fields labels, label_known, observed, lengths,
        which are put into a ``Batch`` with x. out: the run directory (config, weights,
        history.csv, training.json, ``run_files`` and a checkpoint each epoch; ``resume=True``
        continues from it). log_dir: TensorBoard. log_to="mlflow": an MLflow run
        (``aevae.tracking.MLflowLogger``). progress: a bar and a line per epoch. callbacks:
        your own ``Callback`` objects, called after the built-in ones.
    """
    fields = {name: options.pop(name, None) for name in FIELDS}
    fields = {name: value for name, value in fields.items() if value is not None}
    if fields:
        if isinstance(x, Batch):
            raise ValueError("training data: pass the fields inside the Batch or as "
                             "keywords, not both")
        if isinstance(x, (Dataset, NpyStream)):
            raise ValueError("batch fields (labels, masks, lengths) need in-memory data, "
                             "not a stream")
        x = Batch(x, **fields)
    config = TrainingConfig.from_options(options, base=config)
    if resume and out is None:
        raise ValueError("resume=True needs the run directory (out=) to resume from")
    yours = list(callbacks)
    if not all(isinstance(callback, Callback) for callback in yours):
        raise TypeError("callbacks: expected aevae.training.Callback objects")
    files = RunFiles(out, resume=resume, files=run_files) if out is not None else None
    built_in = [files] if files is not None else []
    built_in += [TensorBoard(log_dir)] if log_dir is not None else []
    built_in += [tracker(log_to)] if log_to is not None else []
    built_in += [Progress()] if progress else []
    last = [files.writer()] if files is not None else []  # after yours: they may stop the run
    trainer = Trainer(config, built_in + yours + last, batch_transform=batch_transform)
    return trainer.fit(model, x, validation)


def _fit_signature() -> inspect.Signature:
    """``fit``'s signature with every training option named, for help() and editors."""
    base = inspect.signature(fit)
    keyword = inspect.Parameter.KEYWORD_ONLY
    named = [inspect.Parameter(name, keyword, default=TrainingConfig.default(name))
             for name in TrainingConfig.names()]
    named += [inspect.Parameter(name, keyword, default=None) for name in FIELDS]
    kept = [parameter for parameter in base.parameters.values()
            if parameter.kind is not inspect.Parameter.VAR_KEYWORD]
    return base.replace(parameters=kept + named)


fit.__signature__ = _fit_signature()
