"""DDP rank helpers for the stages: rank 0 decides and writes, the other ranks follow (no-ops in one process).

Under Lightning's DDP launcher, ranks > 0 are started by rank 0's first Lightning run and re-run the cell from the
top: stages rank 0 finished before that run are complete artifacts they reuse without a process group; from that run
on, the process group is up and they follow rank 0 through these helpers.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, TypeVar

from rethink.errors import UserError

T = TypeVar("T")


def is_distributed_follower() -> bool:
    """True in DDP ranks other than 0: they follow rank 0 and never lock or write artifacts."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) != 0


def _group_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def leader_value(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, broadcast to every rank when a process group is up; else ``compute()`` locally."""
    if _group_size() == 1:
        return compute()
    import torch.distributed as dist

    box = [compute() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has committed an artifact the others read next)."""
    if _group_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def all_ranks(value: Any) -> list[Any]:
    """``value`` as each rank has it, in rank order (``[value]`` without a process group)."""
    if _group_size() == 1:
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def rank_batch_size(batch_size: int, world_size: int) -> int:
    """Each process's share of the global ``dataset.batch_size`` (the paper's batch: 64 on CIFAR, 256 on ImageNet)
    under ``world_size`` DDP processes; a :class:`UserError` when it does not divide evenly."""
    if batch_size % world_size:
        below = batch_size - batch_size % world_size
        nearest = " or ".join(str(b) for b in (below, below + world_size) if b)
        raise UserError(
            f"dataset.batch_size={batch_size} is the global batch, split evenly over the {world_size} DDP "
            f"processes, and {batch_size} is not a multiple of {world_size}. Give a multiple of {world_size} "
            f"(e.g. dataset.batch_size={nearest}) or another number of processes "
            "(trainer.devices x trainer.num_nodes); the learning rate stays as set."
        )
    return batch_size // world_size


def planned_world_size(trainer: Mapping[str, Any]) -> int | None:
    """The number of training processes ``trainer.devices`` x ``trainer.num_nodes`` ask for (None: ``auto``, decided
    by Lightning when it starts)."""
    devices, nodes = trainer.get("devices", "auto"), trainer.get("num_nodes", 1)
    if isinstance(devices, (list, tuple)):
        devices = len(devices)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1 or not isinstance(nodes, int):
        return None
    return devices * nodes
