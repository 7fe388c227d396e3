"""Dataset ``dl3dv``: static DL3DV scenes, the first frame as source, later frames as target.

Layout of one scene (``root`` is a scene, or a folder of scenes; a scene's files may also sit
in a ``nerfstudio/`` subfolder)::

    transforms.json    nerfstudio format: w, h, fl_x, fl_y, cx, cy (full resolution),
                       camera_model, k1, k2, p1, p2 (k3), frames[].file_path and
                       frames[].transform_matrix (camera-to-world, OpenGL axes)
    images_4/          the frames, downsampled (file_path may name images/: the file name
                       is looked up in the configured folder)

Protocol (the paper's adaptation of a static dataset): frame 0 is the source, frames 10 to 60
the target sequence. The source "video" is frame 0 repeated, filmed by frame 0's camera, for
as many frames as the target has; the target cameras move along the capture path. Depth is
not part of DL3DV: the paper estimates it with DepthSplat; configure ``depth`` to read such
maps, else the pipeline's depth estimator runs on the source.
"""

from __future__ import annotations

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
    check_rotation,
    corner_to_centre,
    natural_key,
    read_depth_array,
    read_json,
    read_rgb,
    require,
    require_array,
    require_number,
    resize_clip,
    stack_frames,
    to_intrinsics,
    undistort,
)
from devis_core.toolkit.geometry import invert_rigid
from devis_core.types import ViewSynthesisSample

if TYPE_CHECKING:
    import numpy as np
    import torch
else:
    np = lazy_import("numpy")
    torch = lazy_import("torch")


def _opengl_to_opencv() -> torch.Tensor:
    """The axis flip from OpenGL to OpenCV cameras (a function: a constant would import torch)."""
    return torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


"""Right-multiplying a camera-to-world matrix flips the camera's y and z axes."""

PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")
"""nerfstudio camera models this loader undistorts to a pinhole (fisheye ones it refuses)."""


class DL3DVConfig(CaptionOptions):
    """Which scenes, which image folder, which frames, and where depth maps are."""

    root: Path = Field(description="A scene folder (with transforms.json), or a folder of them.")
    scenes: list[str] | None = Field(
        None, description="Scene folder names to use (default: every one under root)."
    )
    images: str = Field("images_4", description="Image folder of the scene to read frames from.")
    target_start: int = Field(10, ge=1, description="First target frame (0-based, sorted).")
    target_end: int = Field(60, ge=1, description="Last target frame, included.")
    frames: int | None = Field(
        None, ge=2, description="Subsample the target range evenly to this many frames."
    )
    depth: Path | None = Field(
        None, description="Folder of <scene>.npy: planar depth of frame 0 (e.g. DepthSplat)."
    )
    depth_scale: float = Field(1.0, gt=0, description="Multiplier of the depth maps.")
    size: ImageSize | None = Field(None, description="(height, width) to resize to.")
    fps: float = Field(8.0, gt=0, description="Frame rate of the clips (DL3DV gives none).")

    @model_validator(mode="after")
    def _check(self) -> DL3DVConfig:
        if self.target_end < self.target_start:
            raise ValueError("target_end must not be before target_start")
        if self.frames is not None and self.frames > self.target_end - self.target_start + 1:
            raise ValueError("frames exceeds the number of frames in the target range")
        return self


def opengl_to_w2c(c2w: np.ndarray | torch.Tensor) -> torch.Tensor:
    """World-to-camera (OpenCV axes) of a camera-to-world matrix in OpenGL axes."""
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    return invert_rigid(c2w @ _opengl_to_opencv())


def frame_intrinsics(
    transforms: dict[str, Any], index: int, path: Path
) -> tuple[torch.Tensor, tuple[float, ...], tuple[float, float]]:
    """Corner-origin pixel ``K`` at full resolution, OpenCV distortion and ``(w, h)`` of a frame.

    nerfstudio allows every intrinsic field per frame; a frame's own value wins.
    """
    frame = require(transforms, f"frames.{index}", path)
    if not isinstance(frame, dict):
        raise UsageError(f"{path}: field 'frames.{index}' is not an object")

    def number(key: str, default: float | None = None) -> float:
        if key in frame:
            return require_number(transforms, f"frames.{index}.{key}", path)
        if key in transforms:
            return require_number(transforms, key, path)
        if default is None:
            raise UsageError(f"{path}: missing field {key!r} (nor frames.{index}.{key})")
        return default

    model = frame.get("camera_model", transforms.get("camera_model", "OPENCV"))
    if model not in PINHOLE_MODELS:
        raise UsageError(
            f"{path}: camera_model {model!r} is not supported; expected one of {PINHOLE_MODELS}"
        )
    K = torch.tensor(
        [[number("fl_x"), 0.0, number("cx")], [0.0, number("fl_y"), number("cy")], [0, 0, 1]],
        dtype=torch.float64,
    )
    distortion = tuple(number(key, 0.0) for key in ("k1", "k2", "p1", "p2", "k3"))
    if model != "OPENCV" and any(distortion):
        raise UsageError(f"{path}: camera_model {model!r} has distortion coefficients")
    return K, distortion, (number("w"), number("h"))


def find_scenes(root: Path, names: list[str] | None) -> list[tuple[str, Path]]:
    """``(name, folder holding transforms.json)`` of the scenes under ``root``."""

    def folder(scene: Path) -> Path | None:
        for candidate in (scene, scene / "nerfstudio"):
            if (candidate / "transforms.json").is_file():
                return candidate
        return None

    if not root.is_dir():
        raise UsageError(f"DL3DV root not found: {root}")
    if names is None and folder(root) is not None:
        return [(root.name, folder(root))]
    scenes = []
    for scene in [root / n for n in names] if names else sorted(root.iterdir()):
        found = folder(scene) if scene.is_dir() else None
        if found is not None:
            scenes.append((scene.name, found))
        elif names:
            raise UsageError(f"no transforms.json in {scene} (nor in {scene / 'nerfstudio'})")
    if not scenes:
        raise UsageError(f"no DL3DV scene (a folder with transforms.json) in {root}")
    return scenes


class DL3DVDataset:
    """DL3DV static scenes: frame 0 held still as the source, frames 10 to 60 as the target."""

    def __init__(self, config: DL3DVConfig):
        self.config = config
        self.captions = Captions(config)
        self.scenes = find_scenes(config.root, config.scenes)

    def __len__(self) -> int:
        return len(self.scenes)

    def target_indices(self) -> list[int]:
        """Positions, in the sorted frame list, of the target frames."""
        cfg = self.config
        if cfg.frames is None:
            return list(range(cfg.target_start, cfg.target_end + 1))
        spaced = np.linspace(cfg.target_start, cfg.target_end, cfg.frames)
        return [int(i) for i in spaced.round()]

    def __getitem__(self, index: int) -> ViewSynthesisSample:
        if not 0 <= index < len(self):
            raise IndexError(f"dl3dv has {len(self)} scenes, asked for {index}")
        cfg = self.config
        name, folder = self.scenes[index]
        path = folder / "transforms.json"
        transforms = read_json(path)
        frames = require(transforms, "frames", path)
        if not isinstance(frames, list):
            raise UsageError(f"{path}: field 'frames' is not a list")
        order = sorted(
            range(len(frames)),
            key=lambda i: natural_key(
                Path(str(require(transforms, f"frames.{i}.file_path", path))).name
            ),
        )
        targets = self.target_indices()
        if len(order) <= targets[-1]:
            raise UsageError(
                f"{path} lists {len(order)} frames; the protocol needs frame {targets[-1]} "
                f"(target frames {cfg.target_start} to {cfg.target_end})"
            )
        picked = [order[0], *(order[i] for i in targets)]
        images, Ks, distortions, w2cs = zip(
            *(self._frame(folder, transforms, i, path) for i in picked), strict=True
        )
        K_all = torch.stack(Ks)
        video = stack_frames(images, f"{cfg.images} frames of {folder}")
        video = undistort(video, K_all, distortions, "bilinear")
        K = K_all[0]
        target, _ = to_intrinsics(video[1:], None, K_all[1:], K)
        count = len(targets)
        source = video[0][None].expand(count, -1, -1, -1).clone()
        source_depth = None
        if cfg.depth is not None:
            depth = read_depth_array(cfg.depth / f"{name}.npy") * cfg.depth_scale
            if depth.shape != tuple(source.shape[-2:]):
                raise UsageError(
                    f"{cfg.depth / name}.npy is {depth.shape} (H, W); the {cfg.images} frames are "
                    f"{tuple(source.shape[-2:])}"
                )
            depth = torch.from_numpy(depth)
            depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, 0.0)
            source_depth = depth[None].expand(count, -1, -1).clone()
        (source, target), (source_depth,), K = resize_clip(
            [source, target], [source_depth], K, cfg.size
        )
        sample_id = f"dl3dv-{name}"
        return ViewSynthesisSample(
            sample_id=sample_id,
            source=source,
            K=K.float(),
            source_w2c=w2cs[0][None].expand(count, -1, -1).float().clone(),
            target_w2c=torch.stack(w2cs[1:]).float(),
            source_depth=source_depth,
            target=target,
            caption=self.captions.for_sample(sample_id, folder / CAPTION_FILE),
            fps=cfg.fps,
            metadata={
                "dataset": "dl3dv",
                "scene": name,
                "source_file": frames[picked[0]]["file_path"],
                "target_positions": targets,
            },
        )

    def _frame(
        self, folder: Path, transforms: dict[str, Any], index: int, path: Path
    ) -> tuple[np.ndarray, torch.Tensor, tuple[float, ...], torch.Tensor]:
        """One frame's colour ``(H, W, 3)``, DEVIS ``K``, distortion and world-to-camera."""
        field = f"frames.{index}"
        file_path = Path(str(require(transforms, f"{field}.file_path", path)))
        image = read_rgb(folder / self.config.images / file_path.name)
        c2w = require_array(transforms, f"{field}.transform_matrix", path)
        if c2w.shape not in ((4, 4), (3, 4)):
            raise UsageError(f"{path}: field '{field}.transform_matrix' is {c2w.shape}, not 4x4")
        check_rotation(c2w[:3, :3], f"{field}.transform_matrix", path)
        c2w = np.vstack([c2w[:3], [0.0, 0.0, 0.0, 1.0]])
        K_full, distortion, (width, height) = frame_intrinsics(transforms, index, path)
        rows, columns = image.shape[:2]
        K_full[0] *= columns / width
        K_full[1] *= rows / height
        return image, corner_to_centre(K_full), distortion, opengl_to_w2c(c2w)


@devis_core.hookimpl
def devis_register_datasets(register):
    register("dl3dv", DL3DVDataset, DL3DVConfig)
