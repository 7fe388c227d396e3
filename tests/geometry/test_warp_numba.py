"""The numba backend of forward_warp against the torch one, on inputs full of edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from devis_core.toolkit.geometry import Motion, forward_warp, make_intrinsics, orbit_pose

pytest.importorskip("numba")

F64 = torch.float64


def _edge_cases(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """4 frames of 13 x 17, per-frame K and w2c, with every kind of point that needs care.

    Frame 0 goes to its own camera with a principal point 1 pixel over (exact integer
    positions), frame 1 orbits, frame 2 moves the camera 3 units forward (points behind it),
    frame 3 turns 40 degrees (off-screen points). Depth holds 0, negative, NaN, +-inf and a
    denormal, a very far point (clamped at 1000 in the soft z-buffer) and a near block.
    """
    gen = torch.Generator().manual_seed(7)
    n, h, w = 4, 13, 17
    frames = torch.rand(n, 3, h, w, generator=gen, dtype=F64)
    depth = 1.0 + 4.0 * torch.rand(n, h, w, generator=gen, dtype=F64)
    depth[:, 4:7, 5:9] = 0.8
    depth[:, 0, :5] = torch.tensor([0.0, -1.0, math.nan, math.inf, -math.inf])
    depth[:, 0, 5] = torch.finfo(dtype).tiny / 4  # denormal: its inverse overflows
    depth[:, 12, 16] = 1e4
    K_src = make_intrinsics(15.0, 14.0, 8.0, 6.0, dtype=F64).repeat(n, 1, 1)
    K_src[1:, 0, 0] = torch.tensor([16.5, 13.0, 18.0], dtype=F64)
    K_tgt = K_src.clone()
    K_tgt[0, 0, 2] += 1.0
    w2c_src = torch.eye(4, dtype=F64).repeat(n, 1, 1)
    w2c_src[1] = orbit_pose(Motion(theta=-5.0, x=0.05), 3.0, dtype=F64)
    w2c_tgt = w2c_src.clone()
    w2c_tgt[1] = orbit_pose(Motion(theta=10.0, phi=-20.0, r=0.1), 3.0, dtype=F64)
    w2c_tgt[2, 2, 3] = -3.0
    w2c_tgt[3] = orbit_pose(Motion(phi=40.0), 3.0, dtype=F64)
    return {
        "frames": frames.to(dtype),
        "depth": depth.to(dtype),
        "K_src": K_src,
        "w2c_src": w2c_src,
        "K_tgt": K_tgt,
        "w2c_tgt": w2c_tgt,
    }


@pytest.mark.parametrize("clean", [False, True])
@pytest.mark.parametrize("zbuffer", ["soft", "hard"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_numba_matches_torch(dtype: torch.dtype, zbuffer: str, clean: bool) -> None:
    """Identical masks; values equal to 1e-9 in float64, to float32 rounding in float32.

    Both compute the same positions with the same operations (a fused multiply-add where
    PyTorch's ``addcmul`` has one), so even points that land exactly on a pixel agree; only
    the order of the additions into a pixel and the last bits of ``exp``/``log1p`` differ.
    """
    inputs = _edge_cases(dtype)
    ours, mask = forward_warp(**inputs, clean=clean, zbuffer=zbuffer, backend="numba")
    theirs, their_mask = forward_warp(**inputs, clean=clean, zbuffer=zbuffer, backend="torch")
    assert torch.equal(mask, their_mask)
    assert 0.05 < float(mask.double().mean()) < 0.95  # holes and landings in every case
    if not clean:  # frame 0: every point with known depth lands exactly one pixel to the right
        inverse = 1 / inputs["depth"][0, :, :-1]
        shifted = torch.zeros_like(mask[0])
        shifted[:, 1:] = (inverse > 0) & inverse.isfinite()
        assert torch.equal(mask[0], shifted)
    tolerance = 1e-9 if dtype == F64 else 1e-5
    assert float((ours - theirs).abs().max()) <= tolerance


@pytest.mark.parametrize("channels", [1, 4, 5, 8])
def test_numba_matches_torch_for_any_channel_count(channels: int) -> None:
    """Canvas cells hold 4 values (channels, then the weight): other counts span several."""
    inputs = _edge_cases(F64)
    gen = torch.Generator().manual_seed(channels)
    inputs["frames"] = torch.rand(4, channels, 13, 17, generator=gen, dtype=F64)
    ours, mask = forward_warp(**inputs, backend="numba")
    theirs, their_mask = forward_warp(**inputs, backend="torch")
    assert ours.shape == (4, channels, 13, 17)
    assert torch.equal(mask, their_mask)
    assert float((ours - theirs).abs().max()) <= 1e-9


def test_numba_is_what_auto_runs_on_the_cpu_and_ignores_the_thread_count() -> None:
    """Each frame is computed the same way whichever thread runs it: bit-identical results."""
    inputs = _edge_cases(torch.float32)
    warped, mask = forward_warp(**inputs, backend="numba")
    threads = torch.get_num_threads()
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            other, other_mask = forward_warp(**inputs)
            assert torch.equal(other, warped) and torch.equal(other_mask, mask)
    finally:
        torch.set_num_threads(threads)


def test_numba_rejects_what_it_cannot_run() -> None:
    inputs = _edge_cases(torch.float32)
    inputs["frames"] = inputs["frames"].half()
    with pytest.raises(ValueError, match="float32 or float64"):
        forward_warp(**inputs, backend="numba")
