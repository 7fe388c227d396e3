"""``Pipeline.depth`` aligns relative depth to the cameras' units; metric depth is left alone.

The relative estimator here is the synthetic world's exact depth (``carried``: the dataset's
depth, or a generated video's render depth) distorted by a known affine map in disparity, so
aligned depth must come back equal to that exact depth.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from pydantic import BaseModel

import devis_core
from devis_core.config import validate_config
from devis_core.errors import ConfigError
from devis_core.pipeline import AligningDepth, Pipeline, place_on
from devis_core.plugins import load_registry
from devis_core.toolkit.accumulation import generated_sample, reproject
from devis_core.toolkit.geometry import invert_rigid, lift, transform_points
from devis_core.toolkit.geometry.depth import fill_from_nearest
from devis_core.types import Conditions
from devis_plugins.carried import CarriedDepth, CarriedDepthConfig
from tests.geometry.test_alignment import affine_in_disparity

SCALE, SHIFT = 3.0, -0.2
DATASET = {
    "kind": "synthetic",
    "num_samples": 1,
    "frames": 4,
    "height": 24,
    "width": 32,
    "azimuth_range": [60, 60],
}


class DistortedConfig(BaseModel):
    scale: float = SCALE
    shift: float = SHIFT


class DistortedCarriedDepth:
    """Carried depth with ``1 / depth = scale / estimate + shift``: relative, truth known."""

    relative_depth = True

    def __init__(self, config: DistortedConfig):
        self.config = config
        self.carried = CarriedDepth(CarriedDepthConfig())

    def estimate(self, video, sample=None):
        truth = self.carried.estimate(video, sample)
        return affine_in_disparity(truth, self.config.scale, self.config.shift)


class FixedDepth:
    """Always the same relative depth, whatever the video."""

    relative_depth = True

    def __init__(self, depth: torch.Tensor):
        self.depth = depth

    def estimate(self, video, sample=None):
        return self.depth


class DistortedPlugin:
    @devis_core.hookimpl
    def devis_register_depth_estimators(self, register):
        register("distorted", DistortedCarriedDepth, DistortedConfig)


@pytest.fixture(scope="module")
def plugins():
    return load_registry(plugins=[("distorted-depth", DistortedPlugin())], environ={})


@pytest.fixture(scope="module")
def sample(plugins):
    return plugins.build("dataset", DATASET)[0]


def make_pipeline(plugins, depth, **sections):
    data = {
        "device": "cpu",
        "dataset": DATASET,
        "depth": depth,
        "accumulator": {"kind": "rva", "steps": 2},
        "backbone": {"kind": "inpaint"},
        **sections,
    }
    return Pipeline(validate_config(data, plugins), plugins)


def test_relative_depth_is_aligned_to_the_dataset_depth_and_the_fit_logged(plugins, sample, caplog):
    depth = make_pipeline(plugins, {"kind": "distorted"}).depth
    assert isinstance(depth, AligningDepth)
    with caplog.at_level(logging.INFO, logger="devis_core.pipeline"):
        aligned = depth.estimate(sample.source, sample)
    torch.testing.assert_close(aligned, sample.source_depth, rtol=1e-5, atol=0)
    fit = depth.fits[sample.sample_id]
    assert fit.mode == "scale-shift-disparity"
    assert fit.scale == pytest.approx(SCALE, rel=1e-5) and fit.shift == pytest.approx(SHIFT)
    assert f"depth of {sample.sample_id} aligned" in caplog.text and "scale 3" in caplog.text


def test_a_generated_video_is_aligned_to_its_render_depth(sample):
    shown = reproject(
        sample.source, sample.source_depth, sample.K, sample.source_w2c, sample.target_w2c
    )
    conditions = Conditions(shown.render, shown.mask, sample.source, render_depth=shown.depth)
    generated = generated_sample(sample, shown.render, sample.target_w2c, conditions, 0)
    depth = AligningDepth(DistortedCarriedDepth(DistortedConfig()), "scale-shift-disparity")
    aligned = depth.estimate(generated.source, generated)
    truth = fill_from_nearest(shown.depth)  # what the distorted estimator distorted
    torch.testing.assert_close(aligned, truth, rtol=1e-5, atol=0)
    fit = depth.fits[f"{sample.sample_id}/step1"]
    assert fit.pixels == int(shown.mask.sum())
    assert fit.scale == pytest.approx(SCALE, rel=1e-5) and fit.shift == pytest.approx(SHIFT)


def test_accumulation_with_relative_depth_matches_ground_truth_depth(plugins, sample):
    relative = make_pipeline(plugins, {"kind": "distorted"})
    exact = make_pipeline(plugins, {"kind": "carried"})
    result, expected = relative.synthesize(sample), exact.synthesize(sample)
    torch.testing.assert_close(result.conditions.mask, expected.conditions.mask, rtol=0, atol=0)
    torch.testing.assert_close(result.video, expected.video, rtol=0, atol=1e-4)
    assert set(relative.depth.fits) == {sample.sample_id, f"{sample.sample_id}/step1"}


def test_metric_depth_is_untouched(plugins, sample):
    carried = make_pipeline(plugins, {"kind": "carried"}).depth
    assert isinstance(carried, CarriedDepth)
    assert carried.estimate(sample.source, sample) is sample.source_depth
    switched_off = make_pipeline(plugins, {"kind": "distorted"}, depth_alignment={"mode": "none"})
    assert isinstance(switched_off.depth, DistortedCarriedDepth)
    torch.testing.assert_close(
        switched_off.depth.estimate(sample.source, sample),
        affine_in_disparity(sample.source_depth, SCALE, SHIFT),
    )


def test_scale_mode_fits_one_factor(plugins, sample):
    pipeline = make_pipeline(
        plugins, {"kind": "distorted", "shift": 0.0}, depth_alignment={"mode": "scale"}
    )  # shift 0: the estimate is the depth times SCALE
    aligned = pipeline.depth.estimate(sample.source, sample)
    torch.testing.assert_close(aligned, sample.source_depth, rtol=1e-5, atol=0)
    fit = pipeline.depth.fits[sample.sample_id]
    assert fit.mode == "scale" and fit.scale == pytest.approx(1 / SCALE, rel=1e-6)


def test_sparse_points_align_a_sample_without_dense_depth(sample):
    truth = sample.source_depth[:1]
    world = transform_points(invert_rigid(sample.source_w2c[:1]), lift(truth, sample.K))
    points = world[0, ::4, ::4].reshape(-1, 3)
    sparse = dataclasses.replace(
        sample,
        source=sample.source[:1],
        source_w2c=sample.source_w2c[:1],
        source_depth=None,
        points=points,
    )
    depth = AligningDepth(
        FixedDepth(affine_in_disparity(truth, SCALE, SHIFT)), "scale-shift-disparity"
    )
    torch.testing.assert_close(depth.estimate(sparse.source, sparse), truth, rtol=1e-5, atol=0)
    assert depth.fits[sample.sample_id].pixels == points.shape[0]


def test_without_reference_the_estimate_is_kept_and_the_sample_warned_about_once(sample, caplog):
    unknown = dataclasses.replace(sample, source_depth=None)
    estimate = torch.rand(sample.num_frames, *sample.size) + 0.5
    depth = AligningDepth(FixedDepth(estimate), "scale-shift-disparity")
    with caplog.at_level(logging.WARNING, logger="devis_core.pipeline"):
        first = depth.estimate(unknown.source, unknown)
        second = depth.estimate(unknown.source, unknown)
        without_sample = depth.estimate(unknown.source)
    assert first is estimate and second is estimate and without_sample is estimate
    assert not depth.fits
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert repr(sample.sample_id) in messages[0] and "assuming the cameras" in messages[0]
    assert "without a sample" in messages[1]


def test_the_wrapper_shows_the_estimators_declarations_and_survives_a_move(sample):
    class DatasetVideosOnly(FixedDepth):
        generated_videos = False

    depth = AligningDepth(DatasetVideosOnly(sample.source_depth), "scale")
    assert depth.generated_videos is False and depth.relative_depth is True
    assert place_on(depth, torch.device("cpu")) is depth


def test_depth_alignment_config_is_validated(plugins):
    base = {"dataset": DATASET}
    assert validate_config(base, plugins).depth_alignment.mode == "auto"
    chosen = {**base, "depth_alignment": {"mode": "scale-shift-disparity"}}
    assert validate_config(chosen, plugins).depth_alignment.mode == "scale-shift-disparity"
    with pytest.raises(ConfigError, match="depth_alignment.mode"):
        validate_config({**base, "depth_alignment": {"mode": "median"}}, plugins)
    with pytest.raises(ConfigError, match="depth_alignment.shift: unknown field"):
        validate_config({**base, "depth_alignment": {"shift": 1.0}}, plugins)
