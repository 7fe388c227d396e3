"""The composite reward (Eq. 17): normalisation, clipping, flipping, weights, non-finite scores."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from devis_core.config import validate_config
from devis_core.errors import UsageError
from devis_core.rewards import CompositeReward
from devis_core.types import RewardInputs
from tests.metrics.conftest import smooth_video


def _batch(seed: int = 0) -> RewardInputs:
    render = smooth_video(seed, (3, 3, 3, 40, 48))
    noise = torch.randn(render.shape, generator=torch.Generator().manual_seed(seed + 1))
    generated = (render + torch.tensor([0.02, 0.1, 0.3]).view(3, 1, 1, 1, 1) * noise).clamp(0, 1)
    mask = torch.ones(3, 3, 40, 48, dtype=torch.bool)
    mask[:, :, :, :10] = False
    return RewardInputs(generated, render, render, mask, ["s0", "s1", "s2"])


def test_composite_is_the_weighted_sum_of_clipped_normalised_terms(registry):
    entries = [
        {"kind": "psnr-visible", "weight": 0.5, "range": [20.0, 30.0]},
        {"kind": "ssim-visible", "weight": 2.0},
        {"kind": "no-reference-quality", "model": "brisque", "weight": 1.0},
    ]
    config = validate_config({"rewards": entries}, registry)
    reward = CompositeReward(config.rewards, registry)
    result = reward(_batch())
    psnr, ssim, quality = (
        result.terms[k] for k in ("psnr-visible", "ssim-visible", "no-reference-quality")
    )
    expected_psnr = ((psnr.double() - 20) / 10).clamp(0, 1)
    expected_ssim = ssim.double().clamp(0, 1)  # the term's own range, [0, 1]
    expected_quality = 1 - (quality.double() / 100).clamp(0, 1)  # lower is better: flipped
    torch.testing.assert_close(result.normalised["psnr-visible"], expected_psnr)
    torch.testing.assert_close(result.normalised["no-reference-quality"], expected_quality)
    total = 0.5 * expected_psnr + 2.0 * expected_ssim + 1.0 * expected_quality
    torch.testing.assert_close(result.total, total)
    assert expected_psnr[0] == 1.0 and result.invalid == []  # clipped at the top of the range
    assert float(psnr[0]) > float(psnr[2])  # less noise, higher fidelity


def test_non_finite_scores_are_reported_and_make_the_sample_nan(registry):
    reward = CompositeReward([{"kind": "psnr-visible"}, {"kind": "ssim-visible"}], registry)
    batch = _batch(3)
    batch.mask[1] = False  # nothing visible in sample s1: its PSNR and SSIM are NaN
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = reward(batch)
    assert math.isnan(float(result.total[1]))
    assert all(math.isfinite(float(result.total[i])) for i in (0, 2))
    assert result.invalid == [("s1", "psnr-visible"), ("s1", "ssim-visible")]
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("psnr-visible" in m and "s1" in m for m in messages)


def test_same_term_twice_gets_two_names_and_bad_ranges_are_refused(registry):
    reward = CompositeReward(
        [{"kind": "psnr-visible", "range": [10, 20]}, {"kind": "psnr-visible"}], registry
    )
    assert [t.name for t in reward.terms] == ["psnr-visible[0]", "psnr-visible[1]"]
    with pytest.raises(UsageError, match=r"rewards\[0\] \(psnr-visible\): range must have low"):
        CompositeReward([{"kind": "psnr-visible", "range": [30, 30]}], registry)
    with pytest.raises(UsageError, match="at least one entry"):
        CompositeReward([], registry)
