"""Training: one loop for every model (``Trainer``, and ``fit`` in front of it), built from
small pieces.

- ``config``: ``TrainingConfig``, the options with their defaults, checks and help;
- ``sources``: where batches come from (in memory, a torch Dataset, a chunked .npy stream);
- ``batches``: checking training data and cutting it into batches;
- ``devices``: device choice, whether data fits on it, mixed precision;
- ``step``: one optimisation step (fused optimizers, compile, clipping, running sums);
- ``graphs``: the step replayed from one CUDA graph (``cuda_graphs=True``);
- ``callbacks``: early stopping and best weights, the run directory, TensorBoard, progress;
  ``MLflowLogger`` (defined in ``aevae.tracking``) logs a fit to MLflow;
- ``distributed``: data parallelism under ``torchrun``;
- ``checkpoints``: the run directory, written atomically each epoch, and resuming it;
- ``history``: the per-epoch record;
- ``trainer``: ``Trainer`` and ``fit``, which put them together.
"""

from .batches import as_training_batch, as_training_tensor
from .callbacks import (
    BestValidation,
    Callback,
    Progress,
    RunFiles,
    TensorBoard,
    TrainingState,
)
from .checkpoints import CHECKPOINT_FILE, TRAINING_FILE
from .config import TrainingConfig
from .devices import DEVICE_TYPES, PRECISIONS, resolve_device
from .distributed import Distributed
from .history import HISTORY_FILE, TrainingHistory
from .sources import ChunkedStream, InMemory, TorchDataset, data_source
from .step import OPTIMIZERS, TrainingStep
from .trainer import Trainer, TrainingDivergedError, fit

__all__ = [
    "CHECKPOINT_FILE", "DEVICE_TYPES", "HISTORY_FILE", "OPTIMIZERS", "PRECISIONS",
    "TRAINING_FILE", "BestValidation", "Callback", "ChunkedStream", "Distributed", "InMemory",
    "MLflowLogger", "Progress", "RunFiles", "TensorBoard", "TorchDataset", "Trainer",
    "TrainingConfig", "TrainingDivergedError", "TrainingHistory", "TrainingState", "TrainingStep",
    "as_training_batch", "as_training_tensor", "data_source", "fit", "resolve_device",
]


def __getattr__(name: str):
    # aevae.tracking builds on callbacks: imported on first use, so either module may load first.
    if name == "MLflowLogger":
        from ..tracking import MLflowLogger

        return MLflowLogger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
