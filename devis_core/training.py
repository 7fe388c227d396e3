"""What the trainer and the algorithm plugins (``grpo``, ``dpo``, ``sft``) agree on.

An algorithm turns a round's rewards into per-sample *advantages* (GRPO's group-relative
advantages, SFT's sample weights, DPO's +1 / -1 for the best and worst of a group) and a batch
into a loss. Samples whose advantage is 0 are not trained, which is how a group whose rewards
are all equal contributes no gradient. Two more attributes tell the trainer how to batch:

- ``trains_on``: ``"chains"`` (the recorded denoising steps, GRPO) or ``"videos"`` (each
  sample's final video as a denoising target under its group's one-step conditions, DPO and
  SFT: that is what teaches the one-step generator what accumulation found);
- ``batch_unit``: ``"sample"``, or ``"group"`` when a loss compares samples of one group (DPO).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field

from devis_core.types import Policy, TrainingBatch


class GroupAlgorithmConfig(BaseModel):
    """The fields every group-based algorithm shares (names as in TRL)."""

    model_config = ConfigDict(extra="forbid")

    num_generations: int = Field(16, ge=2, description="Samples per group (G).")
    num_iterations: int = Field(1, ge=1, description="Inner epochs over each round's samples.")


@dataclass
class SeededBatch(TrainingBatch):
    """A training batch with the generator its loss draws timesteps and noise from.

    The trainer seeds it from (seed, round, epoch, micro-batch), so a resumed run draws the
    same numbers as an uninterrupted one.
    """

    generator: torch.Generator | None = None


@runtime_checkable
class GroupAlgorithm(Protocol):
    """An algorithm the trainer can run (see the module docstring)."""

    config: GroupAlgorithmConfig
    trains_on: Literal["chains", "videos"]
    batch_unit: Literal["sample", "group"]

    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor: ...

    def loss(
        self, batch: TrainingBatch, policy: Policy
    ) -> tuple[torch.Tensor, dict[str, float]]: ...


def best_and_worst(rewards: torch.Tensor, group_ids: torch.Tensor) -> dict[int, tuple[int, int]]:
    """Index of the best and of the worst finite reward of each group (first on ties).

    Groups with fewer than two finite rewards, or whose finite rewards are all equal, are left
    out: they have no preference to learn from.
    """
    pairs: dict[int, tuple[int, int]] = {}
    for group in torch.unique(group_ids).tolist():
        members = torch.nonzero((group_ids == group) & torch.isfinite(rewards)).flatten()
        if members.numel() < 2:
            continue
        values = rewards[members]
        if bool((values == values[0]).all()):
            continue
        pairs[int(group)] = (int(members[values.argmax()]), int(members[values.argmin()]))
    return pairs


def draw_timesteps_and_noise(
    policy: Policy,
    batch: TrainingBatch,
    index: int,
    count: int,
    generator: torch.Generator | None,
    num_train_timesteps: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` timesteps in ``[0, num_train_timesteps)`` and noise for sample ``index``."""
    shape = policy.latent_shape(batch.conditions[index])
    timesteps = torch.randint(0, num_train_timesteps, (count,), generator=generator)
    noise = torch.randn((count, *shape[1:]), generator=generator)
    return timesteps, noise
