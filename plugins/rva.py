"""Accumulator ``rva``: reprojection video accumulation (Eq. 9 of the paper).

Step k reprojects the previous step's video by the increment only, with depth re-estimated on
that video by the configured depth estimator, and references it. Holes stay small, but depth
errors on generated videos accumulate from step to step. Ground-truth depth does not exist for
generated videos: configure an estimator that runs on any video (``carried`` in the synthetic
world, a model such as ``depthcrafter`` on real data).
"""

from __future__ import annotations

import devis_core
from devis_core.toolkit.accumulation import (
    AccumulationConfig,
    CameraPath,
    Step,
    StepwiseAccumulator,
    previous_reprojection,
    step_conditions,
)
from devis_core.types import Conditions


class RVAConfig(AccumulationConfig):
    """Settings of reprojection video accumulation."""


class ReprojectionAccumulation(StepwiseAccumulator):
    """RVA: reproject the previous video by the increment, with its re-estimated depth."""

    def conditions(self, step: Step, path: CameraPath) -> Conditions:
        return step_conditions(step, previous_reprojection(step, self.config.clean))


@devis_core.hookimpl
def devis_register_accumulators(register):
    register("rva", ReprojectionAccumulation, RVAConfig)
