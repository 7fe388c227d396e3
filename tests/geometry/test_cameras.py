"""Pinhole helpers: lifting and projecting are inverse, rigid inverses are exact."""

from __future__ import annotations

import math

import torch

from devis_core.toolkit.geometry import (
    camera_center,
    invert_rigid,
    lift,
    make_intrinsics,
    pixel_grid,
    project,
    relative_pose,
    transform_points,
)


def _random_w2c(generator: torch.Generator) -> torch.Tensor:
    """A proper rigid transform from a QR decomposition (independent of the module's code)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, :3] = q
    w2c[:3, 3] = torch.randn(3, generator=generator, dtype=torch.float64)
    return w2c


def test_make_intrinsics_layout() -> None:
    K = make_intrinsics(500.0, 400.0, 512.0, 288.0)
    assert K.tolist() == [[500.0, 0.0, 512.0], [0.0, 400.0, 288.0], [0.0, 0.0, 1.0]]


def test_pixel_grid_is_column_row_with_integer_centres() -> None:
    grid = pixel_grid(3, 4)
    assert grid.shape == (3, 4, 2)
    assert grid[2, 1].tolist() == [1.0, 2.0]  # (u, v) = (column, row)
    assert grid[0, 0].tolist() == [0.0, 0.0]


def test_lift_hand_computed_point() -> None:
    K = make_intrinsics(10.0, 20.0, 2.0, 1.0, dtype=torch.float64)
    depth = torch.zeros(3, 5, dtype=torch.float64)
    depth[2, 4] = 3.0
    points = lift(depth, K)
    # u = 4, v = 2: x = (4 - 2) / 10 * 3, y = (2 - 1) / 20 * 3, z = 3.
    assert torch.allclose(points[2, 4], torch.tensor([0.6, 0.15, 3.0], dtype=torch.float64))


def test_project_of_lift_reproduces_pixels_per_frame_intrinsics() -> None:
    gen = torch.Generator().manual_seed(0)
    depth = 0.5 + 10 * torch.rand(2, 6, 7, generator=gen, dtype=torch.float64)
    K = torch.stack(
        [
            make_intrinsics(30.0, 31.0, 3.2, 2.9, dtype=torch.float64),
            make_intrinsics(17.5, 17.5, 4.0, 2.0, dtype=torch.float64),
        ]
    )
    uv, z = project(lift(depth, K), K)
    expected = pixel_grid(6, 7, dtype=torch.float64).expand(2, 6, 7, 2)
    assert torch.allclose(uv, expected, atol=1e-10)
    assert torch.allclose(z, depth, rtol=1e-12)


def test_reprojection_through_a_rigid_motion_matches_manual_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    w2c_a, w2c_b = _random_w2c(gen), _random_w2c(gen)
    K = make_intrinsics(50.0, 50.0, 8.0, 6.0, dtype=torch.float64)
    depth = 1 + torch.rand(4, 5, generator=gen, dtype=torch.float64)
    cam_a = lift(depth, K)
    world = transform_points(invert_rigid(w2c_a), cam_a)
    via_world = transform_points(w2c_b, world)
    direct = transform_points(relative_pose(w2c_a, w2c_b), cam_a)
    assert torch.allclose(via_world, direct, atol=1e-12)
    # Same thing with explicit R, t arithmetic on one point.
    p = cam_a[3, 2]
    r_a, t_a, r_b, t_b = w2c_a[:3, :3], w2c_a[:3, 3], w2c_b[:3, :3], w2c_b[:3, 3]
    manual = r_b @ (r_a.T @ (p - t_a)) + t_b
    assert torch.allclose(direct[3, 2], manual, atol=1e-12)


def test_invert_rigid_is_exact_inverse_and_batched() -> None:
    gen = torch.Generator().manual_seed(2)
    w2c = torch.stack([_random_w2c(gen) for _ in range(3)])
    eye = torch.eye(4, dtype=torch.float64).expand(3, 4, 4)
    assert torch.allclose(w2c @ invert_rigid(w2c), eye, atol=1e-12)
    assert torch.allclose(invert_rigid(w2c) @ w2c, eye, atol=1e-12)
    assert torch.equal(invert_rigid(w2c)[:, 3], eye[:, 3])


def test_relative_pose_composes_to_target() -> None:
    gen = torch.Generator().manual_seed(3)
    a, b = _random_w2c(gen), _random_w2c(gen)
    assert torch.allclose(relative_pose(a, b) @ a, b, atol=1e-12)


def test_camera_center_maps_to_camera_origin() -> None:
    gen = torch.Generator().manual_seed(4)
    w2c = _random_w2c(gen)
    center = camera_center(w2c)
    assert torch.allclose(transform_points(w2c, center), torch.zeros(3, dtype=torch.float64))
    # A camera translated by t in its own frame sits at -t when it is not rotated.
    shifted = torch.eye(4, dtype=torch.float64)
    shifted[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    assert torch.allclose(
        camera_center(shifted), torch.tensor([-1.0, 2.0, -0.5], dtype=torch.float64)
    )
    assert math.isclose(float(torch.linalg.norm(center)), float(torch.linalg.norm(w2c[:3, 3])))


def test_world_to_camera_is_the_inverse_of_camera_center():
    from devis_core.toolkit.geometry import camera_center, world_to_camera
    from devis_core.toolkit.geometry.interpolation import rotation_exp

    rotation = rotation_exp(torch.tensor([[0.3, -1.1, 0.4], [0.0, 0.0, 0.0]], dtype=torch.float64))
    center = torch.tensor([[1.0, -2.0, 3.5], [0.0, 0.0, 4.0]], dtype=torch.float64)
    pose = world_to_camera(rotation, center)
    assert pose.shape == (2, 4, 4)
    torch.testing.assert_close(camera_center(pose), center)
    point = torch.tensor([0.5, 0.25, -1.0], dtype=torch.float64)
    expected = rotation[0] @ (point - center[0])  # x_cam = R (x_world - c)
    torch.testing.assert_close(pose[0, :3, :3] @ point + pose[0, :3, 3], expected)
    assert torch.equal(pose[:, 3], torch.tensor([[0.0, 0.0, 0.0, 1.0]] * 2, dtype=torch.float64))
