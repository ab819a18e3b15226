"""``TrainingConfig``: the training options in one place, with their defaults, checks and help.

``fit``, the command line's training flags, the study's budgets and the scikit-learn facade
all build one of these; training.json is its record.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

from ..checks import is_whole
from ..schedules import make_schedule
from .devices import PRECISIONS

OPTIMIZER_NAMES = ("adam", "adamw", "sgd")


def _option(default, help: str, parse=None, *, flag: bool = True, choices=None):
    """A field with what the command line needs: help text, the parser of its text (``parse``)
    and choices; ``flag=False``: not a flag."""
    parse = parse or type(default)
    return field(default=default, metadata={"help": help, "parse": parse, "flag": flag,
                                            "choices": choices})


@dataclass(frozen=True)
class TrainingConfig:
    """How a model is trained. Every field has a default; ``check`` runs on construction."""

    epochs: int = _option(10, "training epochs (the most, with --patience)")
    batch_size: int = _option(100, "examples per step")
    learning_rate: float = _option(1e-3, "the optimizer's step size")
    optimizer: str = _option("adam", "optimizer", choices=OPTIMIZER_NAMES)
    weight_decay: float = _option(0.0, "weight decay (decoupled for adamw)")
    seed: int = _option(0, "seeds initialisation order, shuffling and sampling noise")
    patience: int | None = _option(None, "early stopping: epochs without a better "
                                   "validation loss (needs validation data)", int)
    gradient_clip: float | None = _option(None, "clip the gradient norm to this", float)
    kl_schedule: str | float | Callable[[int], float] | None = _option(
        None, "weight of the KL term per step: a number, linear:STEPS or cyclical:PERIOD", str)
    labelled_per_batch: int | None = _option(
        None, "semi-supervised models: labelled examples in every batch (needs label_known)",
        int, flag=False)
    device: str = _option("auto", "auto, cpu or cuda (cuda:N)")
    precision: str = _option("fp32", "mixed precision: bf16 (CPU or GPU) or fp16 with loss "
                             "scaling (GPU)", choices=PRECISIONS)
    compile: bool | str = _option("auto", "torch.compile the loss (auto: on for long GPU "
                                  "runs; falls back to eager if compiling fails)")
    cuda_graphs: bool = _option(False, "replay each training step from one CUDA graph (GPU, "
                                "data resident on it; falls back to eager steps, saying why)")
    restore_best: bool = _option(True, "end with the weights of the best validation epoch")

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Refuse options no run could use, naming the option; whole numbers of any integer
        type (numpy's too) are stored as int."""
        for name, lowest in (("epochs", 1), ("batch_size", 1), ("seed", 0), ("patience", 1),
                             ("labelled_per_batch", 1)):
            value = getattr(self, name)
            if value is None and name in ("patience", "labelled_per_batch"):
                continue
            if not is_whole(value):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            if value < lowest:
                raise ValueError(f"{name} must be at least {lowest}, got {value}")
            if name == "seed" and value >= 2**63:
                raise ValueError(f"seed must be below 2**63, got {value}")
            object.__setattr__(self, name, int(value))  # frozen: set once, here
        for name in ("learning_rate", "weight_decay", "gradient_clip"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, numbers.Real)
                                      or isinstance(value, bool)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not 0 < self.learning_rate < float("inf"):
            raise ValueError("learning_rate must be a positive finite number, got "
                             f"{self.learning_rate}")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: "
                             f"{', '.join(OPTIMIZER_NAMES)}")
        if not 0 <= self.weight_decay < float("inf"):
            raise ValueError(f"weight_decay must be a finite number >= 0, got "
                             f"{self.weight_decay}")
        if not callable(self.kl_schedule):
            make_schedule(self.kl_schedule)  # a bad schedule is refused here, not in fit
        if self.gradient_clip is not None and not self.gradient_clip > 0:
            raise ValueError(f"gradient_clip must be positive, got {self.gradient_clip}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; use "
                             f"{', '.join(PRECISIONS)}")
        if not isinstance(self.cuda_graphs, bool):
            raise ValueError(f"cuda_graphs must be True or False, got {self.cuda_graphs!r}")
        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {self.compile!r}")
        if self.labelled_per_batch is not None and not (
                1 <= self.labelled_per_batch < self.batch_size):
            raise ValueError("labelled_per_batch needs label_known and must be in "
                             f"1..batch_size - 1 ({self.batch_size - 1})")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(item.name for item in dataclasses.fields(cls))

    @classmethod
    def default(cls, name: str):
        return next(item.default for item in dataclasses.fields(cls) if item.name == name)

    @classmethod
    def flags(cls) -> list[dataclasses.Field]:
        """The fields the command line offers as flags, in declaration order."""
        return [item for item in dataclasses.fields(cls) if item.metadata.get("flag")]

    @classmethod
    def from_options(cls, options: dict, base: TrainingConfig | None = None) -> TrainingConfig:
        """``base`` (or the defaults) with keyword options replaced, refusing a name that is
        not a training option."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise TypeError(f"unknown training option{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(unknown)}; known: {', '.join(cls.names())}")
        return dataclasses.replace(base, **options) if base is not None else cls(**options)

    def record(self, *, schedule, device, processes: int) -> dict:
        """training.json: every option as this run applied it (the schedule as built, the
        device as resolved) and the number of processes."""
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        values.update(kl_schedule=repr(schedule), device=str(device), processes=processes)
        return values
