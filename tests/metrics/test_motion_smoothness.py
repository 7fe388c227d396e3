"""Motion smoothness: VBench's procedure checked with an interpolator whose output is known,
and the AMT-S network loaded from a checkpoint the test writes (random weights: plumbing only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from devis_core.errors import MissingWeightsError, UsageError
from devis_plugins.vbench.amt import AMTS, load_amt_s, motion_smoothness, warp
from tests.metrics.conftest import smooth_video


class Blend(torch.nn.Module):
    """An 'interpolator' that averages its two frames: the expected score is hand-computable."""

    def forward(self, img0, img1, embt):
        assert img0.shape[-2] % 16 == 0 and img0.shape[-1] % 16 == 0  # padded as VBench pads
        return embt * img0 + (1 - embt) * img1


@pytest.mark.parametrize("frames", [6, 7])
def test_motion_smoothness_is_vbench_procedure(frames):
    video = smooth_video(0, (frames, 3, 20, 30), noise=0.1)
    levels = np.round(video.double().numpy() * 255).astype(np.uint8)
    even = levels[0::2].astype(np.float32) / 255
    middles = ((even[:-1] + even[1:]) / 2 * 255).clip(0, 255).astype(np.uint8)  # tensor2img
    odd = levels[1::2][: len(middles)].astype(np.int16)
    expected = (255 - np.mean(np.abs(odd - middles.astype(np.int16)))) / 255
    assert float(motion_smoothness(Blend(), video)) == pytest.approx(expected, abs=1e-9)
    assert float(motion_smoothness(Blend(), video, pairs_per_pass=3)) == pytest.approx(expected)


def test_warp_moves_pixels_by_the_flow():
    image = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    torch.testing.assert_close(warp(image, torch.zeros(2, 2, 5, 6)), image)
    flow = torch.zeros(2, 2, 5, 6)
    flow[:, 0] = 1.0  # sample one pixel to the right
    torch.testing.assert_close(warp(image, flow)[..., :-1], image[..., 1:])


def test_amt_s_plumbing_with_random_weights(tmp_path, registry):
    torch.manual_seed(0)
    source = AMTS()
    path = tmp_path / "amt-s.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model = load_amt_s(path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    frames = smooth_video(1, (2, 3, 128, 128))
    with torch.no_grad():
        middle = model(frames[:1], frames[1:], torch.full((1, 1, 1, 1), 0.5))
    assert middle.shape == (1, 3, 128, 128) and 0 <= float(middle.min()) <= float(middle.max()) <= 1
    metric = registry.build("metric", {"kind": "motion-smoothness", "weights_path": str(path)})
    value = metric.compute(smooth_video(2, (3, 3, 120, 136)), None)
    assert 0 <= float(value) <= 1


def test_amt_s_checkpoint_errors(tmp_path, registry):
    with pytest.raises(MissingWeightsError, match="amt-s.pth"):
        registry.build("metric", {"kind": "motion-smoothness"})
    partial = {k: v for k, v in AMTS().state_dict().items() if not k.startswith("comb_block")}
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": partial}, path)
    with pytest.raises(UsageError, match="not an AMT-S checkpoint"):
        load_amt_s(path)
    with pytest.raises(ValueError, match="at least three frames"):
        motion_smoothness(Blend(), torch.rand(2, 3, 16, 16))
