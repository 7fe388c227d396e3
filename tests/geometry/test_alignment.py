"""Depth alignment against the synthetic world's exact depth: known distortions are undone.

Every estimate here is the ground-truth depth distorted by a known transform, so the fit must
return that transform's inverse and the aligned depth must be the ground truth.
"""

from __future__ import annotations

import math

import pytest
import torch

from devis_core.errors import UsageError
from devis_core.toolkit.geometry import (
    DepthFit,
    fit_depth,
    forward_warp,
    invert_rigid,
    lift,
    make_intrinsics,
    sparse_depth,
    transform_points,
    world_to_camera,
)
from devis_plugins.synthetic import SyntheticConfig, SyntheticDataset


@pytest.fixture(scope="module")
def sample():
    config = SyntheticConfig(num_samples=1, frames=3, height=24, width=32, azimuth_range=(60, 60))
    return SyntheticDataset(config)[0]


def affine_in_disparity(depth: torch.Tensor, scale: float, shift: float) -> torch.Tensor:
    """The estimate whose alignment ``1 / depth = scale / estimate + shift`` is exact."""
    return 1.0 / ((1.0 / depth - shift) / scale)


def test_scale_fit_recovers_a_unit_change(sample):
    truth = sample.source_depth
    fit = fit_depth(truth / 2.5, truth, "scale", sample_id="s")
    assert fit.scale == pytest.approx(2.5, rel=1e-6) and fit.shift == 0.0
    assert fit.pixels == truth.numel()
    torch.testing.assert_close(fit.apply(truth / 2.5), truth, rtol=1e-6, atol=0)


def test_scale_fit_is_not_dragged_by_a_depth_models_far_clip(sample):
    """DepthCrafter's conversion puts each video's farthest pixel at 1e4 scene units."""
    truth = sample.source_depth
    estimate = truth / 2.5
    estimate[0, 0, 0] = 1e4  # one pixel out of 2304, clipped far away
    fit = fit_depth(estimate, truth, "scale", sample_id="s")
    # a least-squares fit in depth would give about sum(e w) / sum(e^2) ~ 2e-4 here
    assert fit.scale == pytest.approx(2.5, rel=1e-3)


def test_disparity_fit_recovers_a_known_scale_and_shift(sample):
    truth = sample.source_depth
    fit = fit_depth(
        affine_in_disparity(truth, 3.0, -0.2), truth, "scale-shift-disparity", sample_id="s"
    )
    assert fit.scale == pytest.approx(3.0, rel=1e-5)
    assert fit.shift == pytest.approx(-0.2, abs=1e-6)
    aligned = fit.apply(affine_in_disparity(truth, 3.0, -0.2))
    torch.testing.assert_close(aligned, truth, rtol=1e-5, atol=0)


def test_fit_uses_only_pixels_known_in_both(sample):
    truth = sample.source_depth
    estimate = truth / 2.5
    estimate[0, :4] = -1.0  # unknown (not positive); would pull the scale down if used
    reference = truth.clone()
    reference[1, :, :5] = math.nan  # unknown; would make the fit NaN if used
    reference[2, 3:] = 0.0  # unknown; would pull the scale down if used
    fit = fit_depth(estimate, reference, "scale", sample_id="s")
    known = (estimate > 0) & torch.isfinite(reference) & (reference > 0)
    assert fit.pixels == int(known.sum())
    assert fit.scale == pytest.approx(2.5, rel=1e-6)


@pytest.mark.parametrize(
    ("mode", "distort"),
    [
        ("scale", lambda depth: depth * 0.37),
        ("scale-shift-disparity", lambda depth: affine_in_disparity(depth, 0.5, 0.05)),
    ],
)
def test_aligned_reprojection_equals_the_ground_truth_reprojection(sample, mode, distort):
    truth = sample.source_depth
    aligned = fit_depth(distort(truth), truth, mode, sample_id="s").apply(distort(truth))

    def to_target(depth):
        return forward_warp(
            sample.source, depth, sample.K, sample.source_w2c, sample.K, sample.target_w2c
        )

    (render, mask), (expected_render, expected_mask) = to_target(aligned), to_target(truth)
    assert torch.equal(mask, expected_mask)
    torch.testing.assert_close(render, expected_render, rtol=0, atol=1e-4)


def test_unknown_estimate_stays_unknown_and_points_beyond_infinity_become_unknown():
    estimate = torch.tensor([[[1.0, 0.0, math.nan, 4.0]]])
    fit = fit_depth(estimate, torch.tensor([[[2.0, 1.0, 1.0, 3.0]]]), "scale", sample_id="s")
    assert fit.apply(estimate)[0, 0, 1] == 0 and math.isnan(fit.apply(estimate)[0, 0, 2])
    # 1 / depth = 1 / estimate - 0.5: estimate 1 -> depth 2; estimate 4 -> disparity < 0
    fit = DepthFit("scale-shift-disparity", 1.0, -0.5, 2)
    assert fit.apply(estimate).tolist() == [[[2.0, 0.0, 0.0, 0.0]]]


def test_sparse_depth_keeps_the_nearest_point_and_drops_unseen_ones():
    K = make_intrinsics(10.0, 10.0, 2.0, 2.0)
    points = torch.tensor(
        [
            [0.0, 0.0, 2.0],  # pixel (2, 2) at depth 2
            [0.0, 0.0, 4.0],  # same pixel, further: hidden
            [0.2, -0.2, 2.0],  # pixel (3, 1)
            [0.0, 0.0, -1.0],  # behind the camera
            [10.0, 0.0, 1.0],  # outside the frame (u = 102)
        ]
    )
    depth = sparse_depth(points, K, torch.eye(4)[None], (5, 5))
    expected = torch.zeros(1, 5, 5)
    expected[0, 2, 2], expected[0, 1, 3] = 2.0, 2.0
    assert torch.equal(depth, expected)


def test_sparse_depth_of_lifted_pixels_is_their_depth_in_any_world_frame(sample):
    truth = sample.source_depth[:1]
    moved = world_to_camera(
        torch.linalg.matrix_exp(
            torch.tensor([[0.0, -0.3, 0.1], [0.3, 0.0, -0.2], [-0.1, 0.2, 0.0]])
        ),
        torch.tensor([0.5, -1.0, 2.0]),
    )[None]
    world = transform_points(invert_rigid(moved), lift(truth, sample.K))  # (1, H, W, 3)
    chosen = torch.zeros_like(truth, dtype=torch.bool)
    chosen[0, ::3, ::4] = True
    depth = sparse_depth(world[chosen], sample.K, moved, sample.size)
    torch.testing.assert_close(depth[chosen], truth[chosen], rtol=1e-5, atol=0)
    assert not depth[~chosen].any()


def test_sparse_points_recover_the_scale(sample):
    truth = sample.source_depth[:1]
    w2c = sample.source_w2c[:1]
    world = transform_points(invert_rigid(w2c), lift(truth, sample.K))[0, ::5, ::5].reshape(-1, 3)
    reference = sparse_depth(world, sample.K, w2c, sample.size)
    fit = fit_depth(truth * 0.4, reference, "scale", sample_id="s")
    assert fit.scale == pytest.approx(2.5, rel=1e-5)
    assert fit.pixels == world.shape[0]


def test_nothing_to_fit_names_the_sample(sample):
    truth = sample.source_depth
    with pytest.raises(UsageError, match="'scene-7'.*no pixel has both"):
        fit_depth(truth, torch.zeros_like(truth), "scale", sample_id="scene-7")
    with pytest.raises(UsageError, match="'scene-7'.*no pixel has both"):
        fit_depth(
            torch.full_like(truth, math.nan), truth, "scale-shift-disparity", sample_id="scene-7"
        )


def test_shape_mismatch_names_the_sample(sample):
    truth = sample.source_depth
    with pytest.raises(UsageError, match="'scene-7'.*\\(2, 24, 32\\)"):
        fit_depth(truth[:2], truth, "scale", sample_id="scene-7")


def test_a_constant_estimate_cannot_fit_a_shift(sample):
    truth = sample.source_depth
    with pytest.raises(UsageError, match="'scene-7'.*constant"):
        fit_depth(torch.full_like(truth, 3.0), truth, "scale-shift-disparity", sample_id="scene-7")


def test_an_estimate_reversed_in_depth_is_an_error_not_a_negative_scale(sample):
    truth = sample.source_depth
    reversed_estimate = 1.0 / (10.0 - 1.0 / truth)  # nearer in truth is further here
    with pytest.raises(UsageError, match="'scene-7'.*must be positive"):
        fit_depth(reversed_estimate, truth, "scale-shift-disparity", sample_id="scene-7")
