"""An example DEVIS plugin: one depth estimator and one accumulator.

DEVIS imports this module because ``pyproject.toml`` names it in the ``devis`` entry-point
group; the two hook implementations below then register the components.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

import devis_core
from devis_core.lazy import lazy_import
from devis_core.toolkit.geometry import Motion, forward_warp
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


class PlaneDepthConfig(BaseModel):
    """Settings of the plane depth estimator."""

    distance: float = Field(4.0, gt=0, description="Depth of the plane, in scene units.")


class PlaneDepth:
    """Every pixel at one distance: a fronto-parallel plane in front of the camera."""

    def __init__(self, config: PlaneDepthConfig):
        self.distance = config.distance

    def estimate(
        self, video: torch.Tensor, sample: ViewSynthesisSample | None = None
    ) -> torch.Tensor:
        frames, _, height, width = video.shape
        return video.new_full((frames, height, width), self.distance)


class RefineConfig(BaseModel):
    """Settings of the refining accumulator."""

    passes: int = Field(2, ge=1, description="Generations at the target camera.")


class RefineAccumulator:
    """Generate at the target camera several times, each pass referencing the last one."""

    def __init__(self, config: RefineConfig):
        self.passes = config.passes

    def run(
        self,
        sample: ViewSynthesisSample,
        backbone: Backbone,
        depth: DepthEstimator,
        *,
        increments: Sequence[Motion] | None = None,
        generator: torch.Generator | None = None,
    ) -> AccumulationResult:
        source_depth = depth.estimate(sample.source, sample)
        render, mask = forward_warp(
            sample.source, source_depth, sample.K, sample.source_w2c, sample.K, sample.target_w2c
        )
        reference, videos = sample.source, []
        for _ in range(self.passes):
            conditions = Conditions(render, mask, reference, sample.caption)
            reference = backbone.generate(conditions, generator)
            videos.append(reference)
        return AccumulationResult(
            video=videos[-1],
            conditions=conditions,
            generator_calls=self.passes,
            intermediate=videos[:-1],
        )


@devis_core.hookimpl
def devis_register_depth_estimators(register):
    register("plane", PlaneDepth, PlaneDepthConfig)


@devis_core.hookimpl
def devis_register_accumulators(register):
    register("refine", RefineAccumulator, RefineConfig)
