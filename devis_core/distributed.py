"""``torch.distributed`` for the trainer and the evaluations: one process per device, launched
by ``torchrun``.

A single process (no ``WORLD_SIZE`` in the environment, or 1) needs no process group: every
collective below is then the identity, so the engines have one code path. The backend follows
the device (gloo on the CPU, nccl on CUDA, hccl on Ascend NPUs); Python objects (records,
encoded frames) travel over a gloo group beside it, on the CPU, whatever the device.

The trainer synchronises only the trainable (LoRA) parameters, by summing their gradients after
the backward pass: with a custom backbone object this is simpler than wrapping it in
``DistributedDataParallel`` and exactly what DDP computes. Evaluations share their work with
:func:`shared_work`: each process does the units dealt to it and the main process receives
the results as they are made.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from devis_core.devices import distributed_backend, resolve_device
from devis_core.lazy import lazy_import

if TYPE_CHECKING:
    import torch
    import torch.distributed as dist
else:
    torch = lazy_import("torch")
    dist = lazy_import("torch.distributed")

Unit = TypeVar("Unit")
Result = TypeVar("Result")
Config = TypeVar("Config", bound=BaseModel)


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


def with_local_device(config: Config, world: World) -> Config:
    """``config`` computing on this process's device (its ``device`` field, made local by
    :func:`local_device`); the same object when that changes nothing."""
    device = resolve_device(config.device)  # type: ignore[attr-defined]
    local = local_device(device, world)
    return config if local == device else config.model_copy(update={"device": str(local)})


_users = 0
"""Commands of this process inside the process group (``devis ablate`` runs ``devis train``
inside its own): the last one to leave destroys it."""
_objects: Any = None
"""The gloo group that carries Python objects (None: the default group is gloo already)."""


def init_process_group(world: World, device: torch.device) -> None:
    """Join the process group (``MASTER_ADDR``/``MASTER_PORT`` from the environment); a command
    run inside another one's (a suite's training) shares it."""
    global _users, _objects
    if not world.active:
        return
    _users += 1
    if dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = distributed_backend(device)
    dist.init_process_group(
        backend=backend,
        rank=world.rank,
        world_size=world.size,
        timeout=datetime.timedelta(minutes=30),
    )
    _objects = None if backend == "gloo" else dist.new_group(backend="gloo")


def destroy_process_group(world: World) -> None:
    """Leave the process group; the last command of the process to leave destroys it."""
    global _users, _objects
    if not world.active:
        return
    _users = max(0, _users - 1)
    if _users == 0 and dist.is_initialized():
        dist.destroy_process_group()
        _objects = None


@contextlib.contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """The process group for the length of a ``with`` block (nothing in a single process)."""
    init_process_group(world, device)
    try:
        yield
    finally:
        destroy_process_group(world)


def broadcast_object(value: Any, world: World) -> Any:
    """The main process's ``value`` (any picklable object) on every process."""
    if not world.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=_objects)
    return box[0]


def gather_objects(value: Any, world: World) -> list[Any] | None:
    """Every process's ``value`` in rank order, on the main process; None on the others."""
    if not world.active:
        return [value]
    gathered = [None] * world.size if world.is_main else None
    dist.gather_object(value, gathered, dst=0, group=_objects)
    return gathered


def barrier(world: World) -> None:
    """Wait until every process is here (after the main process wrote a file all read)."""
    if world.active:
        dist.barrier(group=_objects)


def shared_work(
    units: Sequence[Unit],
    world: World,
    work: Callable[[Unit], Result],
    *,
    group: Callable[[Unit], Hashable] = lambda unit: unit,
) -> Iterator[list[Result]]:
    """Run ``work`` on this process's share of ``units``; yield what each round made.

    The groups of ``units`` (a sample's methods share one: the sample is loaded once) are
    dealt round-robin in order, so a process's share depends on the units alone. In each round
    every process does at most one unit and the results meet on the main process, which gets
    them as a list in rank order (the others get empty lists): it can keep them as they
    finish, and no process waits on another for longer than one unit. Every process must call
    this with the same ``units``.
    """
    owners = {key: index % world.size for index, key in enumerate(dict.fromkeys(map(group, units)))}
    shares = [[unit for unit in units if owners[group(unit)] == rank] for rank in range(world.size)]
    mine = shares[world.rank]
    for step in range(max(map(len, shares), default=0)):
        parts = gather_objects([work(mine[step])] if step < len(mine) else [], world)
        yield [] if parts is None else [result for part in parts for result in part]


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
