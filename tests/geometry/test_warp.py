"""forward_warp against hand-computed splats, first principles and an independent dilation."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest
import torch

from devis_core.toolkit.geometry import (
    Motion,
    forward_warp,
    make_intrinsics,
    orbit_pose,
    orbit_trajectory,
)
from devis_core.toolkit.geometry import warp as warp_module

F64 = torch.float64
EYE = torch.eye(4, dtype=F64)


def _translated(tx: float = 0.0, ty: float = 0.0, tz: float = 0.0) -> torch.Tensor:
    """w2c of a camera moved by (tx, ty, tz) from the identity source, without rotating."""
    w2c = torch.eye(4, dtype=F64)
    w2c[:3, 3] = -torch.tensor([tx, ty, tz], dtype=F64)
    return w2c


def _scene(n: int, h: int, w: int, seed: int = 0, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand(n, 3, h, w, generator=gen, dtype=F64).to(dtype)
    depth = (2.0 + 3.0 * torch.rand(n, h, w, generator=gen, dtype=F64)).to(dtype)
    return frames, depth


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_warp_to_own_camera_is_exact_identity(
    dtype: torch.dtype, warp: Callable[..., tuple]
) -> None:
    """Same K and same (non-trivial) w2c: every point lands exactly on its own pixel.

    Asserted: the mask is exactly "depth is valid" (no border effect, the border pixels land
    on themselves too), and on it the output equals the input up to the rounding of
    ``(w * c) / w`` (a few ulp); holes are 0.
    """
    frames, depth = _scene(2, 9, 13, dtype=dtype)
    depth[0, 4, 6] = 0.0
    depth[1, 0, 0] = math.nan
    K = make_intrinsics(17.3, 16.1, 6.4, 4.2, dtype=F64)
    w2c = orbit_pose(Motion(theta=12.0, phi=-33.0, r=0.2, x=0.1), 3.0, dtype=F64)
    warped, mask = warp(frames, depth, K, w2c, K, w2c)
    valid = depth > 0
    assert torch.equal(mask, valid & torch.isfinite(depth))
    eps = torch.finfo(dtype).eps
    on = mask[:, None].expand_as(frames)
    assert torch.allclose(warped[on], frames[on], rtol=4 * eps, atol=0)
    assert torch.equal(warped[~mask[:, None].expand_as(warped)], torch.zeros(6, dtype=dtype))


def test_fractional_translation_gives_hand_computed_bilinear_weights(
    warp: Callable[..., tuple],
) -> None:
    """A camera moved by (0.1, 0.16) at depth 4 with f = 10 shifts every pixel by (-0.25, -0.4).

    One bright pixel at (7, 5) lands at (6.75, 4.6): its 4 neighbours get the bilinear weights
    0.25 * 0.4, 0.75 * 0.4, 0.25 * 0.6, 0.75 * 0.6; with constant depth every interior target
    pixel gathers total weight 1, so the output there is exactly those weights.
    """
    h, w = 12, 16
    frames = torch.zeros(1, 3, h, w, dtype=F64)
    frames[0, :, 5, 7] = 1.0
    depth = torch.full((1, h, w), 4.0, dtype=F64)
    K = make_intrinsics(10.0, 10.0, 8.0, 6.0, dtype=F64)
    warped, mask = warp(frames, depth, K, EYE, K, _translated(0.1, 0.16))
    expected = torch.zeros(h, w, dtype=F64)
    expected[4, 6], expected[4, 7], expected[5, 6], expected[5, 7] = 0.1, 0.3, 0.15, 0.45
    for channel in range(3):
        assert torch.allclose(warped[0, channel], expected, atol=1e-12)
    assert bool(mask.all())  # the last row / column still get the splats of their own pixel


def test_single_point_lands_on_its_four_neighbours_and_edge_drops_only_outside_ones(
    warp: Callable[..., tuple],
) -> None:
    h, w = 6, 8
    K = make_intrinsics(10.0, 10.0, 4.0, 3.0, dtype=F64)
    frames = torch.zeros(1, 3, h, w, dtype=F64)
    frames[0, :, 2, 3] = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    depth = torch.zeros(1, h, w, dtype=F64)
    depth[0, 2, 3] = 4.0
    # Shift (-0.25, -0.4): lands at (2.75, 1.6), between columns 2, 3 and rows 1, 2.
    warped, mask = warp(frames, depth, K, EYE, K, _translated(0.1, 0.16))
    expected_mask = torch.zeros(h, w, dtype=torch.bool)
    expected_mask[1:3, 2:4] = True
    assert torch.equal(mask[0], expected_mask)
    assert torch.allclose(warped[0][:, expected_mask], frames[0, :, 2, 3, None].expand(3, 4))
    # Shift (+4.5, +0.5) (camera moved left/up): lands at (7.5, 2.5): column 8 is outside the
    # image, so only column 7 of rows 2 and 3 receives it.
    warped, mask = warp(frames, depth, K, EYE, K, _translated(-1.8, -0.2))
    expected_mask = torch.zeros(h, w, dtype=torch.bool)
    expected_mask[2:4, 7] = True
    assert torch.equal(mask[0], expected_mask)


def _two_points_on_one_pixel(
    warp: Callable[..., tuple], zbuffer: str
) -> tuple[torch.Tensor, float]:
    """Camera moved +1 along x, f = 8: points shift by -8 / depth pixels.

    A (red) at u = 7, depth 2 and B (green) at u = 5, depth 4 both land exactly on u = 3 of row
    2; C at depth 800 (landing elsewhere) sets the frame's max log(1 + z) = log(801).
    """
    h, w = 5, 16
    frames = torch.zeros(1, 3, h, w, dtype=F64)
    depth = torch.zeros(1, h, w, dtype=F64)
    frames[0, 0, 2, 7], depth[0, 2, 7] = 1.0, 2.0
    frames[0, 1, 2, 5], depth[0, 2, 5] = 1.0, 4.0
    frames[0, 2, 2, 12], depth[0, 2, 12] = 1.0, 800.0
    K = make_intrinsics(8.0, 8.0, 8.0, 2.0, dtype=F64)
    warped, mask = warp(frames, depth, K, EYE, K, _translated(1.0), zbuffer=zbuffer)
    assert bool(mask[0, 2, 3])
    ratio = math.exp(50 * (math.log(5.0) - math.log(3.0)) / math.log(801.0))
    return warped[0, :, 2, 3], ratio


def test_soft_zbuffer_near_point_dominates_by_the_computed_ratio(
    warp: Callable[..., tuple],
) -> None:
    pixel, ratio = _two_points_on_one_pixel(warp, "soft")
    assert 40 < ratio < 50  # exp(50 * log(5 / 3) / log(801)) = 45.6: not a hard z-buffer
    assert math.isclose(float(pixel[0]), ratio / (1 + ratio), rel_tol=1e-12)
    assert math.isclose(float(pixel[1]), 1 / (1 + ratio), rel_tol=1e-12)
    assert float(pixel[2]) == 0.0


def test_hard_zbuffer_keeps_only_the_nearest_point(warp: Callable[..., tuple]) -> None:
    pixel, _ = _two_points_on_one_pixel(warp, "hard")
    assert pixel.tolist() == [1.0, 0.0, 0.0]


def test_integer_landing_counts_double_per_axis_like_trajectorycrafter(
    warp: Callable[..., tuple],
) -> None:
    """On an integer coordinate floor == ceil and both bilinear weights are 1.

    Camera moved +1 along x, f = 8, every row integer (weight 2 from y for everyone). A (red,
    depth 2) lands exactly on u = 3: x weight 1 + 1 = 2, total 4. B (green, depth 3.2) lands on
    u = 3.5: x weight 0.5 on u = 3 and u = 4, total 1 each. C (depth 800) sets the max.
    """
    h, w = 5, 16
    frames = torch.zeros(1, 3, h, w, dtype=F64)
    depth = torch.zeros(1, h, w, dtype=F64)
    frames[0, 0, 2, 7], depth[0, 2, 7] = 1.0, 2.0
    frames[0, 1, 2, 6], depth[0, 2, 6] = 1.0, 3.2
    frames[0, 2, 2, 12], depth[0, 2, 12] = 1.0, 800.0
    K = make_intrinsics(8.0, 8.0, 8.0, 2.0, dtype=F64)
    warped, _ = warp(frames, depth, K, EYE, K, _translated(1.0))
    ratio = math.exp(50 * (math.log(4.2) - math.log(3.0)) / math.log(801.0))
    red = 4 * ratio / (4 * ratio + 1)
    assert torch.allclose(warped[0, :, 2, 3], torch.tensor([red, 1 - red, 0.0], dtype=F64))
    assert torch.allclose(warped[0, :, 2, 4], torch.tensor([0.0, 1.0, 0.0], dtype=F64))


def test_points_behind_the_target_camera_never_land(warp: Callable[..., tuple]) -> None:
    h, w = 7, 9
    K = make_intrinsics(10.0, 10.0, 4.0, 3.0, dtype=F64)
    frames = torch.ones(1, 3, h, w, dtype=F64)
    depth = torch.zeros(1, h, w, dtype=F64)
    depth[0, 3, 5] = 2.0  # z = 2 - 5 = -3 in the target: mirrored it would land at u = 3.33
    forward = _translated(tz=5.0)
    warped, mask = warp(frames, depth, K, EYE, K, forward)
    assert not bool(mask.any()) and not bool(warped.any())
    depth[0, 3, 5] = 6.0  # z = 1: in front, lands at u = 4 + 10 * 0.1 * 6 / 1 = 10 (outside)...
    depth[0, 3, 4] = 6.0  # ...while u = 4 (the principal column) lands on itself
    warped, mask = warp(frames, depth, K, EYE, K, forward)
    assert mask[0].nonzero().tolist() == [[3, 4]]


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, -math.inf, 1e-45])
def test_unknown_depth_never_lands_and_never_poisons(
    bad: float, warp: Callable[..., tuple]
) -> None:
    frames, depth = _scene(1, 8, 10, seed=1)
    depth[0, 3, 4] = bad
    depth[0, 0, :] = bad
    K = make_intrinsics(12.0, 12.0, 5.0, 4.0, dtype=F64)
    # Own camera: every other point lands on itself, so exactly the bad pixels are holes.
    _, mask = warp(frames, depth, K, EYE, K, EYE)
    expected = torch.ones(1, 8, 10, dtype=torch.bool)
    expected[0, 3, 4] = False
    expected[0, 0, :] = False
    assert torch.equal(mask, expected)
    # Another camera: everything stays finite and within the input range.
    warped, mask = warp(frames, depth, K, EYE, K, orbit_pose(Motion(phi=10.0), 3.0))
    assert bool(torch.isfinite(warped).all()) and float(warped.max()) <= 1.0
    assert bool(mask.any())


def test_clean_matches_an_opencv_dilation_of_the_holes(warp: Callable[..., tuple]) -> None:
    frames, depth = _scene(2, 40, 56, seed=2, dtype=F64)
    depth[:, 10:14, 20:23] = 1.0  # near blocks open disocclusion holes in the target
    depth[:, 25:30, 5:9] = 1.2
    K = make_intrinsics(40.0, 40.0, 28.0, 20.0, dtype=F64)
    w2c = orbit_trajectory(5.0, 25.0, 0.0, 0.0, 0.0, 2, 3.0, mode="direct", dtype=F64)
    raw, raw_mask = warp(frames, depth, K, EYE, K, w2c)
    cleaned, clean_mask = warp(frames, depth, K, EYE, K, w2c, clean=True)
    for i in range(2):
        holes = (~raw_mask[i]).numpy().astype(np.uint8)
        assert 0 < holes.sum() < holes.size / 2
        dilated = cv2.dilate(holes, np.ones((5, 5), np.uint8), iterations=1).astype(bool)
        expected = torch.from_numpy(~dilated)
        assert torch.equal(clean_mask[i], expected)
        assert (expected.sum() < raw_mask[i].sum()) and bool((raw_mask[i] | ~expected).all())
        assert torch.equal(cleaned[i], raw[i] * expected)


def test_output_stays_in_range_and_shapes_broadcast(warp: Callable[..., tuple]) -> None:
    frames, depth = _scene(3, 20, 24, seed=3)
    K = make_intrinsics(20.0, 20.0, 12.0, 10.0)
    w2c = orbit_trajectory(10.0, -30.0, 0.1, 0.0, 0.0, 3, 3.0)
    warped, mask = warp(frames, depth, K, torch.eye(4), K, w2c)
    assert warped.shape == frames.shape and warped.dtype == torch.float32
    assert mask.shape == depth.shape and mask.dtype == torch.bool
    assert float(warped.min()) >= 0.0 and float(warped.max()) <= 1.0
    # Inputs that require grad are fine (renders are not differentiated through).
    with_grad, _ = warp(frames.requires_grad_(), depth, K, torch.eye(4), K, w2c)
    assert torch.equal(with_grad, warped) and not with_grad.requires_grad
    frames = frames.detach()
    per_frame, per_frame_mask = warp(
        frames, depth, K.expand(3, 3, 3), torch.eye(4).expand(3, 4, 4), K.expand(3, 3, 3), w2c
    )
    assert torch.equal(per_frame, warped) and torch.equal(per_frame_mask, mask)
    with pytest.raises(ValueError):
        warp(frames, depth[:2], K, torch.eye(4), K, w2c)
    with pytest.raises(ValueError):
        warp(frames, depth, K, torch.eye(4), K, w2c[:2])
    with pytest.raises(ValueError):
        warp(frames, depth, K, torch.eye(4), K, w2c, zbuffer="medium")  # type: ignore[arg-type]


def test_chunks_row_blocks_packing_and_threads_do_not_change_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The torch path: frames are grouped, or split into blocks of rows, by a point budget
    (bigger on CUDA), channels are packed in complex pairs on the CPU only (CUDA runs the
    unpacked path), and chunks are spread over threads.

    Only the order of the floating-point additions may change.
    """
    frames, depth = _scene(5, 16, 20, seed=4)
    K = make_intrinsics(18.0, 18.0, 10.0, 8.0)
    w2c = orbit_trajectory(-10.0, 30.0, 0.2, 0.0, 0.0, 5, 3.0)
    warped, mask = forward_warp(frames, depth, K, torch.eye(4), K, w2c, backend="torch")
    threads = torch.get_num_threads()
    try:  # each frame is computed the same way whichever thread runs it
        for count in (1, 3):
            torch.set_num_threads(count)
            other, other_mask = forward_warp(
                frames, depth, K, torch.eye(4), K, w2c, backend="torch"
            )
            assert torch.equal(other, warped) and torch.equal(other_mask, mask)
    finally:
        torch.set_num_threads(threads)
    for budget, pack in ((700, {"cpu": 2}), (100, {"cpu": 2}), (700, {})):
        # 2 frames per chunk; 1 frame in blocks of 5 rows; unpacked
        monkeypatch.setattr(warp_module, "_CPU_BLOCK_POINTS", budget)
        monkeypatch.setattr(warp_module, "_PACK", pack)
        other, other_mask = forward_warp(frames, depth, K, torch.eye(4), K, w2c, backend="torch")
        assert torch.equal(other_mask, mask)
        assert torch.allclose(other, warped, rtol=1e-5, atol=1e-6)
        hard, hard_mask = forward_warp(
            frames, depth, K, torch.eye(4), K, w2c, zbuffer="hard", backend="torch"
        )
        one_by_one = [
            forward_warp(
                frames[i : i + 1],
                depth[i : i + 1],
                K,
                torch.eye(4),
                K,
                w2c[i],
                zbuffer="hard",
                backend="torch",
            )
            for i in range(5)
        ]
        assert torch.equal(hard_mask, torch.cat([m for _, m in one_by_one]))
        assert torch.allclose(hard, torch.cat([w for w, _ in one_by_one]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 4, 5])
def test_any_number_of_channels_warps_each_like_rgb(
    channels: int, warp: Callable[..., tuple]
) -> None:
    """Channels are independent: each one comes out as it does in an RGB warp."""
    frames, depth = _scene(2, 12, 14, seed=5)
    extra = torch.rand(2, 5, 12, 14, generator=torch.Generator().manual_seed(6))
    K = make_intrinsics(14.0, 14.0, 7.0, 6.0)
    w2c = orbit_trajectory(5.0, -20.0, 0.1, 0.0, 0.0, 2, 3.0)
    rgb, rgb_mask = warp(frames, depth, K, torch.eye(4), K, w2c)
    stacked = torch.cat([frames, extra[:, :channels]], dim=1)
    warped, mask = warp(stacked, depth, K, torch.eye(4), K, w2c)
    assert torch.equal(mask, rgb_mask)
    assert torch.allclose(warped[:, :3], rgb, rtol=1e-5, atol=1e-6)
    for channel in range(channels):
        alone = torch.cat([extra[:, channel : channel + 1]] * 3, dim=1)
        expected, _ = warp(alone, depth, K, torch.eye(4), K, w2c)
        assert torch.allclose(warped[:, 3 + channel], expected[:, 0], rtol=1e-5, atol=1e-6)


def test_backend_choice_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without numba, "auto" falls back to torch and "numba" says how to install it."""
    frames, depth = _scene(2, 6, 8, seed=7)
    K = make_intrinsics(8.0, 8.0, 4.0, 3.0)
    w2c = orbit_trajectory(5.0, -20.0, 0.1, 0.0, 0.0, 2, 3.0)
    missing = ModuleNotFoundError("No module named 'numba'")
    monkeypatch.setattr(warp_module, "_import_numba_kernels", lambda: missing)
    with pytest.raises(ModuleNotFoundError, match="pip install numba"):
        forward_warp(frames, depth, K, torch.eye(4), K, w2c, backend="numba")
    warped, mask = forward_warp(frames, depth, K, torch.eye(4), K, w2c)
    expected, expected_mask = forward_warp(frames, depth, K, torch.eye(4), K, w2c, backend="torch")
    assert torch.equal(warped, expected) and torch.equal(mask, expected_mask)
    with pytest.raises(ValueError, match="backend"):
        forward_warp(frames, depth, K, torch.eye(4), K, w2c, backend="cuda")  # type: ignore[arg-type]
