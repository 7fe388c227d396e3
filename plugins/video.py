"""Dataset ``video``: your own clip (an .mp4 or a folder of images) and a target motion.

One sample: the first ``frames`` frames of the clip (every ``stride``-th), the source camera at
the identity with intrinsics from a field of view (or given), and a target camera orbiting the
pivot by TrajectoryCrafter's ``(theta, phi, r, x, y)``. Depth comes from files (``depth``) or,
when there are none, from the pipeline's depth estimator; the orbit pivot is then given
explicitly (``pivot_depth``), since it is the depth of the centre pixel of frame 0.
No ground truth exists, so runs report no metrics against a target.

    devis run configs/quickstart.yaml -o dataset.kind=video -o dataset.path=clip.mp4 \\
        -o dataset.depth=clip_depth.npz -o dataset.phi=60 -o depth.kind=carried
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

import devis_core
from devis_core.errors import UsageError
from devis_core.lazy import lazy_function, lazy_import
from devis_core.toolkit.dataset_files import CAPTION_FILE, CaptionOptions, Captions
from devis_core.toolkit.geometry import (
    Motion,
    intrinsics_from_fov,
    orbit_trajectory,
    pivot_depth_from,
)
from devis_core.types import ViewSynthesisSample

if TYPE_CHECKING:
    import torch

    from devis_core.toolkit.media import read_depth_maps, read_video
else:
    read_depth_maps = lazy_function("devis_core.toolkit.media", "read_depth_maps")
    read_video = lazy_function("devis_core.toolkit.media", "read_video")
    torch = lazy_import("torch")


class VideoDatasetConfig(CaptionOptions):
    """The clip, its depth, its camera and the target motion."""

    path: Path = Field(description="A video file (.mp4, ...) or a folder of images.")
    depth: Path | None = Field(None, description="Depth maps for the frames (see depth 'files').")
    depth_scale: float = Field(1.0, gt=0, description="Multiplier of the depth maps.")
    frames: int = Field(16, ge=2, description="Frames to use (the clip must have enough).")
    stride: int = Field(1, ge=1, description="Use every stride-th frame.")
    fov_x_deg: float = Field(60.0, gt=10, lt=150, description="Horizontal field of view.")
    theta: float = Field(0.0, description="Target orbit up, degrees.")
    phi: float = Field(60.0, description="Target orbit right, degrees.")
    r: float = Field(0.0, lt=1, description="Move toward the pivot, fraction of its depth.")
    x: float = Field(0.0, description="Pan right, scene units.")
    y: float = Field(0.0, description="Pan up, scene units.")
    trajectory: Literal["direct", "gradual"] = "direct"
    pivot_depth: float | None = Field(
        None, gt=0, description="Orbit pivot depth (default: centre pixel of frame 0, max 5)."
    )
    fps: float = Field(8.0, gt=0)

    @model_validator(mode="after")
    def _pivot_known(self) -> VideoDatasetConfig:
        if self.depth is None and self.pivot_depth is None:
            raise ValueError("without depth maps, give pivot_depth (the orbit centre's depth)")
        return self


class VideoDataset:
    """One user clip, a target orbit around it, and optional depth maps."""

    def __init__(self, config: VideoDatasetConfig):
        self.config = config
        self.captions = Captions(config)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> ViewSynthesisSample:
        if index != 0:
            raise IndexError("the video dataset has one sample")
        cfg = self.config
        needed = (cfg.frames - 1) * cfg.stride + 1
        video = read_video(cfg.path, max_frames=needed)
        if video.shape[0] < needed:
            raise UsageError(
                f"{cfg.path} has {video.shape[0]} frames; {cfg.frames} frames at stride "
                f"{cfg.stride} need {needed}"
            )
        video = video[:: cfg.stride]
        height, width = video.shape[-2:]
        depth = None
        if cfg.depth is not None:
            depth = read_depth_maps(cfg.depth, cfg.depth_scale, max_frames=needed)
            if depth.shape[0] < needed or tuple(depth.shape[1:]) != (height, width):
                raise UsageError(
                    f"depth {cfg.depth} is {tuple(depth.shape)} (T, H, W); the frames need "
                    f"at least {(needed, height, width)}"
                )
            depth = depth[: needed : cfg.stride]
        pivot = cfg.pivot_depth if cfg.pivot_depth is not None else _pivot_from_files(cfg, depth)
        motion = Motion(cfg.theta, cfg.phi, cfg.r, cfg.x, cfg.y)
        K = intrinsics_from_fov(height, width, cfg.fov_x_deg)
        return ViewSynthesisSample(
            sample_id=cfg.path.stem,
            source=video,
            K=K,
            source_w2c=torch.eye(4).expand(cfg.frames, 4, 4).clone(),
            target_w2c=orbit_trajectory(
                motion, n_frames=cfg.frames, pivot_depth=pivot, mode=cfg.trajectory
            ),
            source_depth=depth,
            motion=motion,
            pivot_depth=pivot,
            trajectory=cfg.trajectory,
            caption=self.captions.for_sample(cfg.path.stem, caption_file(cfg.path)),
            fps=cfg.fps,
        )


def _pivot_from_files(config: VideoDatasetConfig, depth: torch.Tensor | None) -> float:
    """The orbit pivot from the depth maps' centre pixel of frame 0 (TrajectoryCrafter's)."""
    if depth is None:  # the config validator requires pivot_depth then
        raise UsageError("the video dataset needs `depth` or `pivot_depth`")
    try:
        return pivot_depth_from(depth)
    except ValueError as error:
        raise UsageError(
            f"depth {config.depth}: {error} in frame 0, where the orbit pivot goes; set "
            "`dataset.pivot_depth` (the depth the camera orbits about) or fix the depth maps"
        ) from None


def caption_file(clip: Path) -> Path:
    """The clip's caption file: ``clip.txt`` beside ``clip.mp4``; ``caption.txt`` in a folder."""
    return clip / CAPTION_FILE if clip.is_dir() else clip.with_suffix(".txt")


@devis_core.hookimpl
def devis_register_datasets(register):
    register("video", VideoDataset, VideoDatasetConfig)
