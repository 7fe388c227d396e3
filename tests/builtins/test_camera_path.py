"""Camera paths of real samples (a source and a target camera, no orbit parameters).

The relative pose is split into fractions along an arc about the scene pivot: the camera
turns rigidly about the pivot (rotation on SO(3), radius interpolated), K = 1 is the one-step
pose exactly and the increments compose to the target.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from devis_core.errors import UsageError
from devis_core.pipeline import make_generator
from devis_core.toolkit.accumulation import CameraPath
from devis_core.toolkit.geometry import (
    Motion,
    camera_center,
    centre_pivot_depth,
    orbit_pose,
    random_shares,
    relative_pose,
)
from devis_core.toolkit.geometry.interpolation import arc_pose, rotation_exp, rotation_log
from devis_core.training.sampling import sample_group
from devis_plugins.synthetic import SyntheticConfig, SyntheticDataset

F64 = torch.float64
PIVOT = 2.5


def _rotation(axis, degrees):
    axis = torch.tensor(axis, dtype=F64)
    return rotation_exp(axis / axis.norm() * math.radians(degrees))


def _real_like(**config):
    """A synthetic sample stripped of its orbit: only its cameras and depth remain."""
    sample = SyntheticDataset(SyntheticConfig(num_samples=1, **config))[0]
    return sample, dataclasses.replace(sample, motion=None, pivot_depth=None)


@pytest.mark.parametrize("degrees", [0.0, 1e-4, 30.0, 120.0, 179.99, 180.0])
def test_log_inverts_exp(degrees):
    rotation = _rotation([1.0, -2.0, 0.5], degrees)
    torch.testing.assert_close(rotation_exp(rotation_log(rotation)), rotation, atol=1e-7, rtol=0)
    assert float(rotation_log(rotation).norm()) == pytest.approx(math.radians(degrees), abs=1e-7)


@pytest.mark.parametrize(
    "motion", [Motion(phi=70.0), Motion(theta=-50.0), Motion(phi=-85.0, r=0.3)], ids=str
)
def test_arc_follows_the_orbit_about_the_pivot_not_the_chord(motion):
    source = torch.eye(4, dtype=F64)
    target = orbit_pose(motion, PIVOT, dtype=F64)
    pivot = torch.tensor([0.0, 0.0, PIVOT], dtype=F64)
    for fraction in (0.25, 0.5, 0.8):
        # a single-axis orbit: the camera a fraction of the way is the orbit of that fraction
        expected = orbit_pose(motion * fraction, PIVOT, dtype=F64)
        torch.testing.assert_close(arc_pose(source, target, pivot, fraction), expected)
        radius = PIVOT * (1 - motion.r * fraction)
        reached = camera_center(arc_pose(source, target, pivot, fraction))
        assert float((reached - pivot).norm()) == pytest.approx(radius, rel=1e-12)
    chord = 0.5 * camera_center(target)  # the straight line cuts inside the sphere
    assert float((chord - pivot).norm()) < PIVOT * (1 - motion.r * 0.5) - 0.1


def test_arc_ends_on_both_poses_exactly_whatever_the_target():
    source = torch.eye(4, dtype=F64)
    source[:3, 3] = torch.tensor([0.1, -0.2, 0.3], dtype=F64)
    target = orbit_pose(Motion(theta=25.0, phi=60.0, r=0.1, x=0.4, y=-0.2), PIVOT, dtype=F64)
    target[:3, :3] = _rotation([0.3, 1.0, 0.2], 10.0) @ target[:3, :3]  # not looking at it
    pivot = torch.tensor([0.0, 0.0, PIVOT], dtype=F64)
    assert torch.equal(arc_pose(source, target, pivot, 0.0), source)
    assert torch.equal(arc_pose(source, target, pivot, 1.0), target)
    torch.testing.assert_close(arc_pose(source, target, pivot, 1.0 - 1e-12), target)


def test_centre_pivot_depth_is_the_median_of_the_centre_region():
    depth = torch.full((2, 40, 60), 9.0)
    depth[0, 18:22, 27:33] = torch.tensor([2.0, 2.0, 2.0, 3.0, 3.0, 50.0]).repeat(4, 1)
    depth[0, 20, 30] = 0.0  # a hole at the centre pixel itself
    assert centre_pivot_depth(depth) == pytest.approx(2.0)  # 23 pixels: 11x 2, 8x 3, 4x 50
    empty_centre = torch.full((1, 40, 60), 4.0)
    empty_centre[0, 15:25, 25:35] = float("nan")
    assert centre_pivot_depth(empty_centre) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no valid depth"):
        centre_pivot_depth(torch.zeros(1, 8, 8))


def test_real_sample_increments_compose_to_the_target_and_k1_is_one_step():
    sample, plain = _real_like(frames=3, height=24, width=32)
    path = CameraPath(plain)
    assert not path.orbit
    assert torch.equal(path.poses(path.cumulative(None, 1, None)[-1]), plain.target_w2c)
    shares = random_shares(3, 3, make_generator(5))
    positions = path.cumulative(path.increments(shares), len(shares), None)
    assert len(set(positions)) == 3 and positions[-1] == 1.0
    poses = [plain.source_w2c.to(F64), *(path.poses(p).to(F64) for p in positions)]
    composed = plain.source_w2c.to(F64)
    for before, after in zip(poses, poses[1:], strict=False):
        composed = relative_pose(before, after) @ composed
    torch.testing.assert_close(composed, plain.target_w2c.to(F64), atol=1e-6, rtol=0)
    # the pivot of the real sample is the median centre depth, on the optical axis
    assert path.pivot_depth == pytest.approx(centre_pivot_depth(sample.source_depth))
    with pytest.raises(UsageError, match="float"):
        path.cumulative([sample.motion], 1, None)


@pytest.mark.parametrize("kind", ["bta", "ora-dt", "ora-cc", "rva", "rfa"])
def test_accumulators_run_on_a_sample_without_orbit_or_pivot(registry, kind):
    _, plain = _real_like(frames=3, height=24, width=32)
    depth = registry.build("depth", {"kind": "carried"})
    result = registry.build("accumulator", {"kind": kind, "steps": 2}).run(
        plain, registry.build("backbone", {"kind": "inpaint"}), depth, increments=[0.3, 0.7]
    )
    assert result.generator_calls == 2 and result.video.shape == plain.source.shape


def test_devis_groups_sample_real_samples(registry):
    _, plain = _real_like(frames=3, height=16, width=24)
    backbone = registry.build(
        "backbone",
        {"kind": "trajectorycrafter", "preset": "tiny", "resolution": [16, 24], "steps": 2},
    )
    group = sample_group(
        0, plain,
        policy=backbone,
        accumulator=registry.build("accumulator", {"kind": "bta", "bullet_frames": 1}),
        depth=registry.build("depth", {"kind": "carried"}),
        size=3, mode="accumulated", k_range=(1, 3), same_noise=False, seed_parts=(0,),
    )  # fmt: skip
    assert [m.video.shape for m in group.members] == [plain.source.shape] * 3
    assert all(1 <= m.steps <= 3 for m in group.members)


@pytest.mark.parametrize("kind", ["bta", "rva"])
def test_source_only_depth_carries_render_depth_through_the_steps(registry, tmp_path, kind):
    """DL3DV's DepthSplat exports cover source videos only (the main suite's BTA row)."""
    _, plain = _real_like(frames=3, height=24, width=32)
    np.savez(tmp_path / f"{plain.sample_id}.npz", depth=plain.source_depth.numpy())
    exported = registry.build("depth", {"kind": "depthsplat", "root": str(tmp_path)})
    carried = registry.build("depth", {"kind": "carried"})  # the same depth, by definition
    accumulator = registry.build("accumulator", {"kind": kind, "steps": 3})
    backbone = registry.build("backbone", {"kind": "inpaint"})
    with_export = accumulator.run(plain, backbone, exported)
    torch.testing.assert_close(with_export.video, accumulator.run(plain, backbone, carried).video)
    assert with_export.generator_calls == 3
