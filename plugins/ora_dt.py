"""Accumulator ``ora-dt``: occlusion region accumulation by depth threshold.

RFA's render (the source at the accumulated motion), with its holes filled from RVA's render
(the previous video moved by the increment) where that render is *near*: reprojection error
grows with depth, so near content warps reliably and far content is left to the generator.

The default threshold is the pivot depth, the distance of what the camera turns around (the
subject; :attr:`~devis_core.toolkit.accumulation.CameraPath.pivot_depth`, defined for every sample):
content in front of the subject is kept, background behind it is not. Set
``max_depth`` (scene units) to choose another.
"""

from __future__ import annotations

from pydantic import Field

import devis_core
from devis_core.toolkit.accumulation import (
    AccumulationConfig,
    CameraPath,
    Step,
    StepwiseAccumulator,
    fuse,
    previous_reprojection,
    source_reprojection,
    step_conditions,
)
from devis_core.types import Conditions


class ORADepthConfig(AccumulationConfig):
    """Settings of occlusion region accumulation by depth threshold."""

    max_depth: float | None = Field(
        None, gt=0, description="Fill from RVA only nearer than this (default: pivot depth)."
    )


class DepthThresholdAccumulation(StepwiseAccumulator):
    """ORA-dt: RFA's render, holes filled from RVA's where RVA's content is near."""

    config: ORADepthConfig

    def conditions(self, step: Step, path: CameraPath) -> Conditions:
        base = source_reprojection(step, self.config.clean)
        fill = previous_reprojection(step, self.config.clean)
        threshold = self.config.max_depth or path.pivot_depth
        return step_conditions(step, fuse(base, fill, fill.depth < threshold))


@devis_core.hookimpl
def devis_register_accumulators(register):
    register("ora-dt", DepthThresholdAccumulation, ORADepthConfig)
