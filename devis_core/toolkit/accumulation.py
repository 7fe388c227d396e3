"""The machinery every ADEVIS strategy shares (Eq. 7 of the paper).

An accumulation reaches the target camera of a sample in K generation steps. Step k moves
the camera to the pose after the first k increments of the motion, builds its conditions from
the source and from ``V_{k-1}`` (the video of the previous step; ``V_0`` is the source), and
calls the backbone. Strategies differ only in how they build the conditions of a step, so a
strategy is a :class:`StepwiseAccumulator` with one method, :meth:`~StepwiseAccumulator.conditions`.

Increments compose in parameter space (see :mod:`devis_core.toolkit.geometry.trajectory`):
the camera of step k is the orbit pose of the summed increments, applied on top of the source
camera, so the last step lands exactly on the sample's target.
"""

from __future__ import annotations

import dataclasses
import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, model_validator

from devis_core.errors import UsageError
from devis_core.lazy import lazy_import
from devis_core.toolkit.geometry import (
    Motion,
    camera_center,
    centre_pivot_depth,
    decompose_motion,
    forward_warp,
    lift,
    orbit_trajectory,
    relative_pose,
    transform_points,
)
from devis_core.toolkit.geometry.depth import fill_from_nearest, require_known_depth
from devis_core.toolkit.geometry.interpolation import arc_pose
from devis_core.toolkit.geometry.trajectory import shares_of
from devis_core.types import (
    AccumulationResult,
    Backbone,
    Conditions,
    DepthEstimator,
    ViewSynthesisSample,
)

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


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


def one_step_conditions(
    sample: ViewSynthesisSample, source_depth: torch.Tensor, *, clean: bool = False
) -> Conditions:
    """What the one-step generator sees (Eq. 1-2): the source reprojected by the whole motion
    to the target cameras, with the source as reference.

    The one place this is computed: the ``direct`` strategy generates from it, rewards compare
    with its render, training scores chains under it, and ``*-nocc`` metrics use its mask.
    """
    require_known_depth(source_depth, f"the source depth of sample {sample.sample_id!r}")
    shown = reproject(
        sample.source, source_depth, sample.K, sample.source_w2c, sample.target_w2c, clean=clean
    )
    if not bool(shown.mask.any()):
        raise UsageError(
            f"sample {sample.sample_id!r}: the target camera sees none of the source video (the "
            "visibility mask is empty in every frame), so nothing can be generated from it or "
            "scored against it: check the sample's cameras, its motion and the depth's units"
        )
    return Conditions(
        shown.render, shown.mask, sample.source, sample.caption, render_depth=shown.depth
    )


Position = Motion | float
"""Where a camera is on the way to the target: an orbit :class:`Motion` for samples that have
one, else the fraction of the way from the source camera to the target camera."""


class CameraPath:
    """The cameras on the way from a sample's source to its target.

    Samples with an orbit motion and a pivot (the synthetic world, user videos) move in
    TrajectoryCrafter's parameter space: the camera after part of the motion is the orbit pose
    of that partial motion, on top of the source camera. Other samples (real datasets: a source
    and a target camera per frame) move a fraction of the way along an arc about the scene
    pivot (:func:`~devis_core.toolkit.geometry.interpolation.arc_pose`), frame by frame;
    fraction 1 is the target camera exactly.

    The pivot is in one place, :attr:`pivot_depth`: the sample's own when it has one, else the
    median depth of the centre region of the source's frame 0
    (:func:`~devis_core.toolkit.geometry.centre_pivot_depth`), on each source camera's optical axis.
    """

    def __init__(self, sample: ViewSynthesisSample, source_depth: torch.Tensor | None = None):
        self.sample = sample
        self.source_depth = source_depth
        self.orbit = sample.motion is not None and sample.pivot_depth is not None

    @cached_property
    def pivot_depth(self) -> float:
        """Depth of the point the camera turns about, in the source camera (scene units)."""
        if self.sample.pivot_depth is not None:
            return float(self.sample.pivot_depth)
        depth = self.source_depth if self.source_depth is not None else self.sample.source_depth
        if depth is None:
            raise UsageError(
                f"sample {self.sample.sample_id!r} has neither a pivot depth nor source depth "
                "to place the pivot at"
            )
        try:
            return centre_pivot_depth(depth)
        except ValueError as error:
            raise UsageError(f"sample {self.sample.sample_id!r}: {error}") from None

    @cached_property
    def pivot(self) -> torch.Tensor:
        """World position ``(T, 3)`` of the pivot: on each source camera's optical axis."""
        source = self.sample.source_w2c.to(torch.float64)
        axis = source[..., 2, :3]  # the camera's z axis in world coordinates
        return camera_center(source) + self.pivot_depth * axis

    @property
    def start(self) -> Position:
        return Motion.zero() if self.orbit else 0.0

    @property
    def end(self) -> Position:
        return self.sample.motion if self.orbit else 1.0

    def poses(self, position: Position) -> torch.Tensor:
        """World-to-camera ``(T, 4, 4)`` of the cameras at ``position``."""
        sample = self.sample
        if not self.orbit:
            return arc_pose(sample.source_w2c, sample.target_w2c, self.pivot, float(position))
        if not isinstance(position, Motion):
            raise UsageError("this sample moves by an orbit Motion, not by a fraction")
        orbit = orbit_trajectory(
            position,
            n_frames=sample.num_frames,
            pivot_depth=sample.pivot_depth,
            mode=sample.trajectory,
            device=sample.source_w2c.device,
        )
        return orbit @ sample.source_w2c.to(orbit.dtype)

    @staticmethod
    def between(start: Position, end: Position, fraction: float) -> Position:
        """The position ``fraction`` of the way from ``start`` to ``end``."""
        return start + (end + start * -1.0) * fraction

    def increments(self, weights: Sequence[float]) -> list[Position]:
        """The motion split into increments proportional to ``weights`` (positive).

        :class:`Motion` increments for orbit samples (:func:`decompose_motion`), fractions of
        the way for the others; either way they add up to the whole motion.
        """
        if self.orbit:
            return list(decompose_motion(self.sample.motion, weights))
        return shares_of(weights)

    def cumulative(
        self,
        increments: Sequence[Position] | None,
        steps: int,
        shares: Sequence[float] | None,
    ) -> list[Position]:
        """The position after each step: from ``increments`` if given, else split by shares.

        Increments are :class:`Motion` for orbit samples and fractions for the others.
        """
        if increments is None:
            increments = self.increments(list(shares) if shares else [1.0] * steps)
        kind = Motion if self.orbit else float
        if not increments or not all(isinstance(i, kind) for i in increments):
            raise UsageError(
                f"sample {self.sample.sample_id!r} needs increments of type {kind.__name__}"
            )
        reached: list[Position] = list(itertools.accumulate(increments))
        if self.orbit and not _close(reached[-1], self.end):
            raise UsageError(
                f"increments sum to {reached[-1]}, not to the sample's motion {self.end}"
            )
        if not self.orbit:
            if abs(reached[-1] - 1.0) > 1e-6:
                raise UsageError(f"fractions sum to {reached[-1]}, not to 1")
            reached[-1] = 1.0
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

    previous_position: Position
    position: Position
    previous_poses: torch.Tensor
    poses: torch.Tensor
    source_depth: torch.Tensor

    @cached_property
    def previous_depth(self) -> torch.Tensor:
        """Depth of ``V_{k-1}`` (estimated once per step).

        From the configured estimator when it runs on any video; for an estimator that has
        depth of dataset videos only (``generated_videos = False``, e.g. exported DepthSplat
        maps), the depth ``V_{k-1}``'s render carried through the warp, holes filled from the
        nearest pixel (what the ``carried`` estimator does).
        """
        if self.index == 0:
            return self.source_depth
        if getattr(self.depth, "generated_videos", True):
            return self.depth.estimate(self.previous.source, self.previous)
        carried = self.previous.render_depth
        if carried is None:
            raise UsageError(
                f"{self.previous.sample_id!r} has no depth: the depth estimator runs on dataset "
                "videos only and the generated video carries no render depth"
            )
        return fill_from_nearest(carried)


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
        increments: Sequence[Motion] | Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> AccumulationResult:
        source_depth = depth.estimate(sample.source, sample)
        require_known_depth(source_depth, f"the source depth of sample {sample.sample_id!r}")
        path = CameraPath(sample, source_depth)
        positions = path.cumulative(increments, self.config.steps, self.config.shares)
        previous, previous_position, previous_poses = sample, path.start, sample.source_w2c
        videos: list[torch.Tensor] = []
        for index, position in enumerate(positions):
            poses = path.poses(position)
            step = Step(
                index, sample, depth, previous, previous_position, position, previous_poses,
                poses, source_depth,
            )  # fmt: skip
            conditions = self.conditions(step, path)
            video = self.keep(backbone.generate(conditions, generator), step)
            videos.append(video)
            previous = generated_sample(sample, video, poses, conditions, index)
            previous_position, previous_poses = position, poses
        return AccumulationResult(
            video=videos[-1],
            conditions=conditions,
            generator_calls=len(positions),
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
