"""Accumulator ``rfa``: reference video accumulation (Eq. 8 of the paper).

Step k renders the *source* with the motion accumulated so far and uses the previous step's
video as the reference. Renders never inherit reprojection errors of generated videos, but
their holes are as large as the direct render's once k approaches K.
"""

from __future__ import annotations

import devis_core
from devis_core.toolkit.accumulation import (
    AccumulationConfig,
    CameraPath,
    Step,
    StepwiseAccumulator,
    source_reprojection,
    step_conditions,
)
from devis_core.types import Conditions


class RFAConfig(AccumulationConfig):
    """Settings of reference video accumulation."""


class ReferenceAccumulation(StepwiseAccumulator):
    """RFA: render the source at the accumulated motion, reference the previous video."""

    def conditions(self, step: Step, path: CameraPath) -> Conditions:
        return step_conditions(step, source_reprojection(step, self.config.clean))


@devis_core.hookimpl
def devis_register_accumulators(register):
    register("rfa", ReferenceAccumulation, RFAConfig)
