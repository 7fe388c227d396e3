"""Each ADEVIS strategy does what the paper's table says, checked step by step.

A recording backbone (the render with holes set to 0.5) makes every step's conditions and
output observable; the synthetic world gives exact source depth.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from devis_core.errors import UsageError
from devis_core.toolkit.accumulation import CameraPath, reproject
from devis_core.toolkit.geometry import Motion, camera_center, decompose_motion
from devis_plugins.bta import bullet_fractions
from devis_plugins.ora_cc import large_components
from devis_plugins.synthetic import SyntheticConfig, SyntheticDataset


class RecordingBackbone:
    """The render with holes at 0.5; remembers every step's conditions."""

    def __init__(self):
        self.calls = []

    def generate(self, cond, generator=None):
        self.calls.append(cond)
        return torch.where(cond.mask.unsqueeze(1), cond.render, torch.full_like(cond.render, 0.5))


@pytest.fixture(scope="module")
def sample():
    config = SyntheticConfig(num_samples=1, frames=5, height=40, width=64, azimuth_range=(60, 60))
    return SyntheticDataset(config)[0]


def _run(registry, kind, sample, depth="carried", **fields):
    backbone = RecordingBackbone()
    accumulator = registry.build("accumulator", {"kind": kind, **fields})
    result = accumulator.run(sample, backbone, registry.build("depth", {"kind": depth}))
    return result, backbone.calls


def _direct_render(sample, motion):
    poses = CameraPath(sample).poses(motion)
    return reproject(sample.source, sample.source_depth, sample.K, sample.source_w2c, poses)


def test_camera_path_reaches_the_sample_target(sample):
    torch.testing.assert_close(CameraPath(sample).poses(sample.motion), sample.target_w2c)


@pytest.mark.parametrize("kind", ["direct", "rfa", "rva", "ora-dt", "ora-cc", "bta"])
def test_generator_calls_equal_steps_and_output_is_the_source_length(registry, sample, kind):
    fields = {} if kind == "direct" else {"steps": 3}
    result, calls = _run(registry, kind, sample, **fields)
    steps = 1 if kind == "direct" else 3
    assert result.generator_calls == steps == len(calls)
    assert len(result.intermediate) == steps - 1
    assert result.video.shape == sample.source.shape
    assert result.conditions is calls[-1]


def test_rfa_renders_the_source_at_the_cumulative_motion_and_references_the_last_video(
    registry, sample
):
    result, calls = _run(registry, "rfa", sample, steps=3, shares=[1, 2, 3])
    reached = Motion.zero()
    for index, (cond, increment) in enumerate(
        zip(calls, decompose_motion(sample.motion, [1, 2, 3]), strict=True)
    ):
        reached = reached + increment
        expected = _direct_render(sample, reached)
        torch.testing.assert_close(cond.render, expected.render)
        assert torch.equal(cond.mask, expected.mask)
        previous = sample.source if index == 0 else result.intermediate[index - 1]
        assert torch.equal(cond.reference, previous)
    direct, _ = _run(registry, "direct", sample)
    torch.testing.assert_close(calls[-1].render, direct.conditions.render)


def test_holes_shrink_with_small_increments(registry, sample):
    """RVA's first render has far fewer holes than the direct render of the whole motion."""
    _, rva_calls = _run(registry, "rva", sample, steps=4)
    direct, _ = _run(registry, "direct", sample)
    assert rva_calls[0].mask.float().mean() > direct.conditions.mask.float().mean() + 0.1


def test_rva_reprojects_the_previous_video_by_the_increment(registry, sample):
    result, calls = _run(registry, "rva", sample, steps=2)
    path = CameraPath(sample)
    half = path.poses(sample.motion * 0.5)
    carried = registry.build("depth", {"kind": "carried"})
    from devis_core.toolkit.accumulation import generated_sample

    previous = generated_sample(sample, result.intermediate[0], half, calls[0], 0)
    expected = reproject(
        result.intermediate[0], carried.estimate(previous.source, previous), sample.K, half,
        sample.target_w2c,
    )  # fmt: skip
    torch.testing.assert_close(calls[1].render, expected.render)
    assert torch.equal(calls[1].reference, result.intermediate[0])


def test_rva_with_ground_truth_depth_says_generated_videos_have_none(registry, sample):
    with pytest.raises(UsageError, match="generated"):
        _run(registry, "rva", sample, depth="ground-truth", steps=2)


def test_ora_dt_fills_rfa_holes_only_with_near_rva_content(registry, sample):
    threshold = 3.0
    _, ora = _run(registry, "ora-dt", sample, steps=2, max_depth=threshold)
    _, rfa = _run(registry, "rfa", sample, steps=2)
    _, rva = _run(registry, "rva", sample, steps=2)
    base, fill, fused = rfa[1], rva[1], ora[1]
    keep = base.mask.unsqueeze(1).expand_as(base.render)
    assert torch.equal(fused.render[keep], base.render[keep])
    added = fused.mask & ~base.mask
    assert added.any(), "the test scene should give ORA-dt something to fill"
    assert bool((fill.mask[added]).all()) and bool((fill.render_depth[added] < threshold).all())
    allowed = fill.mask & ~base.mask & (fill.render_depth < threshold)
    assert torch.equal(added, allowed)
    pick = added.unsqueeze(1).expand_as(fused.render)
    assert torch.equal(fused.render[pick], fill.render[pick])


def test_ora_cc_keeps_only_large_8_connected_regions(registry, sample):
    _, ora = _run(registry, "ora-cc", sample, steps=2, min_area=0.01)
    _, rfa = _run(registry, "rfa", sample, steps=2)
    _, rva = _run(registry, "rva", sample, steps=2)
    candidates = rva[1].mask & ~rfa[1].mask
    added = ora[1].mask & ~rfa[1].mask
    assert torch.equal(added, large_components(candidates, round(0.01 * 40 * 64)))
    assert added.sum() < candidates.sum()


def test_large_components_uses_8_connectivity():
    mask = torch.zeros(1, 6, 6, dtype=torch.bool)
    mask[0, 0, 0] = mask[0, 1, 1] = mask[0, 2, 2] = True  # a diagonal: one 8-connected region
    mask[0, 5, 5] = True  # alone
    kept = large_components(mask, 3)
    assert kept[0, :3, :3].sum() == 3 and not kept[0, 5, 5]


def test_bta_prefix_poses_are_monotone_and_output_has_source_length(registry, sample):
    n = 6
    result, calls = _run(registry, "bta", sample, steps=2, bullet_frames=n)
    frames = sample.num_frames
    assert result.video.shape[0] == frames
    assert all(call.render.shape[0] == n + frames for call in calls)
    fractions = bullet_fractions(n)
    steps = [b - a for a, b in pairwise(fractions)]
    assert fractions[0] == 0 and all(s > 0 for s in steps)
    assert all(b > a for a, b in pairwise(steps))  # increasing steps

    from devis_core.toolkit.accumulation import Step
    from devis_plugins.bta import BTAConfig, BulletTimeAccumulation

    path = CameraPath(sample)
    half, full = sample.motion * 0.5, sample.motion
    step = Step(1, sample, None, sample, half, full, path.poses(half), path.poses(full), None)
    poses = BulletTimeAccumulation(BTAConfig(bullet_frames=n)).bullet_poses(step, path)
    centers = [camera_center(p) for p in poses]
    pivot = torch.tensor([0.0, 0.0, sample.pivot_depth])
    angles = [float(torch.atan2(c[0] - pivot[0], -(c[2] - pivot[2]))) for c in centers]
    sign = 1 if sample.motion.phi > 0 else -1
    assert all(sign * (b - a) > 0 for a, b in pairwise(angles))
    torch.testing.assert_close(poses[0], path.poses(half)[0])


def test_bta_prefix_starts_with_the_held_frame_unchanged(registry, sample):
    _, calls = _run(registry, "bta", sample, steps=2, bullet_frames=4)
    first = calls[0]
    assert bool(first.mask[0].all())
    torch.testing.assert_close(first.render[0], sample.source[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(first.reference, sample.source)


def test_explicit_unequal_increments_are_followed(registry, sample):
    increments = decompose_motion(sample.motion, [0.2, 0.8])
    accumulator = registry.build("accumulator", {"kind": "rfa", "steps": 2})
    backbone = RecordingBackbone()
    accumulator.run(
        sample, backbone, registry.build("depth", {"kind": "carried"}), increments=increments
    )
    expected = _direct_render(sample, increments[0])
    torch.testing.assert_close(backbone.calls[0].render, expected.render)


def test_increments_that_miss_the_target_are_rejected(registry, sample):
    accumulator = registry.build("accumulator", {"kind": "rfa"})
    with pytest.raises(UsageError, match="not to the sample's motion"):
        accumulator.run(
            sample,
            RecordingBackbone(),
            registry.build("depth", {"kind": "carried"}),
            increments=[sample.motion * 0.5],
        )


def test_shares_must_match_steps():
    from pydantic import ValidationError

    from devis_plugins.rfa import RFAConfig

    with pytest.raises(ValidationError):
        RFAConfig(steps=3, shares=[1, 2])
