"""Training on several processes with PyTorch's own engine: ``torchrun`` starts them, this module joins
them into one DistributedDataParallel run.

    torchrun --standalone --nproc_per_node 2 -m sharpkd train-teacher ...
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m sharpkd distill ...

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` for each process; without them (a plain
``sharpkd train-teacher``) nothing here does anything. The backend follows the device: gloo on the CPU,
nccl on GPUs (each process on GPU ``LOCAL_RANK``). What each rank does is in :func:`sharpkd.training.fit`:
every rank draws its own slice of each global batch, rank 0 alone writes checkpoints, logs, curves and
validation while the others wait, and a stop (Ctrl-C, SIGTERM) on any rank stops all of them together.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env() -> Ranks:
    """The ranks torchrun gave this process (one process of one when it was not started by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    return Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(device: str) -> tuple[Ranks, str]:
    """Join the process group (once) when started by torchrun; returns the ranks and this process's
    device (``cuda`` becomes ``cuda:LOCAL_RANK``)."""
    import torch
    from torch import distributed as dist

    ranks = from_env()
    if not ranks.active:
        return ranks, device
    if device.startswith("cuda"):
        torch.cuda.set_device(ranks.local_rank)
        device = f"cuda:{ranks.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        # leave the group before the interpreter exits: a group left to die with it sometimes aborts
        # the process ("terminate called without an active exception") after a finished run
        atexit.register(_leave)
    return ranks, device


def _leave() -> None:
    from torch import distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def finish() -> None:
    """End a command that trained under torchrun: wait for every rank, leave the group, and exit at once.
    Why the hard exit: gloo's threads, torn down with the interpreter, sometimes abort a finished run
    ("terminate called without an active exception", 1 run in 5 here) and torchrun then reports it as
    failed; everything is written and flushed by now."""
    import sys

    from torch import distributed as dist

    if not dist.is_initialized():
        return
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def barrier() -> None:
    from torch import distributed as dist

    if dist.is_initialized():
        dist.barrier()


def mean_and_stop(values: list[float], stop: bool, device: str) -> tuple[list[float], bool]:
    """One all-reduce per step: the mean of ``values`` over the ranks, and whether any rank asked to stop."""
    import torch
    from torch import distributed as dist

    if not dist.is_initialized():
        return values, stop
    t = torch.tensor([*values, float(stop)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    world = dist.get_world_size()
    return [float(v) / world for v in t[:-1]], bool(t[-1] > 0)


def in_sync(module: torch.nn.Module, device: str) -> bool:
    """Whether every rank holds the same weights (compares a checksum of the parameters)."""
    import torch
    from torch import distributed as dist

    if not dist.is_initialized():
        return True
    total = torch.stack([p.detach().double().sum() + (p.detach().double() ** 2).sum() for p in module.parameters()]).sum()
    gathered = [torch.zeros((), dtype=torch.float64, device=device) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, total.to(device))
    return all(torch.equal(g, gathered[0]) for g in gathered)
