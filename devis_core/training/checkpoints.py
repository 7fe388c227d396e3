"""Checkpoints of a training run, written so that a crash at any moment leaves a complete one.

``checkpoints/round-NNNNN/`` holds the LoRA (``lora.safetensors``) and ``state.pt`` (optimizer,
scheduler, torch / Python / NumPy RNG states, the next round). It is written into a staging
directory, fsync'ed and renamed into place, then ``checkpoints/latest`` (the name of the newest
complete one) is replaced the same way, then the previous checkpoint is removed
(:mod:`devis_core.toolkit.files`).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from devis_core.toolkit.files import atomic_directory, atomic_path, atomic_write_text
from devis_core.types import Policy

CHECKPOINTS = "checkpoints"
LATEST = "latest"
"""A file in ``checkpoints/`` naming the newest complete checkpoint directory."""
FINAL_LORA = "lora.safetensors"
WARM_START_LORA = "warm_start.safetensors"
STATE = "state.pt"


@runtime_checkable
class LoraPolicy(Policy, Protocol):
    """A policy whose adapter can be saved and loaded: what a training run can checkpoint."""

    def save_lora(self, path: Path) -> object: ...

    def load_lora(self, path: Path) -> None: ...


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint of the run in ``directory``, if there is one."""
    pointer = directory / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    return directory / CHECKPOINTS / pointer.read_text().strip()


def save_checkpoint(
    directory: Path,
    *,
    policy: LoraPolicy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    next_round: int,
    round_seed: int,
) -> None:
    """Write a new checkpoint directory, then switch ``latest`` to it (atomic renames)."""
    root = directory / CHECKPOINTS
    name = f"round-{next_round:05d}"
    previous = latest_checkpoint(directory)
    target = root / name
    with atomic_directory(target) as staging:
        policy.save_lora(staging / FINAL_LORA)
        state = {
            "next_round": next_round,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "round_seed": round_seed,
            },
        }
        torch.save(state, staging / STATE)
    atomic_write_text(root / LATEST, name)
    if previous is not None and previous != target:
        shutil.rmtree(previous, ignore_errors=True)


def load_checkpoint(
    checkpoint: Path,
    *,
    policy: LoraPolicy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> int:
    """Restore the adapter, optimizer, scheduler and RNG states; return the next round."""
    policy.load_lora(checkpoint / FINAL_LORA)
    state = torch.load(checkpoint / STATE, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    return int(state["next_round"])


def save_lora(policy: LoraPolicy, path: Path) -> None:
    """The adapter's weights at ``path``, written atomically."""
    with atomic_path(path) as staging:
        policy.save_lora(staging)


def copy_atomically(source: Path, path: Path) -> None:
    """``source`` copied to ``path`` atomically."""
    with atomic_path(path) as staging:
        shutil.copyfile(source, staging)
