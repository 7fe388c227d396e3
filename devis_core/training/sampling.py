"""Sampling the groups of a training round (Eq. 14) and scoring them with the reward.

A group is one dataset sample (a source video and its target motion) and ``G`` generated
videos of it. With ``sampling: accumulated`` (DEVIS-GRPO) each video runs the configured
accumulator with its own step count ``K_i ~ U{k_min..k_max}`` and its own unequal increments
(:func:`~devis_core.toolkit.geometry.random_shares` of the camera path); with ``one-step``
each is one generation from the one-step conditions. Every video has its own noise (its own seeded
generator) unless ``same_noise`` is set. The backbone is wrapped in a
:class:`RecordingBackbone`, so any accumulator runs unchanged while the stochastic rollout of
each of its generation steps is kept: the last one is the chain GRPO trains on, by default
re-scored under the group's one-step conditions (:func:`one_step_chain`,
``training.trained_chain``).

The reward compares each final video with the source reprojected by the *whole* motion in one
step, using the source depth of the configured depth estimator: that render and its
visibility mask are the ``render`` and ``mask`` of :class:`~devis_core.types.RewardInputs`
("PSNR and SSIM between the reprojected source video and the generated video in the visible
regions"). The same render, with the source as reference, are the group's *one-step
conditions* that SFT and DPO train the generator under. The source's depth is estimated once
per group and shared by those conditions and every member's accumulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from devis_core import distributed
from devis_core.distributed import World
from devis_core.pipeline import make_generator
from devis_core.rewards import CompositeReward, RewardResult
from devis_core.toolkit.accumulation import CameraPath, one_step_conditions
from devis_core.toolkit.geometry import random_shares
from devis_core.training.seeds import derived_seed
from devis_core.types import (
    Accumulator,
    Conditions,
    DepthEstimator,
    Policy,
    RewardInputs,
    Rollout,
    RolloutStep,
    ViewSynthesisSample,
)


class RecordingBackbone:
    """A policy seen as a backbone: ``generate`` samples a rollout and keeps it."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.records: list[tuple[Conditions, Rollout]] = []

    def generate(self, cond: Conditions, generator: torch.Generator | None = None) -> torch.Tensor:
        rollout = self.policy.rollout(cond, generator)
        self.records.append((cond, rollout))
        return rollout.video

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


class CachedSourceDepth:
    """A group's view of the depth estimator: its source's depth is estimated once.

    The one-step conditions and every member's accumulation ask for the depth of the same source
    video; this answers them all with one estimate. Other videos (the intermediate videos of an
    accumulation) go to the estimator, whose declarations (``generated_videos``, ...) show
    through.
    """

    def __init__(self, estimator: DepthEstimator, sample: ViewSynthesisSample):
        self.estimator, self.sample = estimator, sample
        self.source_depth = estimator.estimate(sample.source, sample)

    def estimate(
        self, video: torch.Tensor, sample: ViewSynthesisSample | None = None
    ) -> torch.Tensor:
        if video is self.sample.source and sample is self.sample:
            return self.source_depth
        return self.estimator.estimate(video, sample)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.estimator, name)


@dataclass
class GeneratedSample:
    """One video of a group and how it was made."""

    video: torch.Tensor
    chains: list[tuple[Conditions, Rollout]]
    """``(conditions, rollout)`` of each generation step, the last step's last."""

    steps: int
    """K, the number of generation steps."""


@dataclass
class Group:
    """A dataset sample, its one-step conditions and its generated videos with their rewards."""

    index: int
    sample: ViewSynthesisSample
    conditions: Conditions
    members: list[GeneratedSample] = field(default_factory=list)
    rewards: RewardResult | None = None


def one_step_chain(
    policy: Policy, conditions: Conditions, rollout: Rollout, steps: list[int]
) -> Rollout:
    """The transitions ``steps`` of ``rollout`` re-scored under ``conditions`` (no gradients).

    DEVIS-GRPO trains the generator that makes the extreme view in one step (the paper's
    inference), so a chain sampled by accumulation is scored under the *one-step* conditions,
    for the old policy (here, before the round's update) as for the new one. The returned
    rollout holds those steps only, in order, with the old policy's mean, std and log-prob
    under ``conditions``. A chain longer in time than the one-step latents (BTA's bullet-time
    prefix) keeps its last latent frames, which are the frames the accumulator kept as its
    video; latents are ``(1, F, ...)`` with frames on axis 1 (:meth:`Policy.latent_shape`).
    """
    frames = policy.latent_shape(conditions)[1]
    recorded = [rollout.steps[index] for index in steps]
    cropped = [
        RolloutStep(
            timestep=record.timestep,
            latents=_last_frames(record.latents, frames),
            next_latents=_last_frames(record.next_latents, frames),
            mean=record.mean,
            std=record.std,
            log_prob=record.log_prob,
        )
        for record in recorded
    ]
    chain = Rollout(steps=cropped, video=rollout.video)
    with torch.no_grad():
        for index, record in enumerate(cropped):
            record.log_prob, record.mean, record.std = policy.log_prob(conditions, chain, index)
    return chain


def _last_frames(latents: torch.Tensor, frames: int) -> torch.Tensor:
    if latents.shape[1] < frames:
        raise ValueError(
            f"a chain of {latents.shape[1]} latent frames is shorter than the one-step "
            f"conditions' {frames}"
        )
    return latents[:, latents.shape[1] - frames :]


def sample_group(
    index: int,
    sample: ViewSynthesisSample,
    *,
    policy: Policy,
    accumulator: Accumulator,
    depth: DepthEstimator,
    size: int,
    mode: Literal["accumulated", "one-step"],
    k_range: tuple[int, int],
    same_noise: bool,
    seed_parts: tuple[object, ...],
) -> Group:
    """Draw ``size`` videos of ``sample`` (no gradients); seeds derive from ``seed_parts``.

    The source's depth is estimated once for the group (:class:`CachedSourceDepth`).
    """
    depth = CachedSourceDepth(depth, sample)
    group = Group(index, sample, one_step_conditions(sample, depth.estimate(sample.source, sample)))
    path = CameraPath(sample)
    for member in range(size):
        noise_seed = derived_seed(*seed_parts, "noise", index, 0 if same_noise else member)
        noise = make_generator(noise_seed)
        recorder = RecordingBackbone(policy)
        with torch.no_grad():
            if mode == "one-step":
                video = recorder.generate(group.conditions, noise)
            elif mode == "accumulated":
                schedule = make_generator(derived_seed(*seed_parts, "increments", index, member))
                increments = path.increments(random_shares(*k_range, schedule))
                video = accumulator.run(
                    sample, recorder, depth, increments=increments, generator=noise
                ).video
            else:
                raise ValueError(f"sampling must be 'accumulated' or 'one-step', got {mode!r}")
        group.members.append(GeneratedSample(video, recorder.records, len(recorder.records)))
    return group


def score_group(group: Group, reward: CompositeReward) -> RewardResult:
    """The composite reward of every video of the group (one batched call)."""
    count = len(group.members)
    videos = torch.stack([member.video for member in group.members])
    repeat = (count, 1, 1, 1, 1)
    batch = RewardInputs(
        generated=videos,
        source=group.sample.source.unsqueeze(0).repeat(repeat),
        render=group.conditions.render.unsqueeze(0).repeat(repeat),
        mask=group.conditions.mask.unsqueeze(0).repeat(count, 1, 1, 1),
        sample_ids=[f"{group.sample.sample_id}#{i}" for i in range(count)],
    )
    group.rewards = reward(batch)
    return group.rewards


@dataclass
class RoundRewards:
    """Every process's samples of a round, in rank order: rewards, group ids, raw reward terms,
    and the algorithm's advantages."""

    rewards: torch.Tensor
    group_ids: torch.Tensor
    terms: dict[str, torch.Tensor]
    advantages: torch.Tensor


def gather_rewards(
    groups: Sequence[Group], names: Sequence[str], world: World, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Rewards, group ids and raw terms ``names`` of every process's scored groups, in rank
    order (``device``: where the collective runs)."""
    rows = []
    for group in groups:
        result = group.rewards
        for member in range(len(group.members)):
            values = [float(result.total[member]), float(group.index)]
            values += [float(result.terms[name][member]) for name in names]
            rows.append(values)
    table = torch.tensor(rows, dtype=torch.float64, device=device)
    table = distributed.all_gather_rows(table, world).cpu()
    terms = {name: table[:, 2 + i] for i, name in enumerate(names)}
    return table[:, 0], table[:, 1].long(), terms
