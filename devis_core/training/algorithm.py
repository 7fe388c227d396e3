"""The algorithm contract: what the trainer needs of ``grpo``, ``dpo``, ``sft`` and any plugin's.

An algorithm subclasses :class:`TrainingAlgorithm`: it declares what it trains on and how its
samples are batched (:class:`Capabilities`), and implements three methods. The trainer reads
nothing else of it, so a new algorithm is this class and its config, registered with
``devis_register_algorithms`` (docs/training.md, *Writing an algorithm*).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from devis_core.lazy import lazy_import
from devis_core.types import Policy, TrainingBatch

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class GroupAlgorithmConfig(BaseModel):
    """The fields every algorithm shares (names as in TRL); algorithms subclass it."""

    model_config = ConfigDict(extra="forbid")

    num_generations: int = Field(16, ge=2, description="Samples per group (G).")
    num_iterations: int = Field(1, ge=1, description="Inner epochs over each round's samples.")


@dataclass(frozen=True)
class Capabilities:
    """How the trainer builds and batches an algorithm's training units."""

    trains_on: Literal["chains", "videos"]
    """``chains``: the recorded denoising transitions of each sample (GRPO); ``videos``: each
    sample's final video as a denoising target under its group's one-step conditions (DPO, SFT:
    that is what teaches the one-step generator what accumulation found)."""

    batch_unit: Literal["sample", "group"]
    """``group`` when the loss compares samples of one group (DPO), so a micro-batch holds whole
    groups; ``sample`` otherwise."""


@dataclass
class SeededBatch(TrainingBatch):
    """A training batch with the generator its loss draws timesteps and noise from.

    The trainer seeds it from (seed, round, epoch, micro-batch), so a resumed run draws the
    same numbers as an uninterrupted one.
    """

    generator: torch.Generator | None = None


class TrainingAlgorithm(ABC):
    """An algorithm ``devis train`` runs: advantages from rewards, a loss from a batch.

    Subclasses set the class attribute ``capabilities`` and take their config (a subclass of
    :class:`GroupAlgorithmConfig`) as the only constructor argument. Samples whose advantage is
    0 are not trained, which is how a group whose rewards are all equal adds no gradient.
    """

    capabilities: ClassVar[Capabilities]

    def __init__(self, config: GroupAlgorithmConfig):
        self.config = config

    @abstractmethod
    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """One value per sample from the rewards of the whole round (all processes).

        GRPO's group-relative advantages, SFT's sample weights, DPO's +1 / -1 for the best and
        worst of a group; non-finite rewards must get 0.
        """

    @abstractmethod
    def trained_steps(self, num_steps: int, generator: torch.Generator) -> list[int]:
        """Which of a recorded chain's ``num_steps`` transitions to train, in chain order.

        Asked once per trained chain of ``trains_on = "chains"`` algorithms, with a generator
        seeded from (seed, round, group, sample, chain); ``videos`` algorithms train no chain
        transition and return ``[]``.
        """

    @abstractmethod
    def loss(self, batch: SeededBatch, policy: Policy) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss to minimise over ``batch`` and the statistics to log.

        Every random draw of the loss (timesteps, noise) takes ``batch.generator``.
        """


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
