"""Dataset ``synthetic``: dynamic scenes with exact depth and ground-truth target videos.

The embedded default data of DEVIS: nothing to download, fully determined by a seed. Each
sample is a static source camera filming textured spheres and boxes that move in a textured
room (:mod:`.scene`, :mod:`.render`), a target camera orbiting the pivot at the depth of the
centre pixel of frame 0 by an extreme angle, and the ground truth seen from that target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

import devis_core
from devis_core.lazy import lazy_function, lazy_import
from devis_core.toolkit.geometry import Motion, orbit_trajectory, pivot_depth_from
from devis_core.types import ViewSynthesisSample

if TYPE_CHECKING:
    import torch

    from devis_plugins.synthetic.render import default_intrinsics
    from devis_plugins.synthetic.render import render as render_frames
    from devis_plugins.synthetic.scene import sample_scene
else:  # the renderer imports torch: load it when a sample is drawn, not when listed
    default_intrinsics = lazy_function("devis_plugins.synthetic.render", "default_intrinsics")
    # not named `render`: importing the submodule .render rebinds that name in this package
    render_frames = lazy_function("devis_plugins.synthetic.render", "render")
    sample_scene = lazy_function("devis_plugins.synthetic.scene", "sample_scene")
    torch = lazy_import("torch")


class SyntheticConfig(BaseModel):
    """Size, length and camera motion of the synthetic scenes."""

    num_samples: int = Field(8, ge=1, description="Number of scenes in the dataset.")
    seed: int = Field(0, description="Dataset seed; scene i is drawn from (seed, i).")
    frames: int = Field(16, ge=2, description="Frames per video (the paper uses 49).")
    height: int = Field(96, ge=8, description="Frame height in pixels (the paper uses 384).")
    width: int = Field(160, ge=8, description="Frame width in pixels (the paper uses 672).")
    fov_x_deg: float = Field(60.0, gt=10, lt=150, description="Horizontal field of view.")
    n_objects: int = Field(4, ge=1, le=12, description="Moving objects per scene.")
    azimuth_range: tuple[float, float] = Field(
        (60.0, 90.0), description="Orbit angle phi in degrees; the side (left/right) is random."
    )
    elevation_range: tuple[float, float] = Field(
        (0.0, 20.0), description="Orbit angle theta in degrees (upwards, away from the floor)."
    )
    trajectory: Literal["direct", "gradual"] = Field(
        "direct",
        description="direct: every target frame at the final pose; gradual: move there.",
    )
    samples_per_pixel: int = Field(1, description="1, or 4 for 2x2 supersampled colour.")

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        for name in ("azimuth_range", "elevation_range"):
            low, high = getattr(self, name)
            if not 0 <= low <= high <= 90:
                raise ValueError(f"{name} must satisfy 0 <= low <= high <= 90")
        if self.samples_per_pixel not in (1, 4):
            raise ValueError("samples_per_pixel must be 1 or 4")
        return self


class SyntheticDataset:
    """Seeded synthetic 4D scenes with exact depth and ground-truth target views."""

    def __init__(self, config: SyntheticConfig):
        self.config = config

    def __len__(self) -> int:
        return self.config.num_samples

    def __getitem__(self, index: int) -> ViewSynthesisSample:
        if not 0 <= index < len(self):
            raise IndexError(f"synthetic dataset has {len(self)} samples, asked for {index}")
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + index)
        scene = sample_scene(generator, n_objects=cfg.n_objects)
        motion = self._motion(generator)
        K = default_intrinsics(cfg.height, cfg.width, cfg.fov_x_deg)
        times = torch.arange(cfg.frames, dtype=torch.float32)
        source_w2c = torch.eye(4).expand(cfg.frames, 4, 4).clone()
        source, source_depth = self._render(scene, K, source_w2c, times)
        pivot = pivot_depth_from(source_depth)
        target_w2c = orbit_trajectory(
            motion, n_frames=cfg.frames, pivot_depth=pivot, mode=cfg.trajectory
        )
        target, target_depth = self._render(scene, K, target_w2c, times)
        return ViewSynthesisSample(
            sample_id=f"synthetic-{cfg.seed}-{index:04d}",
            source=source,
            K=K,
            source_w2c=source_w2c,
            target_w2c=target_w2c,
            source_depth=source_depth,
            motion=motion,
            target=target,
            target_depth=target_depth,
            pivot_depth=pivot,
            trajectory=cfg.trajectory,
            caption="textured spheres and boxes moving in a textured room",
        )

    def _motion(self, generator: torch.Generator) -> Motion:
        draws = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
        azimuth = _lerp(self.config.azimuth_range, draws[0])
        elevation = _lerp(self.config.elevation_range, draws[1])
        side = 1.0 if draws[2] < 0.5 else -1.0
        return Motion(theta=elevation, phi=side * azimuth)

    def _render(self, scene, K, w2c, times) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        rgb, depth = render_frames(
            scene, K, w2c, times, cfg.height, cfg.width, samples_per_pixel=cfg.samples_per_pixel
        )
        return rgb, depth


def _lerp(bounds: tuple[float, float], fraction: float) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * fraction


@devis_core.hookimpl
def devis_register_datasets(register):
    register("synthetic", SyntheticDataset, SyntheticConfig)
