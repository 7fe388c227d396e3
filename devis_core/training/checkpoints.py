"""Checkpoints of a training run, written so that a crash or a damaged disk leaves one to resume.

``checkpoints/round-NNNNN/`` (``NNNNN``: the next round to train) holds

- ``lora.safetensors``: the adapter;
- ``state.safetensors`` and ``state.json``: optimizer, scheduler, torch / Python / NumPy RNG
  states and the next round, as tensors and JSON (:mod:`~devis_core.training.state_files`:
  nothing on the resume path unpickles, so a checkpoint from someone else cannot run code);
- ``manifest.json``: the size and SHA-256 of each of those files, checked before loading.

A checkpoint is written into a staging directory, fsync'ed and renamed into place, then
``checkpoints/latest`` (the name of the newest complete one) is replaced the same way
(:mod:`devis_core.toolkit.files`). The previous checkpoint is kept and older ones removed
(``training.save_total_limit`` keeps more, or all): when the latest is truncated or
corrupt, :func:`resume_checkpoint` warns and resumes from the previous one.
A ``state.pt`` (the pickled layout of earlier versions) is refused, never loaded.
"""

from __future__ import annotations

import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from devis_core.errors import UsageError
from devis_core.toolkit.files import atomic_directory, atomic_path, atomic_write_text
from devis_core.training.state_files import (
    MANIFEST,
    STATE_TENSORS,
    STATE_TREE,
    ChecksumError,
    read_state,
    verify_manifest,
    write_manifest,
    write_state,
)
from devis_core.types import Policy

CHECKPOINTS = "checkpoints"
LATEST = "latest"
"""A file in ``checkpoints/`` naming the newest complete checkpoint directory."""
FINAL_LORA = "lora.safetensors"
WARM_START_LORA = "warm_start.safetensors"
PICKLED_STATE = "state.pt"
"""The state file of earlier versions (a pickle): refused on resume."""
KEPT = 2
"""Checkpoints kept by default: the latest and the one before it."""
_NAME = re.compile(r"round-(\d+)")


@runtime_checkable
class LoraPolicy(Policy, Protocol):
    """A policy whose adapter can be saved and loaded: what a training run can checkpoint."""

    def save_lora(self, path: Path) -> object: ...

    def load_lora(self, path: Path) -> None: ...


def checkpoint_path(directory: Path, next_round: int) -> Path:
    """Where the checkpoint before round ``next_round`` of the run in ``directory`` goes."""
    return directory / CHECKPOINTS / f"round-{next_round:05d}"


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint of the run in ``directory``, if there is one."""
    pointer = directory / CHECKPOINTS / LATEST
    if not pointer.is_file():
        return None
    return directory / CHECKPOINTS / pointer.read_text().strip()


def checkpoints(directory: Path) -> list[Path]:
    """The checkpoint directories of the run in ``directory``, oldest first."""
    root = directory / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [path for path in root.iterdir() if path.is_dir() and _NAME.fullmatch(path.name)]
    return sorted(found, key=round_of)


def round_of(path: Path) -> int:
    """The next round to train of checkpoint ``path`` (its ``round-NNNNN`` name); -1 for
    another name."""
    match = _NAME.fullmatch(path.name)
    return int(match.group(1)) if match else -1


def save_checkpoint(
    directory: Path,
    *,
    policy: LoraPolicy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    next_round: int,
    round_seed: int,
    keep: int | None = KEPT,
) -> Path:
    """Write a new checkpoint directory with its manifest, switch ``latest`` to it (atomic
    renames), and remove all but it and the ``keep - 1`` before it (``None``: remove none);
    return its path."""
    root = directory / CHECKPOINTS
    target = checkpoint_path(directory, next_round)
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
        write_state(staging, state)
        write_manifest(staging)
    atomic_write_text(root / LATEST, target.name)
    if keep is not None:
        _prune(directory, target, keep)
    return target


def _prune(directory: Path, latest: Path, keep: int) -> None:
    """Keep ``latest`` and the ``keep - 1`` newest checkpoints before it; remove the others."""
    earlier = [path for path in checkpoints(directory) if round_of(path) < round_of(latest)]
    kept = {latest.name, *(path.name for path in earlier[len(earlier) - (keep - 1) :])}
    for path in checkpoints(directory):
        if path.name not in kept:
            shutil.rmtree(path, ignore_errors=True)


def verify_checkpoint(checkpoint: Path) -> None:
    """Refuse a pickled checkpoint (:class:`UsageError`); raise :class:`ChecksumError` when a
    file is missing, truncated or altered since it was written."""
    pickled = checkpoint / PICKLED_STATE
    if pickled.exists():
        raise UsageError(
            f"{pickled}: a checkpoint in the pickled format of earlier DEVIS versions; it is "
            "not loaded, because unpickling a file can run arbitrary code. Start the run again "
            "(or resume from a checkpoint written by this version: state.safetensors, "
            "state.json and manifest.json)"
        )
    if not checkpoint.is_dir():
        raise ChecksumError(f"{checkpoint} is missing")
    verify_manifest(checkpoint, (FINAL_LORA, STATE_TENSORS, STATE_TREE))


def load_checkpoint(
    checkpoint: Path,
    *,
    policy: LoraPolicy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> int:
    """Verify ``checkpoint``, then restore the adapter, optimizer, scheduler and RNG states;
    return the next round. A checkpoint that fails verification is a :class:`UsageError`."""
    try:
        verify_checkpoint(checkpoint)
    except ChecksumError as error:
        raise UsageError(f"checkpoint {checkpoint} is damaged: {error}") from None
    return _restore(checkpoint, policy=policy, optimizer=optimizer, scheduler=scheduler)


def _restore(
    checkpoint: Path,
    *,
    policy: LoraPolicy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> int:
    try:
        state = read_state(checkpoint)
        optimizer_state, scheduler_state = state["optimizer"], state["scheduler"]
        rng, next_round = state["rng"], int(state["next_round"])
    except Exception as error:  # safetensors' own error type, JSON, a missing key
        raise UsageError(f"checkpoint {checkpoint}: its state is unreadable ({error})") from None
    policy.load_lora(checkpoint / FINAL_LORA)
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(scheduler_state)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    return next_round


def resume_checkpoint(
    directory: Path,
    *,
    policy: LoraPolicy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[Path, int]:
    """Restore the newest checkpoint of ``directory`` that verifies; return it and the next
    round.

    The latest is tried first; when it is damaged the previous one is used, with a warning
    that names both. When neither verifies, a :class:`UsageError` names them.
    """
    latest = latest_checkpoint(directory)
    found = checkpoints(directory)
    if latest is None:
        latest = found[-1] if found else None
    if latest is None:
        raise UsageError(f"--resume {directory}: no checkpoint there to resume")
    earlier = [path for path in found if round_of(path) < round_of(latest)]
    previous = earlier[-1] if earlier else None
    try:
        verify_checkpoint(latest)
        chosen = latest
    except ChecksumError as damaged:
        if previous is None:
            raise UsageError(
                f"--resume {directory}: the latest checkpoint {latest} is damaged ({damaged}) "
                "and there is no previous one"
            ) from None
        try:
            verify_checkpoint(previous)
        except ChecksumError as also:
            raise UsageError(
                f"--resume {directory}: neither checkpoint verifies: {latest} ({damaged}); "
                f"{previous} ({also})"
            ) from None
        warnings.warn(
            f"the latest checkpoint {latest} is damaged ({damaged}); resuming from the "
            f"previous checkpoint {previous}",
            RuntimeWarning,
            stacklevel=2,
        )
        chosen = previous
    next_round = _restore(chosen, policy=policy, optimizer=optimizer, scheduler=scheduler)
    return chosen, next_round


def save_lora(policy: LoraPolicy, path: Path) -> None:
    """The adapter's weights at ``path``, written atomically."""
    with atomic_path(path) as staging:
        policy.save_lora(staging)


def copy_atomically(source: Path, path: Path) -> None:
    """``source`` copied to ``path`` atomically."""
    with atomic_path(path) as staging:
        shutil.copyfile(source, staging)


__all__ = [
    "CHECKPOINTS",
    "FINAL_LORA",
    "KEPT",
    "LATEST",
    "MANIFEST",
    "PICKLED_STATE",
    "WARM_START_LORA",
    "LoraPolicy",
    "checkpoint_path",
    "checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "resume_checkpoint",
    "save_checkpoint",
    "save_lora",
    "verify_checkpoint",
]
