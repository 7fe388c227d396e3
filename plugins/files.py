"""Depth ``files``: per-frame depth maps precomputed by any tool, read from disk.

For a user's own video whose depth was estimated elsewhere (DepthCrafter's official code, a
phone's LiDAR, a renderer). It serves that one video: asked about another video, or about a
generated one, it refuses instead of returning depth that belongs to different frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

import devis_core
from devis_core.errors import UsageError
from devis_core.lazy import lazy_function, lazy_import
from devis_core.types import ViewSynthesisSample

if TYPE_CHECKING:
    import torch

    from devis_core.toolkit.media import read_depth_maps
else:
    read_depth_maps = lazy_function("devis_core.toolkit.media", "read_depth_maps")
    torch = lazy_import("torch")


class FileDepthConfig(BaseModel):
    """Where the depth maps are and how to turn them into scene units."""

    path: Path = Field(
        description=".npy/.npz of shape (T, H, W), or a folder of per-frame .npy or 16-bit .png"
    )
    scale: float = Field(1.0, gt=0, description="Multiplier to scene units (0.001 for mm PNGs).")


class FileDepth:
    """Depth maps read from files (.npy, .npz, 16-bit PNG), one per frame, times a scale."""

    def __init__(self, config: FileDepthConfig):
        self.config = config

    def estimate(
        self, video: torch.Tensor, sample: ViewSynthesisSample | None = None
    ) -> torch.Tensor:
        if sample is not None and sample.render_depth is not None:
            raise UsageError(
                "depth 'files' holds the depth of the source video only, not of a generated "
                "video (as RVA, ORA and BTA need): configure depth 'carried' or a depth model"
            )
        frames, _, height, width = video.shape
        depth = read_depth_maps(self.config.path, self.config.scale)
        if depth.shape[0] < frames:
            raise UsageError(
                f"{self.config.path} has {depth.shape[0]} depth maps; the video has {frames} frames"
            )
        if tuple(depth.shape[1:]) != (height, width):
            raise UsageError(
                f"depth maps in {self.config.path} are {tuple(depth.shape[1:])} (H, W); the "
                f"video frames are {(height, width)}"
            )
        return depth[:frames].to(video.device)


@devis_core.hookimpl
def devis_register_depth_estimators(register):
    register("files", FileDepth, FileDepthConfig)
