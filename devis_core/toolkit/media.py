"""Reading and writing videos, depth maps and figures, with errors that name the file.

Videos are DEVIS tensors ``(T, 3, H, W)`` float32 in ``[0, 1]``. Depth maps are ``(T, H, W)``
float32 in scene units. Several plugins read these (a video dataset, a depth-from-files
estimator) and every engine writes them, so they live in the core.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from devis_core.errors import DevisError, UsageError
from devis_core.toolkit.files import atomic_path
from devis_core.toolkit.geometry.depth import known_depth

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEPTH_SUFFIXES = (".npy", ".npz", ".png")


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` in [0, 1] as ``(T, H, W, 3)`` uint8 (what encoders and images take)."""
    return (video.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def write_video(path: Path, video: torch.Tensor, fps: float, *, lossless: bool = False) -> Path:
    """Encode a video as H.264 (near-lossless, for looking at; even sizes are padded by one
    pixel row/column if needed), or with ``lossless`` as FFV1 (give an ``.mkv`` path): its
    frames read back equal to :func:`to_uint8_frames` of ``video``, so metrics computed from
    the file are those of the video.

    ffmpeg runs at log level ``error`` with its output captured: users see nothing of it
    unless it fails, and then its own words, inside the error.
    """
    frames = to_uint8_frames(video)
    pad_h, pad_w = (0, 0) if lossless else (frames.shape[1] % 2, frames.shape[2] % 2)
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    rate = Fraction(fps).limit_denominator()
    codec = ["ffv1", "-pix_fmt", "bgr0"] if lossless else [
        "libx264", "-pix_fmt", "yuv420p", "-crf", str(X264_CRF)
    ]  # fmt: skip
    command = [
        ffmpeg_executable(), "-y", "-hide_banner", "-nostats", "-loglevel", "error",
        "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}", "-pix_fmt", "rgb24",
        "-r", str(rate), "-i", "-", "-an", "-vcodec", *codec,
    ]  # fmt: skip
    with atomic_path(path) as staging:  # a file that exists is whole (resumed runs trust it)
        try:
            result = subprocess.run(
                [*command, str(staging)],
                input=np.ascontiguousarray(frames).tobytes(),
                capture_output=True,
                check=False,
            )
        except OSError as error:
            raise DevisError(f"cannot run ffmpeg ({command[0]}) to write {path}: {error}") from None
        if result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip() or "(no message)"
            raise DevisError(
                f"ffmpeg could not write {path} (exit code {result.returncode}): {said}"
            )
    return path


def video_suffix(lossless: bool) -> str:
    """The file suffix :func:`write_video` is given: ``.mkv`` (FFV1) or ``.mp4`` (H.264)."""
    return ".mkv" if lossless else ".mp4"


X264_CRF = 10
"""H.264 constant rate factor of written videos (imageio's ``quality=8``: near-lossless)."""


def ffmpeg_executable() -> str:
    """The ffmpeg that ``imageio-ffmpeg`` ships (or the one ``IMAGEIO_FFMPEG_EXE`` names)."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        raise DevisError(
            f"no ffmpeg to write videos with ({error}): pip install imageio-ffmpeg"
        ) from None


def write_mask_video(path: Path, mask: torch.Tensor, fps: float, *, lossless: bool = False) -> Path:
    """A ``(T, H, W)`` bool mask as a black-and-white video (white = visible)."""
    frames = mask.float().unsqueeze(1).expand(-1, 3, -1, -1)
    return write_video(path, frames, fps, lossless=lossless)


def read_video(path: Path, max_frames: int | None = None) -> torch.Tensor:
    """A video file or a folder of images (sorted by name) as ``(T, 3, H, W)`` in [0, 1]."""
    path = Path(path)
    if path.is_dir():
        array = _read_folder(
            path, IMAGE_SUFFIXES, _read_image, "images", f"images ({', '.join(IMAGE_SUFFIXES)})",
            max_frames,
        )  # fmt: skip
    else:
        array = _read_video_file(path, max_frames)
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255


def _read_image(path: Path) -> np.ndarray:
    import imageio.v2 as imageio

    try:
        image = np.asarray(imageio.imread(path))
    except Exception as error:
        raise UsageError(f"cannot read image {path}: {error}") from None
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8:
        raise UsageError(f"image {path} is {image.dtype}; expected 8-bit colour")
    return image[..., :3]


def _read_video_file(path: Path, max_frames: int | None) -> np.ndarray:
    import imageio.v2 as imageio

    if not path.is_file():
        raise UsageError(f"video not found: {path}")
    frames = []
    try:
        with imageio.get_reader(path) as reader:
            for frame in reader:
                frames.append(np.asarray(frame)[..., :3])
                if max_frames and len(frames) >= max_frames:
                    break
    except Exception as error:
        raise UsageError(f"cannot read video {path}: {error}") from None
    if not frames:
        raise UsageError(f"video {path} has no frames")
    return np.stack(frames)


def read_depth_maps(path: Path, scale: float = 1.0, max_frames: int | None = None) -> torch.Tensor:
    """Depth maps, one per frame, as ``(T, H, W)`` float32 times ``scale``.

    ``path`` is a ``.npy`` / ``.npz`` array of shape ``(T, H, W)`` (an ``.npz`` holds one array,
    or several of which the one named ``depth`` is used), or a folder of per-frame ``.npy``
    files or 16-bit PNGs (sorted by name). 16-bit PNGs store ``depth / scale`` as integers, so
    ``scale`` converts them back to scene units (for example 0.001 for millimetres).
    """
    path = Path(path)
    if path.is_dir():
        array = _read_folder(
            path, (".npy", ".png"), _read_depth_file, "depth maps",
            "depth maps (.npy or 16-bit .png)", max_frames,
        )  # fmt: skip
    elif path.is_file():
        array = _read_depth_file(path)
        if array.ndim != 3:
            raise UsageError(f"{path} holds shape {array.shape}; expected (frames, height, width)")
        array = array[:max_frames] if max_frames else array
    else:
        raise UsageError(f"depth not found: {path}")
    depth = torch.from_numpy(array.astype(np.float32) * scale)
    unknown = [i for i, frame in enumerate(depth) if not known_depth(frame).any()]
    if unknown:
        raise UsageError(
            f"depth maps in {path} have no valid depth (every value NaN, infinite or <= 0) in "
            f"frame(s) {_few_indices(unknown)}: such a frame lifts no point to reproject"
        )
    return depth


def _few_indices(indices: Sequence[int], show: int = 8) -> str:
    head = ", ".join(str(i) for i in indices[:show])
    return head + (f", ... ({len(indices)} in all)" if len(indices) > show else "")


def _read_folder(
    folder: Path,
    suffixes: Sequence[str],
    read: Callable[[Path], np.ndarray],
    what: str,
    described: str,
    max_frames: int | None,
) -> np.ndarray:
    """One array per file of ``folder`` with one of ``suffixes`` (sorted by name), stacked.

    ``what`` names the files in the size error, ``described`` (with their formats) in the
    error for an empty folder.
    """
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
    if not files:
        raise UsageError(f"no {described} in folder {folder}")
    files = files[:max_frames] if max_frames else files
    arrays = [read(p) for p in files]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise UsageError(f"{what} in {folder} have different sizes: {sorted(shapes)}")
    return np.stack(arrays)


def _read_depth_file(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = list(archive.keys())
                name = "depth" if "depth" in names else names[0] if len(names) == 1 else None
                if name is None:
                    raise UsageError(f"{path} holds {names}; name the depth array 'depth'")
                return archive[name]
        if suffix == ".png":
            import imageio.v2 as imageio

            image = np.asarray(imageio.imread(path))
            if image.dtype != np.uint16 or image.ndim != 2:
                raise UsageError(
                    f"{path} is {image.dtype} with {image.ndim} dims; depth PNGs must be "
                    "single-channel 16-bit"
                )
            return image.astype(np.float32)
    except UsageError:
        raise
    except Exception as error:
        raise UsageError(f"cannot read depth map {path}: {error}") from None
    raise UsageError(f"{path}: depth maps must be {', '.join(DEPTH_SUFFIXES)}")


def save_comparison(path: Path, rows: Sequence[tuple[str, torch.Tensor]], columns: int = 5) -> Path:
    """A grid figure: one row per labelled video, ``columns`` evenly spaced frames each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = rows[0][1].shape[0]
    picks = np.linspace(0, frames - 1, min(columns, frames)).round().astype(int)
    height, width = rows[0][1].shape[-2:]
    figure, axes = plt.subplots(
        len(rows), len(picks), squeeze=False,
        figsize=(1.8 * len(picks) * width / height + 0.8, 1.8 * len(rows)),
    )  # fmt: skip
    for row, (label, video) in enumerate(rows):
        images = to_uint8_frames(video)
        for column, frame in enumerate(picks):
            axis = axes[row][column]
            axis.imshow(images[frame])
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"frame {frame}", fontsize=8)
            if column == 0:
                axis.set_ylabel(label, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
