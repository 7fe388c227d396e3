"""Depth ``depthsplat``: depth maps exported by the official DepthSplat code, read from disk.

DepthSplat (Xu et al., CVPR 2025) predicts multi-view depth for static scenes; the paper uses
it on DL3DV. Its network (a multi-view transformer with cost volumes on top of a Depth
Anything V2 backbone, plus a refinement U-Net) is not re-implemented here: this plugin reads the
depth the official code produced, so DEVIS gets exactly the published model's output. The
export recipe and a conversion script are in ``docs/models.md`` and
``docs/scripts/export_depthsplat_depth.py``.

Format: for each dataset sample, ``<root>/<sample_id>.npz`` holding ``depth``, a float array
``(T, H, W)`` of planar depth in the units of the dataset's cameras (0 or non-finite where
unknown), one map per source frame in order. A directory ``<root>/<sample_id>/`` of per-frame
``.npy`` maps (DepthSplat's own per-view dump, files sorted by name) is read as well.

Geometry: DepthSplat does not see the whole frame. Its data shim (``rescale_and_crop`` in
``src/dataset/shims/crop_shim.py``) scales a frame so that it covers the network's
``image_shape`` and centre-crops it, the crop starting at row ``(h_scaled - h) // 2``: DL3DV's
540x960 frames run at 512x960, rows 14 to 525. :func:`place_centre_crop` puts each map back on
exactly the pixels it was predicted for; pixels outside the crop get depth 0 (unknown), since
DepthSplat predicts nothing there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

import devis_core
from devis_core.errors import UsageError
from devis_core.lazy import lazy_import
from devis_core.types import ViewSynthesisSample

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn.functional as F
else:
    np = lazy_import("numpy")
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")


class DepthSplatConfig(BaseModel):
    """Where the exported DepthSplat depth maps are."""

    model_config = ConfigDict(extra="forbid")

    root: str = Field(description="Directory with <sample_id>.npz (or <sample_id>/*.npy) files.")
    scale: float = Field(
        1.0,
        gt=0,
        description="Multiplies the stored depth (when the export used other units than the "
        "dataset's cameras).",
    )


class DepthSplatDepth:
    """Depth maps exported by the official DepthSplat code (read from disk, not re-run)."""

    generated_videos = False
    """Exports exist for dataset videos only: accumulation carries render depth instead."""

    def __init__(self, config: DepthSplatConfig):
        self.config = config
        self.root = Path(config.root).expanduser()

    def estimate(
        self, video: torch.Tensor, sample: ViewSynthesisSample | None = None
    ) -> torch.Tensor:
        if sample is None:
            raise UsageError(
                "depth 'depthsplat' reads depth exported per dataset sample and needs the "
                "sample; configure a depth estimator that runs on videos"
            )
        if not sample.is_source(video):
            raise UsageError(
                "depth 'depthsplat' has exported depth for source videos only, not for a "
                "generated one (as RVA and ORA need): configure a depth estimator that runs on "
                "any video, e.g. depthcrafter"
            )
        depth, origin = read_exported_depth(self.root, sample.sample_id)
        frames, _, height, width = video.shape
        if depth.shape[0] != frames:
            raise UsageError(
                f"{origin} holds {depth.shape[0]} depth maps but sample {sample.sample_id!r} "
                f"has {frames} frames: export one map per source frame"
            )
        depth = depth * self.config.scale
        depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.zeros_like(depth))
        if tuple(depth.shape[-2:]) != (height, width):
            depth = place_centre_crop(depth, (height, width))
        return depth.to(video.device)


def place_centre_crop(depth: torch.Tensor, frame_size: tuple[int, int]) -> torch.Tensor:
    """Depth ``(T, h, w)`` predicted on DepthSplat's centre crop, on the ``(H, W)`` frame.

    Inverts DepthSplat's ``rescale_and_crop``: the frame was scaled by
    ``max(h / H, w / W)`` (sides rounded) and centre-cropped to ``(h, w)``. The maps go back
    into that scaled canvas at the crop's offset, zeros (unknown) around them, and the canvas
    is resampled to the frame by nearest pixel centre: averaging depths across an object border
    would invent floating points.
    """
    frames, height, width = depth.shape
    frame_height, frame_width = frame_size
    scale = max(height / frame_height, width / frame_width)
    scaled_height, scaled_width = round(frame_height * scale), round(frame_width * scale)
    top, left = (scaled_height - height) // 2, (scaled_width - width) // 2
    canvas = depth.new_zeros(frames, scaled_height, scaled_width)
    canvas[:, top : top + height, left : left + width] = depth
    if (scaled_height, scaled_width) == (frame_height, frame_width):
        return canvas
    return F.interpolate(canvas.unsqueeze(1), size=frame_size, mode="nearest-exact")[:, 0]


def read_exported_depth(root: Path, sample_id: str) -> tuple[torch.Tensor, Path]:
    """The ``(T, H, W)`` float32 depth stored for ``sample_id`` and the path it came from."""
    archive = root / f"{sample_id}.npz"
    if archive.is_file():
        with np.load(archive) as data:
            if "depth" not in data:
                raise UsageError(f"{archive} has no 'depth' array (found {sorted(data.files)})")
            depth = np.asarray(data["depth"], dtype=np.float32)
        origin = archive
    elif (root / sample_id).is_dir():
        origin = root / sample_id
        depth = _stack_view_maps(origin)
    else:
        raise UsageError(
            f"no DepthSplat depth for sample {sample_id!r}: expected {archive} or a directory "
            f"{root / sample_id} of .npy maps (see docs/models.md, 'Depth: depthsplat')"
        )
    if depth.ndim != 3:
        raise UsageError(f"{origin}: depth must be (T, H, W), got shape {depth.shape}")
    return torch.from_numpy(depth), origin


def convert_view_maps(view_dir: str | Path, output: str | Path, scale: float = 1.0) -> Path:
    """Stack DepthSplat's per-view ``.npy`` maps (sorted by name) into one DEVIS ``.npz``.

    ``docs/scripts/export_depthsplat_depth.py`` calls this on every scene DepthSplat wrote.
    """
    output = Path(output)
    depth = _stack_view_maps(Path(view_dir)) * scale
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output, depth=depth.astype(np.float32))
    return output


def _stack_view_maps(directory: Path) -> np.ndarray:
    """Per-view maps of a directory in frame order: ``<index>.npy`` files by index if any
    (DepthSplat names views by their frame index), else every ``.npy`` file by name."""
    indexed = sorted((f for f in directory.glob("*.npy") if f.stem.isdigit()), key=_index)
    files = indexed or sorted(directory.glob("*.npy"))
    if not files:
        raise UsageError(f"{directory} has no .npy depth maps")
    return np.stack([np.asarray(np.load(f), dtype=np.float32).squeeze() for f in files])


def _index(path: Path) -> int:
    return int(path.stem)


@devis_core.hookimpl
def devis_register_depth_estimators(register):
    register("depthsplat", DepthSplatDepth, DepthSplatConfig)
