"""Camera paths without an orbit: geodesic interpolation between two arbitrary poses."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from devis_core.accumulation import CameraPath
from devis_core.errors import UsageError
from devis_core.geometry import camera_center
from devis_core.geometry.interpolation import interpolate_pose, rotation_exp, rotation_log
from devis_plugins.synthetic import SyntheticConfig, SyntheticDataset


def _rotation(axis, degrees):
    axis = torch.tensor(axis, dtype=torch.float64)
    return rotation_exp(axis / axis.norm() * math.radians(degrees))


@pytest.mark.parametrize("degrees", [0.0, 1e-4, 30.0, 120.0, 179.99, 180.0])
def test_log_inverts_exp(degrees):
    rotation = _rotation([1.0, -2.0, 0.5], degrees)
    torch.testing.assert_close(rotation_exp(rotation_log(rotation)), rotation, atol=1e-7, rtol=0)
    assert float(rotation_log(rotation).norm()) == pytest.approx(math.radians(degrees), abs=1e-7)


def test_interpolation_turns_about_one_axis_and_moves_the_centre_linearly():
    start = torch.eye(4, dtype=torch.float64)
    end = torch.eye(4, dtype=torch.float64)
    end[:3, :3] = _rotation([0.0, 1.0, 0.0], 90)
    end[:3, 3] = -(end[:3, :3] @ torch.tensor([2.0, 0.0, 4.0], dtype=torch.float64))
    half = interpolate_pose(start, end, 0.5)
    torch.testing.assert_close(half[:3, :3], _rotation([0.0, 1.0, 0.0], 45))
    torch.testing.assert_close(
        camera_center(half), torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    )
    torch.testing.assert_close(interpolate_pose(start, end, 0.0), start)
    torch.testing.assert_close(interpolate_pose(start, end, 1.0), end)


def test_accumulation_runs_on_a_sample_without_an_orbit(registry):
    sample = SyntheticDataset(SyntheticConfig(num_samples=1, frames=3, height=24, width=32))[0]
    plain = dataclasses.replace(sample, motion=None, pivot_depth=None)
    path = CameraPath(plain)
    assert not path.orbit and path.cumulative(None, 4, None) == [0.25, 0.5, 0.75, 1.0]
    torch.testing.assert_close(path.poses(1.0), sample.target_w2c, atol=1e-5, rtol=0)
    depth = registry.build("depth", {"kind": "carried"})
    result = registry.build("accumulator", {"kind": "bta", "steps": 2}).run(
        plain, registry.build("backbone", {"kind": "passthrough"}), depth
    )
    assert result.generator_calls == 2 and result.video.shape == sample.source.shape
    with pytest.raises(UsageError, match="float"):
        path.cumulative([sample.motion], 1, None)
