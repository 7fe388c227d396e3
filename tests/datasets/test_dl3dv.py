"""The ``dl3dv`` loader against tiny scenes written in nerfstudio's transforms.json format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio
import numpy as np
import pytest
import torch

from devis_core.errors import UsageError
from devis_core.toolkit.geometry import camera_center, transform_points
from devis_plugins.dl3dv import DL3DVConfig, DL3DVDataset, opengl_to_w2c

FULL_W, FULL_H = 64, 36
"""transforms.json's resolution; images_4 holds 16x9 frames."""


def pose(index: int) -> np.ndarray:
    """Camera-to-world (OpenGL axes) of frame ``index``: walking along x, turning slowly."""
    angle = 0.02 * index
    c2w = np.eye(4)
    c2w[:3, :3] = [
        [math.cos(angle), 0, math.sin(angle)],
        [0, 1, 0],
        [-math.sin(angle), 0, math.cos(angle)],
    ]
    c2w[:3, 3] = [0.1 * index, 0.5, 2.0]
    return c2w


def write_scene(root: Path, name: str = "scene", count: int = 62, **overrides) -> Path:
    """A DL3DV scene: frames listed out of order, file_path naming images/, only images_4."""
    scene = root / name
    (scene / "images_4").mkdir(parents=True)
    frames = []
    for index in range(count):
        file_name = f"frame_{index + 1:05d}.png"
        image = np.zeros((FULL_H // 4, FULL_W // 4, 3), np.uint8)
        image[..., 0] = index  # the frame number, readable back from the pixels
        image[..., 1] = 200
        imageio.imwrite(scene / "images_4" / file_name, image)
        frames.append(
            {"file_path": f"images/{file_name}", "transform_matrix": pose(index).tolist()}
        )
    frames = frames[1::2] + frames[::2]
    transforms = {
        "w": FULL_W,
        "h": FULL_H,
        "fl_x": 50.0,
        "fl_y": 48.0,
        "cx": 32.4,
        "cy": 18.2,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "camera_model": "OPENCV",
        "frames": frames,
        **overrides,
    }
    (scene / "transforms.json").write_text(json.dumps(transforms))
    return scene


def test_opengl_to_opencv_on_a_hand_made_pose():
    c2w = np.eye(4)
    c2w[:3, 3] = [1.0, 2.0, 3.0]
    w2c = opengl_to_w2c(c2w)
    expected = torch.tensor(
        [[1.0, 0, 0, -1.0], [0, -1.0, 0, 2.0], [0, 0, -1.0, 3.0], [0, 0, 0, 1.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(w2c, expected)
    # An OpenGL camera looks along -z with y up: one unit ahead is z = +1 in OpenCV, one
    # unit above is y = -1 (y points down).
    ahead_and_up = torch.tensor([[1.0, 2.0, 2.0], [1.0, 3.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(
        transform_points(w2c, ahead_and_up),
        torch.tensor([[0.0, 0, 1], [0, -1, 1]], dtype=torch.float64),
    )
    # Turned 90 degrees left (about +y): it looks along -x, its centre is unchanged.
    c2w[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
    w2c = opengl_to_w2c(c2w)
    torch.testing.assert_close(
        camera_center(w2c), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    )
    torch.testing.assert_close(w2c[2, :3], torch.tensor([-1.0, 0, 0], dtype=torch.float64))


def test_protocol_first_frame_against_frames_10_to_60(tmp_path):
    write_scene(tmp_path)
    dataset = DL3DVDataset(DL3DVConfig(root=tmp_path))
    assert len(dataset) == 1
    sample = dataset[0]
    assert sample.sample_id == "dl3dv-scene" and sample.num_frames == 51
    assert sample.source.shape == sample.target.shape == (51, 3, 9, 16)
    # Frames are sorted by file name, whatever transforms.json's order: source = frame 0.
    frame_numbers = (sample.target[:, 0, 4, 4] * 255).round().int().tolist()
    assert frame_numbers == list(range(10, 61))
    assert bool((sample.source[:, 0] == 0).all()) and sample.metadata["source_file"].endswith(
        "00001.png"
    )
    torch.testing.assert_close(sample.source_w2c, opengl_to_w2c(pose(0)).float().expand(51, 4, 4))
    for k, index in enumerate(range(10, 61)):
        torch.testing.assert_close(sample.target_w2c[k], opengl_to_w2c(pose(index)).float())
    # Intrinsics scaled to images_4 (a quarter), then the corner-to-centre half pixel.
    torch.testing.assert_close(
        sample.K,
        torch.tensor([[12.5, 0.0, 32.4 / 4 - 0.5], [0.0, 12.0, 18.2 / 4 - 0.5], [0.0, 0.0, 1.0]]),
    )
    assert sample.source_depth is None and sample.target_depth is None and sample.motion is None


def test_subsampled_target_and_depth_files(tmp_path):
    write_scene(tmp_path / "scenes", "a")
    write_scene(tmp_path / "scenes", "b")
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir()
    for name in ("a", "b"):
        np.save(depth_dir / f"{name}.npy", np.full((9, 16), 4.0, np.float32))
    config = DL3DVConfig(
        root=tmp_path / "scenes", frames=6, depth=depth_dir, depth_scale=0.5, size=(18, 32)
    )
    dataset = DL3DVDataset(config)
    assert len(dataset) == 2 and dataset.target_indices() == [10, 20, 30, 40, 50, 60]
    sample = dataset[1]
    assert sample.sample_id == "dl3dv-b" and sample.target.shape == (6, 3, 18, 32)
    assert sample.source_depth.shape == (6, 18, 32) and bool((sample.source_depth == 2.0).all())
    # Doubling the image doubles the focal length; corner-origin principal point doubles too.
    assert float(sample.K[0, 0]) == pytest.approx(25.0)
    assert float(sample.K[0, 2]) + 0.5 == pytest.approx(2 * (32.4 / 4))
    np.save(depth_dir / "a.npy", np.ones((4, 4), np.float32))
    with pytest.raises(UsageError, match=r"a.npy is \(4, 4\)"):
        dataset[0]


def test_distortion_is_removed_and_fisheye_refused(tmp_path):
    write_scene(tmp_path / "d", k1=0.3)
    sample = DL3DVDataset(DL3DVConfig(root=tmp_path / "d"))[0]
    # A uniform image stays uniform where the distorted frame covers the pinhole one.
    assert float(sample.target[0, 1, 3:6, 6:10].min()) == pytest.approx(200 / 255, abs=1e-6)
    write_scene(tmp_path / "f", camera_model="OPENCV_FISHEYE")
    with pytest.raises(UsageError, match="camera_model 'OPENCV_FISHEYE' is not supported"):
        DL3DVDataset(DL3DVConfig(root=tmp_path / "f"))[0]


def test_errors_name_the_file_and_field(tmp_path):
    short = write_scene(tmp_path / "short", count=40)
    with pytest.raises(UsageError, match="lists 40 frames; the protocol needs frame 60"):
        DL3DVDataset(DL3DVConfig(root=short))[0]
    scene = write_scene(tmp_path / "ok")
    path = scene / "transforms.json"
    transforms = json.loads(path.read_text())
    dataset = DL3DVDataset(DL3DVConfig(root=scene))
    broken = json.loads(json.dumps(transforms))
    first = next(i for i, f in enumerate(broken["frames"]) if f["file_path"].endswith("1.png"))
    broken["frames"][first]["transform_matrix"] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    path.write_text(json.dumps(broken))
    with pytest.raises(UsageError, match=rf"field 'frames.{first}.transform_matrix' is \(3, 3\)"):
        dataset[0]
    broken = {k: v for k, v in transforms.items() if k != "fl_x"}
    path.write_text(json.dumps(broken))
    with pytest.raises(UsageError, match=r"transforms.json: missing field 'fl_x'"):
        dataset[0]
    path.write_text(json.dumps({**transforms, "cy": "18"}))
    with pytest.raises(UsageError, match=r"field 'cy' is '18'"):
        dataset[0]
    path.write_text(json.dumps(transforms))
    (scene / "images_4" / "frame_00031.png").unlink()
    with pytest.raises(UsageError, match=r"image not found: .*images_4/frame_00031.png"):
        dataset[0]
    with pytest.raises(UsageError, match="no DL3DV scene"):
        DL3DVDataset(DL3DVConfig(root=scene / "images_4"))
    with pytest.raises(ValueError, match="target_end"):
        DL3DVConfig(root=scene, target_start=20, target_end=10)
