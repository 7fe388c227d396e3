"""The synthetic renderer checked against first principles: geometry, depth and colour."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from devis_plugins.synthetic.render import default_intrinsics, render, trace
from devis_plugins.synthetic.scene import (
    BACKDROP_ID,
    FIRST_OBJECT_ID,
    FLOOR_ID,
    NO_HIT_ID,
    ROOM_FACES,
    Scene,
    sample_scene,
)

H, W = 64, 96


def scene_for(seed: int, **kwargs) -> Scene:
    return sample_scene(torch.Generator().manual_seed(seed), **kwargs)


def look_at(eye, target, up) -> torch.Tensor:
    """World-to-camera (4, 4) float64 for OpenCV axes: x right, y down, z towards target."""
    eye, target, up = (torch.as_tensor(v, dtype=torch.float64) for v in (eye, target, up))
    z = (target - eye) / (target - eye).norm()
    x = torch.linalg.cross(-up, z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, :3] = torch.stack([x, y, z])
    w2c[:3, 3] = -w2c[:3, :3] @ eye
    return w2c


def orbit(pivot, yaw_deg: float, pitch_deg: float) -> torch.Tensor:
    """The source camera (at the origin, looking at ``pivot``) swung about ``pivot``.

    yaw turns about the vertical axis (left/right), pitch about the x axis (negative = up).
    """
    pivot = torch.as_tensor(pivot, dtype=torch.float64)
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    yaw = torch.tensor(
        [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]],
        dtype=torch.float64,
    )
    pitch = torch.tensor(
        [[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]],
        dtype=torch.float64,
    )
    rotation = yaw @ pitch
    eye = pivot + rotation @ (-pivot)
    up = rotation @ torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
    return look_at(eye, pivot, up)


def lift(depth: torch.Tensor, K: torch.Tensor, w2c: torch.Tensor) -> torch.Tensor:
    """World points (H, W, 3) float64 of every pixel, from planar depth, K^-1 and w2c^-1."""
    h, w = depth.shape
    v, u = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    pixels = torch.stack([u, v, torch.ones_like(u)], -1)
    cam = depth.double()[..., None] * (pixels @ torch.linalg.inv(K.double()).T)
    c2w = torch.linalg.inv(w2c.double())
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def object_frame(obj, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and local-to-world rotation of an object, recomputed in float64 from its motion."""
    yaw = obj.yaw0 + obj.yaw_rate * t
    c, s = math.cos(yaw), math.sin(yaw)
    rotation = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)
    return torch.tensor(obj.center(t), dtype=torch.float64), rotation


def worst(residual: torch.Tensor) -> float:
    """Largest absolute residual, 0 for an empty selection."""
    return float(residual.abs().max()) if residual.numel() else 0.0


def centre_depth(scene: Scene) -> float:
    K = default_intrinsics(H, W)
    _, depth = render(scene, K, torch.eye(4), torch.zeros(1), H, W)
    return float(depth[0, H // 2, W // 2])


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_pixels_and_different_seeds_differ():
    K = default_intrinsics(H, W)
    times = torch.arange(3, dtype=torch.float32)
    rgb_a, depth_a = render(scene_for(7), K, torch.eye(4), times, H, W)
    rgb_b, depth_b = render(scene_for(7), K, torch.eye(4), times, H, W)
    rgb_c, depth_c = render(scene_for(8), K, torch.eye(4), times, H, W)
    assert torch.equal(rgb_a, rgb_b) and torch.equal(depth_a, depth_b)
    assert (rgb_a - rgb_c).abs().mean() > 0.05
    assert (depth_a - depth_c).abs().mean() > 0.05


def test_output_shapes_dtypes_and_ranges():
    K = default_intrinsics(H, W)
    rgb, depth, ids = render(
        scene_for(0), K, torch.eye(4), torch.arange(2.0), H, W, return_ids=True
    )
    assert rgb.shape == (2, 3, H, W) and rgb.dtype == torch.float32
    assert depth.shape == (2, H, W) and depth.dtype == torch.float32
    assert ids.shape == (2, H, W) and ids.dtype == torch.int64
    assert rgb.min() >= 0 and rgb.max() <= 1


# ------------------------------------------------------------------------------ depth coverage


@pytest.mark.parametrize("seed", range(6))
def test_centre_pixel_of_source_frame_0_sees_an_object_at_moderate_depth(seed):
    scene = scene_for(seed)
    K = default_intrinsics(H, W)
    _, depth, ids = render(scene, K, torch.eye(4), torch.zeros(1), H, W, return_ids=True)
    assert ids[0, H // 2, W // 2] >= FIRST_OBJECT_ID
    assert 1.5 < depth[0, H // 2, W // 2] < 5.0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("yaw", "pitch"), [(0, 0), (90, 0), (-90, 0), (0, -90), (45, -45), (-60, -30)]
)
def test_depth_is_finite_and_positive_everywhere_from_orbiting_cameras(seed, yaw, pitch):
    scene = scene_for(seed)
    K = default_intrinsics(H, W)
    for pivot_z in (4.0, min(centre_depth(scene), 5.0)):
        w2c = orbit([0.0, 0.0, pivot_z], yaw, pitch).float()
        times = torch.tensor([0.0, 24.0, 48.0])
        rgb, depth, ids = render(scene, K, w2c, times, H, W, return_ids=True)
        assert torch.isfinite(depth).all() and (depth > 0).all()
        assert (ids != NO_HIT_ID).all()
        assert torch.isfinite(rgb).all()


def test_camera_outside_the_room_looking_away_gets_unknown_depth():
    """The only way to miss: depth 0 (the project's 'unknown'), id NO_HIT_ID, black."""
    scene = scene_for(0)
    K = default_intrinsics(H, W)
    away = look_at([0.0, 0.0, 30.0], [0.0, 0.0, 40.0], [0.0, -1.0, 0.0]).float()
    towards = look_at([0.0, 0.0, 30.0], [0.0, 0.0, 0.0], [0.0, -1.0, 0.0]).float()
    rgb, depth, ids = render(
        scene, K, torch.stack([away, towards]), torch.zeros(2), H, W, return_ids=True
    )
    assert (depth[0] == 0).all() and (ids[0] == NO_HIT_ID).all() and (rgb[0] == 0).all()
    # From outside, looking at the room, rays hit its outer side (the "backdrop" face), and
    # those passing below the floor miss.
    hit = ids[1] != NO_HIT_ID
    assert hit[H // 2, W // 2] and not hit.all()
    assert (ids[1][hit] == BACKDROP_ID).all()
    assert (depth[1][hit] > 0).all() and (depth[1][~hit] == 0).all()


# ------------------------------------------------------------------------------ exact geometry


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("yaw", "pitch"), [(0, 0), (70, -20), (-90, 0), (0, -90)])
def test_lifted_pixels_lie_on_the_surface_they_hit(seed, yaw, pitch):
    scene = scene_for(seed)
    t = 11.0
    K = default_intrinsics(H, W)
    w2c = orbit([0.0, 0.0, 4.0], yaw, pitch)
    _, depth, ids = render(scene, K, w2c.float(), torch.tensor([t]), H, W, return_ids=True)
    points, ids = lift(depth[0], K, w2c.float()), ids[0]
    low, high = torch.tensor(scene.room.low).double(), torch.tensor(scene.room.high).double()
    checked = 0
    for face in range(len(ROOM_FACES)):
        on_face = points[ids == face]
        bound = (high if face % 2 else low)[face // 2]
        assert worst(on_face[:, face // 2] - bound) < 2e-5
        checked += len(on_face)
    for k, obj in enumerate(scene.objects):
        hit = points[ids == FIRST_OBJECT_ID + k]
        center, rotation = object_frame(obj, t)
        local = (hit - center) @ rotation
        if obj.kind == "sphere":
            residual = local.norm(dim=-1) - obj.half_extents[0]
        else:
            residual = (local.abs() / torch.tensor(obj.half_extents).double()).amax(-1) - 1
            residual = residual * min(obj.half_extents)
        assert worst(residual) < 2e-5, (obj.kind, k)
        checked += len(hit)
    assert checked == H * W


def test_floor_depth_matches_the_ray_plane_formula():
    """Source camera at height 0 above a floor at y = h: a floor pixel in row v has depth
    h / ((v - cy) / fy), independent of the column."""
    scene = scene_for(3)
    K = default_intrinsics(H, W)
    _, depth, ids = render(scene, K, torch.eye(4), torch.zeros(1), H, W, return_ids=True)
    rows = torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
    expected = scene.room.floor_y / ((rows - K[1, 2].double()) / K[1, 1].double())
    floor = ids[0] == FLOOR_ID
    assert floor.sum() > 100
    assert ((depth[0].double() - expected)[floor].abs() / expected[floor]).max() < 1e-5


def test_floor_under_a_downward_camera_centre_pixel_is_at_floor_height():
    scene = scene_for(1)
    K = default_intrinsics(H, W)
    # Looking down at a floor spot beside the object cluster.
    w2c = look_at([-3.0, -1.0, 0.0], [-6.0, scene.room.floor_y, 1.0], [0.0, -1.0, 0.0])
    _, depth, ids = render(scene, K, w2c.float(), torch.zeros(1), H, W, return_ids=True)
    assert ids[0, H // 2, W // 2] == FLOOR_ID
    y = lift(depth[0], K, w2c.float())[H // 2, W // 2, 1]
    assert abs(float(y) - scene.room.floor_y) < 1e-4


# ------------------------------------------------------------------------------ colour


def test_reprojected_points_have_the_same_colour_in_a_second_camera():
    """Lift pixels of camera 1, project them into camera 2, and render camera 2 as a 1x1 image
    whose principal point is moved so that the projected point is exactly its pixel centre.
    Where camera 2 sees the point (its depth agrees to 1e-3 relative), colours agree to 5e-3:
    shading is view-independent. Pixels next to a surface boundary in camera 1 are skipped."""
    scene = scene_for(2)
    t = 6.0
    K = default_intrinsics(H, W)
    w2c_1 = torch.eye(4)
    w2c_2 = orbit([0.0, 0.0, 4.0], 35, -15).float()
    rgb_1, depth_1, ids_1 = render(scene, K, w2c_1, torch.tensor([t]), H, W, return_ids=True)
    points = lift(depth_1[0], K, w2c_1)

    id_map = ids_1.float()[:, None]
    interior = (F.max_pool2d(id_map, 3, 1, 1) == -F.max_pool2d(-id_map, 3, 1, 1))[0, 0]
    interior[[0, -1], :] = False
    interior[:, [0, -1]] = False
    rows, cols = torch.nonzero(interior, as_tuple=True)
    pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:200]
    rows, cols = rows[pick], cols[pick]

    cam = points[rows, cols] @ w2c_2.double()[:3, :3].T + w2c_2.double()[:3, 3]
    uvw = cam @ K.double().T
    n = len(rows)
    K_point = K.double().repeat(n, 1, 1)
    K_point[:, 0, 2] -= uvw[:, 0] / uvw[:, 2]
    K_point[:, 1, 2] -= uvw[:, 1] / uvw[:, 2]
    rgb_2, depth_2 = render(scene, K_point.float(), w2c_2, torch.full((n,), t), 1, 1)

    visible = (cam[:, 2] > 0) & ((depth_2[:, 0, 0].double() - cam[:, 2]).abs() < 1e-3 * cam[:, 2])
    assert visible.sum() >= 50
    colour_1 = rgb_1[0][:, rows, cols].T
    colour_2 = rgb_2[:, :, 0, 0]
    assert (colour_1 - colour_2)[visible].abs().max() < 5e-3
    # The agreement is not trivial: the colours of the sampled points vary a lot.
    assert colour_1[visible].std(0).mean() > 0.05


def test_trace_towards_a_lifted_point_returns_that_point_and_its_colour():
    scene = scene_for(4)
    K = default_intrinsics(H, W)
    rgb, depth = render(scene, K, torch.eye(4), torch.tensor([3.0]), H, W)
    target = lift(depth[0], K, torch.eye(4))[H // 2, W // 3].float()
    origin = torch.tensor([0.3, -0.2, 0.1])
    colour, t, _ = trace(scene, origin, (target - origin)[None], 3.0)
    assert abs(float(t) - 1.0) < 1e-5
    assert (colour[0] - rgb[0, :, H // 2, W // 3]).abs().max() < 5e-3


def mean_abs_laplacian(rgb: torch.Tensor) -> float:
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    return float(F.conv2d(rgb, kernel, groups=3).abs().mean())


def map_textures(scene: Scene, change) -> Scene:
    """The same geometry and lighting with ``change`` applied to every texture."""
    objects = tuple(dataclasses.replace(o, texture=change(o.texture)) for o in scene.objects)
    room = dataclasses.replace(scene.room, textures=tuple(map(change, scene.room.textures)))
    return dataclasses.replace(scene, objects=objects, room=room)


def flat_copy(scene: Scene) -> Scene:
    """The same scene with every texture reduced to its flat base colour."""
    return map_textures(scene, lambda texture: dataclasses.replace(texture, contrast=0.0))


@pytest.mark.parametrize("seed", range(3))
def test_textures_carry_high_frequency_detail_that_flat_colours_lack(seed):
    """Mean |Laplacian| at 128x192: the textured scene must exceed 3x the same scene with flat
    colours (whose Laplacian comes only from silhouettes and smooth shading)."""
    h, w = 128, 192
    scene = scene_for(seed)
    K = default_intrinsics(h, w)
    textured, _ = render(scene, K, torch.eye(4), torch.zeros(1), h, w)
    flat, _ = render(flat_copy(scene), K, torch.eye(4), torch.zeros(1), h, w)
    assert mean_abs_laplacian(textured) > 3 * mean_abs_laplacian(flat)


def with_frequencies_scaled(scene: Scene, factor: float) -> Scene:
    """The same scene with every texture's spatial frequencies multiplied by ``factor``."""

    def scaled(texture):
        return dataclasses.replace(
            texture,
            wave_frequencies=texture.wave_frequencies * factor,
            checker_size=texture.checker_size / factor,
            noise_frequency=texture.noise_frequency * factor,
        )

    return map_textures(scene, scaled)


def aliasing(scene: Scene) -> float:
    """Mean |1 sample per pixel - 2x2 supersampled| of the source frame 0 at 64x96."""
    K = default_intrinsics(H, W)
    single, depth_1, ids_1 = render(scene, K, torch.eye(4), torch.zeros(1), H, W, return_ids=True)
    super_, depth_4, ids_4 = render(
        scene, K, torch.eye(4), torch.zeros(1), H, W, samples_per_pixel=4, return_ids=True
    )
    assert torch.equal(depth_1, depth_4) and torch.equal(ids_1, ids_4)  # centre sample only
    return float((single - super_).abs().mean())


def test_textures_are_band_limited_enough_for_small_renders():
    """At 64x96, one sample per pixel differs from the 2x2-supersampled image by under 2% on
    average over four scenes; the same scenes with texture frequencies doubled exceed that."""
    scenes = [scene_for(seed) for seed in range(4)]
    assert sum(map(aliasing, scenes)) / len(scenes) < 0.02
    doubled = [with_frequencies_scaled(scene, 2.0) for scene in scenes]
    assert sum(map(aliasing, doubled)) / len(doubled) > 0.02


# ------------------------------------------------------------------------------ motion


def test_objects_move_while_the_static_room_stays_put():
    scene = scene_for(5)
    K = default_intrinsics(H, W)
    rgb, _, ids = render(scene, K, torch.eye(4), torch.tensor([0.0, 15.0]), H, W, return_ids=True)
    objects = (ids >= FIRST_OBJECT_ID).any(0).float()
    near_objects = F.max_pool2d(objects[None, None], 7, 1, 3)[0, 0] > 0
    room = ~near_objects
    assert room.sum() > 0.2 * H * W
    assert torch.equal(rgb[0][:, room], rgb[1][:, room])
    changed = (rgb[0] - rgb[1]).abs().amax(0)
    assert changed[objects.bool()].mean() > 0.05
    assert not torch.equal(ids[0], ids[1])


def test_frames_are_rendered_independently_of_how_they_are_batched():
    scene = scene_for(6)
    K = default_intrinsics(H, W)
    times = torch.tensor([0.0, 4.5, 9.0])
    together, _ = render(scene, K, torch.eye(4), times, H, W)
    one, _ = render(scene, K.expand(1, 3, 3), torch.eye(4)[None], times[1:2], H, W)
    assert torch.equal(together[1], one[0])


# ------------------------------------------------------------------------------ devices, size


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    scene = scene_for(0)
    K = default_intrinsics(H, W)
    rgb_cpu, depth_cpu = render(scene, K, torch.eye(4), torch.arange(2.0), H, W)
    rgb_gpu, depth_gpu = render(scene, K, torch.eye(4), torch.arange(2.0), H, W, device="cuda")
    assert rgb_gpu.device.type == "cuda"
    assert (depth_gpu.cpu() - depth_cpu).abs().max() < 1e-3
    assert (rgb_gpu.cpu() - rgb_cpu).abs().mean() < 1e-3


@pytest.mark.slow
def test_paper_size_renders():
    scene = scene_for(0)
    h, w, n = 384, 672, 49
    K = default_intrinsics(h, w)
    rgb, depth = render(scene, K, torch.eye(4), torch.arange(float(n)), h, w)
    assert rgb.shape == (n, 3, h, w) and depth.shape == (n, h, w)
    assert torch.isfinite(depth).all() and (depth > 0).all()
