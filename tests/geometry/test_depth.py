"""TrajectoryCrafter's disparity-to-depth conversion against hand-computed values."""

from __future__ import annotations

import torch

from devis_core.toolkit.geometry import disparity_to_depth


def test_hand_computed_values_with_whole_video_normalisation() -> None:
    # Frame 0 spans [0, 1] but the video's range is [0, 4]: normalised 0, 0.125, 0.25, 1.
    disparity = torch.tensor([[[0.0, 0.5]], [[1.0, 4.0]]], dtype=torch.float64)
    depth = disparity_to_depth(disparity)
    assert depth.shape == (2, 1, 2)
    expected = torch.tensor(
        [[[1e4, 10000 / (0.125 * 3900)]], [[10000 / (0.25 * 3900), 10000 / 3900]]],
        dtype=torch.float64,
    )
    assert torch.allclose(depth, expected, rtol=1e-12)


def test_floor_and_clip() -> None:
    # 1e-9 normalised * 3900 < 1e-5 is floored to 1e-5: 1e9, clipped to far = 1e4.
    disparity = torch.tensor([[[0.0, 1e-9, 1.0]]], dtype=torch.float64)
    depth = disparity_to_depth(disparity)
    assert depth[0, 0, 1] == 1e4 and depth[0, 0, 0] == 1e4
    assert torch.allclose(
        disparity_to_depth(disparity, far=100.0)[0, 0, :2],
        torch.full((2,), 100.0, dtype=torch.float64),
    )
    assert float(disparity_to_depth(disparity, near=3.0)[0, 0, 2]) == 3.0  # 2.56 -> near


def test_constant_video_is_far_not_nan() -> None:
    depth = disparity_to_depth(torch.full((2, 3, 3), 0.7))
    assert torch.equal(depth, torch.full((2, 3, 3), 1e4))


def test_depth_without_a_known_pixel_is_an_error_that_names_it() -> None:
    import math

    import pytest

    from devis_core.errors import UsageError
    from devis_core.toolkit.geometry.depth import require_known_depth

    usable = torch.tensor([[[math.nan, 0.0, 2.0]]])
    assert require_known_depth(usable, "x") is usable
    for bad in (math.nan, math.inf, 0.0, -1.0):
        with pytest.raises(UsageError, match="the depth of 'clip' has no valid depth"):
            require_known_depth(torch.full((2, 3, 4), bad), "the depth of 'clip'")


def test_depth_files_with_an_all_invalid_frame_name_file_and_frame(tmp_path) -> None:
    import math

    import numpy as np
    import pytest

    from devis_core.errors import UsageError
    from devis_core.toolkit.media import read_depth_maps

    depth = np.full((3, 4, 6), 2.0, np.float32)
    depth[1] = math.nan
    depth[2, 0, 0] = math.inf  # one bad pixel is unknown depth, not an error
    np.save(tmp_path / "d.npy", depth)
    with pytest.raises(UsageError, match=r"d\.npy have no valid depth .* frame\(s\) 1:"):
        read_depth_maps(tmp_path / "d.npy")
    depth[1] = 1.0
    np.save(tmp_path / "d.npy", depth)
    assert read_depth_maps(tmp_path / "d.npy").shape == (3, 4, 6)
