"""The units a round trains: what each rewarded sample contributes to the loss.

A unit is a denoising chain with the transitions to train (``trains_on = "chains"``, GRPO) or a
final video as a denoising target under its group's one-step conditions (``"videos"``, DPO and
SFT). Samples with advantage 0 or a non-finite reward give none. Units are handed to the update
in batching units: one per sample, or one per group (``batch_unit = "group"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from devis_core.pipeline import make_generator
from devis_core.sections import TrainingSection
from devis_core.training.algorithm import SeededBatch, TrainingAlgorithm
from devis_core.training.sampling import GeneratedSample, Group, RoundRewards, one_step_chain
from devis_core.training.seeds import derived_seed
from devis_core.types import Conditions, Policy, Rollout


@dataclass
class Unit:
    """One trained item: a denoising chain (GRPO) or a video target (DPO, SFT)."""

    conditions: Conditions
    rollout: Rollout
    reward: float
    advantage: float
    group: int
    steps: list[int]


def build_units(
    groups: Sequence[Group],
    scores: RoundRewards,
    *,
    algorithm: TrainingAlgorithm,
    policy: Policy,
    settings: TrainingSection,
    first_row: int,
    seed_parts: tuple[object, ...],
) -> list[list[Unit]]:
    """This process's units, in batching units.

    ``scores`` hold every process's samples; this process's start at row ``first_row``. The
    trained transitions of each chain are drawn from a generator seeded from ``seed_parts`` and
    the chain's place, so a resumed round picks the same.
    """
    size = algorithm.config.num_generations
    batches: list[list[Unit]] = []
    for g, group in enumerate(groups):
        members: list[Unit] = []
        for m, generated in enumerate(group.members):
            row = first_row + g * size + m
            advantage, reward = float(scores.advantages[row]), float(scores.rewards[row])
            if advantage == 0.0 or not math.isfinite(reward):
                continue
            if algorithm.capabilities.trains_on == "videos":
                target = Rollout(steps=[], video=generated.video)
                members.append(Unit(group.conditions, target, reward, advantage, group.index, []))
                continue
            for c, (conditions, rollout) in enumerate(_trained_chains(generated, settings)):
                seed = derived_seed(*seed_parts, "steps", group.index, m, c)
                steps = algorithm.trained_steps(len(rollout.steps), make_generator(seed))
                if not steps:
                    continue
                if (
                    settings.trained_chain == "one-step"
                    and conditions is not group.conditions  # vanilla chains already are
                ):
                    rollout = one_step_chain(policy, group.conditions, rollout, steps)
                    conditions, steps = group.conditions, list(range(len(steps)))
                members.append(Unit(conditions, rollout, reward, advantage, group.index, steps))
        if algorithm.capabilities.batch_unit == "group":
            if members:
                batches.append(members)
        else:
            batches.extend([unit] for unit in members)
    return batches


def _trained_chains(
    generated: GeneratedSample, settings: TrainingSection
) -> list[tuple[Conditions, Rollout]]:
    """The chains a sample trains: its last one, or every step's (``train_intermediate``)."""
    return generated.chains if settings.train_intermediate else generated.chains[-1:]


def seeded_batch(units: Sequence[Unit], generator: torch.Generator) -> SeededBatch:
    """The algorithm's view of ``units``, with the generator its loss draws from."""
    return SeededBatch(
        conditions=[unit.conditions for unit in units],
        rollouts=[unit.rollout for unit in units],
        rewards=torch.tensor([unit.reward for unit in units]),
        advantages=torch.tensor([unit.advantage for unit in units]),
        group_ids=torch.tensor([unit.group for unit in units]),
        steps=[unit.steps for unit in units],
        generator=generator,
    )
