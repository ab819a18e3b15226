"""The whole training step replayed from one CUDA graph (``cuda_graphs=True``).

A small model on a large GPU spends most of each step launching kernels: about a hundred
launches from Python for a step whose arithmetic takes microseconds. Captured once, the step
(the batch gathered from data resident on the GPU, forward, backward, the fused optimizer's
update and the epoch's running sums) is one launch per step.

How: the step reads its batch through a fixed index tensor and its KL weight from a fixed
scalar tensor, so a step is "copy this batch's indices, replay". The first ``WARMUP`` steps run
eagerly on a side stream (they create the optimizer's state and any compiled kernels, which
must exist before capture), the next one is captured and replayed, and every later full batch
is replayed. A last batch of another size steps eagerly. If capture fails (the model syncs with
the host, say), a warning says why and the run goes on eagerly: nothing is lost.

What cannot be captured is left eager with a warning saying which condition failed (see
``why_not``): a step that reads the host (fp16's loss scaler, torchrun's all-reduce checks,
adversarial models' second optimizer), a loss that changes with the step number, per-step
Python (a batch transform), data that is not resident on the GPU.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from ..data.batch import Batch

WARMUP = 3  # eager steps before capture (the PyTorch documentation's whole-network example)
CAPTURE_DEVICE_TYPES = ("cuda",)
CAPTURE_OPTIMIZERS = ("adam", "adamw")  # fused kernels that read found_inf and accept capture


def why_not(model, stepper, source, *, device: torch.device, optimizer: str,
            transform, processes) -> str | None:
    """Why this run cannot replay its steps from a CUDA graph, or None if it can."""
    if device.type not in CAPTURE_DEVICE_TYPES:
        return f"they need a CUDA device, not {device.type}"
    if processes.enabled:
        return "under torchrun the gradients are averaged across processes by the host"
    if optimizer not in CAPTURE_OPTIMIZERS or not stepper.optimizer.defaults.get("fused"):
        return f"they need the fused adam or adamw optimizer, not {optimizer}"
    if stepper.precision.scaler is not None:
        return "fp16's loss scaler reads the host every step (use fp32 or bf16)"
    if stepper.auxiliary_optimizer is not None:
        return f"{model.name} takes a second optimizer step per batch"
    if model.loss_uses_step:
        return f"{model.name}'s loss changes with the step number"
    if transform is not None:
        return "a batch transform is Python run every step"
    if not getattr(source, "resident", False):
        return "the training data is not resident on the GPU"
    return None


def capture(run):
    """Records ``run`` (nothing executes) and returns the function that replays it."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    return graph.replay


class GraphedSteps:
    """Takes the steps of one fit: ``step(indices, kl_weight, step)`` for each batch of
    indices into ``train`` (resident on the device)."""

    def __init__(self, stepper, train: Batch, batch_size: int, device: torch.device):
        self.stepper, self.train, self.device = stepper, train, device
        self.size = batch_size
        self.index = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.weight = torch.ones((), device=device)
        self.weight_value = 1.0
        self.warmed = 0
        self.replay = None  # the captured step, once captured
        self.failed: str | None = None
        self.replays = 0

    def _run(self, step: int) -> None:
        self.stepper(self.train.take(self.index), self.weight, step)

    def _load(self, indices: torch.Tensor, kl_weight: float) -> None:
        self.index.copy_(indices)
        if kl_weight != self.weight_value:  # one fill when the schedule moves, none otherwise
            self.weight.fill_(kl_weight)
            self.weight_value = kl_weight

    def step(self, indices: torch.Tensor, kl_weight: float, step: int) -> bool:
        """One step on ``train[indices]``; False when the caller must take it eagerly (a batch
        of another size, or capture gave up)."""
        if self.failed is not None or len(indices) != self.size:
            return False
        kl_weight = float(kl_weight)
        self._load(indices, kl_weight)
        if self.replay is None and self.warmed < WARMUP:
            with self._side_stream():
                self._run(step)
            self.warmed += 1
            return True
        if self.replay is None:
            self._capture(step)
            if self.failed is not None:
                self._run(step)  # this batch eagerly; the buffers still hold it
                return True
        count = self.stepper.count
        self.replay()
        self.stepper.count = count + self.size
        self.replays += 1
        return True

    def _capture(self, step: int) -> None:
        stepper = self.stepper
        count = stepper.count
        stepper.keep_buffers = True  # the captured sums and flag are updated in place for good
        stepper.allocate_sums()
        groups = [group for optimizer in stepper.optimizers.values()
                  for group in optimizer.param_groups]
        for group in groups:
            group["capturable"] = True  # only for the capture: checkpoints keep False
        stepper.optimizer.zero_grad(set_to_none=True)  # gradients allocated in the graph's pool
        try:
            self.replay = capture(lambda: self._run(step))
        except Exception as error:  # noqa: BLE001 (any capture failure: continue eagerly)
            self.replay = None
            first = str(error).splitlines()[0] if str(error) else ""
            self.failed = f"{type(error).__name__}: {first}"
            warnings.warn(f"cuda_graphs: capturing the step failed ({self.failed}); training "
                          "continues eagerly", RuntimeWarning, stacklevel=4)
        finally:
            for group in groups:
                group["capturable"] = False
            stepper.count = count  # capture runs nothing: the replay counts the batch

    def _side_stream(self):
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return _SideStream(self.device)


class _SideStream:
    """Runs the block on a fresh stream ordered after, and before, the current one."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        self.current = torch.cuda.current_stream(self.device)
        self.side = torch.cuda.Stream(self.device)
        self.side.wait_stream(self.current)
        self.context = torch.cuda.stream(self.side)
        self.context.__enter__()

    def __exit__(self, *exc):
        self.context.__exit__(*exc)
        self.current.wait_stream(self.side)
        return False
