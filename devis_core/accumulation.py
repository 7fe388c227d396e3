"""The machinery every ADEVIS strategy shares (Eq. 7 of the paper).

An accumulation reaches the target camera of a sample in K generation steps. Step k moves
the camera to the pose after the first k increments of the motion, builds its conditions from
the source and from ``V_{k-1}`` (the video of the previous step; ``V_0`` is the source), and
calls the backbone. Strategies differ only in how they build the conditions of a step, so a
strategy is a :class:`StepwiseAccumulator` with one method, :meth:`~StepwiseAccumulator.conditions`.

Increments compose in parameter space (see :mod:`devis_core.geometry.trajectory`): the camera
of step k is the orbit pose of the summed increments, applied on top of the source camera, so
the last step lands exactly on the sample's target.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from pydantic import BaseModel, Field, model_validator

from devis_core.errors import UsageError
from devis_core.geometry import (
    Motion,
    cumulative_motions,
    decompose_motion,
    forward_warp,
    lift,
    orbit_trajectory,
    relative_pose,
    transform_points,
)
from devis_core.types import (
    AccumulationResult,
    Backbone,
    Conditions,
    DepthEstimator,
    ViewSynthesisSample,
)


@dataclass
class Reprojection:
    """A video splatted into other cameras: colour, where it landed, and at what depth."""

    render: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    """Planar depth of the landed points in the target cameras; 0 in holes."""


def reproject(
    video: torch.Tensor,
    depth: torch.Tensor,
    K: torch.Tensor,
    w2c_source: torch.Tensor,
    w2c_target: torch.Tensor,
    *,
    clean: bool = False,
) -> Reprojection:
    """Forward-warp ``video`` and carry each point's target-camera depth along with it.

    The depth is splatted as a fourth channel with the same weights as the colours, so it is
    exactly the depth of what the render shows (soft-z-buffer blends included).
    """
    points = lift(depth, K)
    to_target = relative_pose(w2c_source, w2c_target)
    if to_target.dim() == 3:
        to_target = to_target[:, None, None]
    target_z = torch.nan_to_num(transform_points(to_target, points)[..., 2], nan=0.0)
    packed = torch.cat([video, target_z.unsqueeze(1).to(video.dtype)], dim=1)
    warped, mask = forward_warp(packed, depth, K, w2c_source, K, w2c_target, clean=clean)
    return Reprojection(warped[:, :3], mask, warped[:, 3] * mask)


class CameraPath:
    """The cameras on the way from a sample's source to its target, by partial motion."""

    def __init__(self, sample: ViewSynthesisSample):
        if sample.motion is None or sample.pivot_depth is None:
            raise UsageError(
                f"sample {sample.sample_id!r} has no orbit motion (theta, phi, r, x, y) and "
                "pivot depth: accumulation strategies need them to place intermediate cameras"
            )
        self.sample = sample

    def poses(self, motion: Motion) -> torch.Tensor:
        """World-to-camera ``(T, 4, 4)`` of the cameras after ``motion`` (of the full motion)."""
        sample = self.sample
        orbit = orbit_trajectory(
            motion,
            n_frames=sample.num_frames,
            pivot_depth=sample.pivot_depth,
            mode=sample.trajectory,
            device=sample.source_w2c.device,
        )
        return orbit @ sample.source_w2c.to(orbit.dtype)

    def cumulative(
        self, increments: Sequence[Motion] | None, steps: int, shares: Sequence[float] | None
    ) -> list[Motion]:
        """The motion after each step: from ``increments`` if given, else split by the config."""
        motion = self.sample.motion
        if increments is None:
            increments = decompose_motion(motion, list(shares) if shares else [1.0] * steps)
        reached = cumulative_motions(increments)
        if not reached or not _close(reached[-1], motion):
            raise UsageError(
                f"increments sum to {reached[-1] if reached else None}, not to the sample's "
                f"motion {motion}"
            )
        return reached


def _close(a: Motion, b: Motion, tolerance: float = 1e-6) -> bool:
    pairs = zip(a.as_tuple(), b.as_tuple(), strict=True)
    return all(abs(x - y) <= tolerance * max(1.0, abs(y)) for x, y in pairs)


def source_reprojection(step: Step, clean: bool) -> Reprojection:
    """The source reprojected to the cameras of this step: RFA's render (Eq. 8)."""
    sample = step.sample
    return reproject(
        sample.source, step.source_depth, sample.K, sample.source_w2c, step.poses, clean=clean
    )


def previous_reprojection(step: Step, clean: bool) -> Reprojection:
    """``V_{k-1}`` reprojected by the increment with its re-estimated depth: RVA's (Eq. 9)."""
    return reproject(
        step.previous.source,
        step.previous_depth,
        step.sample.K,
        step.previous_poses,
        step.poses,
        clean=clean,
    )


def fuse(base: Reprojection, fill: Reprojection, where: torch.Tensor) -> Reprojection:
    """``base`` with its holes filled from ``fill`` where ``where`` allows (ORA)."""
    taken = where & fill.mask & ~base.mask
    pick = taken.unsqueeze(1)
    return Reprojection(
        render=torch.where(pick, fill.render, base.render),
        mask=base.mask | taken,
        depth=torch.where(taken, fill.depth, base.depth),
    )


def step_conditions(step: Step, reprojection: Reprojection) -> Conditions:
    """Conditions of a step: this render, and ``V_{k-1}`` as the reference stream."""
    return Conditions(
        render=reprojection.render,
        mask=reprojection.mask,
        reference=step.previous.source,
        caption=step.sample.caption,
        render_depth=reprojection.depth,
    )


class AccumulationConfig(BaseModel):
    """Settings every accumulation strategy has: how the motion is split, and rendering."""

    steps: int = Field(3, ge=1, description="K, the number of generation steps.")
    shares: list[float] | None = Field(
        None, description="Relative sizes of the K increments (default: equal)."
    )
    clean: bool = Field(False, description="Remove flying pixels (TrajectoryCrafter --mask).")

    @model_validator(mode="after")
    def _shares_match_steps(self) -> AccumulationConfig:
        if self.shares is not None and (
            len(self.shares) != self.steps or any(s <= 0 for s in self.shares)
        ):
            raise ValueError(f"shares needs {self.steps} positive values (one per step)")
        return self


@dataclass
class Step:
    """What a strategy knows when it builds the conditions of step ``index`` (0-based)."""

    index: int
    sample: ViewSynthesisSample
    depth: DepthEstimator
    previous: ViewSynthesisSample
    """``V_{k-1}`` as a sample: the source at step 0, else the last generated video."""

    previous_motion: Motion
    motion: Motion
    previous_poses: torch.Tensor
    poses: torch.Tensor
    source_depth: torch.Tensor

    @cached_property
    def previous_depth(self) -> torch.Tensor:
        """Depth of ``V_{k-1}`` from the configured estimator (estimated once per step)."""
        if self.index == 0:
            return self.source_depth
        return self.depth.estimate(self.previous.source, self.previous)


class StepwiseAccumulator(ABC):
    """Base of the ADEVIS strategies: the loop over steps; subclasses build each step."""

    config: AccumulationConfig

    def __init__(self, config: AccumulationConfig):
        self.config = config

    @abstractmethod
    def conditions(self, step: Step, path: CameraPath) -> Conditions:
        """The render, mask and reference of one step (the strategy itself)."""

    def keep(self, video: torch.Tensor, step: Step) -> torch.Tensor:
        """The part of the generated video that is ``V_k`` (all of it, unless overridden)."""
        return video

    def run(
        self,
        sample: ViewSynthesisSample,
        backbone: Backbone,
        depth: DepthEstimator,
        *,
        increments: Sequence[Motion] | None = None,
        generator: torch.Generator | None = None,
    ) -> AccumulationResult:
        path = CameraPath(sample)
        motions = path.cumulative(increments, self.config.steps, self.config.shares)
        source_depth = depth.estimate(sample.source, sample)
        previous, previous_motion, previous_poses = sample, Motion.zero(), sample.source_w2c
        videos: list[torch.Tensor] = []
        for index, motion in enumerate(motions):
            poses = path.poses(motion)
            step = Step(
                index, sample, depth, previous, previous_motion, motion, previous_poses, poses,
                source_depth,
            )  # fmt: skip
            conditions = self.conditions(step, path)
            video = self.keep(backbone.generate(conditions, generator), step)
            videos.append(video)
            previous = generated_sample(sample, video, poses, conditions, index)
            previous_motion, previous_poses = motion, poses
        return AccumulationResult(
            video=videos[-1],
            conditions=conditions,
            generator_calls=len(motions),
            intermediate=videos[:-1],
        )


def generated_sample(
    sample: ViewSynthesisSample,
    video: torch.Tensor,
    poses: torch.Tensor,
    conditions: Conditions,
    index: int,
) -> ViewSynthesisSample:
    """A generated ``V_k`` described as a sample: its cameras, and no ground-truth depth."""
    render_depth = conditions.render_depth
    if render_depth is not None and render_depth.shape[0] != video.shape[0]:
        render_depth = render_depth[-video.shape[0] :]
    return dataclasses.replace(
        sample,
        sample_id=f"{sample.sample_id}/step{index + 1}",
        source=video,
        source_w2c=poses,
        source_depth=None,
        motion=None,
        render_depth=render_depth,
        target=None,
        target_depth=None,
    )
