"""Data-parallel training under ``torchrun``: one process per device, each with its share of
every global batch, gradients averaged in one all-reduce per step.

The average weighs each process by the examples it had, so a step is the step one process
would take on the whole global batch (for objectives that are means over examples; batch
statistics, such as batch norm's or an MMD between batch codes, see only the local share).
Only rank 0 writes files, logs and shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """The process that writes files and shows progress."""
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> Distributed:
        """The process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
        ``MASTER_ADDR``/``MASTER_PORT``), joined here if the caller has not joined it; one
        process otherwise."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", 0)))
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this PyTorch has no torch.distributed")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))

    def local_device(self, device: torch.device) -> torch.device:
        """One GPU per process: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        if self.enabled and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device

    def share(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch: every world-th index, so shares differ in
        size by at most one and mixed batches stay mixed."""
        return indices[self.rank::self.world] if self.enabled else indices

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over processes, in place."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_state(self, module: torch.nn.Module) -> None:
        """Start every process from rank 0's parameters and buffers."""
        if self.enabled:
            for value in module.state_dict().values():
                dist.broadcast(value, src=0)

    def average_gradients(self, parameters: list[torch.nn.Parameter], local: int,
                          loss: torch.Tensor) -> torch.Tensor:
        """Replace each gradient by the example-weighted average over processes, in one
        all-reduce with the losses; returns the global mean loss (non-finite if any process
        had a non-finite loss)."""
        for parameter in parameters:
            if parameter.grad is None:  # unused here, maybe used elsewhere: a zero share
                parameter.grad = torch.zeros_like(parameter)
        grads = [parameter.grad for parameter in parameters]
        flat = torch.cat([grad.reshape(-1) for grad in grads]
                         + [(loss.detach() * local).reshape(1),
                            torch.tensor([float(local)], device=loss.device)])
        flat[:-2].mul_(local)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        total = flat[-1].clone()
        flat.div_(total)
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
            offset += grad.numel()
        return flat[-2]

    def barrier(self) -> None:
        if self.enabled:
            work = dist.barrier(async_op=True)
            work.wait()
            keep_until_exit(work)


# gloo's worker thread drops its reference to a finished collective's Work after the caller has
# returned. When that is the last reference and the interpreter is already finalizing (the run
# has ended), freeing the Work needs the GIL, the thread is torn down inside gloo, and the
# process aborts ("terminate called without an active exception"): seen in 13 of 20 bare
# torchrun exits under load. Holding the last Works here makes the main thread free them.
_KEPT_WORK: list = []


def keep_until_exit(work) -> None:
    _KEPT_WORK.append(work)
    del _KEPT_WORK[:-4]  # the latest few are enough: works finish in order


def is_main_process() -> bool:
    """Whether this is rank 0 (or the only process): the one that prints and writes."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0") or 0) == 0
