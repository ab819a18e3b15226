"""The run directory: config, weights, history and a checkpoint written atomically each epoch,
so ``resume=True`` continues a killed run losing at most one epoch (bit for bit on the CPU)."""

from __future__ import annotations

import errno
import json
import os
import socket
import warnings
from pathlib import Path

import torch

from ..io import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CorruptFileError,
    atomic_write_json,
    atomic_write_text,
    folders_to_make,
    load_tensors,
    nearest_existing,
    one_line,
    read_json,
    remove_temporary_files,
    save_tensors,
)
from .history import HISTORY_FILE, TrainingHistory

CHECKPOINT_FILE = "checkpoint.safetensors"
TRAINING_FILE = "training.json"


def rng_state(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    state = {"rng.torch": torch.get_rng_state(), "rng.shuffle": generator.get_state()}
    if device.type == "cuda":  # the training GPU's own generator, not the current device's
        state["rng.cuda"] = torch.cuda.get_rng_state(device)
    return state


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
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


def restore_optimizer(optimizer, prefix: str, tensors: dict, saved: dict) -> None:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for name, value in saved["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def prefixed(tensors: dict, prefix: str) -> dict:
    """The checkpoint tensors stored under ``prefix``, with the prefix removed."""
    return {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}


def _read_json_or_none(path: Path):
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


LOCK_FILE = ".aevae-training.lock"


class RunLock:
    """One training process per run folder at a time: two would interleave their files (one
    model's weights beside the other's records). An advisory lock (flock) on a file in the
    folder, which the kernel drops when its process ends however it ends, so a killed run's
    leftover file locks nothing. Where flock does not exist (Windows) there is no lock."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.handle: int | None = None
        self.created: list[Path] = []  # folders this lock made, deepest first

    def acquire(self) -> None:
        self.created = folders_to_make(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:
            return
        for _ in range(3):
            handle = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    # A file system without locks (some NFS or Lustre mounts): no lock.
                    os.close(handle)
                    self.path.unlink(missing_ok=True)
                    warnings.warn(f"{self.directory}: cannot lock it ({error.strerror}); "
                                  "training without the one-process-per-folder lock",
                                  RuntimeWarning, stacklevel=2)
                    return
                holder = os.read(handle, 200).decode(errors="replace").strip() or "unknown"
                os.close(handle)
                self.release()
                raise FileExistsError(
                    f"{self.directory} is being trained into by another aevae process "
                    f"({holder}); wait for it to finish or choose another folder") from None
            try:  # the file may have been removed by the holder that just let go
                current = os.fstat(handle).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                os.close(handle)
                continue
            os.ftruncate(handle, 0)
            os.write(handle, f"pid {os.getpid()} on {socket.gethostname()}".encode())
            self.handle = handle
            return
        raise FileExistsError(f"{self.directory}: cannot take its training lock {self.path}")

    def release(self) -> None:
        if self.handle is not None:
            self.path.unlink(missing_ok=True)  # before letting go: see acquire
            os.close(self.handle)  # drops the flock
            self.handle = None
        created, self.created = self.created, []
        for folder in created:  # a run that wrote nothing leaves no folder behind
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: the run's files stay


class RunDirectory:
    """The files of a run directory: config, weights, history, checkpoint."""

    def __init__(self, directory):
        self.directory = Path(directory)

    @property
    def checkpoint(self) -> Path:
        return self.directory / CHECKPOINT_FILE

    def check_writable(self) -> None:
        """Fail now rather than after the first epoch if the run cannot be written."""
        existing = nearest_existing(self.directory)
        if not existing.is_dir():
            raise NotADirectoryError(f"cannot write the run {self.directory}: {existing} is "
                                     "not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write the run {self.directory}: {existing} is not "
                                  "writable")

    def prepare(self, resume: bool, solved: bool = False, model: str | None = None) -> bool:
        """Check the directory before training, once ``check_writable`` has (``solved``: for a
        closed-form model, which leaves weights and no checkpoint; ``model``: the name of the
        model trained); whether there is a checkpoint to resume."""
        held = self.directory / WEIGHTS_FILE if solved else self.checkpoint
        if held.exists() and not resume:
            raise FileExistsError(
                f"{self.directory} already holds a training run; resume it (resume=True / "
                "--resume) or choose another output directory"
            )
        if not self.checkpoint.exists():
            # Nothing to resume: files the run would write must not replace the user's (a
            # saved model, their own config.json). A run killed while writing its first
            # epoch left training.json first: that folder is a run, resumed from the start.
            taken = [name for name in (CONFIG_FILE, WEIGHTS_FILE, HISTORY_FILE, TRAINING_FILE)
                     if (self.directory / name).exists()]
            if taken:
                record = _read_json_or_none(self.directory / TRAINING_FILE)
                config = _read_json_or_none(self.directory / CONFIG_FILE)
                ours = (isinstance(record, dict) and ("fit" in record) == solved  # same kind
                        and (not isinstance(config, dict) or config.get("model") == model))
                if not ours:
                    raise FileExistsError(
                        f"{self.directory} already holds {', '.join(taken)} and no training "
                        "run to resume; choose another output directory (or delete them)")
                if not resume:
                    raise FileExistsError(
                        f"{self.directory} already holds a training run that wrote no "
                        "checkpoint; resume it (resume=True / --resume) to train it from the "
                        "start, or choose another output directory")
        remove_temporary_files(self.directory)  # left by a run killed while writing
        return self.checkpoint.exists()

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
            tensors_of_optimizer, optimizer_json[name] = optimizer_tensors(optimizer, name)
            tensors.update(tensors_of_optimizer)
        tensors.update(rng_state(generator, model.device))
        tensors.update({f"best.{key}": value for key, value in progress.pop("best_state").items()})
        metadata = {"history": history.to_dict(), "optimizers": optimizer_json, **progress}
        save_tensors(self.checkpoint, tensors, metadata)

    def write_solution(self, model, history, files: dict[str, object]) -> None:
        """A closed-form model's run: the files, weights and history; no checkpoint."""
        for name, value in files.items():
            atomic_write_json(self.directory / name, value)
        model.save(self.directory)
        atomic_write_text(self.directory / HISTORY_FILE, history.to_csv())

    def resume(self, model, optimizers, generator, history,
               scaler=None) -> tuple[int, int, dict | None]:
        """Load the checkpoint into model, optimizers, RNGs, history and fp16's loss scaler;
        returns the step, the epochs without improvement and the best weights so far."""
        saved = read_json(self.directory / CONFIG_FILE)
        current = json.loads(json.dumps(model.config.to_dict()))  # tuples compare as lists
        if (not isinstance(saved, dict) or saved.get("config") != current
                or saved.get("model") != model.name):
            raise ValueError(
                f"cannot resume: the model in {self.directory} differs from the one being "
                "trained"
            )
        tensors, metadata = load_tensors(self.checkpoint)
        try:
            model.load_state_dict(prefixed(tensors, "model."))
            for name, optimizer in optimizers.items():
                restore_optimizer(optimizer, name, tensors, metadata["optimizers"][name])
            torch.set_rng_state(tensors["rng.torch"])
            generator.set_state(tensors["rng.shuffle"])
            if "rng.cuda" in tensors and model.device.type == "cuda":
                torch.cuda.set_rng_state(tensors["rng.cuda"], model.device)
            restored = TrainingHistory.from_dict(metadata["history"])
            if scaler is not None and metadata.get("scaler"):
                # The scale it had learnt: a fresh one (65536) skips steps finding it again.
                scaler.load_state_dict(metadata["scaler"])
            step, stale_epochs = int(metadata["step"]), int(metadata["stale_epochs"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:
            detail = f"{error} is missing" if isinstance(error, KeyError) else one_line(error, 300)
            raise CorruptFileError(
                f"{self.checkpoint}: not a checkpoint of this run ({detail})"
            ) from None
        history.replace_with(restored)
        device = next(model.parameters()).device
        best = {key: value.to(device) for key, value in prefixed(tensors, "best.").items()}
        return step, stale_epochs, best or None

    def restore_last_good(self, model) -> str:
        """Put the checkpoint's weights back into model; says what was kept."""
        if not self.checkpoint.exists():
            return "; no checkpoint was written yet"
        tensors, metadata = load_tensors(self.checkpoint)
        model.load_state_dict(prefixed(tensors, "model."))
        return (f"; the last good checkpoint (epoch {len(metadata['history']['epochs'])}) is "
                f"kept in {self.directory} and restored in memory")
