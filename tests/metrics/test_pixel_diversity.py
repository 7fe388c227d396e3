"""``pixel-diversity``: the weight-free group diversity of the toy-scale Table 3."""

from __future__ import annotations

import math

import pytest
import torch


def test_pixel_diversity_is_the_mean_pairwise_per_frame_rmse(registry):
    metric = registry.build("metric", {"kind": "pixel-diversity"})
    group = torch.zeros(3, 2, 3, 4, 5)
    group[1] = 0.5  # 0.5 from video 0 in every pixel
    group[2, 0] = 1.0  # frame 0: 1.0 from video 0, 0.5 from video 1; frame 1: as video 0
    values = metric.compute(group, group)
    expected = [
        (0.5 + (1.0 + 0.0) / 2) / 2,  # video 0: to 1 (0.5), to 2 (frames 1.0, 0.0)
        (0.5 + (0.5 + 0.5) / 2) / 2,  # video 1: to 0 (0.5), to 2 (frames 0.5, 0.5)
        ((1.0 + 0.0) / 2 + (0.5 + 0.5) / 2) / 2,
    ]
    assert values.tolist() == pytest.approx(expected)
    assert metric.compute(torch.ones(4, 2, 3, 4, 5), None).tolist() == [0.0] * 4


def test_pixel_diversity_of_a_single_video_is_nan_with_a_warning(registry):
    metric = registry.build("metric", {"kind": "pixel-diversity"})
    with pytest.warns(UserWarning, match="at least two videos"):
        value = metric.compute(torch.rand(1, 2, 3, 4, 5), None)
    assert math.isnan(float(value[0]))
