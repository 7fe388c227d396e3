"""Orbit poses, TrajectoryCrafter correspondence, and motion increments."""

from __future__ import annotations

import math

import pytest
import torch

from devis_core.toolkit.geometry import (
    Motion,
    camera_center,
    compose_motion,
    cumulative_motions,
    decompose_motion,
    make_intrinsics,
    orbit_pose,
    orbit_trajectory,
    pivot_depth_from,
    project,
    relative_pose,
    sample_increments,
    transform_points,
)

F64 = torch.float64
MOTIONS = [
    Motion(theta=20.0),
    Motion(phi=-35.0),
    Motion(theta=-15.0, phi=50.0),
    Motion(theta=30.0, phi=40.0, r=0.3),
    Motion(phi=90.0, r=-0.5),
    Motion(theta=60.0, phi=-120.0, r=0.6),
]


def _center(motion: Motion, pivot: float) -> torch.Tensor:
    return camera_center(orbit_pose(motion, pivot, dtype=F64))


# ------------------------------------------------------------------------------------ Motion


def test_motion_arithmetic() -> None:
    a = Motion(1.0, 2.0, 0.1, -1.0, 0.5)
    b = Motion(theta=3.0, y=0.5)
    assert (a + b).as_tuple() == (4.0, 2.0, 0.1, -1.0, 1.0)
    assert (a * 2.0).as_tuple() == (2.0, 4.0, 0.2, -2.0, 1.0)
    assert 0.5 * b == Motion(theta=1.5, y=0.25)
    assert Motion.zero() == Motion() and Motion.zero().as_tuple() == (0.0,) * 5
    with pytest.raises(TypeError):
        a + 1.0  # noqa: B018
    with pytest.raises(AttributeError):
        a.theta = 2.0  # type: ignore[misc]


# -------------------------------------------------------------------------------- orbit poses


def test_gradual_frame_zero_is_exact_identity_and_last_is_target() -> None:
    poses = orbit_trajectory(25.0, -40.0, 0.2, 0.1, -0.3, 7, 3.0, dtype=F64)
    assert poses.shape == (7, 4, 4)
    assert torch.equal(poses[0], torch.eye(4, dtype=F64))
    target = orbit_pose(Motion(25.0, -40.0, 0.2, 0.1, -0.3), 3.0, dtype=F64)
    assert torch.allclose(poses[-1], target, atol=1e-12)
    middle = orbit_pose(Motion(12.5, -20.0, 0.1, 0.05, -0.15), 3.0, dtype=F64)
    assert torch.allclose(poses[3], middle, atol=1e-12)


def test_direct_mode_repeats_the_target_pose() -> None:
    poses = orbit_trajectory(10.0, 30.0, 0.0, 0.0, 0.0, 5, 2.0, mode="direct")
    assert all(torch.equal(pose, poses[0]) for pose in poses)
    assert torch.allclose(poses[0], orbit_pose(Motion(10.0, 30.0), 2.0), atol=1e-7)


def test_motion_object_is_accepted() -> None:
    motion = Motion(theta=5.0, phi=15.0, r=0.1)
    by_motion = orbit_trajectory(motion, n_frames=4, pivot_depth=2.5)
    by_values = orbit_trajectory(5.0, 15.0, 0.1, 0.0, 0.0, 4, 2.5)
    assert torch.equal(by_motion, by_values)
    with pytest.raises(ValueError):
        orbit_trajectory(motion, 3.0, n_frames=4, pivot_depth=2.5)
    with pytest.raises(TypeError):
        orbit_trajectory(motion, n_frames=4)
    with pytest.raises(ValueError):
        orbit_trajectory(motion, n_frames=4, pivot_depth=1.0, mode="sideways")  # type: ignore[arg-type]


@pytest.mark.parametrize("motion", MOTIONS)
def test_rotations_are_proper_and_upright(motion: Motion) -> None:
    rotation = orbit_pose(motion, 2.0, dtype=F64)[:3, :3]
    assert torch.allclose(rotation @ rotation.T, torch.eye(3, dtype=F64), atol=1e-12)
    assert math.isclose(float(torch.det(rotation)), 1.0, abs_tol=1e-12)
    # No roll: the camera's x axis (first row of R, in source coordinates) is horizontal...
    assert abs(float(rotation[0, 1])) < 1e-12
    # ...and its "down" axis points down in the source frame while |theta| < 90.
    assert float(rotation[1, 1]) > 0


@pytest.mark.parametrize("motion", MOTIONS)
def test_camera_orbits_the_pivot_at_the_shrunk_radius_and_looks_at_it(motion: Motion) -> None:
    pivot = 2.5
    center = _center(motion, pivot)
    distance = float(torch.linalg.norm(center - torch.tensor([0.0, 0.0, pivot], dtype=F64)))
    assert math.isclose(distance, pivot * (1 - motion.r), rel_tol=1e-12)
    K = make_intrinsics(300.0, 300.0, 160.0, 120.0, dtype=F64)
    w2c = orbit_pose(motion, pivot, dtype=F64)
    in_camera = transform_points(w2c, torch.tensor([0.0, 0.0, pivot], dtype=F64))
    uv, z = project(in_camera, K)
    assert torch.allclose(uv, torch.tensor([160.0, 120.0], dtype=F64), atol=1e-9)
    assert math.isclose(float(z), pivot * (1 - motion.r), rel_tol=1e-12)


def test_signs_theta_up_phi_right_r_forward_pan_in_scene_units() -> None:
    pivot = 2.0
    assert float(_center(Motion(theta=20.0), pivot)[1]) < 0  # up is -y
    assert float(_center(Motion(theta=-20.0), pivot)[1]) > 0
    assert float(_center(Motion(phi=20.0), pivot)[0]) > 0  # right is +x
    assert float(_center(Motion(phi=-20.0), pivot)[0]) < 0
    forward = _center(Motion(r=0.25), pivot)
    assert torch.allclose(forward, torch.tensor([0.0, 0.0, 0.5], dtype=F64), atol=1e-12)
    pan = orbit_pose(Motion(x=0.5, y=0.2), pivot, dtype=F64)
    assert torch.allclose(pan[:3, :3], torch.eye(3, dtype=F64), atol=1e-12)
    assert torch.allclose(camera_center(pan), torch.tensor([0.5, -0.2, 0.0], dtype=F64))


def test_quarter_orbits_hand_computed() -> None:
    pivot = 2.0
    right = orbit_pose(Motion(phi=90.0), pivot, dtype=F64)
    assert torch.allclose(camera_center(right), torch.tensor([2.0, 0.0, 2.0], dtype=F64))
    # Looking along -x of the source: that direction is the camera's +z.
    look = right[:3, :3] @ torch.tensor([-1.0, 0.0, 0.0], dtype=F64)
    assert torch.allclose(look, torch.tensor([0.0, 0.0, 1.0], dtype=F64), atol=1e-12)
    above = orbit_pose(Motion(theta=90.0), pivot, dtype=F64)
    assert torch.allclose(camera_center(above), torch.tensor([0.0, -2.0, 2.0], dtype=F64))
    look = above[:3, :3] @ torch.tensor([0.0, 1.0, 0.0], dtype=F64)  # looking down (+y)
    assert torch.allclose(look, torch.tensor([0.0, 0.0, 1.0], dtype=F64), atol=1e-12)


def _trajectorycrafter_pose(motion: Motion, pivot: float) -> torch.Tensor:
    """TrajectoryCrafter's effective source-to-target transform, derived step by step.

    ``get_poses`` starts from c2w_init = diag(-1, 1, -1, 1), ``sphere2pose`` shifts its
    translation by (-x, +y, -r * radius) and left-multiplies Rx(theta) then Ry(phi), ``get_poses``
    adds the radius to the z translation, and the warper uses pose_t @ inv(pose_s) with pose_s
    the zero-motion pose.
    """

    def pose(m: Motion) -> torch.Tensor:
        c2w = torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=F64))
        c2w[2, 3] -= m.r * pivot
        c2w[1, 3] += m.y
        c2w[0, 3] -= m.x
        th, ph = math.radians(m.theta), math.radians(m.phi)
        rx = torch.eye(4, dtype=F64)
        rx[1:3, 1:3] = torch.tensor([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        ry = torch.eye(4, dtype=F64)
        ry[0, 0], ry[0, 2], ry[2, 0], ry[2, 2] = (
            math.cos(ph),
            math.sin(ph),
            -math.sin(ph),
            math.cos(ph),
        )
        c2w = ry @ (rx @ c2w)
        c2w[2, 3] += pivot
        return c2w

    return pose(motion) @ torch.linalg.inv(pose(Motion.zero()))


@pytest.mark.parametrize(
    "motion",
    [Motion(theta=35.0), Motion(phi=-70.0), Motion(r=0.4), Motion(phi=25.0, x=0.3, y=-0.2)],
)
def test_matches_trajectorycrafter_when_one_of_theta_phi_r_moves(motion: Motion) -> None:
    ours = orbit_pose(motion, 3.0, dtype=F64)
    assert torch.allclose(ours, _trajectorycrafter_pose(motion, 3.0), atol=1e-12)


def test_differs_from_trajectorycrafter_for_mixed_motions_as_documented() -> None:
    # Both angles: TrajectoryCrafter's camera x axis tilts out of the horizontal (roll).
    motion = Motion(theta=30.0, phi=40.0)
    tc = _trajectorycrafter_pose(motion, 3.0)
    ours = orbit_pose(motion, 3.0, dtype=F64)
    assert abs(float(tc[0, 1])) > 0.1 and abs(float(ours[0, 1])) < 1e-12
    # r with a rotation: TrajectoryCrafter dollies along the source axis, off the pivot sphere.
    motion = Motion(phi=60.0, r=0.5)
    pivot = torch.tensor([0.0, 0.0, 3.0], dtype=F64)
    tc_distance = torch.linalg.norm(camera_center(_trajectorycrafter_pose(motion, 3.0)) - pivot)
    ours_distance = torch.linalg.norm(_center(motion, 3.0) - pivot)
    assert math.isclose(float(ours_distance), 1.5, rel_tol=1e-12)
    assert abs(float(tc_distance) - 1.5) > 0.5


# ------------------------------------------------------------------------------- pivot depth


def test_pivot_depth_is_centre_pixel_of_frame_zero_capped() -> None:
    depth = torch.full((2, 5, 6), 9.0)
    depth[0, 2, 3] = 3.5  # (H // 2, W // 2)
    depth[1, 2, 3] = 1.0
    assert pivot_depth_from(depth) == 3.5
    assert pivot_depth_from(depth, cap=2.0) == 2.0
    depth[0, 2, 3] = 40.0
    assert pivot_depth_from(depth) == 5.0
    depth[0, 2, 3] = 0.0
    with pytest.raises(ValueError):
        pivot_depth_from(depth)


# -------------------------------------------------------------------------------- increments


def test_decompose_shares_are_proportional_and_compose_exactly() -> None:
    delta = Motion(30.0, -45.0, 0.3, 0.2, -0.1)
    parts = decompose_motion(delta, [1.0, 2.0, 3.0])
    for part, share in zip(parts, [1 / 6, 2 / 6, 3 / 6], strict=True):
        for value, total in zip(part.as_tuple(), delta.as_tuple(), strict=True):
            assert math.isclose(value, share * total, rel_tol=1e-12)
    composed = compose_motion(parts)
    for value, total in zip(composed.as_tuple(), delta.as_tuple(), strict=True):
        assert abs(value - total) <= 1e-12 * max(1.0, abs(total))
    with pytest.raises(ValueError):
        decompose_motion(delta, [1.0, 0.0])


def test_last_share_absorbs_rounding() -> None:
    """Composition is within one ulp of delta, and bit-exact nearly always.

    Plain proportional shares would be off by up to a few ulps, and exact much less often.
    """
    gen = torch.Generator().manual_seed(0)
    exact = 0
    for _ in range(1000):
        k = int(torch.randint(2, 12, (1,), generator=gen))
        weights = torch.rand(k, generator=gen, dtype=F64).add_(1e-3).tolist()
        target = float(torch.randn(1, generator=gen, dtype=F64)) * 50
        composed = compose_motion(decompose_motion(Motion(phi=target), weights)).phi
        assert abs(composed - target) <= math.ulp(target)
        exact += composed == target
    assert exact >= 980


def test_cumulative_motions_are_running_sums() -> None:
    incs = [Motion(theta=1.0), Motion(theta=2.0, phi=1.0), Motion(r=0.5)]
    running = cumulative_motions(incs)
    assert running == [Motion(theta=1.0), Motion(theta=3.0, phi=1.0), Motion(3.0, 1.0, 0.5)]
    assert running[-1] == compose_motion(incs)


def test_composed_increments_reach_the_direct_pose() -> None:
    delta = Motion(25.0, -60.0, 0.35, 0.1, 0.05)
    gen = torch.Generator().manual_seed(7)
    incs = sample_increments(delta, 3, 8, gen)
    direct = orbit_pose(delta, 2.0)
    assert torch.allclose(orbit_pose(compose_motion(incs), 2.0), direct, atol=1e-5)
    # Chaining the relative steps between cumulative poses also lands on the direct pose.
    poses = [orbit_pose(m, 2.0, dtype=F64) for m in [Motion.zero(), *cumulative_motions(incs)]]
    chained = torch.eye(4, dtype=F64)
    for before, after in zip(poses[:-1], poses[1:], strict=True):
        chained = relative_pose(before, after) @ chained
    assert torch.allclose(chained.float(), direct, atol=1e-5)


def test_sample_increments_statistics() -> None:
    delta = Motion(theta=10.0, phi=-50.0, r=0.2)
    counts = set()
    for seed in range(300):
        incs = sample_increments(delta, 2, 6, torch.Generator().manual_seed(seed))
        counts.add(len(incs))
        assert 2 <= len(incs) <= 6
        shares = [inc.phi / delta.phi for inc in incs]
        assert all(share > 0 for share in shares)
        assert max(shares) - min(shares) > 1e-9  # not all equal
        # Every parameter gets the same share.
        for inc, share in zip(incs, shares, strict=True):
            assert math.isclose(inc.theta, share * delta.theta, rel_tol=1e-9)
        total = compose_motion(incs)
        for value, target in zip(total.as_tuple(), delta.as_tuple(), strict=True):
            assert abs(value - target) <= 1e-6
    assert counts == {2, 3, 4, 5, 6}


def test_sample_increments_is_reproducible_and_seed_dependent() -> None:
    delta = Motion(theta=10.0, phi=20.0)
    a = sample_increments(delta, 2, 5, torch.Generator().manual_seed(3))
    b = sample_increments(delta, 2, 5, torch.Generator().manual_seed(3))
    c = sample_increments(delta, 2, 5, torch.Generator().manual_seed(4))
    assert a == b
    assert a != c
    single = sample_increments(delta, 1, 1, torch.Generator().manual_seed(0))
    assert single == [delta]
    with pytest.raises(ValueError):
        sample_increments(delta, 3, 2, torch.Generator())
