"""Experiment tracking: TensorBoard event files written by ``fit(log_dir=...)``.

Each epoch logs the loss terms (training and validation), the KL weight and the epoch's time;
the KL of each latent dimension (models with a posterior) and a grid of decoded prior samples
(image data) are logged too, as long as all logging stays within ``budget`` (2%) of the time
spent training: on tiny epochs the heavy items are thinned out instead of slowing training, but
the last epoch always gets them (at ``close``), so even a one-epoch run has both.
Needs the optional ``tensorboard`` package (``pip install aevae[tensorboard]``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

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
