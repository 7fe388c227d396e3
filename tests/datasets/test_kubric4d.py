"""The ``kubric4d`` loader against a tiny Kubric-4D tree written in the release's exact format.

The fixture builds 16 views of a moving ball inside a dome from known OpenCV cameras, then
writes them the way Kubric does: Blender-axes quaternions and positions, a normalised ``K``
with Blender's sign flips, 8-bit RGBA PNGs and float32 TIFFs of the distance along each ray.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from devis_core.errors import UsageError
from devis_core.toolkit.geometry import invert_rigid, lift, project, transform_points
from devis_plugins.kubric4d import (
    Kubric4DConfig,
    Kubric4DDataset,
    quaternion_to_matrix,
    ray_distance_to_planar,
)

WIDTH, HEIGHT, FRAMES, VIEWS = 24, 16, 4, 16
K_TRUE = np.array([[20.0, 0.0, 11.5], [0.0, 20.0, 7.5], [0.0, 0.0, 1.0]])
"""DEVIS intrinsics (pixel centres at integers): a camera centred on the image."""
DOME = 20.0
FLOOR = -1.2


def look_at(center: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world of a camera at ``center`` looking at the origin, z up."""
    forward = -center / np.linalg.norm(center)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    c2w[:3, 3] = center
    return c2w


def view_c2w(view: int) -> np.ndarray:
    azimuth = 2 * math.pi * view / VIEWS
    height = 0.5 + 0.25 * (view % 3)
    return look_at(np.array([5 * math.cos(azimuth), 5 * math.sin(azimuth), height]))


def ball(t: int) -> np.ndarray:
    return np.array([0.3 * t - 0.4, 0.1 * t, 0.2])


def first_hit(
    origin: np.ndarray, directions: np.ndarray, t: int, radius: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the first surface (ball, floor, dome) along unit rays; whether it is the ball."""
    offset = origin - ball(t)
    b = directions @ offset
    disc = b**2 - (offset @ offset - radius**2)
    near = np.where((disc > 0), -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    near = np.where(near > 0, near, np.inf)
    with np.errstate(divide="ignore"):
        floor = np.where(directions[..., 2] < 0, (FLOOR - origin[2]) / directions[..., 2], np.inf)
    b_dome = directions @ origin
    dome = -b_dome + np.sqrt(b_dome**2 - (origin @ origin - DOME**2))  # from inside the dome
    distance = np.minimum(np.minimum(near, floor), dome)
    return distance, near <= distance


def render(c2w: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Colour (H, W, 3) uint8, distance along the ray (H, W) and hit points (H, W, 3)."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    rays_cam = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K_TRUE).T
    directions = rays_cam @ c2w[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    distance, on_ball = first_hit(c2w[:3, 3], directions, t)
    points = c2w[:3, 3] + directions * distance[..., None]
    local = np.where(on_ball[..., None], points - ball(t), points / 4)
    colour = 0.5 + 0.5 * np.sin(3 * local + np.array([0.0, 1.0, 2.0]))
    return (colour * 255).round().astype(np.uint8), distance.astype(np.float32), points


def write_scene(root: Path, scene: str) -> None:
    K_norm = np.array(
        [
            [K_TRUE[0, 0] / WIDTH, 0.0, -(K_TRUE[0, 2] + 0.5) / WIDTH],
            [0.0, -K_TRUE[1, 1] / HEIGHT, -(K_TRUE[1, 2] + 0.5) / HEIGHT],
            [0.0, 0.0, -1.0],
        ]
    )
    for view in range(VIEWS):
        c2w = view_c2w(view)
        blender = c2w[:3, :3] @ np.diag([1.0, -1.0, -1.0])
        x, y, z, w = Rotation.from_matrix(blender).as_quat()
        metadata = {
            "scene": {"num_frames": FRAMES, "resolution": [WIDTH, HEIGHT], "frame_rate": 24},
            "camera": {
                "K": K_norm.tolist(),
                "quaternions": [[w, x, y, z]] * FRAMES,
                "positions": [c2w[:3, 3].tolist()] * FRAMES,
                "focal_length": 32.0,
            },
        }
        (root / scene / f"{scene}_p0_v{view}.json").write_text(json.dumps(metadata))
        frames = root / scene / f"frames_p0_v{view}"
        frames.mkdir(parents=True)
        for t in range(FRAMES):
            colour, distance, _ = render(c2w, t)
            rgba = np.concatenate([colour, np.full_like(colour[..., :1], 255)], axis=-1)
            imageio.imwrite(frames / f"rgba_{t:05d}.png", rgba)
            (frames / f"depth_{t:05d}.tiff").write_bytes(
                imageio.imwrite("<bytes>", distance[..., None], format="tiff")
            )


@pytest.fixture(scope="module")
def kubric_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kubric") / "data"
    for scene in ("scn02900", "scn02901"):
        (root / scene).mkdir(parents=True)
        write_scene(root, scene)
    return root


@pytest.fixture(scope="module")
def dataset(kubric_root: Path) -> Kubric4DDataset:
    return Kubric4DDataset(Kubric4DConfig(root=kubric_root, count=5, frames=3, stride=1))


def test_installed_and_registered():
    """Each loader is an entry point of the ``devis`` group and registers its dataset."""
    from importlib import import_module
    from importlib.metadata import entry_points

    points = {e.name: e.value for e in entry_points(group="devis")}
    registered: list[str] = []
    for name in ("kubric4d", "iphone", "dl3dv"):
        module = import_module(points[name])
        module.devis_register_datasets(register=lambda name, *_: registered.append(name))
    assert registered == ["kubric4d", "iphone", "dl3dv"]


def test_quaternion_matches_scipy():
    rotation = Rotation.from_euler("xyz", [20, -35, 110], degrees=True)
    x, y, z, w = rotation.as_quat()
    np.testing.assert_allclose(quaternion_to_matrix(np.array([w, x, y, z])), rotation.as_matrix())


def test_ray_distance_to_planar_on_hand_computed_pixels():
    K = torch.tensor([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0], [0.0, 0.0, 1.0]])
    distance = torch.full((3, 3), 3.0)
    planar = ray_distance_to_planar(distance, K)
    # Centre pixel: on the optical axis, z = d.
    assert float(planar[1, 1]) == pytest.approx(3.0)
    # Corner (0, 0): tan ax = tan ay = (0 - 1) / 2, z = 3 / sqrt(0.25 + 0.25 + 1).
    assert float(planar[0, 0]) == pytest.approx(3 / math.sqrt(1.5))
    # Edge (2, 1): tan ax = 0.5, tan ay = 0.
    assert float(planar[1, 2]) == pytest.approx(3 / math.sqrt(1.25))
    bad = ray_distance_to_planar(torch.tensor([[math.inf, -1.0, 2.0]]), K)
    assert bad[0, :2].tolist() == [0.0, 0.0]


def test_sample_recovers_opencv_cameras_and_intrinsics(dataset):
    sample = dataset[0]
    case = dataset.trajectories[0]
    torch.testing.assert_close(sample.K, torch.tensor(K_TRUE, dtype=torch.float32))
    for w2c, view in ((sample.source_w2c, case.source_view), (sample.target_w2c, case.target_view)):
        expected = torch.from_numpy(np.linalg.inv(view_c2w(view))).float()
        assert w2c.shape == (3, 4, 4)
        torch.testing.assert_close(w2c, expected.expand(3, 4, 4), atol=1e-5, rtol=0)
    assert sample.source.shape == sample.target.shape == (3, 3, HEIGHT, WIDTH)
    assert sample.source.dtype == torch.float32 and float(sample.source.min()) >= 0
    assert float(sample.source.max()) <= 1 and sample.motion is None
    assert sample.fps == 24.0 and sample.metadata["scene"] == case.scene


def test_depth_is_planar_and_lifts_onto_the_scene(dataset):
    sample = dataset[1]
    case = dataset.trajectories[1]
    for t in range(3):
        _, _, points = render(view_c2w(case.source_view), t)
        camera = points @ np.linalg.inv(view_c2w(case.source_view))[:3, :3].T
        camera += np.linalg.inv(view_c2w(case.source_view))[:3, 3]
        np.testing.assert_allclose(sample.source_depth[t].numpy(), camera[..., 2], rtol=1e-5)
        world = transform_points(
            invert_rigid(sample.source_w2c[t]), lift(sample.source_depth[t], sample.K)
        )
        np.testing.assert_allclose(world.numpy(), points, atol=1e-3)


def test_lifted_source_points_project_to_the_right_target_pixel(dataset):
    """Source pixels lifted to 3D and projected with the loaded cameras land where they should.

    For each lifted point, the fixture's own target camera casts a ray through the (sub-pixel)
    location the loaded cameras project it to: the first surface on that ray is the point
    itself when the target sees it (same depth), and something nearer when it is hidden.
    """
    visible_points = 0
    for index in range(len(dataset)):
        sample, case = dataset[index], dataset.trajectories[index]
        c2w = view_c2w(case.target_view)
        for t in range(sample.num_frames):
            points = lift(sample.source_depth[t], sample.K)
            to_target = sample.target_w2c[t] @ invert_rigid(sample.source_w2c[t])
            pixels, z = project(transform_points(to_target, points), sample.K)
            pixels, z = pixels.double().numpy(), z.double().numpy()
            front = z > 0.1
            homogeneous = np.concatenate([pixels, np.ones_like(z)[..., None]], -1)
            directions = homogeneous @ np.linalg.inv(K_TRUE).T @ c2w[:3, :3].T
            norm = np.linalg.norm(directions, axis=-1)
            # (A ball a hair larger keeps rays that graze it from slipping past in float32.)
            hit, _ = first_hit(c2w[:3, 3], directions / norm[..., None], t, radius=1.001)
            expected = hit / norm  # planar depth of the first surface on that ray
            assert (expected[front] < z[front] * (1 + 1e-3)).all()
            visible_points += int((front & (np.abs(expected - z) < 1e-3 * z)).sum())
    assert visible_points > 200


def test_trajectories_are_large_angle_distinct_and_seeded(kubric_root, dataset, tmp_path):
    cases = dataset.trajectories
    assert len(dataset) == 5 and len({(c.scene, c.source_view, c.target_view) for c in cases}) == 5
    for case in cases:
        source = np.linalg.inv(view_c2w(case.source_view))[2, :3]
        target = np.linalg.inv(view_c2w(case.target_view))[2, :3]
        angle = math.degrees(math.acos(np.clip(source @ target, -1, 1)))
        assert angle >= 60 and angle == pytest.approx(case.angle_deg, abs=1e-2)
    again = Kubric4DDataset(
        Kubric4DConfig(root=kubric_root, count=5, frames=3, trajectories=tmp_path / "again.json")
    )
    assert again.trajectories == cases
    other = Kubric4DDataset(
        Kubric4DConfig(root=kubric_root, count=5, seed=1, trajectories=tmp_path / "other.json")
    )
    assert other.trajectories != cases


def test_trajectory_file_is_written_and_reused(kubric_root, tmp_path):
    path = tmp_path / "list.json"
    config = Kubric4DConfig(root=kubric_root, count=3, frames=3, trajectories=path)
    first = Kubric4DDataset(config)
    data = json.loads(path.read_text())
    assert data["settings"]["seed"] == 0 and len(data["trajectories"]) == 3
    data["trajectories"] = data["trajectories"][:1]
    path.write_text(json.dumps(data))
    reused = Kubric4DDataset(config)
    assert reused.trajectories == first.trajectories[:1]
    with pytest.raises(UsageError, match="drawn with settings"):
        Kubric4DDataset(config.model_copy(update={"seed": 7}))
    default = Kubric4DDataset(Kubric4DConfig(root=kubric_root, count=2))
    assert default.trajectory_file.parent == kubric_root and default.trajectory_file.exists()


def test_too_many_trajectories_is_an_error(kubric_root, tmp_path):
    config = Kubric4DConfig(
        root=kubric_root, count=10_000, min_angle_deg=60, trajectories=tmp_path / "t.json"
    )
    with pytest.raises(UsageError, match="distinct trajectories"):
        Kubric4DDataset(config)
    with pytest.raises(UsageError, match="no scene folders"):
        Kubric4DDataset(Kubric4DConfig(root=kubric_root.parent, count=1))


def test_errors_name_the_file_and_field(kubric_root, tmp_path):
    config = Kubric4DConfig(root=kubric_root, count=1, frames=3, trajectories=tmp_path / "t.json")
    dataset = Kubric4DDataset(config)
    case = dataset.trajectories[0]
    metadata_path = kubric_root / case.scene / f"{case.scene}_p0_v{case.source_view}.json"
    original = metadata_path.read_text()
    try:
        with pytest.raises(UsageError, match="needs? 5|need 5"):
            Kubric4DDataset(config.model_copy(update={"frames": 5}))[0]
        bad = json.loads(original)
        bad["camera"]["K"] = [[1, 2], [3, 4]]
        metadata_path.write_text(json.dumps(bad))
        with pytest.raises(UsageError, match=r"p0_v\d+\.json: field 'camera\.K' has shape"):
            dataset[0]
        del bad["camera"]
        metadata_path.write_text(json.dumps(bad))
        with pytest.raises(UsageError, match="missing field 'camera'"):
            dataset[0]
        metadata_path.write_text("{not json")
        with pytest.raises(UsageError, match="not valid JSON"):
            dataset[0]
        metadata_path.unlink()
        with pytest.raises(UsageError, match="not found"):
            dataset[0]
    finally:
        metadata_path.write_text(original)
    depth = kubric_root / case.scene / f"frames_p0_v{case.source_view}" / "depth_00002.tiff"
    saved = depth.read_bytes()
    depth.unlink()
    try:
        with pytest.raises(UsageError, match="depth_00002.tiff"):
            dataset[0]
    finally:
        depth.write_bytes(saved)


def test_resize_and_stride(kubric_root, tmp_path):
    config = Kubric4DConfig(
        root=kubric_root,
        count=1,
        frames=2,
        stride=2,
        size=(8, 12),
        trajectories=tmp_path / "t.json",
    )
    sample = Kubric4DDataset(config)[0]
    assert sample.source.shape == (2, 3, 8, 12) and sample.target_depth.shape == (2, 8, 12)
    assert sample.metadata["frame_indices"] == [0, 2] and sample.fps == 12.0
    # Half size: focal halves, the image centre stays the centre.
    torch.testing.assert_close(
        sample.K, torch.tensor([[10.0, 0.0, 5.5], [0.0, 10.0, 3.5], [0.0, 0.0, 1.0]])
    )
