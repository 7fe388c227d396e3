"""Accumulator ``bta``: bullet-time accumulation (Eq. 10-13 of the paper).

Each step prefixes a *bullet time*: the first frame of the previous video held still while the
camera moves from the previous pose to the new one in small, increasing steps. The render is
that prefix (the held frame reprojected to each intermediate camera: small moves, small
errors) followed by the render of the clip at the new pose; the backbone generates the whole
sequence and the last L frames (L = the source length) are ``V_k``. The video model's own
temporal coherence carries the previous step's content across the prefix into the clip,
without reprojecting the whole previous video.

Which render follows the prefix is a choice the paper's text leaves open (its equations were
lost): ``rest: source`` (default) renders the source at the accumulated motion, as RFA does,
so no reprojection error of a generated video enters the clip; ``rest: previous`` renders the
previous video moved by the increment, as RVA does.

Prefix camera ``j`` (``j = 0 .. n-1``) sits at fraction ``(j / n)^2`` of the increment: ``j = 0``
is exactly the previous pose (the held frame unchanged) and the steps grow linearly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

import devis_core
from devis_core.lazy import lazy_import
from devis_core.toolkit.accumulation import (
    AccumulationConfig,
    CameraPath,
    Reprojection,
    Step,
    StepwiseAccumulator,
    previous_reprojection,
    reproject,
    source_reprojection,
    step_conditions,
)
from devis_core.types import Conditions

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class BTAConfig(AccumulationConfig):
    """Settings of bullet-time accumulation."""

    bullet_frames: int = Field(8, ge=1, description="n, the length of the bullet-time prefix.")
    rest: Literal["source", "previous"] = Field(
        "source", description="Render after the prefix: the source (RFA) or V_{k-1} (RVA)."
    )


def bullet_fractions(frames: int) -> list[float]:
    """Where prefix camera j sits on the increment: ``(j / n)^2``, starting at 0."""
    return [(j / frames) ** 2 for j in range(frames)]


class BulletTimeAccumulation(StepwiseAccumulator):
    """BTA: a bullet-time prefix from the previous pose, then the clip at the new pose."""

    config: BTAConfig

    def bullet_poses(self, step: Step, path: CameraPath) -> torch.Tensor:
        """The ``n`` cameras of the prefix: frame 0's camera moving to its new pose."""
        return torch.stack(
            [
                path.poses(path.between(step.previous_position, step.position, fraction))[0]
                for fraction in bullet_fractions(self.config.bullet_frames)
            ]
        )

    def conditions(self, step: Step, path: CameraPath) -> Conditions:
        n = self.config.bullet_frames
        held = step.previous.source[:1].expand(n, -1, -1, -1)
        held_depth = step.previous_depth[:1].expand(n, -1, -1)
        start = step.previous_poses[:1].expand(n, -1, -1)
        prefix = reproject(
            held, held_depth, step.sample.K, start, self.bullet_poses(step, path),
            clean=self.config.clean,
        )  # fmt: skip
        if self.config.rest == "source":
            rest = source_reprojection(step, self.config.clean)
        else:
            rest = previous_reprojection(step, self.config.clean)
        return step_conditions(
            step,
            Reprojection(
                render=torch.cat([prefix.render, rest.render]),
                mask=torch.cat([prefix.mask, rest.mask]),
                depth=torch.cat([prefix.depth, rest.depth]),
            ),
        )

    def keep(self, video: torch.Tensor, step: Step) -> torch.Tensor:
        return video[-step.sample.num_frames :]


@devis_core.hookimpl
def devis_register_accumulators(register):
    register("bta", BulletTimeAccumulation, BTAConfig)
