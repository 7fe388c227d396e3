"""Helpers the real-dataset loaders share: reading their files, converting their cameras.

Real datasets ship JSON camera files, 8- or 16-bit images and float depth in their own
conventions. Every loader turns them into DEVIS's (OpenCV axes, world-to-camera, pixel
intrinsics with pixel centres at integer coordinates, planar depth, ``(T, 3, H, W)`` videos in
``[0, 1]``), and every failure must say which file and which field is wrong: a user with a
half-downloaded dataset should learn what is missing, not read a ``KeyError``.

Pixel conventions: most capture tools (COLMAP, nerfstudio, DyCheck, Blender/Kubric) put the
origin at the image's top-left *corner*, so pixel ``i`` is centred at ``i + 0.5`` and the
principal point of a centred camera is ``W / 2``. DEVIS centres pixel ``i`` at ``i``
(:mod:`devis_core.toolkit.geometry.cameras`). :func:`corner_to_centre` converts.

Captions: none of the datasets ships one, and DEVIS runs no captioner. :class:`Captions` gives
every loader the same sources, most specific first (``docs/datasets.md``, "Captions").
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, PositiveInt

from devis_core.errors import UsageError
from devis_core.lazy import lazy_import
from devis_core.toolkit.geometry import pixel_grid

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn.functional as F
else:
    np = lazy_import("numpy")
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")

ImageSize = tuple[PositiveInt, PositiveInt]
"""``(height, width)`` in pixels, for the loaders' ``size`` option."""


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a :class:`UsageError` saying what was expected there."""
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}")
    return path


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file; a missing or malformed file names itself."""
    require_file(path, "JSON file")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not valid JSON: {error}") from None


def require(data: Any, field: str, path: Path) -> Any:
    """The value at dotted ``field`` (``"camera.K"``, ``"frames.3.file_path"``) of ``data``.

    ``path`` is the file ``data`` came from, so a missing field names file and field.
    """
    value = data
    walked: list[str] = []
    for key in field.split("."):
        walked.append(key)
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise UsageError(f"{path}: missing field {'.'.join(walked)!r}")
    return value


def require_array(
    data: Any, field: str, path: Path, shape: Sequence[int | None] | None = None
) -> np.ndarray:
    """``require`` as a float64 array of ``shape`` (``None`` entries match any length)."""
    value = require(data, field, path)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{path}: field {field!r} is not an array of numbers") from None
    if shape is not None and (
        array.ndim != len(shape)
        or any(
            want is not None and have != want for have, want in zip(array.shape, shape, strict=True)
        )
    ):
        wanted = "x".join("N" if n is None else str(n) for n in shape)
        raise UsageError(f"{path}: field {field!r} has shape {array.shape}, expected {wanted}")
    if not np.isfinite(array).all():
        raise UsageError(f"{path}: field {field!r} holds non-finite numbers")
    return array


def require_number(data: Any, field: str, path: Path, *, positive: bool = False) -> float:
    """``require`` as one finite float (``positive``: also > 0)."""
    value = require(data, field, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{path}: field {field!r} is {value!r}, expected a number")
    if positive and value <= 0:
        raise UsageError(f"{path}: field {field!r} is {value!r}, expected a positive number")
    return float(value)


def check_rotation(rotation: np.ndarray, field: str, path: Path) -> np.ndarray:
    """``rotation`` if it is a proper rotation (orthonormal, det +1) to 1e-3, else an error."""
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-3) or np.linalg.det(rotation) < 0:
        raise UsageError(f"{path}: field {field!r} is not a rotation matrix")
    return rotation


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_rgb(path: Path) -> np.ndarray:
    """An 8- or 16-bit image (grey, RGB or RGBA) as ``(H, W, 3)`` float32 in ``[0, 1]``."""
    import imageio.v3 as iio

    require_file(path, "image")
    try:
        image = np.asarray(iio.imread(path))
    except Exception as error:
        raise UsageError(f"cannot read image {path}: {error}") from None
    if image.dtype not in (np.uint8, np.uint16):
        raise UsageError(f"image {path} is {image.dtype}; expected 8- or 16-bit colour")
    scale = float(np.iinfo(image.dtype).max)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.ndim != 3 or image.shape[2] not in (3, 4):
        raise UsageError(f"image {path} has shape {image.shape}; expected grey, RGB or RGBA")
    return image[..., :3].astype(np.float32) / scale


def read_float_image(path: Path) -> np.ndarray:
    """A single-channel float image (a float32 TIFF depth map) as ``(H, W)`` float32."""
    import imageio.v3 as iio

    require_file(path, "float image")
    try:
        image = np.asarray(iio.imread(path))
    except Exception as error:
        raise UsageError(f"cannot read {path}: {error}") from None
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2 or not np.issubdtype(image.dtype, np.floating):
        raise UsageError(
            f"{path} is {image.dtype} of shape {image.shape}; expected one float channel"
        )
    return image.astype(np.float32)


def read_depth_array(path: Path) -> np.ndarray:
    """A ``.npy`` depth map of shape ``(H, W)`` or ``(H, W, 1)`` as ``(H, W)`` float32."""
    require_file(path, "depth map")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:
        raise UsageError(f"cannot read depth map {path}: {error}") from None
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise UsageError(f"depth map {path} has shape {array.shape}; expected (H, W) or (H, W, 1)")
    return array.astype(np.float32)


def stack_frames(frames: Sequence[np.ndarray], what: str) -> torch.Tensor:
    """``(H, W, 3)`` images as a ``(T, 3, H, W)`` video (or ``(H, W)`` maps as ``(T, H, W)``)."""
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise UsageError(f"{what} have different sizes: {sorted(shapes)}")
    stacked = torch.from_numpy(np.stack(frames))
    return stacked.permute(0, 3, 1, 2).contiguous() if stacked.dim() == 4 else stacked


def corner_to_centre(K: torch.Tensor) -> torch.Tensor:
    """Intrinsics with the origin at the top-left pixel's centre, from the image corner's."""
    shifted = K.clone()
    shifted[..., 0, 2] -= 0.5
    shifted[..., 1, 2] -= 0.5
    return shifted


def scale_intrinsics(K: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """DEVIS intrinsics of the same camera after resizing the image by ``(scale_x, scale_y)``.

    Scaling is exact in corner coordinates; DEVIS's pixel-centre origin moves with it.
    """
    scale = torch.tensor(
        [[scale_x, 0.0, 0.5 * scale_x - 0.5], [0.0, scale_y, 0.5 * scale_y - 0.5], [0, 0, 1]],
        dtype=K.dtype,
    )
    return scale @ K


def viewing_angle(w2c_a: torch.Tensor, w2c_b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between the optical axes of two cameras (broadcasts)."""
    axis_a = w2c_a[..., 2, :3].to(torch.float64)
    axis_b = w2c_b[..., 2, :3].to(torch.float64)
    cosine = (axis_a * axis_b).sum(-1) / (axis_a.norm(dim=-1) * axis_b.norm(dim=-1))
    return torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0)))


def remap(frames: torch.Tensor, source_pixels: torch.Tensor, mode: str) -> torch.Tensor:
    """Sample ``frames`` ``(T, C, H, W)`` at ``source_pixels`` ``(T or 1, H', W', 2)`` (u, v).

    Pixels that fall outside the frame become 0 (black colour, unknown depth). ``mode`` is
    ``"bilinear"`` for colour and ``"nearest"`` for depth, which must not be blended.
    """
    height, width = frames.shape[-2:]
    grid = torch.stack(
        [
            2 * source_pixels[..., 0] / max(width - 1, 1) - 1,
            2 * source_pixels[..., 1] / max(height - 1, 1) - 1,
        ],
        dim=-1,
    ).to(frames.dtype)
    grid = grid.expand(frames.shape[0], *grid.shape[1:])
    return F.grid_sample(frames, grid, mode=mode, padding_mode="zeros", align_corners=True)


def warp_to_intrinsics(
    frames: torch.Tensor, K_from: torch.Tensor, K_to: torch.Tensor, mode: str
) -> torch.Tensor:
    """Frames of a pinhole camera re-imaged with other intrinsics, same pose and size.

    A change of intrinsics alone is the homography ``K_from K_to^-1``: no depth is needed and
    planar depth is unchanged, so depth maps warp the same way (with ``mode="nearest"``).
    ``frames`` is ``(T, C, H, W)``; ``K_from``/``K_to`` are ``(3, 3)`` or ``(T, 3, 3)``.
    """
    height, width = frames.shape[-2:]
    grid = pixel_grid(height, width, dtype=torch.float64)
    homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], dim=-1)
    homography = K_from.to(torch.float64) @ torch.linalg.inv(K_to.to(torch.float64))
    if homography.dim() == 2:
        homography = homography.unsqueeze(0)
    mapped = torch.einsum("tij,hwj->thwi", homography, homogeneous)
    return remap(frames, mapped[..., :2] / mapped[..., 2:], mode)


def distort_points(points: torch.Tensor, coefficients: Sequence[float]) -> torch.Tensor:
    """OpenCV's lens model on normalised camera points ``(..., 2)``.

    ``coefficients`` are ``(k1, k2, p1, p2[, k3])``: radial ``1 + k1 r^2 + k2 r^4 + k3 r^6``
    plus the tangential terms, as COLMAP's OPENCV model and DyCheck's cameras use them.
    """
    k1, k2, p1, p2, k3 = (list(coefficients) + [0.0])[:5]
    x, y = points[..., 0], points[..., 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    x_d = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    y_d = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return torch.stack([x_d, y_d], dim=-1)


def undistortion_map(
    K: torch.Tensor, coefficients: Sequence[float], height: int, width: int
) -> torch.Tensor:
    """For every pixel of the undistorted image (same ``K``), where it lies in the distorted one.

    Returns ``(1, H, W, 2)`` pixel coordinates for :func:`remap`.
    """
    K = K.to(torch.float64)
    grid = pixel_grid(height, width, dtype=torch.float64)
    homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], dim=-1)
    normalised = (torch.linalg.inv(K) @ homogeneous.unsqueeze(-1)).squeeze(-1)
    distorted = distort_points(normalised[..., :2], coefficients)
    homogeneous = torch.cat([distorted, torch.ones_like(distorted[..., :1])], dim=-1)
    pixels = (K @ homogeneous.unsqueeze(-1)).squeeze(-1)
    return pixels[..., :2].unsqueeze(0)


def undistort(
    frames: torch.Tensor,
    K: torch.Tensor,
    distortions: Sequence[Sequence[float]],
    mode: str,
) -> torch.Tensor:
    """Frames ``(T, C, H, W)`` of distorting lenses re-imaged as pinholes with the same ``K``.

    ``K`` is ``(T, 3, 3)`` and ``distortions`` holds each frame's OpenCV coefficients; frames
    without distortion are left as they are. ``mode`` as in :func:`remap`.
    """
    result = frames.clone()
    for index, coefficients in enumerate(distortions):
        if any(coefficients):
            where = undistortion_map(K[index], coefficients, *frames.shape[-2:])
            result[index] = remap(frames[index : index + 1], where, mode)[0]
    return result


def to_intrinsics(
    video: torch.Tensor, depth: torch.Tensor | None, K_from: torch.Tensor, K_to: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A clip re-imaged with intrinsics ``K_to`` (a no-op when they already match).

    A sample has one ``K`` for its source and its target: a target filmed with other
    intrinsics is re-imaged with the source's (:func:`warp_to_intrinsics`) so that it is what
    a generator asked for the target pose renders. Parts the target camera did not see are
    black, with unknown (0) depth.
    """
    if torch.allclose(K_from.to(K_to.dtype), K_to, atol=1e-4):
        return video, depth
    video = warp_to_intrinsics(video, K_from, K_to, "bilinear")
    if depth is not None:
        depth = warp_to_intrinsics(depth.unsqueeze(1), K_from, K_to, "nearest").squeeze(1)
    return video, depth


def resize_clip(
    videos: Sequence[torch.Tensor],
    depths: Sequence[torch.Tensor | None],
    K: torch.Tensor,
    size: tuple[int, int] | None,
) -> tuple[list[torch.Tensor], list[torch.Tensor | None], torch.Tensor]:
    """Videos of one camera model, their depth maps and intrinsics at ``size = (height, width)``.

    Colour is resampled bilinearly with antialiasing; depth by the nearest pixel (blending
    depths across an edge invents surfaces); intrinsics follow with :func:`scale_intrinsics`.
    ``size`` None (or the current size) changes nothing.
    """
    height, width = videos[0].shape[-2:]
    if size is None or (height, width) == tuple(size):
        return list(videos), list(depths), K
    resized = [
        F.interpolate(v, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(
            0, 1
        )
        for v in videos
    ]
    maps = [
        None
        if depth is None
        else F.interpolate(depth.unsqueeze(1), size=size, mode="nearest-exact").squeeze(1)
        for depth in depths
    ]
    return resized, maps, scale_intrinsics(K, size[1] / width, size[0] / height)


CAPTION_FILE = "caption.txt"
"""The caption file a loader looks for beside a sample's data (each loader says where)."""


class CaptionOptions(BaseModel):
    """The caption fields every dataset config has (see :class:`Captions`)."""

    caption: str = Field("", description="Caption of every sample that has no own caption.")
    captions: Path | None = Field(
        None,
        description="Captions per sample: a JSON object {sample_id: caption}, or a .jsonl file "
        'of {"sample_id": ..., "caption": ...} lines.',
    )


class Captions:
    """The caption of each sample, from the most specific source that has one.

    1. the ``captions`` file's entry for the sample id;
    2. the sample's caption file (``caption.txt`` beside its data; empty files do not count);
    3. the config's ``caption``;

    else the sample's caption is ``""`` and the backbone's own ``caption`` setting applies.
    """

    def __init__(self, options: CaptionOptions):
        self.default = options.caption
        self.by_sample = read_caption_table(options.captions) if options.captions else {}

    def for_sample(self, sample_id: str, caption_file: Path) -> str:
        """The caption of ``sample_id``, whose own caption file would be ``caption_file``."""
        if sample_id in self.by_sample:
            return self.by_sample[sample_id]
        if caption_file.is_file():
            try:
                text = caption_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                raise UsageError(f"cannot read caption file {caption_file}: {error}") from None
            if text:
                return text
        return self.default


def read_caption_table(path: Path) -> dict[str, str]:
    """``sample_id -> caption`` of a JSON object, or of a JSONL file (by its ``.jsonl`` suffix)."""
    if path.suffix != ".jsonl":
        table = read_json(path)
        if not isinstance(table, dict) or not all(
            isinstance(value, str) for value in table.values()
        ):
            raise UsageError(f"{path}: expected a JSON object of sample_id -> caption strings")
        return table
    require_file(path, "caption file")
    table = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}, line {number} is not valid JSON: {error}") from None
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(key), str) for key in ("sample_id", "caption")
        ):
            raise UsageError(f"{path}, line {number}: expected string fields sample_id, caption")
        if entry["sample_id"] in table:
            raise UsageError(f"{path}, line {number}: sample {entry['sample_id']!r} again")
        table[entry["sample_id"]] = entry["caption"]
    return table
