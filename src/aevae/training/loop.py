"""``fit``: the one training loop every model shares, assembled from the pieces of this package
(data and batches, device and precision, the step, checkpoints, processes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.streaming import NpyStream
from ..models.base import Autoencoder
from ..schedules import make_schedule
from . import batches as batching
from .checkpoints import TRAINING_FILE, RunDirectory
from .devices import Precision, fits_on_device, resolve_device
from .distributed import Distributed
from .history import TrainingHistory
from .step import OPTIMIZERS, TrainingStep, compile_wanted


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def fit(
    model: Autoencoder,
    x,
    *,
    validation=None,
    epochs: int = 10,
    batch_size: int = 100,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    patience: int | None = None,
    gradient_clip: float | None = None,
    kl_schedule: Callable[[int], float] | str | float | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    compile: bool | str = "auto",
    progress: bool = True,
    restore_best: bool = True,
    log_dir: str | Path | None = None,
    run_files: dict[str, object] | None = None,
    labels=None,
    label_known=None,
    observed=None,
    lengths=None,
    labelled_per_batch: int | None = None,
) -> TrainingHistory:
    """Train ``model`` on ``x`` (array, tensor, ``aevae.data.batch.Batch`` or
    ``torch.utils.data.Dataset``).

    labels, label_known, observed, lengths: the batch fields of the models that read them
        (conditional and semi-supervised models, missing entries, padded sequences); a
        ``validation`` Batch carries its own.
    labelled_per_batch: with ``label_known``, put this many labelled examples in every batch
        (cycling through them) beside batch_size minus that many unlabelled ones, so that a
        few labels among many unlabelled examples reach every step (semi-supervised models
        weigh the two parts back to their shares).
    validation: held-out data; its loss (KL weight 1) is recorded each epoch and drives early
        stopping (``patience`` epochs without improvement) and ``restore_best``.
    out: run directory for ``config.json``, ``model.safetensors``, ``history.csv`` and the
        per-epoch checkpoint; ``resume=True`` continues from that checkpoint.
    kl_schedule: weight on the KL term per step: a callable, a number, or ``"linear:STEPS"`` /
        ``"cyclical:PERIOD"``.
    batch_transform: applied to each training batch (e.g. dynamic binarization).
    precision: ``"fp32"``, ``"bf16"`` (autocast, CPU or GPU) or ``"fp16"`` (autocast with loss
        scaling, GPU).
    compile: ``torch.compile`` the loss: True, False, or ``"auto"`` (on for long GPU runs);
        a compiler failure falls back to eager training with a warning.
    run_files: more JSON files (name: value) for ``out``, written with ``training.json``.
    log_dir: write TensorBoard curves, per-dimension KL and sample grids there (needs the
        ``tensorboard`` extra; logging keeps within 2% of the training time).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its share of every global
    batch of ``batch_size`` and gradients are averaged, so a step equals one process's step on
    the whole batch; only rank 0 writes ``out``, logs and shows progress.

    Nothing is written into ``out`` before the first epoch is done, so a run that fails
    earlier (bad options, data, divergence) leaves no files or folders behind.
    """
    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError("epochs and batch_size must be at least 1 and learning_rate positive")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    if patience is not None and validation is None:
        raise ValueError("early stopping (patience) needs validation data")
    if resume and out is None:
        raise ValueError("resume=True needs the run directory (out=) to resume from")
    schedule = kl_schedule if callable(kl_schedule) else make_schedule(kl_schedule)
    device = resolve_device(device)
    precision_ = Precision(precision, device)
    fields = {"labels": labels, "label_known": label_known, "observed": observed,
              "lengths": lengths}
    streamed = isinstance(x, Dataset)
    chunked = isinstance(x, NpyStream)
    if labelled_per_batch is not None and (label_known is None or not
                                           1 <= labelled_per_batch < batch_size):
        raise ValueError("labelled_per_batch needs label_known and must be in "
                         f"1..batch_size - 1 ({batch_size - 1})")
    if (streamed or chunked) and any(value is not None for value in fields.values()):
        raise ValueError("batch fields (labels, masks, lengths) need in-memory data, not a "
                         "stream")
    if chunked:
        batching.check_stream_shape(model, x)
    train = None if streamed or chunked else batching.as_training_batch(model, x, fields,
                                                                        "training data")
    valid = None
    if validation is not None:
        valid = batching.as_training_batch(model, validation, {}, "validation data")

    processes = Distributed.from_environment(device)
    device = processes.local_device(device)
    if processes.enabled and batch_size < processes.world:
        raise ValueError(f"batch_size {batch_size} is smaller than the {processes.world} "
                         "processes sharing each batch")
    # Data lives on the device when it fits; else batches travel from page-locked memory.
    resident = train is None or fits_on_device(train.x.element_size() * train.x.numel(), device)
    if train is not None:
        train = train.to(device) if resident else train
    if valid is not None:
        valid = valid.take(slice(processes.rank, None, processes.world)).to(device)
    model.to(device)
    model.prepare_training(train, len(x) if train is None else len(train))

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    processes.broadcast_state(model)
    if processes.rank > 0:  # its own noise: the same draws in every process would correlate
        torch.manual_seed(seed + 1_000_003 * processes.rank)
    steps_per_epoch = batching.count_batches(train, None, batch_size, labelled_per_batch) \
        if train is not None else -(-len(x) // batch_size)
    stepper = TrainingStep(
        model, optimizer=optimizer, learning_rate=learning_rate, weight_decay=weight_decay,
        gradient_clip=gradient_clip, precision=precision_, distributed=processes, device=device,
        compile=compile_wanted(compile, device, epochs * steps_per_epoch))
    history = TrainingHistory()
    step, best_state, stale_epochs = 0, None, 0

    run = RunDirectory(out) if out is not None else None
    settings = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "optimizer": optimizer, "weight_decay": weight_decay, "seed": seed,
                "patience": patience, "gradient_clip": gradient_clip,
                "kl_schedule": repr(schedule), "device": str(device),
                "labelled_per_batch": labelled_per_batch, "precision": precision,
                "processes": processes.world}
    if run is not None:
        if processes.main:
            run.prepare(resume)
        processes.barrier()  # rank 0 has checked the directory (and raised if it must)
        if run.checkpoint.exists():  # only when resuming: prepare refuses it otherwise
            step, stale_epochs, best_state = run.resume(model, stepper.optimizers, generator,
                                                        history)
            if processes.rank > 0:
                torch.manual_seed(seed + 1_000_003 * processes.rank + step)
    # Written with the first checkpoint: until then a failure has nothing to clean up.
    pending_files = {TRAINING_FILE: settings, **(run_files or {})}

    loader = None
    if streamed:
        sampler = None
        if processes.enabled:
            sampler = DistributedSampler(x, processes.world, processes.rank, seed=seed)
        loader = DataLoader(x, batch_size=max(1, batch_size // processes.world),
                            shuffle=sampler is None, sampler=sampler, generator=generator,
                            pin_memory=device.type == "cuda")
    logger = None
    if log_dir is not None and processes.main:
        from ..tracking import TensorBoardLogger

        logger = TensorBoardLogger(log_dir)
    show = progress and processes.main
    for epoch in range(len(history.epochs) + 1, epochs + 1):
        if history.stopped_early:
            break
        started = time.perf_counter()
        model.train()
        stepper.reset_sums()
        if streamed:
            if loader.sampler is not None and hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
            epoch_batches = batching.streamed(loader, model, device)
        elif chunked:
            epoch_batches = batching.chunked(x, batch_size, generator, processes, model,
                                             device)
        else:
            epoch_batches = _shares(train, batch_size, generator, labelled_per_batch,
                                    processes, device, resident)
        bar = _progress_bar(show, epoch, epochs, steps_per_epoch)
        weight = schedule(step)
        for batch in epoch_batches:
            if batch_transform is not None:
                batch = batch.replace(x=batch_transform(batch.x))
            weight = schedule(step)
            stepper(batch, weight, step)
            step += 1
            bad = stepper.bad_loss(step)
            if bad is not None:
                _diverged(run, model, epoch, step, bad)
            if bar is not None:
                bar.update(1)
                if step % 25 == 0:
                    bar.set_postfix(loss=f"{stepper.running_loss():.3f}", refresh=False)
        if bar is not None:
            bar.close()
        bad = stepper.bad_loss(step, force=True)
        if bad is not None:
            _diverged(run, model, epoch, step, bad)
        record = {"epoch": epoch, **stepper.epoch_sums(), "kl_weight": float(weight)}
        if valid is not None:
            # Scored at KL weight 1: the model's own objective, not the schedule's.
            record.update(_validation_means(model, valid, processes))
        record["seconds"] = time.perf_counter() - started
        history.epochs.append(record)
        if logger is not None:
            logger.epoch_end(model, record, None if valid is None else valid.x)

        if valid is not None:
            current = record["validation_loss"]
            if history.best_validation_loss is None or current < history.best_validation_loss:
                history.best_validation_loss, history.best_epoch = current, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                stale_epochs = 0
            else:
                stale_epochs += 1
                if patience is not None and stale_epochs >= patience:
                    history.stopped_early = True
        if show:
            _print_epoch(record, epochs)
        if run is not None and processes.main:
            run.write_epoch(model, stepper.optimizers, generator, history, {
                "step": step, "stale_epochs": stale_epochs,
                "best_state": best_state if best_state is not None else {},
            }, pending_files)
            pending_files = {}

    if logger is not None:
        logger.close()
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
        if run is not None and processes.main:
            model.save(run.directory)
    processes.barrier()  # nobody reads the run before rank 0 has written it
    return history


def _shares(train, batch_size, generator, labelled_per_batch, processes: Distributed,
            device, resident: bool):
    """This process's share of each global batch, on the device."""
    for indices in batching.index_batches(train, batch_size, generator, labelled_per_batch):
        if len(indices) < processes.world:
            continue  # a last batch too small to give every process an example
        share = processes.share(indices)
        if resident:
            yield train.take(share.to(device))
        else:
            yield train.take(share).pin_memory().to(device, non_blocking=True)


def _validation_means(model, valid, processes: Distributed) -> dict[str, float]:
    terms = model.batch_loss_terms(valid)
    names = list(terms)
    sums = torch.stack([terms[name].double().sum() for name in names]
                       + [torch.tensor(float(len(valid)), dtype=torch.float64,
                                       device=valid.x.device)])
    sums = processes.sum(sums)
    return {f"validation_{name}": float(sums[index] / sums[-1])
            for index, name in enumerate(names)}


def _progress_bar(enabled: bool, epoch: int, epochs: int, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # disable=None: no per-batch bar when stderr is not a terminal (logs keep the epoch lines).
    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", leave=False, mininterval=0.5,
                disable=None)


def _print_epoch(record: dict, epochs: int) -> None:
    from tqdm.auto import tqdm

    shown = [f"{key}={value:.4f}" for key, value in record.items()
             if key.startswith(("train_", "validation_"))]
    tqdm.write(f"epoch {record['epoch']}/{epochs} " + " ".join(shown)
               + f" ({record['seconds']:.1f}s)")


def _diverged(run: RunDirectory | None, model, epoch: int, step: int, loss: float) -> None:
    kept = run.restore_last_good(model) if run is not None else "; no checkpoint was written yet"
    raise TrainingDivergedError(
        f"training diverged: loss is {loss} at epoch {epoch}, step {step}{kept}. Try a lower "
        "learning rate, gradient clipping, or check the data scale"
    )
