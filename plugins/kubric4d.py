"""Dataset ``kubric4d``: the Kubric-4D release of GCD, 16 static views of each dynamic scene.

Layout (``root`` is the release's ``data/`` folder)::

    root/scn02900/scn02900_p0_v{v}.json         metadata of view v (camera, resolution, frames)
    root/scn02900/frames_p0_v{v}/rgba_{t:05d}.png     colour of frame t
    root/scn02900/frames_p0_v{v}/depth_{t:05d}.tiff   float32 distance along the ray

Protocol (the paper's "100 random large-angle trajectories from the test set"): a trajectory
is a (scene, source view, target view) triple whose optical axes differ by an angle in
``[min_angle_deg, max_angle_deg]``, drawn with a seeded generator from the test scenes
(``scn02900`` to ``scn02999``). The drawn list is written to a JSON file and read back by
every later run, so every method sees the same trajectories. The target is a dataset view,
so the ground-truth target frames are the renders of that view: no warped point cloud.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

import devis_core
from devis_core.errors import UsageError
from devis_core.lazy import lazy_import
from devis_core.toolkit.dataset_files import (
    CAPTION_FILE,
    CaptionOptions,
    Captions,
    ImageSize,
    corner_to_centre,
    read_float_image,
    read_json,
    read_rgb,
    require,
    require_array,
    require_number,
    resize_clip,
    stack_frames,
    to_intrinsics,
    viewing_angle,
)
from devis_core.toolkit.files import atomic_write_text
from devis_core.toolkit.geometry import invert_rigid, pixel_grid
from devis_core.types import ViewSynthesisSample

if TYPE_CHECKING:
    import numpy as np
    import torch
else:
    np = lazy_import("numpy")
    torch = lazy_import("torch")

FPS = 24.0
"""Frame rate of the Kubric-4D renders."""


def _blender_to_opencv() -> np.ndarray:
    """The axis flip from Blender to OpenCV cameras (a function: a constant would import numpy)."""
    return np.diag([1.0, -1.0, -1.0])


"""Blender cameras look along -z with y up; OpenCV's along +z with y down."""

TRAJECTORY_FORMAT = "devis-kubric4d-trajectories"


class Kubric4DConfig(CaptionOptions):
    """Where the release is, which trajectories to draw, and how to cut the clips."""

    root: Path = Field(description="The release's data/ folder, holding scnNNNNN/ folders.")
    scenes: tuple[int, int] = Field(
        (2900, 2999), description="First and last scene number to draw from (the test set)."
    )
    count: int = Field(100, ge=1, description="Number of trajectories to draw.")
    seed: int = Field(0, description="Seed of the trajectory draw.")
    min_angle_deg: float = Field(60.0, ge=0, le=180, description="Least source-target angle.")
    max_angle_deg: float = Field(180.0, ge=0, le=180, description="Largest source-target angle.")
    trajectories: Path | None = Field(
        None,
        description="JSON file of the drawn trajectories: read if it exists, else drawn and "
        "written there (default: a file named after the draw's settings in root).",
    )
    frames: int = Field(49, ge=2, description="Frames per clip (Kubric-4D renders 60).")
    stride: int = Field(1, ge=1, description="Use every stride-th frame.")
    size: ImageSize | None = Field(
        None, description="(height, width) to resize to (default: native 384x576)."
    )

    @model_validator(mode="after")
    def _check(self) -> Kubric4DConfig:
        if self.scenes[0] > self.scenes[1]:
            raise ValueError("scenes must be (first, last) with first <= last")
        if self.min_angle_deg > self.max_angle_deg:
            raise ValueError("min_angle_deg must not exceed max_angle_deg")
        return self


@dataclass(frozen=True)
class Trajectory:
    """One evaluation case: a scene and the two of its views to go from and to."""

    scene: str
    source_view: int
    target_view: int
    angle_deg: float


def quaternion_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Rotation matrix of a ``(w, x, y, z)`` quaternion (normalised first)."""
    w, x, y, z = quaternion / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def kubric_cameras(
    metadata: dict[str, Any], path: Path, indices: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """DEVIS intrinsics ``(3, 3)`` and world-to-camera ``(T, 4, 4)`` of one view's frames.

    ``camera.K`` is normalised to a unit sensor with Blender's sign flips: absolute values,
    rows 0 and 1 times the width and height, then the corner-to-centre half-pixel shift.
    ``camera.quaternions`` (w, x, y, z) and ``camera.positions`` are camera-to-world in
    Blender axes: columns 1 and 2 of the rotation are negated for OpenCV.
    """
    width, height = _resolution(metadata, path)
    K = np.abs(require_array(metadata, "camera.K", path, (3, 3)))
    K[0] *= width
    K[1] *= height
    quaternions = require_array(metadata, "camera.quaternions", path, (None, 4))
    positions = require_array(metadata, "camera.positions", path, (None, 3))
    available = min(len(quaternions), len(positions))
    if max(indices) >= available:
        raise UsageError(
            f"{path}: camera.quaternions/positions cover {available} frames; the clip needs "
            f"frame {max(indices)}"
        )
    c2w = np.tile(np.eye(4), (len(indices), 1, 1))
    for row, index in enumerate(indices):
        if np.linalg.norm(quaternions[index]) < 1e-8:
            raise UsageError(f"{path}: field 'camera.quaternions.{index}' is a zero quaternion")
        c2w[row, :3, :3] = quaternion_to_matrix(quaternions[index]) @ _blender_to_opencv()
        c2w[row, :3, 3] = positions[index]
    w2c = invert_rigid(torch.from_numpy(c2w))
    return corner_to_centre(torch.from_numpy(K)).float(), w2c.float()


def ray_distance_to_planar(distance: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Planar depth ``z`` from distance along each pixel's ray ``(..., H, W)``.

    The ray through pixel (u, v) is ``K^-1 [u, v, 1] = (tan ax, tan ay, 1)``, so
    ``z = d / sqrt(tan^2 ax + tan^2 ay + 1)``. Non-finite or non-positive distances become 0.
    """
    height, width = distance.shape[-2:]
    grid = pixel_grid(height, width, dtype=torch.float64)
    homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], dim=-1)
    rays = (torch.linalg.inv(K.to(torch.float64)) @ homogeneous.unsqueeze(-1)).squeeze(-1)
    planar = distance.to(torch.float64) / rays.norm(dim=-1)
    valid = torch.isfinite(planar) & (planar > 0)
    return torch.where(valid, planar, torch.zeros_like(planar)).to(distance.dtype)


def _resolution(metadata: dict[str, Any], path: Path) -> tuple[int, int]:
    resolution = require_array(metadata, "scene.resolution", path, (2,))
    if (resolution <= 0).any() or (resolution != resolution.round()).any():
        raise UsageError(f"{path}: field 'scene.resolution' is {resolution.tolist()}, not [W, H]")
    return int(resolution[0]), int(resolution[1])


class Kubric4DDataset:
    """Kubric-4D test trajectories: a source view's clip, a distant view's clip as ground truth."""

    def __init__(self, config: Kubric4DConfig):
        self.config = config
        self.captions = Captions(config)
        root = config.root
        if not root.is_dir():
            raise UsageError(f"Kubric-4D root not found: {root}")
        self.trajectory_file = config.trajectories or root / _default_trajectory_name(config)
        self.trajectories = load_or_draw_trajectories(self.trajectory_file, config)

    def __len__(self) -> int:
        return len(self.trajectories)

    def __getitem__(self, index: int) -> ViewSynthesisSample:
        if not 0 <= index < len(self):
            raise IndexError(f"kubric4d has {len(self)} trajectories, asked for {index}")
        cfg = self.config
        case = self.trajectories[index]
        indices = list(range(0, (cfg.frames - 1) * cfg.stride + 1, cfg.stride))
        K, source_w2c, source, source_depth = self._view(case.scene, case.source_view, indices)
        K_target, target_w2c, target, target_depth = self._view(
            case.scene, case.target_view, indices
        )
        target, target_depth = to_intrinsics(target, target_depth, K_target, K)
        (source, target), (source_depth, target_depth), K = resize_clip(
            [source, target], [source_depth, target_depth], K, cfg.size
        )
        sample_id = f"kubric4d-{case.scene}-v{case.source_view}-v{case.target_view}"
        return ViewSynthesisSample(
            sample_id=sample_id,
            source=source,
            K=K,
            source_w2c=source_w2c,
            target_w2c=target_w2c,
            source_depth=source_depth,
            target=target,
            target_depth=target_depth,
            caption=self.captions.for_sample(sample_id, cfg.root / case.scene / CAPTION_FILE),
            fps=FPS / cfg.stride,
            metadata={
                "dataset": "kubric4d",
                "scene": case.scene,
                "source_view": case.source_view,
                "target_view": case.target_view,
                "angle_deg": case.angle_deg,
                "frame_indices": indices,
            },
        )

    def _view(
        self, scene: str, view: int, indices: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Intrinsics, cameras, colour and planar depth of one view's clip."""
        scene_dir = self.config.root / scene
        path = scene_dir / f"{scene}_p0_v{view}.json"
        metadata = read_json(path)
        available = int(require_number(metadata, "scene.num_frames", path, positive=True))
        if max(indices) >= available:
            raise UsageError(
                f"{path}: scene.num_frames is {available}; {self.config.frames} frames at stride "
                f"{self.config.stride} need {max(indices) + 1}"
            )
        K, w2c = kubric_cameras(metadata, path, indices)
        width, height = _resolution(metadata, path)
        frames_dir = scene_dir / f"frames_p0_v{view}"
        video = stack_frames(
            [read_rgb(frames_dir / f"rgba_{t:05d}.png") for t in indices],
            f"rgba frames in {frames_dir}",
        )
        distance = stack_frames(
            [read_float_image(frames_dir / f"depth_{t:05d}.tiff") for t in indices],
            f"depth frames in {frames_dir}",
        )
        for name, shape in (("rgba", video.shape[-2:]), ("depth", distance.shape[-2:])):
            if tuple(shape) != (height, width):
                raise UsageError(
                    f"{frames_dir}: {name} frames are {tuple(shape)} (H, W); {path} says "
                    f"scene.resolution [W, H] = {[width, height]}"
                )
        return K, w2c, video, ray_distance_to_planar(distance, K)


def _default_trajectory_name(config: Kubric4DConfig) -> str:
    first, last = config.scenes
    return (
        f"devis-trajectories-seed{config.seed}-n{config.count}-"
        f"{config.min_angle_deg:g}-{config.max_angle_deg:g}deg-scn{first}-{last}.json"
    )


def _draw_settings(config: Kubric4DConfig) -> dict[str, Any]:
    return {
        "seed": config.seed,
        "count": config.count,
        "scenes": list(config.scenes),
        "min_angle_deg": config.min_angle_deg,
        "max_angle_deg": config.max_angle_deg,
    }


def load_or_draw_trajectories(path: Path, config: Kubric4DConfig) -> list[Trajectory]:
    """The trajectories in ``path`` if it exists (drawn with the same settings), else draw them.

    A fresh draw is written atomically, so concurrent runs never read half a file.
    """
    settings = _draw_settings(config)
    if path.exists():
        data = read_json(path)
        if require(data, "format", path) != TRAJECTORY_FORMAT:
            raise UsageError(f"{path}: field 'format' is not {TRAJECTORY_FORMAT!r}")
        if require(data, "settings", path) != settings:
            raise UsageError(
                f"{path} was drawn with settings {data['settings']}, this config asks for "
                f"{settings}: point 'trajectories' at another file or delete this one"
            )
        entries = require(data, "trajectories", path)
        if not isinstance(entries, list):
            raise UsageError(f"{path}: field 'trajectories' is not a list")
        return [_parse_trajectory(data, i, path) for i in range(len(entries))]
    trajectories = draw_trajectories(config)
    payload = {
        "format": TRAJECTORY_FORMAT,
        "settings": settings,
        "trajectories": [vars(t) for t in trajectories],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(payload, indent=1))
    except OSError as error:
        raise UsageError(
            f"cannot write the drawn trajectories to {path} ({error}): set 'trajectories' to a "
            "writable path"
        ) from None
    return trajectories


def _parse_trajectory(data: dict[str, Any], index: int, path: Path) -> Trajectory:
    field = f"trajectories.{index}"
    scene = require(data, f"{field}.scene", path)
    views = [require_number(data, f"{field}.{key}", path) for key in ("source_view", "target_view")]
    if not isinstance(scene, str) or any(v != int(v) or v < 0 for v in views):
        raise UsageError(f"{path}: field {field!r} is not a scene name and two view numbers")
    angle = require_number(data, f"{field}.angle_deg", path)
    return Trajectory(scene, int(views[0]), int(views[1]), angle)


def draw_trajectories(config: Kubric4DConfig) -> list[Trajectory]:
    """``count`` distinct (scene, source view, target view) triples, seeded.

    Each draw picks a scene uniformly among the test scenes present, then a pair of its views
    whose angle is in range uniformly among the pairs not drawn yet.
    """
    root = config.root
    first, last = config.scenes
    pool = [f"scn{n:05d}" for n in range(first, last + 1) if (root / f"scn{n:05d}").is_dir()]
    if not pool:
        hint = " (root should be the release's data/ folder)" if (root / "data").is_dir() else ""
        raise UsageError(f"no scene folders scn{first:05d} to scn{last:05d} in {root}{hint}")
    generator = torch.Generator().manual_seed(config.seed)
    free: dict[str, list[tuple[int, int, float]]] = {}
    drawn: list[Trajectory] = []
    while len(drawn) < config.count:
        if not pool:
            raise UsageError(
                f"only {len(drawn)} distinct trajectories with angles in "
                f"[{config.min_angle_deg}, {config.max_angle_deg}] degrees exist in scenes "
                f"scn{first:05d} to scn{last:05d} of {root}; {config.count} were asked for"
            )
        scene = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        if scene not in free:
            free[scene] = _view_pairs(root / scene, scene, config)
        if not free[scene]:
            pool.remove(scene)
            continue
        pick = free[scene].pop(int(torch.randint(len(free[scene]), (1,), generator=generator)))
        drawn.append(Trajectory(scene, pick[0], pick[1], round(pick[2], 3)))
    return drawn


def _view_pairs(
    scene_dir: Path, scene: str, config: Kubric4DConfig
) -> list[tuple[int, int, float]]:
    """Ordered (source, target, angle) view pairs of a scene whose angle is in range."""
    pattern = re.compile(rf"{scene}_p0_v(\d+)\.json")
    views = sorted(
        int(match.group(1)) for p in scene_dir.iterdir() if (match := pattern.fullmatch(p.name))
    )
    poses = {}
    for view in views:
        path = scene_dir / f"{scene}_p0_v{view}.json"
        poses[view] = kubric_cameras(read_json(path), path, [0])[1][0]
    pairs = []
    for source in views:
        for target in views:
            if source == target:
                continue
            angle = float(viewing_angle(poses[source], poses[target]))
            if config.min_angle_deg <= angle <= config.max_angle_deg:
                pairs.append((source, target, angle))
    return pairs


@devis_core.hookimpl
def devis_register_datasets(register):
    register("kubric4d", Kubric4DDataset, Kubric4DConfig)
