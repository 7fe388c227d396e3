"""Accumulator ``direct``: the one-step baseline, no accumulation.

Reproject the source with the whole motion in one go, then generate once (K = 1). This is
TrajectoryCrafter's own inference and the baseline every ADEVIS strategy is compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

import devis_core
from devis_core.lazy import lazy_import
from devis_core.toolkit.accumulation import one_step_conditions
from devis_core.toolkit.geometry import Motion
from devis_core.types import (
    AccumulationResult,
    Backbone,
    DepthEstimator,
    ViewSynthesisSample,
)

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class DirectConfig(BaseModel):
    """Settings of the one-step baseline."""

    clean: bool = False
    """Remove flying pixels around holes (TrajectoryCrafter's ``--mask`` option)."""


class DirectAccumulator:
    """One step: reproject the source by the full motion, generate once."""

    def __init__(self, config: DirectConfig):
        self.config = config

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
        conditions = one_step_conditions(sample, source_depth, clean=self.config.clean)
        video = backbone.generate(conditions, generator)
        return AccumulationResult(video=video, conditions=conditions, generator_calls=1)


@devis_core.hookimpl
def devis_register_accumulators(register):
    register("direct", DirectAccumulator, DirectConfig)
