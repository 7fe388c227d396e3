"""Accumulator ``ora-cc``: occlusion region accumulation by connected components.

RFA's render with its holes filled from RVA's render, but only from regions that are large
enough: the fill candidates (RVA visible where RFA has a hole) are split into 8-connected
components per frame, and components smaller than ``min_area`` are dropped. Depth estimates
are worst at object borders, and what they misplace there shows up as thin slivers and
specks; a large continuous region is far more likely to be right.

``min_area`` is a fraction of the frame so that it means the same at every resolution. The
default, 0.2 % of the frame (31 pixels at 96x160, 516 at 384x672), removes slivers a few
pixels wide along silhouettes while keeping any region that shows part of an object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

import devis_core
from devis_core.lazy import lazy_import
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

if TYPE_CHECKING:
    import cv2
    import numpy as np
    import torch
else:
    cv2 = lazy_import("cv2")
    np = lazy_import("numpy")
    torch = lazy_import("torch")


class ORAComponentsConfig(AccumulationConfig):
    """Settings of occlusion region accumulation by connected components."""

    min_area: float = Field(
        0.002, ge=0, lt=1, description="Smallest kept component, as a fraction of the frame."
    )


def large_components(candidates: torch.Tensor, min_pixels: int) -> torch.Tensor:
    """Per frame, the pixels of ``candidates`` in 8-connected components of >= ``min_pixels``."""
    kept = np.zeros(candidates.shape, dtype=bool)
    for index, frame in enumerate(candidates.cpu().numpy().astype(np.uint8)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(frame, connectivity=8)
        large = stats[:, cv2.CC_STAT_AREA] >= min_pixels
        large[0] = False  # label 0 is the background
        kept[index] = large[labels]
    return torch.from_numpy(kept).to(candidates.device)


class ComponentAccumulation(StepwiseAccumulator):
    """ORA-cc: RFA's render, holes filled from RVA's large 8-connected regions only."""

    config: ORAComponentsConfig

    def conditions(self, step: Step, path: CameraPath) -> Conditions:
        base = source_reprojection(step, self.config.clean)
        fill = previous_reprojection(step, self.config.clean)
        height, width = base.mask.shape[-2:]
        min_pixels = max(1, round(self.config.min_area * height * width))
        allowed = large_components(fill.mask & ~base.mask, min_pixels)
        return step_conditions(step, fuse(base, fill, allowed))


@devis_core.hookimpl
def devis_register_accumulators(register):
    register("ora-cc", ComponentAccumulation, ORAComponentsConfig)
