"""Dataset ``iphone``: DyCheck's iPhone sequences, a moving phone against static phones.

Layout of one sequence (``root`` is a sequence, or a folder of sequences)::

    camera/<cam>_<time:05d>.json    orientation (world-to-camera rotation, OpenCV axes),
                                    position (camera centre), focal_length, principal_point,
                                    skew, pixel_aspect_ratio, radial/tangential_distortion,
                                    image_size [W, H] (at full resolution, "1x")
    rgb/{1x,2x}/<id>.png            frames; <id> is <cam>_<time:05d>
    depth/{1x,2x}/<id>.npy          planar depth, 0 = invalid, in the cameras' units
    splits/{train,val}.json         camera_ids, time_ids, frame_names
    extra.json                      factor (the evaluation resolution), fps
    scene.json                      center, scale (used with normalize_scene)

Camera 0 is the hand-held phone (the ``train`` split); cameras 1 and 2 are static phones (the
``val`` split). A sample pairs a clip of camera 0 (the source) with the static camera's frames
at the same time steps (the target): the extreme-view pairs of the benchmark.

Which sequences: the paper says only that it uses "all five extreme-view video pairs featuring
both ground truth video and depth annotations". DyCheck has seven sequences with static
cameras (apple, block, paper-windmill, space-out, spin, teddy, wheel: KAIR-BAIR/dycheck,
``docs/BENCHMARK.md``). The five-sequence subset without space-out and wheel is the one Shape of
Motion evaluates on (vye16/shape-of-motion, ``scripts/evaluate_iphone.py``: its sequence list
holds five of the seven); :data:`BENCHMARK_SEQUENCES` follows it. The paper does not name its
five, so this is the most likely reading, not a confirmed one; ``docs/datasets.md`` says so too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

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
    viewing_angle,
)
from devis_core.types import ViewSynthesisSample

if TYPE_CHECKING:
    import numpy as np
    import torch
else:
    np = lazy_import("numpy")
    torch = lazy_import("torch")

SOURCE_CAMERA = 0
"""The moving phone; every other camera id in the val split is a static phone."""

BENCHMARK_SEQUENCES = ("apple", "block", "paper-windmill", "spin", "teddy")
"""The benchmark's five sequences (DyCheck's seven with static cameras, less space-out and
wheel, as Shape of Motion evaluates them); see the module docstring for the sources."""


class IPhoneConfig(CaptionOptions):
    """Which sequences, at which resolution, cut into which clips."""

    root: Path = Field(description="A sequence folder (with splits/), or a folder of them.")
    sequences: list[str] | None = Field(
        default_factory=lambda: list(BENCHMARK_SEQUENCES),
        description="Sequence folder names under root (default: the benchmark's five; null: "
        "every sequence under root).",
    )
    factor: int | None = Field(
        None, ge=1, description="Image folder {factor}x (default: extra.json's factor, 2)."
    )
    frames: int = Field(49, ge=2, description="Frames per clip.")
    stride: int = Field(1, ge=1, description="Use every stride-th time step.")
    clips_per_camera: int | None = Field(
        1, ge=1, description="Clips per static camera, from its first time step (None: all)."
    )
    depth: bool = Field(True, description="Read the source clip's depth (target's if present).")
    normalize_scene: bool = Field(
        False, description="Apply scene.json: positions (p - center) * scale, depth * scale."
    )
    size: ImageSize | None = Field(None, description="(height, width) to resize to.")


@dataclass(frozen=True)
class PhoneCamera:
    """One DyCheck camera file in DEVIS conventions, at one image resolution."""

    K: torch.Tensor
    w2c: torch.Tensor
    size: tuple[int, int]
    """``(width, height)`` of the images at this resolution."""
    distortion: tuple[float, ...]
    """OpenCV order ``(k1, k2, p1, p2, k3)``."""


def read_phone_camera(
    path: Path,
    factor: int = 1,
    center: np.ndarray | None = None,
    scale: float = 1.0,
) -> PhoneCamera:
    """A camera file as DEVIS intrinsics and world-to-camera, for the ``{factor}x`` images.

    ``t = -R c``; ``K = [[f, skew, cx], [0, f * aspect, cy], [0, 0, 1]] / factor`` (DyCheck
    scales the image domain that way), then the corner-to-centre half-pixel shift, since
    DyCheck's pixel centres sit at ``i + 0.5``. ``center``/``scale`` move the world to
    ``(p - center) * scale`` (scene.json's normalisation).
    """
    data = read_json(path)
    rotation = check_rotation(require_array(data, "orientation", path, (3, 3)), "orientation", path)
    position = require_array(data, "position", path, (3,))
    if center is not None:
        position = (position - center) * scale
    focal = require_number(data, "focal_length", path, positive=True)
    cx, cy = require_array(data, "principal_point", path, (2,))
    skew = require_number(data, "skew", path)
    aspect = require_number(data, "pixel_aspect_ratio", path, positive=True)
    radial = require_array(data, "radial_distortion", path, (3,))
    tangential = require_array(data, "tangential_distortion", path, (2,))
    width, height = require_array(data, "image_size", path, (2,))
    K = torch.tensor(
        [[focal, skew, cx], [0.0, focal * aspect, cy], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    K[:2] /= factor
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, :3] = torch.from_numpy(rotation)
    w2c[:3, 3] = -w2c[:3, :3] @ torch.from_numpy(position)
    distortion = (radial[0], radial[1], tangential[0], tangential[1], radial[2])
    return PhoneCamera(
        K=corner_to_centre(K),
        w2c=w2c,
        size=(int(round(width / factor)), int(round(height / factor))),
        distortion=tuple(float(d) for d in distortion),
    )


@dataclass(frozen=True)
class Clip:
    """A camera-0 clip and the static camera's frames at the same time steps."""

    sequence: Path
    camera: int
    time_ids: list[int]
    source_names: list[str]
    target_names: list[str]


def read_split(path: Path) -> list[tuple[int, int, str]]:
    """``(camera_id, time_id, frame_name)`` of every frame listed in a split file."""
    data = read_json(path)
    cameras, times, names = (
        require(data, key, path) for key in ("camera_ids", "time_ids", "frame_names")
    )
    if not all(isinstance(v, list) for v in (cameras, times, names)) or not (
        len(cameras) == len(times) == len(names)
    ):
        raise UsageError(
            f"{path}: camera_ids, time_ids and frame_names must be lists of one length"
        )
    for field, values, kind in (
        ("camera_ids", cameras, int),
        ("time_ids", times, int),
        ("frame_names", names, str),
    ):
        bad = next(
            (i for i, v in enumerate(values) if not isinstance(v, kind) or isinstance(v, bool)),
            None,
        )
        if bad is not None:
            raise UsageError(
                f"{path}: field '{field}.{bad}' is {values[bad]!r}, not {kind.__name__}"
            )
    return list(zip(cameras, times, names, strict=True))


def sequence_clips(
    sequence: Path, frames: int, stride: int, clips_per_camera: int | None
) -> tuple[list[Clip], dict[int, int]]:
    """The clips of one sequence, and the longest usable run of time steps of each camera.

    Clips are non-overlapping windows of ``(frames - 1) * stride + 1`` consecutive time steps
    that both camera 0 (train split) and the static camera (val split) have.
    """
    source = {
        t: n for c, t, n in read_split(sequence / "splits" / "train.json") if c == SOURCE_CAMERA
    }
    targets: dict[int, dict[int, str]] = {}
    for camera, time, name in read_split(sequence / "splits" / "val.json"):
        if camera != SOURCE_CAMERA and time in source:
            targets.setdefault(camera, {})[time] = name
    span = (frames - 1) * stride + 1
    clips, longest = [], {}
    for camera in sorted(targets):
        times = sorted(targets[camera])
        runs, start = [], 0
        for i in range(1, len(times) + 1):
            if i == len(times) or times[i] != times[i - 1] + 1:
                runs.append(times[start:i])
                start = i
        longest[camera] = max(len(run) for run in runs)
        windows = [
            run[s : s + span : stride] for run in runs for s in range(0, len(run) - span + 1, span)
        ]
        for window in windows[:clips_per_camera]:
            clips.append(
                Clip(
                    sequence,
                    camera,
                    window,
                    [source[t] for t in window],
                    [targets[camera][t] for t in window],
                )
            )
    return clips, longest


def named_sequences(root: Path, names: list[str]) -> list[Path]:
    """The folders of the named sequences under ``root``; missing ones are named in an error."""
    missing = [name for name in names if not (root / name / "splits").is_dir()]
    if missing:
        default = list(BENCHMARK_SEQUENCES)
        raise UsageError(
            f"iPhone sequence(s) {', '.join(repr(name) for name in missing)} not found in {root} "
            f"(a sequence is a folder with splits/). The default list is the benchmark's five, "
            f"{default}; set dataset.sequences to the ones you have, or to null for all of them."
        )
    return [root / name for name in names]


class IPhoneDataset:
    """DyCheck iPhone extreme-view pairs: the moving phone's clip, a static phone's as target."""

    def __init__(self, config: IPhoneConfig):
        self.config = config
        self.captions = Captions(config)
        root = config.root
        if not root.is_dir():
            raise UsageError(f"iPhone root not found: {root}")
        if (root / "splits").is_dir() and "sequences" not in config.model_fields_set:
            sequences = [root]  # root is one sequence
        elif config.sequences is not None:
            sequences = named_sequences(root, config.sequences)
        else:
            sequences = sorted(p for p in root.iterdir() if (p / "splits").is_dir())
            if not sequences:
                raise UsageError(f"no DyCheck sequence (a folder with splits/) in {root}")
        self.clips: list[Clip] = []
        shortfall = []
        for sequence in sequences:
            clips, longest = sequence_clips(
                sequence, config.frames, config.stride, config.clips_per_camera
            )
            self.clips += clips
            shortfall += [f"{sequence.name} camera {c}: {n}" for c, n in longest.items()]
        if not self.clips:
            span = (config.frames - 1) * config.stride + 1
            raise UsageError(
                f"no clip of {config.frames} frames at stride {config.stride} ({span} consecutive "
                "time steps seen by camera 0 and a static camera) in "
                f"{', '.join(str(s) for s in sequences)}; longest runs: "
                f"{', '.join(shortfall) or 'none'}"
            )

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> ViewSynthesisSample:
        if not 0 <= index < len(self):
            raise IndexError(f"iphone has {len(self)} clips, asked for {index}")
        cfg = self.config
        clip = self.clips[index]
        extra_path = clip.sequence / "extra.json"
        extra = read_json(extra_path)
        factor = cfg.factor or int(require_number(extra, "factor", extra_path, positive=True))
        fps = require_number(extra, "fps", extra_path, positive=True)
        center, scale = None, 1.0
        if cfg.normalize_scene:
            scene_path = clip.sequence / "scene.json"
            scene = read_json(scene_path)
            center = require_array(scene, "center", scene_path, (3,))
            scale = require_number(scene, "scale", scene_path, positive=True)
        read = _FrameReader(clip.sequence, factor, center, scale)
        K, source_w2c, source, source_depth = read.clip(clip.source_names, cfg.depth, required=True)
        K_target, target_w2c, target, target_depth = read.clip(
            clip.target_names, cfg.depth, required=False
        )
        target, target_depth = to_intrinsics(target, target_depth, K_target, K)
        K = K[0] if bool((K[0] == K).all()) else K
        (source, target), (source_depth, target_depth), K = resize_clip(
            [source, target], [source_depth, target_depth], K, cfg.size
        )
        sample_id = f"iphone-{clip.sequence.name}-cam{clip.camera}-t{clip.time_ids[0]:05d}"
        return ViewSynthesisSample(
            sample_id=sample_id,
            source=source,
            K=K.float(),
            source_w2c=source_w2c.float(),
            target_w2c=target_w2c.float(),
            source_depth=source_depth,
            target=target,
            target_depth=target_depth,
            caption=self.captions.for_sample(sample_id, clip.sequence / CAPTION_FILE),
            fps=fps / cfg.stride,
            metadata={
                "dataset": "iphone",
                "sequence": clip.sequence.name,
                "target_camera": clip.camera,
                "time_ids": clip.time_ids,
                "angle_deg": float(viewing_angle(source_w2c, target_w2c).mean()),
            },
        )


@dataclass
class _FrameReader:
    """Reads frames, depth and cameras of one sequence at one resolution."""

    sequence: Path
    factor: int
    center: np.ndarray | None
    scale: float

    def clip(
        self, names: list[str], depth: bool, required: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Intrinsics ``(T, 3, 3)``, w2c ``(T, 4, 4)``, video and depth (or None) of frames.

        Depth is read when asked for; missing files are an error when ``required``, else the
        clip has no depth. Distorted frames are undistorted to the pinhole ``K``.
        """
        cameras = [
            read_phone_camera(
                self.sequence / "camera" / f"{n}.json", self.factor, self.center, self.scale
            )
            for n in names
        ]
        folder = f"{self.factor}x"
        video = stack_frames(
            [read_rgb(self.sequence / "rgb" / folder / f"{n}.png") for n in names],
            f"rgb/{folder} frames",
        )
        depth_paths = [self.sequence / "depth" / folder / f"{n}.npy" for n in names]
        missing = [p for p in depth_paths if not p.is_file()]
        if depth and required and missing:
            raise UsageError(f"depth map not found: {missing[0]} (set depth: false to read none)")
        maps = None
        if depth and not missing:
            maps = stack_frames([read_depth_array(p) for p in depth_paths], f"depth/{folder} maps")
            maps = torch.where(torch.isfinite(maps) & (maps > 0), maps * self.scale, 0.0)
        for name, camera, frame in zip(names, cameras, video, strict=True):
            if tuple(frame.shape[-2:]) != camera.size[::-1]:
                raise UsageError(
                    f"{self.sequence / 'rgb' / folder / name}.png is {tuple(frame.shape[-2:])} "
                    f"(H, W); camera/{name}.json's image_size / {self.factor} gives "
                    f"{camera.size[::-1]}"
                )
        if maps is not None and maps.shape[-2:] != video.shape[-2:]:
            raise UsageError(
                f"depth/{folder} maps of {self.sequence} are not the size of the frames"
            )
        K = torch.stack([c.K for c in cameras])
        distortions = [c.distortion for c in cameras]
        video = undistort(video, K, distortions, "bilinear")
        if maps is not None:
            maps = undistort(maps.unsqueeze(1), K, distortions, "nearest").squeeze(1)
        return K, torch.stack([c.w2c for c in cameras]), video, maps


@devis_core.hookimpl
def devis_register_datasets(register):
    register("iphone", IPhoneDataset, IPhoneConfig)
