"""PSNR metrics and the visible-PSNR reward against scikit-image, frame by frame."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from devis_core.types import RewardInputs


def _videos(seed=0, shape=(2, 4, 3, 12, 16)):
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=generator)
    noisy = (target + 0.1 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return noisy, target


def _skimage_psnr(prediction, target, mask=None):
    values = []
    for p, t, m in zip(
        prediction, target, mask if mask is not None else [None] * len(target), strict=True
    ):
        p, t = p.permute(1, 2, 0).double().numpy(), t.permute(1, 2, 0).double().numpy()
        if m is None:
            values.append(peak_signal_noise_ratio(t, p, data_range=1))
        elif m.any():
            keep = m.numpy()
            values.append(peak_signal_noise_ratio(t[keep], p[keep], data_range=1))
    return float(np.mean(values))


def test_psnr_equals_scikit_image_per_frame_averaged(registry):
    metric = registry.build("metric", {"kind": "psnr"})
    prediction, target = _videos()
    values = metric.compute(prediction, target)
    assert values.shape == (2,)
    for b in range(2):
        assert float(values[b]) == pytest.approx(_skimage_psnr(prediction[b], target[b]), abs=1e-4)
    assert float(metric.compute(prediction[1], target[1])) == pytest.approx(float(values[1]))


def test_masked_psnr_uses_only_visible_pixels(registry):
    metric = registry.build("metric", {"kind": "psnr-nocc"})
    prediction, target = _videos(1)
    mask = torch.rand(2, 4, 12, 16, generator=torch.Generator().manual_seed(2)) > 0.4
    mask[0, 2] = False  # a frame with nothing visible is left out of the average
    values = metric.compute(prediction, target, mask)
    for b in range(2):
        expected = _skimage_psnr(prediction[b], target[b], mask[b])
        assert float(values[b]) == pytest.approx(expected, abs=1e-4)
    corrupted = prediction.clone()
    corrupted[~mask.unsqueeze(2).expand_as(corrupted)] = 0.0  # changes outside the mask only
    torch.testing.assert_close(metric.compute(corrupted, target, mask), values)


def test_empty_mask_gives_nan_and_a_warning(registry):
    metric = registry.build("metric", {"kind": "psnr-nocc"})
    prediction, target = _videos(shape=(3, 3, 4, 4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = metric.compute(prediction, target, torch.zeros(3, 4, 4, dtype=torch.bool))
    assert math.isnan(float(value)) and any("empty mask" in str(w.message) for w in caught)


def test_masked_psnr_requires_a_mask(registry):
    with pytest.raises(ValueError, match="visibility mask"):
        registry.build("metric", {"kind": "psnr-nocc"}).compute(*_videos())


def test_visible_psnr_reward_compares_with_the_render_inside_the_mask(registry):
    term = registry.build("reward", {"kind": "psnr-visible"})
    generated, render = _videos(3)
    mask = torch.ones(2, 4, 12, 16, dtype=torch.bool)
    mask[:, :, :, :8] = False
    scores = term.score(RewardInputs(generated, render * 0, render, mask))
    assert term.higher_is_better and term.default_range[0] < term.default_range[1]
    for b in range(2):
        expected = _skimage_psnr(generated[b], render[b], mask[b])
        assert float(scores[b]) == pytest.approx(expected, abs=1e-4)
