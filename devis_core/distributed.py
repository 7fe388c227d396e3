"""``torch.distributed`` for the trainer: one process per device, launched by ``torchrun``.

A single process (no ``WORLD_SIZE`` in the environment, or 1) needs no process group: every
collective below is then the identity, so the trainer has one code path. The backend follows
the device (gloo on the CPU, nccl on CUDA, hccl on Ascend NPUs). Only the trainable (LoRA)
parameters are synchronised, by summing their gradients after the backward pass: with a
custom backbone object this is simpler than wrapping it in ``DistributedDataParallel`` and
exactly what DDP computes.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devis_core.devices import distributed_backend
from devis_core.lazy import lazy_import

if TYPE_CHECKING:
    import torch
    import torch.distributed as dist
else:
    torch = lazy_import("torch")
    dist = lazy_import("torch.distributed")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and plots."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def world_from_environment() -> World:
    """The world ``torchrun`` describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(
        rank=int(os.environ["RANK"]),
        size=size,
        local_rank=int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
    )


def local_device(device: torch.device, world: World) -> torch.device:
    """The accelerator of this process: ``cuda:LOCAL_RANK`` (or npu) when several run."""
    if world.active and device.type in ("cuda", "npu") and device.index is None:
        return torch.device(device.type, world.local_rank)
    return device


def init_process_group(world: World, device: torch.device) -> None:
    """Join the process group (``MASTER_ADDR``/``MASTER_PORT`` from the environment)."""
    if not world.active or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend=distributed_backend(device),
        rank=world.rank,
        world_size=world.size,
        timeout=datetime.timedelta(minutes=30),
    )


def destroy_process_group(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """The element-wise sum over processes (in place, also returned)."""
    if world.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor, world: World) -> torch.Tensor:
    if world.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def all_gather_rows(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Concatenate every process's ``(n, ...)`` tensor in rank order (same ``n`` on all)."""
    if not world.active:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world.size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def sum_gradients(parameters: Sequence[torch.nn.Parameter], world: World) -> None:
    """Replace each parameter's gradient by the sum over processes (one flat all-reduce)."""
    if not world.active:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for parameter in parameters:
        count = parameter.numel()
        parameter.grad = flat[offset : offset + count].view_as(parameter).clone()
        offset += count
