"""SSIM, masked SSIM (Kubric-4D) and VBench temporal flicker against independent references."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion
from skimage.metrics import structural_similarity

from devis_core.toolkit.measures import ssim, temporal_flicker
from devis_core.types import RewardInputs
from tests.metrics.conftest import smooth_video


def _hwc(frame: torch.Tensor) -> np.ndarray:
    return frame.permute(1, 2, 0).double().numpy()


def _skimage_ssim(prediction, target) -> float:
    return float(
        np.mean(
            [
                structural_similarity(_hwc(t), _hwc(p), data_range=1, channel_axis=-1)
                for p, t in zip(prediction, target, strict=True)
            ]
        )
    )


def _kubric_masked_ssim(prediction, target, mask) -> float:
    """The definition, written with scikit-image and scipy: full SSIM map per channel, a 3-pixel
    border cropped, the mask eroded by a 7x7 square, map averaged over it, then channels."""
    values = []
    for p, t, m in zip(prediction, target, mask, strict=True):
        kept = binary_erosion(m.numpy(), structure=np.ones((7, 7)), border_value=0)[3:-3, 3:-3]
        if not kept.any():
            continue
        per_channel = []
        for c in range(p.shape[0]):
            _, full = structural_similarity(
                t[c].double().numpy(), p[c].double().numpy(), data_range=1, full=True
            )
            per_channel.append(full[3:-3, 3:-3][kept].mean())
        values.append(np.mean(per_channel))
    return float(np.mean(values)) if values else math.nan


@pytest.mark.parametrize("size", [(32, 48), (23, 37)])
def test_ssim_equals_scikit_image_per_frame_averaged(size):
    target = smooth_video(0, (2, 3, 3, *size))
    prediction = target + 0.08 * torch.randn(
        target.shape, generator=torch.Generator().manual_seed(1)
    )
    prediction = prediction.clamp(0, 1)
    values = ssim(prediction, target)
    assert values.shape == (2,)
    for b in range(2):
        assert float(values[b]) == pytest.approx(_skimage_ssim(prediction[b], target[b]), abs=1e-5)
    assert float(ssim(prediction[1], target[1])) == pytest.approx(float(values[1]), abs=1e-7)
    assert float(ssim(target[0], target[0])) == pytest.approx(1.0, abs=1e-6)


def test_ssim_of_long_videos_is_computed_in_chunks_with_the_same_result(monkeypatch):
    import devis_core.toolkit.measures as measures

    target = smooth_video(2, (5, 3, 16, 16))
    prediction = smooth_video(3, (5, 3, 16, 16))
    whole = ssim(prediction, target)
    monkeypatch.setitem(measures.CHUNK_ELEMENTS, "cpu", 16 * 16 * 3)  # one frame at a time
    assert float(ssim(prediction, target)) == pytest.approx(float(whole), abs=1e-7)


def test_masked_ssim_follows_the_kubric_definition():
    target = smooth_video(4, (3, 3, 30, 40))
    prediction = smooth_video(5, (3, 3, 30, 40))
    mask = torch.zeros(3, 30, 40, dtype=torch.bool)
    mask[0, 2:25, 5:33] = True
    mask[1, :, :20] = True
    mask[1, 10:14, 5:9] = False  # a hole: its neighbourhood drops out after erosion
    mask[2, 0:5, 0:5] = True  # too small to survive erosion: frame left out
    value = ssim(prediction, target, mask)
    assert float(value) == pytest.approx(_kubric_masked_ssim(prediction, target, mask), abs=1e-5)


def test_masked_ssim_ignores_pixels_whose_window_leaves_the_mask():
    target = smooth_video(6, (2, 3, 30, 40))
    prediction = smooth_video(7, (2, 3, 30, 40))
    mask = torch.zeros(2, 30, 40, dtype=torch.bool)
    mask[:, 5:25, 5:30] = True
    before = ssim(prediction, target, mask)
    changed = prediction.clone()
    changed[..., :, 30:] = 1.0  # outside the mask: no eroded pixel's 7x7 window reaches it
    changed[..., 25:, :] = 0.0
    assert float(ssim(changed, target, mask)) == pytest.approx(float(before), abs=1e-7)
    changed[..., 10:12, 10:12] = 0.5  # inside: it must change
    assert float(ssim(changed, target, mask)) != pytest.approx(float(before), abs=1e-4)


def test_empty_mask_gives_nan_and_a_warning():
    video = smooth_video(8, (2, 3, 16, 16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = ssim(video, video, torch.zeros(2, 16, 16, dtype=torch.bool))
    assert math.isnan(float(value))
    assert any("empty mask" in str(w.message) for w in caught)


def test_ssim_rejects_mismatched_shapes_and_tiny_frames():
    with pytest.raises(ValueError, match="shape mismatch"):
        ssim(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 17))
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(torch.rand(2, 3, 6, 16), torch.rand(2, 3, 6, 16))


def test_ssim_metrics_and_reward_are_registered_with_their_directions(registry):
    target = smooth_video(9, (2, 3, 3, 24, 24))
    prediction = smooth_video(10, (2, 3, 3, 24, 24))
    mask = torch.ones(2, 3, 24, 24, dtype=torch.bool)
    metric = registry.build("metric", {"kind": "ssim"})
    masked = registry.build("metric", {"kind": "ssim-nocc"})
    term = registry.build("reward", {"kind": "ssim-visible"})
    assert metric.higher_is_better and masked.higher_is_better and term.higher_is_better
    torch.testing.assert_close(metric.compute(prediction, target), ssim(prediction, target))
    torch.testing.assert_close(
        masked.compute(prediction, target, mask), ssim(prediction, target, mask)
    )
    scores = term.score(RewardInputs(prediction, target * 0, target, mask, ["a", "b"]))
    torch.testing.assert_close(scores, ssim(prediction, target, mask))
    with pytest.raises(ValueError, match="visibility mask"):
        masked.compute(prediction, target)


def test_temporal_flicker_is_vbench_formula_on_8_bit_frames(registry):
    video = smooth_video(11, (5, 3, 8, 10), noise=0.2)
    levels = np.round(video.double().numpy() * 255).astype(np.uint8).astype(np.float32)
    differences = [np.mean(np.abs(levels[t] - levels[t + 1])) for t in range(4)]
    expected = (255.0 - np.mean(differences)) / 255.0
    metric = registry.build("metric", {"kind": "temporal-flicker"})
    assert float(metric.compute(video, video)) == pytest.approx(expected, abs=1e-6)
    static = video[:1].expand(4, -1, -1, -1)
    assert float(temporal_flicker(static)) == 1.0
    blink = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)] * 2)
    assert float(temporal_flicker(blink)) == 0.0
    batched = temporal_flicker(torch.stack([video, video[:1].expand(5, -1, -1, -1)]))
    assert batched.tolist() == pytest.approx([expected, 1.0], abs=1e-6)
