"""The ``iphone`` loader: DyCheck camera files (the real ones when present) and pairing.

The real camera and split files of ``paper-windmill`` live outside the project
(``../shared/real``); tests that need them skip when that folder is absent. Frames are not
shipped there, so tests that need pixels synthesise them at the stated image size.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio
import numpy as np
import pytest
import torch

from devis_core.errors import UsageError
from devis_plugins.iphone import IPhoneConfig, IPhoneDataset, read_phone_camera, sequence_clips

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real"
WINDMILL = REAL / "dycheck-iphone-paper-windmill"
needs_real = pytest.mark.skipif(not WINDMILL.is_dir(), reason=f"{WINDMILL} is absent")


def raw(path: Path) -> dict:
    return json.loads(path.read_text())


def pattern(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """A smooth image defined on normalised camera coordinates: the same scene for any K."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return np.stack([0.5 + 0.4 * np.sin(4 * x), 0.5 + 0.4 * np.cos(3 * y), 0.5 + 0.3 * x * y], -1)


@needs_real
def test_real_cameras_follow_the_conventions():
    for path in sorted((WINDMILL / "camera").glob("*.json")):
        data = raw(path)
        camera = read_phone_camera(path)
        R = torch.tensor(data["orientation"], dtype=torch.float64)
        torch.testing.assert_close(R @ R.T, torch.eye(4, dtype=torch.float64)[:3, :3])
        torch.testing.assert_close(camera.w2c[:3, :3], R)
        centre = torch.tensor(data["position"], dtype=torch.float64)
        torch.testing.assert_close(camera.w2c[:3, 3], -R @ centre)
        assert camera.size == (720, 960)
    # Camera 0's intrinsics, read off the file by hand: pixel centres move by half a pixel.
    camera = read_phone_camera(WINDMILL / "camera" / "0_00000.json")
    assert float(camera.K[0, 0]) == pytest.approx(719.9471435546875)
    assert float(camera.K[1, 1]) == pytest.approx(719.9471435546875)
    assert float(camera.K[0, 2]) == pytest.approx(358.8895263671875 - 0.5)
    assert float(camera.K[1, 2]) == pytest.approx(484.92236328125 - 0.5)
    assert float(camera.K[0, 1]) == 0.0 and camera.distortion == (0.0,) * 5


@needs_real
def test_real_static_cameras_do_not_move_and_2x_halves_k():
    for cam in (1, 2):
        files = sorted((WINDMILL / "camera").glob(f"{cam}_*.json"))
        assert len(files) >= 200
        first = read_phone_camera(files[0])
        for path in files[1:]:
            camera = read_phone_camera(path)
            assert torch.equal(camera.w2c, first.w2c) and torch.equal(camera.K, first.K)
    full = read_phone_camera(WINDMILL / "camera" / "2_00100.json")
    half = read_phone_camera(WINDMILL / "camera" / "2_00100.json", factor=2)
    assert half.size == (360, 480)
    torch.testing.assert_close(half.K[:2, :2], full.K[:2, :2] / 2)
    # In corner coordinates (DyCheck's) the principal point halves too.
    torch.testing.assert_close(half.K[:2, 2] + 0.5, (full.K[:2, 2] + 0.5) / 2)
    torch.testing.assert_close(half.w2c, full.w2c)


@needs_real
def test_real_splits_pair_camera_0_with_each_static_camera():
    clips, longest = sequence_clips(WINDMILL, frames=49, stride=1, clips_per_camera=None)
    # Camera 1 is seen at time steps 0-139 and 198-276, camera 2 at 77-276.
    assert longest == {1: 140, 2: 200}
    starts = [(clip.camera, clip.time_ids[0]) for clip in clips]
    assert starts == [(1, 0), (1, 49), (1, 198), (2, 77), (2, 126), (2, 175), (2, 224)]
    for clip in clips:
        assert clip.time_ids == list(range(clip.time_ids[0], clip.time_ids[0] + 49))
        assert clip.source_names == [f"0_{t:05d}" for t in clip.time_ids]
        assert clip.target_names == [f"{clip.camera}_{t:05d}" for t in clip.time_ids]
    strided, _ = sequence_clips(WINDMILL, frames=3, stride=4, clips_per_camera=1)
    assert [c.time_ids for c in strided] == [[0, 4, 8], [77, 81, 85]]


@needs_real
def test_real_sequence_sample(tmp_path):
    """The camera files of paper-windmill with synthesised 2x frames and source depth."""
    sequence = tmp_path / "paper-windmill"
    shutil.copytree(WINDMILL, sequence)
    frames = 3
    for cam, start in ((1, 0), (2, 77)):
        for t in range(start, start + frames):
            for name in (f"0_{t:05d}", f"{cam}_{t:05d}"):
                K = read_phone_camera(sequence / "camera" / f"{name}.json", factor=2).K.numpy()
                image = (pattern(K, 480, 360) * 255).round().astype(np.uint8)
                (sequence / "rgb" / "2x").mkdir(parents=True, exist_ok=True)
                imageio.imwrite(sequence / "rgb" / "2x" / f"{name}.png", image)
            depth = np.full((480, 360, 1), 1.5, np.float32)
            depth[0, 0] = 0.0
            (sequence / "depth" / "2x").mkdir(parents=True, exist_ok=True)
            np.save(sequence / "depth" / "2x" / f"0_{t:05d}.npy", depth)
    dataset = IPhoneDataset(
        IPhoneConfig(root=tmp_path, sequences=["paper-windmill"], frames=frames)
    )
    assert len(dataset) == 2
    sample = dataset[1]
    assert sample.sample_id == "iphone-paper-windmill-cam2-t00077"
    assert sample.metadata["time_ids"] == [77, 78, 79] and sample.fps == 30.0
    source_K = read_phone_camera(sequence / "camera" / "0_00077.json", factor=2).K
    torch.testing.assert_close(sample.K, source_K.float())
    for t, time in enumerate((77, 78, 79)):
        source = read_phone_camera(sequence / "camera" / f"0_{time:05d}.json")
        torch.testing.assert_close(sample.source_w2c[t], source.w2c.float())
        target = read_phone_camera(sequence / "camera" / f"2_{time:05d}.json")
        torch.testing.assert_close(sample.target_w2c[t], target.w2c.float())
    assert sample.source.shape == sample.target.shape == (3, 3, 480, 360)
    assert sample.source_depth.shape == (3, 480, 360) and sample.target_depth is None
    assert float(sample.source_depth[0, 0, 0]) == 0.0 and float(sample.source_depth[0, 5, 5]) == 1.5
    # The static phone has its own intrinsics: its frames are re-imaged with camera 0's, so
    # the pattern (fixed in normalised camera coordinates) matches camera 0's rendering of it.
    expected = torch.from_numpy(pattern(source_K.numpy(), 480, 360)).permute(2, 0, 1).float()
    inner = (slice(None), slice(20, -20), slice(20, -20))
    torch.testing.assert_close(sample.target[0][inner], expected[inner], atol=0.01, rtol=0)
    axes = [
        [
            np.array(raw(sequence / "camera" / f"{c}_{t:05d}.json")["orientation"])[2]
            for t in (77, 78, 79)
        ]
        for c in (0, 2)
    ]
    angles = [np.degrees(np.arccos(a @ b)) for a, b in zip(*axes, strict=True)]
    assert sample.metadata["angle_deg"] == pytest.approx(np.mean(angles), abs=1e-4)


def write_sequence(root: Path, times: int = 6, distortion: float = 0.0, name: str = "tiny") -> Path:
    """A tiny sequence in DyCheck's format: camera 0 moving, camera 1 static, 1x = 16x12."""
    sequence = root / name
    for folder in ("camera", "splits", "rgb/2x", "depth/2x"):
        (sequence / folder).mkdir(parents=True)
    splits = {"train": {"camera_ids": [], "time_ids": [], "frame_names": []}}
    splits["val"] = {"camera_ids": [], "time_ids": [], "frame_names": []}
    for cam, split in ((0, "train"), (1, "val")):
        for t in range(times):
            name = f"{cam}_{t:05d}"
            angle = 0.1 * t if cam == 0 else 0.8
            R = np.array(
                [[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]]
            )
            camera = {
                "orientation": R.tolist(),
                "position": [0.5 * t, 1.0, -2.0] if cam == 0 else [3.0, 0.0, 0.0],
                "focal_length": 20.0,
                "principal_point": [8.0, 6.0],
                "skew": 0.0,
                "pixel_aspect_ratio": 1.0,
                "radial_distortion": [distortion, 0.0, 0.0],
                "tangential_distortion": [0.0, 0.0],
                "image_size": [16, 12],
            }
            (sequence / "camera" / f"{name}.json").write_text(json.dumps(camera))
            imageio.imwrite(
                sequence / "rgb" / "2x" / f"{name}.png", np.full((6, 8, 3), 10 * t, np.uint8)
            )
            np.save(sequence / "depth" / "2x" / f"{name}.npy", np.full((6, 8), 2.0, np.float32))
            for key, value in (("camera_ids", cam), ("time_ids", t), ("frame_names", name)):
                splits[split][key].append(value)
    for split, data in splits.items():
        (sequence / "splits" / f"{split}.json").write_text(json.dumps(data))
    (sequence / "extra.json").write_text(json.dumps({"factor": 2, "fps": 30.0}))
    (sequence / "scene.json").write_text(json.dumps({"center": [1.0, 0, 0], "scale": 0.5}))
    return sequence


def test_tiny_sequence_at_2x_with_scene_normalisation(tmp_path):
    sequence = write_sequence(tmp_path)
    plain = IPhoneDataset(IPhoneConfig(root=sequence, frames=3, stride=2))[0]
    assert plain.metadata["time_ids"] == [0, 2, 4] and plain.fps == 15.0
    torch.testing.assert_close(
        plain.K, torch.tensor([[10.0, 0.0, 3.5], [0.0, 10.0, 2.5], [0.0, 0.0, 1.0]])
    )
    assert plain.target_depth is not None and float(plain.target_depth.max()) == 2.0
    assert [round(float(f.mean()) * 255) for f in plain.source] == [0, 20, 40]
    scaled = IPhoneDataset(IPhoneConfig(root=sequence, frames=3, stride=2, normalize_scene=True))[0]
    torch.testing.assert_close(scaled.source_depth, plain.source_depth * 0.5)
    # Camera 0 at time 2 sits at (1, 1, -2): normalised, (0, 0.5, -1).
    centre = -scaled.source_w2c[1, :3, :3].T @ scaled.source_w2c[1, :3, 3]
    torch.testing.assert_close(centre, torch.tensor([0.0, 0.5, -1.0]))
    with_1x = IPhoneConfig(root=sequence, frames=3, factor=1)
    with pytest.raises(UsageError, match="rgb/1x/0_00000.png"):
        IPhoneDataset(with_1x)[0]


def test_distorted_frames_are_undistorted(tmp_path):
    sequence = write_sequence(tmp_path, distortion=0.2)
    sample = IPhoneDataset(IPhoneConfig(root=sequence, frames=2))[0]
    # Uniform frames stay uniform where the distorted image covers the pinhole one.
    assert float(sample.source[1, :, 2:4, 3:5].std()) < 1e-6
    assert float(sample.source[1, 0, 3, 4]) == pytest.approx(10 / 255)


def test_errors_name_the_file_and_field(tmp_path):
    sequence = write_sequence(tmp_path)
    with pytest.raises(UsageError, match=r"no clip of 7 frames.*longest runs: tiny camera 1: 6"):
        IPhoneDataset(IPhoneConfig(root=sequence, frames=7))
    dataset = IPhoneDataset(IPhoneConfig(root=sequence, frames=3))
    camera = sequence / "camera" / "1_00001.json"
    data = raw(camera)
    camera.write_text(json.dumps({**data, "orientation": [[1, 0, 0], [0, 1, 0], [0, 0, 2]]}))
    with pytest.raises(UsageError, match=r"1_00001.json: field 'orientation' is not a rotation"):
        dataset[0]
    camera.write_text(json.dumps({**data, "focal_length": "20"}))
    with pytest.raises(UsageError, match=r"1_00001.json: field 'focal_length' is '20'"):
        dataset[0]
    del data["principal_point"]
    camera.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"1_00001.json: missing field 'principal_point'"):
        dataset[0]
    camera.unlink()
    with pytest.raises(UsageError, match=r"not found: .*1_00001.json"):
        dataset[0]
    (sequence / "depth" / "2x" / "0_00002.npy").unlink()
    with pytest.raises(UsageError, match=r"depth map not found: .*0_00002.npy"):
        dataset[0]
    split = sequence / "splits" / "val.json"
    split.write_text(json.dumps({**raw(split), "time_ids": [0, 1]}))
    with pytest.raises(UsageError, match=r"val.json: camera_ids, time_ids and frame_names"):
        IPhoneDataset(IPhoneConfig(root=sequence, frames=3))
    with pytest.raises(UsageError, match="no DyCheck sequence"):
        IPhoneDataset(IPhoneConfig(root=sequence / "camera", sequences=None))


# DyCheck's sequences with static cameras (KAIR-BAIR/dycheck docs/BENCHMARK.md), and the five of
# them in Shape of Motion's evaluation list (vye16/shape-of-motion scripts/evaluate_iphone.py).
DYCHECK_MULTI_CAMERA = ("apple", "block", "paper-windmill", "space-out", "spin", "teddy", "wheel")
SHAPE_OF_MOTION_FIVE = ("apple", "block", "paper-windmill", "spin", "teddy")


def test_default_config_is_the_five_benchmark_sequences(tmp_path):
    for name in DYCHECK_MULTI_CAMERA:
        write_sequence(tmp_path, times=3, name=name)
    dataset = IPhoneDataset(IPhoneConfig(root=tmp_path, frames=3))
    assert [dataset[i].metadata["sequence"] for i in range(len(dataset))] == list(
        SHAPE_OF_MOTION_FIVE
    )
    everything = IPhoneDataset(IPhoneConfig(root=tmp_path, frames=3, sequences=None))
    assert [clip.sequence.name for clip in everything.clips] == sorted(DYCHECK_MULTI_CAMERA)
    # A root that is itself a sequence is that sequence, unless sequences are named.
    assert len(IPhoneDataset(IPhoneConfig(root=tmp_path / "wheel", frames=3))) == 1


def test_missing_sequences_are_named(tmp_path):
    for name in ("apple", "block", "spin"):
        write_sequence(tmp_path, times=3, name=name)
    with pytest.raises(UsageError, match=r"'paper-windmill', 'teddy' not found in .*null"):
        IPhoneDataset(IPhoneConfig(root=tmp_path, frames=3))
    with pytest.raises(UsageError, match=r"sequence\(s\) 'windmill' not found"):
        IPhoneDataset(IPhoneConfig(root=tmp_path, frames=3, sequences=["apple", "windmill"]))
