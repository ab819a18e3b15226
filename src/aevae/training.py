"""One training loop for every model.

In-memory data is batched straight from tensors (one permutation per epoch, gathered per batch);
data that does not fit in memory comes through a ``torch.utils.data.Dataset``. Each epoch writes
an atomic checkpoint (model, optimizer, RNG states, history) so ``resume=True`` continues a killed
run losing at most one epoch, bit for bit on the CPU.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .data import DataError, validate_array
from .data.batch import Batch, make_batch
from .io import (
    CorruptFileError,
    atomic_write_json,
    atomic_write_text,
    load_tensors,
    one_line,
    read_json,
    remove_temporary_files,
    save_tensors,
)
from .models.base import CONFIG_FILE, Autoencoder
from .schedules import make_schedule

CHECKPOINT_FILE = "checkpoint.safetensors"
HISTORY_FILE = "history.csv"
TRAINING_FILE = "training.json"
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainingHistory:
    """Per-epoch records (``epoch``, ``train_loss``, ``train_<term>``, ``validation_<term>``,
    ``kl_weight``, ``seconds``) and how training ended."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_validation_loss: float | None = None
    stopped_early: bool = False

    def column(self, name: str) -> list[float]:
        return [record[name] for record in self.epochs]

    def to_csv(self) -> str:
        if not self.epochs:
            return ""
        names = list(dict.fromkeys(key for record in self.epochs for key in record))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.epochs)
        return buffer.getvalue()

    def to_dict(self) -> dict:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, values: dict) -> TrainingHistory:
        return cls(**values)


DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` (a GPU if one is visible, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
    ``"mps"``; a device this machine cannot use raises ValueError saying why."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in DEVICE_TYPES:
        raise ValueError(f"unknown device {str(device)!r}; use auto, cpu, cuda, cuda:N or mps")
    if resolved.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ValueError(f"device {str(device)!r}: this PyTorch has no CUDA support")
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise ValueError(f"device {str(device)!r}: no CUDA GPU is visible")
        if resolved.index is not None and resolved.index >= visible:
            raise ValueError(f"device {str(device)!r}: only {visible} CUDA GPU(s) are visible")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available on this machine")
    return resolved


def as_training_batch(model: Autoencoder, x, fields: dict, name: str) -> Batch:
    """A checked Batch of x (array, tensor or Batch) and the fields the model uses."""
    if isinstance(x, Batch):
        if any(value is not None for value in fields.values()):
            raise ValueError(f"{name}: pass the fields inside the Batch or as keywords, "
                             "not both")
        fields, x = x.fields(), x.x  # arrays or tensors: make_batch checks either
    unused = sorted(key for key, value in fields.items()
                    if value is not None and key not in model.uses)
    if unused:
        raise ValueError(f"{model.name} does not use {', '.join(unused)}")
    if fields.get("observed") is not None:
        # Missing entries may hold anything (NaN, typically): they are never read.
        values = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        observed = np.asarray(fields["observed"], dtype=bool)
        if observed.shape != values.shape:
            raise DataError(f"{name} observed: the mask must be shaped like x {values.shape}, "
                            f"got {observed.shape}")
        x = np.where(observed, values, 0).astype(np.float32)
    return make_batch(as_training_tensor(model, x, name), fields, name)


def as_training_tensor(model: Autoencoder, x, name: str) -> torch.Tensor:
    """Validate shape, finiteness and the value range the likelihood needs; return float32."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    likelihood = "bernoulli" if model.likelihood.needs_unit_interval else None
    array = validate_array(array, name=name, likelihood=likelihood)
    expected = model.input_shape
    if tuple(array.shape[1:]) != expected:
        if math.prod(array.shape[1:]) != math.prod(expected):
            raise DataError(
                f"{name}: examples are shaped {tuple(array.shape[1:])} but the model expects "
                f"{expected}"
            )
        array = array.reshape(len(array), *expected)
    return torch.from_numpy(np.ascontiguousarray(array))


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    state = {"rng.torch": torch.get_rng_state(), "rng.shuffle": generator.get_state()}
    if torch.cuda.is_available():
        state["rng.cuda"] = torch.cuda.get_rng_state()
    return state


def _optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able values."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer, prefix: str, tensors: dict, saved: dict) -> None:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in saved["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


class _Run:
    """The files of a run directory: config, weights, history, checkpoint."""

    def __init__(self, directory):
        self.directory = Path(directory)

    @property
    def checkpoint(self) -> Path:
        return self.directory / CHECKPOINT_FILE

    def check_writable(self) -> None:
        """Fail now rather than after the first epoch if the run cannot be written."""
        existing = next(folder for folder in (self.directory, *self.directory.parents)
                        if folder.exists())
        if not existing.is_dir():
            raise NotADirectoryError(f"cannot write the run {self.directory}: {existing} is "
                                     "not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write the run {self.directory}: {existing} is not "
                                  "writable")

    def write_epoch(self, model, optimizers, generator, history, progress: dict,
                    files: dict[str, object]) -> None:
        # The checkpoint is the file a resume needs; write it last so a kill between files
        # leaves a consistent older checkpoint rather than a newer half.
        for name, value in files.items():
            atomic_write_json(self.directory / name, value)
        model.save(self.directory)
        atomic_write_text(self.directory / HISTORY_FILE, history.to_csv())
        tensors = {f"model.{key}": value for key, value in model.state_dict().items()}
        optimizer_json = {}
        for name, optimizer in optimizers.items():
            optimizer_tensors, optimizer_json[name] = _optimizer_tensors(optimizer, name)
            tensors.update(optimizer_tensors)
        tensors.update(_rng_state(generator))
        tensors.update({f"best.{key}": value for key, value in progress.pop("best_state").items()})
        metadata = {"history": history.to_dict(), "optimizers": optimizer_json, **progress}
        save_tensors(self.checkpoint, tensors, metadata)


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
    run_files: more JSON files (name: value) for ``out``, written with ``training.json``.
    log_dir: write TensorBoard curves, per-dimension KL and sample grids there (needs the
        ``tensorboard`` extra; logging keeps within 2% of the training time).

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
    streamed = isinstance(x, Dataset)
    fields = {"labels": labels, "label_known": label_known, "observed": observed,
              "lengths": lengths}
    if labelled_per_batch is not None and (label_known is None or not
                                           1 <= labelled_per_batch < batch_size):
        raise ValueError("labelled_per_batch needs label_known and must be in "
                         f"1..batch_size - 1 ({batch_size - 1})")
    if streamed and any(value is not None for value in fields.values()):
        raise ValueError("batch fields (labels, masks, lengths) need in-memory data, not a "
                         "torch Dataset")
    train = None if streamed else as_training_batch(model, x, fields, "training data").to(device)
    valid = None
    if validation is not None:
        valid = as_training_batch(model, validation, {}, "validation data").to(device)
    model.to(device)
    model.prepare_training(train, len(x) if streamed else len(train))

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    auxiliary = {id(p) for p in model.auxiliary_parameters()}
    parameters = [p for p in model.parameters() if p.requires_grad and id(p) not in auxiliary]
    optimizer_ = OPTIMIZERS[optimizer](parameters, lr=learning_rate, weight_decay=weight_decay)
    auxiliary_optimizer = None
    if auxiliary:
        auxiliary_optimizer = OPTIMIZERS[optimizer](model.auxiliary_parameters(), lr=learning_rate)
    optimizers = {"optimizer": optimizer_, "auxiliary_optimizer": auxiliary_optimizer}
    optimizers = {name: value for name, value in optimizers.items() if value is not None}
    history = TrainingHistory()
    step, best_state, stale_epochs = 0, None, 0

    run = _Run(out) if out is not None else None
    settings = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "optimizer": optimizer, "weight_decay": weight_decay, "seed": seed,
                "patience": patience, "gradient_clip": gradient_clip,
                "kl_schedule": repr(schedule), "device": str(device),
                "labelled_per_batch": labelled_per_batch}
    if run is not None:
        if run.checkpoint.exists() and resume:
            step, stale_epochs, best_state = _resume(run, model, optimizers, generator, history)
        elif run.checkpoint.exists():
            raise FileExistsError(
                f"{run.directory} already holds a training run; resume it (resume=True / "
                "--resume) or choose another output directory"
            )
        run.check_writable()
        remove_temporary_files(run.directory)  # left by a run killed while writing
    # Written with the first checkpoint: until then a failure has nothing to clean up.
    pending_files = {TRAINING_FILE: settings, **(run_files or {})}

    loader = None
    if streamed:
        loader = DataLoader(x, batch_size=batch_size, shuffle=True, generator=generator)

    logger = None
    if log_dir is not None:
        from .tracking import TensorBoardLogger

        logger = TensorBoardLogger(log_dir)
    start_epoch = len(history.epochs) + 1
    for epoch in range(start_epoch, epochs + 1):
        if history.stopped_early:
            break
        started = time.perf_counter()
        model.train()
        if streamed:
            batches = _stream(loader, model, device)
        elif labelled_per_batch is not None:
            batches = _mixed(train, batch_size, labelled_per_batch, generator)
        else:
            batches = _shuffled(train, batch_size, generator)
        bar = _progress_bar(progress, epoch, epochs,
                            _count(train, loader, batch_size, labelled_per_batch))
        totals, count, weight = None, 0, schedule(step)
        for batch in batches:
            if batch_transform is not None:
                batch = batch.replace(x=batch_transform(batch.x))
            weight = schedule(step)
            output = model.batch_loss(batch, kl_weight=weight, step=step)
            loss = output.loss.mean()
            if not torch.isfinite(loss):
                _diverged(run, model, epoch, step, loss)
            optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            if gradient_clip is not None:
                torch.nn.utils.clip_grad_norm_(parameters, gradient_clip)
            optimizer_.step()
            if auxiliary_optimizer is not None:
                auxiliary_loss = model.auxiliary_loss(batch.x)
                auxiliary_optimizer.zero_grad(set_to_none=True)
                auxiliary_loss.backward()
                auxiliary_optimizer.step()
            # One stack and one reduction per step for the epoch's running sums.
            sums = torch.stack([output.loss.detach()]
                               + [term.detach() for term in output.terms.values()]).sum(1)
            totals = sums if totals is None else totals.add_(sums)
            count += len(batch)
            step += 1
            if bar is not None:
                bar.update(1)
                if step % 25 == 0:
                    bar.set_postfix(loss=f"{float(totals[0]) / count:.3f}", refresh=False)
        if bar is not None:
            bar.close()
        names = ["loss", *output.terms]
        record = {"epoch": epoch}
        record.update({f"train_{n}": float(v) / count for n, v in zip(names, totals.tolist())})
        record["kl_weight"] = float(weight)
        if valid is not None:
            terms = model.batch_loss_terms(valid)
            # Validation is scored at KL weight 1: the model's own objective, not the schedule's.
            record.update({f"validation_{n}": float(v.mean()) for n, v in terms.items()})
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
        if progress:
            _print_epoch(record, epochs)
        if run is not None:
            run.write_epoch(model, optimizers, generator, history, {
                "step": step, "stale_epochs": stale_epochs,
                "best_state": best_state if best_state is not None else {},
            }, pending_files)
            pending_files = {}

    if logger is not None:
        logger.close()
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
        if run is not None:
            model.save(run.directory)
    return history


def _resume(run: _Run, model, optimizers, generator, history) -> tuple[int, int, dict | None]:
    saved = read_json(run.directory / CONFIG_FILE)
    current = json.loads(json.dumps(model.config.to_dict()))  # tuples compare as JSON lists
    if (not isinstance(saved, dict) or saved.get("config") != current
            or saved.get("model") != model.name):
        raise ValueError(
            f"cannot resume: the model in {run.directory} differs from the one being trained"
        )
    tensors, metadata = load_tensors(run.checkpoint)
    try:
        model.load_state_dict(_prefixed(tensors, "model."))
        for name, optimizer in optimizers.items():
            _restore_optimizer(optimizer, name, tensors, metadata["optimizers"][name])
        torch.set_rng_state(tensors["rng.torch"])
        generator.set_state(tensors["rng.shuffle"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        restored = TrainingHistory.from_dict(metadata["history"])
        step, stale_epochs = int(metadata["step"]), int(metadata["stale_epochs"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
        detail = f"{error} is missing" if isinstance(error, KeyError) else one_line(error, 300)
        raise CorruptFileError(
            f"{run.checkpoint}: not a checkpoint of this run ({detail})"
        ) from None
    history.epochs, history.best_epoch = restored.epochs, restored.best_epoch
    history.best_validation_loss = restored.best_validation_loss
    history.stopped_early = restored.stopped_early
    best = _prefixed(tensors, "best.")
    device = next(model.parameters()).device
    best = {key: value.to(device) for key, value in best.items()} or None
    return step, stale_epochs, best


def _prefixed(tensors: dict, prefix: str) -> dict:
    """The checkpoint tensors stored under ``prefix``, with the prefix removed."""
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}


def _shuffled(train: Batch, batch_size: int, generator: torch.Generator):
    order = torch.randperm(len(train), generator=generator).to(train.x.device)
    # Gather batch by batch: a whole shuffled copy per epoch costs more memory traffic.
    for start in range(0, len(train), batch_size):
        yield train.take(order[start:start + batch_size])


def _mixed_parts(train: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    known = train.label_known
    return torch.nonzero(known).squeeze(1), torch.nonzero(~known).squeeze(1)


def _mixed(train: Batch, batch_size: int, labelled_per_batch: int,
           generator: torch.Generator):
    """Batches of ``labelled_per_batch`` labelled examples (cycling through a fresh shuffle of
    them each epoch) and ``batch_size`` minus that many unlabelled ones; plain shuffled batches
    when either part is empty."""
    labelled, unlabelled = _mixed_parts(train)
    if len(labelled) == 0 or len(unlabelled) == 0:
        yield from _shuffled(train, batch_size, generator)
        return
    rest = batch_size - labelled_per_batch
    order = unlabelled[torch.randperm(len(unlabelled), generator=generator).to(
        unlabelled.device)]
    batches = math.ceil(len(unlabelled) / rest)
    needed = batches * labelled_per_batch
    cycles = [torch.randperm(len(labelled), generator=generator)
              for _ in range(math.ceil(needed / len(labelled)))]
    labelled_order = labelled[torch.cat(cycles).to(labelled.device)]
    for index in range(batches):
        picked = labelled_order[index * labelled_per_batch:(index + 1) * labelled_per_batch]
        yield train.take(torch.cat([picked, order[index * rest:(index + 1) * rest]]))


def _stream(loader: DataLoader, model: Autoencoder, device: torch.device):
    for item in loader:
        batch = item[0] if isinstance(item, (tuple, list)) else item
        batch = batch.to(device, torch.float32)
        if tuple(batch.shape[1:]) != model.input_shape:
            batch = batch.reshape(len(batch), *model.input_shape)
        yield Batch(batch)


def _count(train, loader, batch_size, labelled_per_batch=None) -> int:
    if loader is not None:
        return len(loader)
    if labelled_per_batch is not None:
        labelled, unlabelled = _mixed_parts(train)
        if len(labelled) and len(unlabelled):
            return math.ceil(len(unlabelled) / (batch_size - labelled_per_batch))
    return math.ceil(len(train) / batch_size)


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


def _diverged(run, model, epoch, step, loss) -> None:
    where = f"at epoch {epoch}, step {step}"
    if run is not None and run.checkpoint.exists():
        tensors, metadata = load_tensors(run.checkpoint)
        model.load_state_dict(_prefixed(tensors, "model."))
        kept = f"; the last good checkpoint (epoch {len(metadata['history']['epochs'])}) is kept"
        kept += f" in {run.directory} and restored in memory"
    else:
        kept = "; no checkpoint was written yet"
    raise TrainingDivergedError(
        f"training diverged: loss is {float(loss.detach())} {where}{kept}. Try a lower "
        "learning rate, gradient clipping, or check the data scale"
    )
