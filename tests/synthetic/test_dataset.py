"""The ``synthetic`` dataset plugin: conventions, determinism, the motion it promises."""

from __future__ import annotations

import math

import pytest
import torch

from devis_core.toolkit.geometry import camera_center, orbit_trajectory, pivot_depth_from
from devis_core.types import Dataset
from devis_plugins.synthetic import SyntheticConfig, SyntheticDataset


@pytest.fixture(scope="module")
def dataset():
    return SyntheticDataset(SyntheticConfig(num_samples=3, frames=6, height=48, width=80))


def test_sample_follows_the_conventions(dataset):
    sample = dataset[0]
    assert isinstance(dataset, Dataset) and len(dataset) == 3
    assert sample.source.shape == sample.target.shape == (6, 3, 48, 80)
    assert sample.source.dtype == torch.float32
    assert float(sample.source.min()) >= 0 and float(sample.source.max()) <= 1
    assert sample.source_depth.shape == sample.target_depth.shape == (6, 48, 80)
    assert bool((sample.source_depth > 0).all()) and bool(torch.isfinite(sample.source_depth).all())
    assert sample.K.shape == (3, 3) and sample.target_w2c.shape == (6, 4, 4)
    torch.testing.assert_close(sample.source_w2c, torch.eye(4).expand(6, 4, 4))


def test_same_seed_same_sample_and_different_index_differs(dataset):
    again = SyntheticDataset(dataset.config)[1]
    assert torch.equal(again.source, dataset[1].source)
    assert torch.equal(again.target_w2c, dataset[1].target_w2c)
    assert not torch.equal(dataset[0].source, dataset[1].source)


def test_target_orbits_the_pivot_by_the_configured_angle():
    config = SyntheticConfig(
        num_samples=6, frames=4, height=32, width=48, azimuth_range=(70, 80), elevation_range=(0, 0)
    )
    for sample in SyntheticDataset(config):
        pivot = pivot_depth_from(sample.source_depth)
        assert sample.pivot_depth == pytest.approx(pivot)
        assert 70 <= abs(sample.motion.phi) <= 80 and sample.motion.theta == 0
        center = camera_center(sample.target_w2c[-1])
        offset = center - torch.tensor([0.0, 0.0, pivot])
        angle = math.degrees(math.atan2(float(offset[0]), -float(offset[2])))
        assert angle == pytest.approx(sample.motion.phi, abs=1e-3)
        assert float(offset.norm()) == pytest.approx(pivot, rel=1e-5)


def test_direct_and_gradual_trajectories():
    config = SyntheticConfig(num_samples=1, frames=5, height=32, width=48, trajectory="gradual")
    sample = SyntheticDataset(config)[0]
    torch.testing.assert_close(sample.target_w2c[0], torch.eye(4))
    expected = orbit_trajectory(
        sample.motion, n_frames=5, pivot_depth=sample.pivot_depth, mode="direct"
    )
    torch.testing.assert_close(sample.target_w2c[-1], expected[-1])


def test_index_out_of_range(dataset):
    with pytest.raises(IndexError):
        dataset[3]


def test_bad_ranges_are_rejected():
    with pytest.raises(ValueError):
        SyntheticConfig(azimuth_range=(80, 60))
    with pytest.raises(ValueError):
        SyntheticConfig(samples_per_pixel=2)
