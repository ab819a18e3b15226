"""The whole training step replayed from one CUDA graph (``cuda_graphs=True``).

A small model on a large GPU spends most of each step launching kernels: about a hundred
launches from Python for a step whose arithmetic takes microseconds. Captured once, the step
(the batch gathered from data resident on the GPU, forward, backward, the fused optimizer's
update and the epoch's running sums) is one launch per step.

How: the step reads its batch through a fixed index tensor and its KL weight from a fixed
scalar tensor, so a step is "copy this batch's indices, replay". The first ``WARMUP`` steps run
eagerly on a side stream (they create the optimizer's state and any compiled kernels, which
must exist before capture); the last of them runs with PyTorch's sync debug mode on, so a step
that waits for the host is found before a capture that would fail. The next step is captured
and replayed, and every later full batch is replayed. A last batch of another size steps
eagerly. Whatever stops capture (a host sync, a failed capture, optimizer settings changed
after it) makes the run go on eagerly with a warning saying why: nothing is lost.

What cannot be captured steps eagerly from the start, with a warning naming the condition
(``why_not``): a step that reads the host (fp16's loss scaler, torchrun's all-reduce, the second
optimizer of adversarial models), a loss that changes with the step number, per-step Python (a
batch transform), data that is not resident on the GPU.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from ..data.batch import Batch

WARMUP = 3  # eager steps before capture (the PyTorch documentation's whole-network example)
CAPTURE_DEVICE_TYPES = ("cuda",)
CAPTURE_OPTIMIZERS = ("adam", "adamw")  # fused kernels that read found_inf and accept capture
# Optimizer settings the captured update holds as constants.
FROZEN_SETTINGS = ("lr", "betas", "eps", "weight_decay")


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
    """Records ``run`` (nothing executes) and returns the function that replays it. On failure
    the stream is restored and the first error raised (not the capture's "previous error")."""
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.current_stream()
    try:
        with _no_recompiling(), torch.cuda.graph(graph):
            run()
    except Exception as error:
        torch.cuda.set_stream(stream)
        raise (error.__context__ or error) from None
    return graph.replay


def _no_recompiling():
    """A compiled loss that would recompile inside the capture raises instead (compiling reads
    the generator's state, which fails under capture, and would be a silent eager fallback)."""
    stance = getattr(torch.compiler, "set_stance", None)
    return stance("fail_on_recompile") if stance is not None else contextlib.nullcontext()


def host_syncs(run) -> list[str]:
    """Runs ``run`` with PyTorch's sync debug mode warning; the synchronising calls it saw."""
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    seen = []
    for item in caught:
        if "synchroniz" in str(item.message):
            seen.append(str(item.message).splitlines()[0])
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return seen


class GraphedSteps:
    """Takes the steps of one fit: ``step(indices, kl_weight, step)`` for each batch of
    indices into ``train`` (resident on the device)."""

    def __init__(self, stepper, train: Batch, batch_size: int, device: torch.device):
        self.stepper, self.train, self.device = stepper, train, device
        stepper.for_capture = True
        self.size = batch_size
        self.index = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.weight = torch.ones((), device=device)
        self.weight_value = 1.0
        self.warmed = 0
        self.replay = None  # the captured step, once captured
        self.settings = None  # the optimizer settings the capture holds
        self.failed: str | None = None
        self.replays = 0

    def _run(self, step: int) -> None:
        self.stepper(self.train.take(self.index), self.weight, step)

    def _load(self, indices: torch.Tensor, kl_weight: float) -> None:
        self.index.copy_(indices)
        if kl_weight != self.weight_value:  # one fill when the schedule moves, none otherwise
            self.weight.fill_(kl_weight)
            self.weight_value = kl_weight

    def _groups(self) -> list[dict]:
        return [group for optimizer in self.stepper.optimizers.values()
                for group in optimizer.param_groups]

    def _settings(self) -> list[tuple]:
        return [tuple(group[name] for name in FROZEN_SETTINGS) for group in self._groups()]

    def _give_up(self, reason: str) -> None:
        self.failed, self.replay = reason, None
        warnings.warn(f"cuda_graphs: {reason}; training continues eagerly", RuntimeWarning,
                      stacklevel=4)

    def step(self, indices: torch.Tensor, kl_weight: float, step: int) -> bool:
        """One step on ``train[indices]``; False when the caller must take it eagerly (a batch
        of another size, or replaying was given up)."""
        if self.failed is not None or len(indices) != self.size:
            return False
        if self.replay is not None and self._settings() != self.settings:
            self._give_up("the optimizer's settings changed after the step was captured")
            return False
        kl_weight = float(kl_weight)
        self._load(indices, kl_weight)
        if self.replay is None and self.warmed < WARMUP:
            self._warm_up(step)
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

    def _warm_up(self, step: int) -> None:
        self.warmed += 1
        with self._side_stream():
            if self.warmed < WARMUP or self.device.type != "cuda":
                self._run(step)
                return
            syncs = host_syncs(lambda: self._run(step))
        if syncs:
            self._give_up(f"the step waits for the host ({syncs[0]})")

    def _capture(self, step: int) -> None:
        stepper = self.stepper
        count = stepper.count
        stepper.allocate_sums()  # the captured step adds into these: they must exist already
        groups = self._groups()
        for group in groups:
            group["capturable"] = True  # only for the capture: checkpoints keep False
        stepper.optimizer.zero_grad(set_to_none=True)  # gradients allocated in the graph's pool
        try:
            self.replay = capture(lambda: self._run(step))
            self.settings = self._settings()
        except Exception as error:  # noqa: BLE001 (any capture failure: continue eagerly)
            first = str(error).splitlines()[0] if str(error) else ""
            self._give_up(f"capturing the step failed ({type(error).__name__}: {first})")
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
