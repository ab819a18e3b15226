"""One optimisation step, with everything that wraps it: the optimizers (fused kernels where
PyTorch has them), ``torch.compile``, mixed precision, gradient averaging across processes,
gradient clipping, the auxiliary optimizer of adversarial models, and the epoch's running sums.

Nothing here waits for the device: sums and the finiteness flag stay on it. On the CPU the
flag is read every step (it costs nothing there) so a bad loss stops training before it
touches the weights; on a GPU a fused optimizer skips a non-finite step by itself and the flag
is read every ``CHECK_EVERY`` steps.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from .devices import Precision
from .distributed import Distributed

if TYPE_CHECKING:  # training does not import models: models call training
    from ..models.base import Autoencoder, LossOutput

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
CHECK_EVERY = 50  # steps between reads of the finiteness flag on an accelerator
COMPILE_AUTO_MIN_STEPS = 1000  # compile="auto" compiles on a GPU for runs at least this long


def make_optimizer(name: str, parameters, learning_rate: float, weight_decay: float = 0.0):
    """``name``'s optimizer with PyTorch's fused kernel where it has one for these parameters
    (measured: Adam's step about 1.5x faster on the CPU than the default), else the default."""
    kind = OPTIMIZERS[name]
    parameters = list(parameters)
    try:
        return kind(parameters, lr=learning_rate, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device or dtype
        return kind(parameters, lr=learning_rate, weight_decay=weight_decay)


def compile_wanted(setting: bool | str, device: torch.device, steps: int) -> bool:
    """``compile="auto"``: on a GPU for long runs, where fusing kernels pays for the seconds
    compiling takes; off on the CPU, where it measured within noise of the fused eager step."""
    if setting == "auto":
        return device.type == "cuda" and steps >= COMPILE_AUTO_MIN_STEPS
    if not isinstance(setting, bool):
        raise ValueError(f"compile must be True, False or 'auto', got {setting!r}")
    return setting


class TrainingStep:
    """Call with a batch to take one step; ``epoch_sums`` gives the epoch's per-example means."""

    def __init__(self, model: Autoencoder, *, optimizer: str, learning_rate: float,
                 weight_decay: float, gradient_clip: float | None, precision: Precision,
                 compile: bool, distributed: Distributed, device: torch.device):
        auxiliary = {id(p) for p in model.auxiliary_parameters()}
        self.model = model
        self.parameters = [p for p in model.parameters()
                           if p.requires_grad and id(p) not in auxiliary]
        self.optimizer = make_optimizer(optimizer, self.parameters, learning_rate, weight_decay)
        self.auxiliary_optimizer = None
        if auxiliary:
            self.auxiliary_optimizer = make_optimizer(optimizer, model.auxiliary_parameters(),
                                                      learning_rate)
        self.gradient_clip, self.precision = gradient_clip, precision
        self.distributed, self.device = distributed, device
        self.compiled = torch.compile(model.batch_loss) if compile else None
        fused = bool(self.optimizer.defaults.get("fused"))
        self.skips_on_device = device.type != "cpu" and fused and precision.scaler is None
        self.check_every = CHECK_EVERY if self.skips_on_device else 1
        self.names: list[str] | None = None
        self.sums, self.nonfinite = None, None
        # Set when the steps are to be replayed from a CUDA graph (graphs.py): the sums and the
        # flag are then zeroed in place, never replaced, and autocast keeps no cache, in the
        # warm-up steps as in the capture (a compiled loss would recompile on the change).
        self.for_capture = False
        self.reset_sums()

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """By checkpoint name."""
        named = {"optimizer": self.optimizer, "auxiliary_optimizer": self.auxiliary_optimizer}
        return {name: value for name, value in named.items() if value is not None}

    def reset_sums(self) -> None:
        self.count = 0
        if self.for_capture and self.sums is not None:
            # A captured step adds into these very tensors: zero them, never replace them.
            self.sums.zero_()
            if self.skips_on_device and self.nonfinite is not None:
                self.nonfinite.zero_()
            else:
                self.nonfinite = None
        else:
            self.sums, self.nonfinite = None, None

    def loss(self, batch, kl_weight: float | torch.Tensor, step: int) -> LossOutput:
        if self.compiled is not None:
            try:
                # The weight as a tensor: a changing Python float would recompile every step.
                weight = (kl_weight if isinstance(kl_weight, torch.Tensor)
                          else torch.tensor(float(kl_weight), device=self.device))
                return self.compiled(batch, kl_weight=weight, step=step)
            except Exception as error:  # a compiler failure; a real error recurs eagerly
                if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
                    raise  # the capture fails and says why; an eager loss inside it would not
                self.compiled = None
                self.optimizer.zero_grad(set_to_none=True)
                output = self.model.batch_loss(batch, kl_weight=kl_weight, step=step)
                warnings.warn(f"torch.compile failed ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}); "
                              "training continues eagerly", RuntimeWarning, stacklevel=3)
                return output
        return self.model.batch_loss(batch, kl_weight=kl_weight, step=step)

    def __call__(self, batch, kl_weight: float | torch.Tensor, step: int) -> LossOutput:
        """One step on ``batch`` (this process's share of the global batch). Returns the
        output; a non-finite loss is left for ``bad_loss`` to report. ``kl_weight`` may be a
        scalar tensor (a captured step reads it from the device)."""
        with self.precision.autocast(cache=not self.for_capture):
            output = self.loss(batch, kl_weight, step)
            loss = output.loss.float().mean()
        scaler = self.precision.scaler
        if not self.distributed.enabled and not self.skips_on_device:
            if not torch.isfinite(loss):  # before backward: the weights stay as they were
                self.nonfinite = loss.detach()
                return output
        self.optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if self.distributed.enabled:
            loss = self.distributed.average_gradients(self.parameters, len(batch), loss)
            if not self.skips_on_device and not torch.isfinite(loss):
                self.nonfinite = loss.detach()  # every process sees it and stops here
                return output
        if self.skips_on_device:
            flag = (~torch.isfinite(loss.detach())).float()
            self.optimizer.found_inf = flag  # read by the fused kernel: no update if set
            if self.nonfinite is None:
                self.nonfinite = torch.zeros((), device=flag.device)
            torch.maximum(self.nonfinite, flag, out=self.nonfinite)  # in place: graph-safe
        if self.gradient_clip is not None:
            if scaler is not None:
                scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.parameters, self.gradient_clip)
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        if self.auxiliary_optimizer is not None:
            auxiliary_loss = self.model.auxiliary_loss(batch.x)
            self.auxiliary_optimizer.zero_grad(set_to_none=True)
            auxiliary_loss.backward()
            if self.distributed.enabled:
                self.distributed.average_gradients(
                    [p for p in self.model.auxiliary_parameters() if p.requires_grad],
                    len(batch), auxiliary_loss)
            self.auxiliary_optimizer.step()
        self.accumulate(output, len(batch))
        return output

    def allocate_sums(self) -> None:
        """Zeroed running sums (and finiteness flag) where there are none yet, for a captured
        step to add into: it must find tensors, not create them."""
        if self.sums is None:
            self.sums = torch.zeros(len(self.names), device=self.device)
        if self.skips_on_device and self.nonfinite is None:
            self.nonfinite = torch.zeros((), device=self.device)

    def accumulate(self, output: LossOutput, count: int) -> None:
        # One stack and one reduction per step for the epoch's running sums.
        sums = torch.stack([output.loss.detach().float()]
                           + [term.detach().float() for term in output.terms.values()]).sum(1)
        self.sums = sums if self.sums is None else self.sums.add_(sums)
        self.count += count
        self.names = ["loss", *output.terms]

    def bad_loss(self, step: int, force: bool = False) -> float | None:
        """The non-finite loss seen since the last check, read from the device every
        ``check_every`` steps (or now, with force); None if all were finite."""
        if self.nonfinite is None or not (force or step % self.check_every == 0):
            return None
        if self.skips_on_device:
            return float("nan") if bool(self.nonfinite > 0) else None
        return float(self.nonfinite)

    def running_loss(self) -> float:
        return float(self.sums[0]) / max(self.count, 1)

    def epoch_sums(self) -> dict[str, float]:
        """``train_<term>`` means over this epoch's examples, across processes."""
        sums = torch.cat([self.sums.detach().float(),
                          torch.tensor([float(self.count)], device=self.sums.device)])
        sums = self.distributed.sum(sums)
        values = (sums[:-1] / sums[-1]).tolist()
        return {f"train_{name}": value for name, value in zip(self.names, values)}
