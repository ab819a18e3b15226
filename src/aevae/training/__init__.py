"""Training: one loop for every model (``fit``), built from small pieces.

- ``batches``: checking training data and serving it as batches (in memory or streamed);
- ``devices``: device choice, whether data fits on it, mixed precision;
- ``step``: one optimisation step (fused optimizers, compile, clipping, running sums);
- ``distributed``: data parallelism under ``torchrun``;
- ``checkpoints``: the run directory, written atomically each epoch, and resuming it;
- ``history``: the per-epoch record;
- ``loop``: ``fit``, which puts them together.
"""

from .batches import as_training_batch, as_training_tensor
from .checkpoints import CHECKPOINT_FILE, TRAINING_FILE
from .devices import DEVICE_TYPES, PRECISIONS, resolve_device
from .distributed import Distributed
from .history import HISTORY_FILE, TrainingHistory
from .loop import TrainingDivergedError, fit
from .step import OPTIMIZERS, TrainingStep

__all__ = [
    "CHECKPOINT_FILE", "DEVICE_TYPES", "HISTORY_FILE", "OPTIMIZERS", "PRECISIONS",
    "TRAINING_FILE", "Distributed", "TrainingDivergedError", "TrainingHistory", "TrainingStep",
    "as_training_batch", "as_training_tensor", "fit", "resolve_device",
]
