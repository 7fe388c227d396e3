"""Depth ``ground-truth``: the depth a dataset ships with its source video.

Exact where it exists, and only there: a generated video (RVA's ``V_{k-1}``, for instance)
has no ground-truth depth, and asking for it is an error that says what to configure instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

import devis_core
from devis_core.errors import UsageError
from devis_core.lazy import lazy_import
from devis_core.types import ViewSynthesisSample

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class GroundTruthDepthConfig(BaseModel):
    """The ground-truth depth estimator has no settings."""


class GroundTruthDepth:
    """Depth shipped with the dataset sample (exact; source videos only)."""

    def __init__(self, config: GroundTruthDepthConfig):
        self.config = config

    def estimate(
        self, video: torch.Tensor, sample: ViewSynthesisSample | None = None
    ) -> torch.Tensor:
        if sample is not None and sample.render_depth is not None:
            raise UsageError(
                f"depth 'ground-truth' has no depth for {sample.sample_id!r}, a video generated "
                "by an accumulation step: configure `depth: {kind: carried}` (weight-free) or a "
                "depth model that runs on any video"
            )
        if sample is None or sample.source_depth is None:
            raise UsageError(
                "depth 'ground-truth' needs a dataset sample that ships depth; this one does "
                "not: configure a depth estimator that runs on videos"
            )
        if not sample.is_source(video):
            raise UsageError(
                "depth 'ground-truth' exists only for the source video, not for a generated "
                "one (as RVA and ORA need): configure a depth estimator that runs on any video"
            )
        return sample.source_depth


@devis_core.hookimpl
def devis_register_depth_estimators(register):
    register("ground-truth", GroundTruthDepth, GroundTruthDepthConfig)
