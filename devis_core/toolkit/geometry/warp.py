"""Forward warping of a video into another camera by bilinear point splatting.

The splatting model is TrajectoryCrafter's, because its diffusion model was trained on renders
made that way and expects their look (soft edges, bleeding at depth discontinuities, its holes):

* every source pixel with known depth is lifted to 3D, moved into the target camera and
  projected to a real-valued position ``(u', v')`` (pixel centres at integer coordinates, see
  :mod:`devis_core.toolkit.geometry.cameras`);
* it splats into its 4 neighbouring target pixels ``floor`` / ``ceil`` of each coordinate with
  the bilinear weights ``1 - (u' - floor(u'))`` and ``1 - (ceil(u') - u')``. On an exactly
  integer coordinate floor and ceil coincide and both weights are 1: such a point adds 2 (4 if
  both coordinates are integers) to its pixel, as in TrajectoryCrafter;
* nearer points dominate through the soft z-buffer weight
  ``exp(-50 * log(1 + z) / max log(1 + z))``, z being the point's depth in the TARGET camera
  clamped to [0, 1000] and the max taken over every valid point of the frame (off-screen ones
  included, as in TrajectoryCrafter);
* the result is the weighted sum over the summed weight, and the mask is "summed weight > 0".
  Neighbours outside the target image are dropped (TrajectoryCrafter pads the canvas by one
  pixel, clamps positions into the padding and crops it), the other neighbours of that point
  still land.

Unlike TrajectoryCrafter, points behind the target camera (z <= 0) and pixels with unknown depth
(0 or non-finite) never land; TrajectoryCrafter splats the former mirrored, with the weight of
the nearest possible point. ``zbuffer="hard"`` is an alternative to the soft z-buffer: only
splats within ``HARD_ZBUFFER_RTOL`` (relative) of the nearest depth reaching a target pixel count
there, bilinearly weighted.

Implementation: the pixel-to-pixel map of each frame is folded into one 3x3 matrix ``A`` and a
vector ``b`` (padded-canvas position ``~ A [u, v, 1] + b / depth``), so no per-pixel matrix
products are made. Two backends compute the same thing from there, in the inputs' dtype:

* ``numba`` (:mod:`devis_core.toolkit.geometry._warp_numba`), the default for float32 and
  float64 CPU tensors (numba is a dependency of DEVIS):
  compiled kernels that splat each point straight into a per-thread canvas, a few times
  faster than the torch backend and over 10 times faster than TrajectoryCrafter's warper
  (benchmarks/RESULTS.md). They are compiled on the first call of each dtype (seconds) and
  cached on disk for later processes.
* ``torch``, on any device (and the CPU without numba): each point adds its 4 neighbours'
  contributions with ``scatter_add_`` on flattened indices into one padded canvas per frame,
  whose border collects what falls outside the image and is cropped at the end; on the CPU the
  channels and the weight are packed in pairs as complex numbers, which halves the scattered
  memory accesses that bound the scatter. Work goes by blocks of rows (several small frames per
  block). On the CPU, blocks are small enough (``_CPU_BLOCK_POINTS``) for PyTorch to run every
  kernel single-threaded, and frames are spread over ``torch.get_num_threads()`` Python threads
  instead (the kernels release the GIL): a frame costs hundreds of small kernels, and
  synchronising threads inside each of them stalls badly as soon as other processes compete
  for the cores.

Both spread frames over ``torch.get_num_threads()`` threads and agree to rounding: identical
masks, float64 values within 1e-9 (tests/geometry/test_warp_numba.py).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from devis_core.lazy import lazy_import
from devis_core.toolkit.geometry.cameras import relative_pose
from devis_core.toolkit.geometry.splat_model import (
    CLEAN_KERNEL,
    HARD_ZBUFFER_RTOL,
    MAX_SPLAT_DEPTH,
    SOFT_ZBUFFER_SHARPNESS,
)

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")

# Points per block: PyTorch parallelises CPU element-wise kernels above 32768 elements only.
_CPU_BLOCK_POINTS = 1 << 15
_OTHER_BLOCK_POINTS = 1 << 22
_PACK = {"cpu": 2}
_EXACT_FLOAT32_INTEGERS = 1 << 24


@functools.cache
def _complex_types() -> dict[torch.dtype, torch.dtype]:
    """The complex dtype that packs two values of each real dtype (built on first use)."""
    return {torch.float32: torch.complex64, torch.float64: torch.complex128}


def forward_warp(
    frames: torch.Tensor,
    depth: torch.Tensor,
    K_src: torch.Tensor,
    w2c_src: torch.Tensor,
    K_tgt: torch.Tensor,
    w2c_tgt: torch.Tensor,
    *,
    clean: bool = False,
    zbuffer: Literal["soft", "hard"] = "soft",
    backend: Literal["auto", "torch", "numba"] = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``frames`` seen from the source cameras into the target cameras.

    Args:
        frames: (T, C, H, W) floating video, normally RGB in [0, 1]; the output is a convex
            combination of input values, so it keeps their range.
        depth: (T, H, W) planar depth in the source cameras; 0 or non-finite = unknown.
        K_src, K_tgt: (3, 3) or (T, 3, 3) intrinsics.
        w2c_src, w2c_tgt: (4, 4) or (T, 4, 4) world-to-camera extrinsics.
        clean: TrajectoryCrafter's ``--mask``: dilate the holes once with a 5x5 kernel and
            blank what they cover, removing isolated flying pixels at silhouettes. Pixels
            outside the image do not count as holes.
        zbuffer: "soft" (TrajectoryCrafter's) or "hard" (module docs).
        backend: "numba": compiled CPU kernels, several times faster (float32 or float64 CPU
            tensors; needs numba, a dependency of DEVIS that a platform may lack, and
            compiles on its first call of each dtype, then caches on disk). "torch": PyTorch
            kernels, any device. "auto": numba where it can run, torch otherwise. Both give
            the same masks and the same values up to rounding.

    Returns:
        ``(warped, mask)``: (T, C, H, W) in the frames' dtype, 0 in holes, and (T, H, W) bool,
        True where something landed. Same size as the input; computed on the frames' device.
        Not differentiable: renders are conditions, not part of any loss.
    """
    if frames.dim() != 4 or not frames.is_floating_point():
        raise ValueError(f"frames must be a floating (T, C, H, W) tensor, got {frames.shape}")
    n_frames, channels, height, width = frames.shape
    if depth.shape != (n_frames, height, width):
        raise ValueError(f"depth must be {(n_frames, height, width)}, got {tuple(depth.shape)}")
    if zbuffer not in ("soft", "hard"):
        raise ValueError(f"zbuffer must be 'soft' or 'hard', got {zbuffer!r}")
    kernels = _numba_kernels_for(backend, frames)
    depth = depth.to(device=frames.device, dtype=frames.dtype)
    a_matrix, b_vector = _pixel_maps(
        n_frames, K_src, w2c_src, K_tgt, w2c_tgt, frames.device, frames.dtype
    )
    if kernels is not None:
        warped, mask = kernels.warp_video(
            frames.detach().contiguous().numpy(), depth.detach().contiguous().numpy(),
            a_matrix.contiguous().numpy(), b_vector.contiguous().numpy(),
            soft=zbuffer == "soft", clean=clean, workers=torch.get_num_threads(),
        )  # fmt: skip
        return torch.from_numpy(warped), torch.from_numpy(mask)

    warped = torch.empty_like(frames)
    mask = torch.empty(n_frames, height, width, dtype=torch.bool, device=frames.device)
    on_cpu = frames.device.type == "cpu"
    budget = _CPU_BLOCK_POINTS if on_cpu else _OTHER_BLOCK_POINTS
    frames_per_chunk = max(1, budget // (height * width))
    # The hard z-buffer needs every splat of a frame at once; the soft one works by rows.
    rows_per_block = height if zbuffer == "hard" else max(1, budget // width)
    chunks = [
        slice(start, min(start + frames_per_chunk, n_frames))
        for start in range(0, n_frames, frames_per_chunk)
    ]

    def warp(chunk: slice) -> None:
        with torch.no_grad():  # grad mode is per thread; out= kernels refuse autograd
            _warp_chunk(
                frames[chunk], depth[chunk], a_matrix[chunk], b_vector[chunk],
                warped[chunk], mask[chunk], zbuffer, rows_per_block,
            )  # fmt: skip
            if clean:
                _clean(warped[chunk], mask[chunk])

    workers = min(torch.get_num_threads(), len(chunks)) if on_cpu else 1
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(warp, chunks))  # list() re-raises the workers' exceptions
    else:
        for chunk in chunks:
            warp(chunk)
    return warped, mask


@functools.cache
def _import_numba_kernels() -> ModuleType | Exception:
    """The numba kernels' module, or why it cannot be imported (numba missing or broken)."""
    try:
        from devis_core.toolkit.geometry import _warp_numba
    except ImportError as error:
        return error
    return _warp_numba


def _numba_kernels_for(backend: str, frames: torch.Tensor) -> ModuleType | None:
    """The numba kernels' module if ``backend`` runs them on ``frames``, None for the torch path."""
    if backend == "torch":
        return None
    if backend not in ("auto", "numba"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'numba', got {backend!r}")
    fits = frames.device.type == "cpu" and frames.dtype in (torch.float32, torch.float64)
    if backend == "auto":
        kernels = _import_numba_kernels() if fits else None
        return kernels if isinstance(kernels, ModuleType) else None
    if not fits:
        raise ValueError(
            f"backend='numba' needs float32 or float64 tensors on the CPU, got {frames.dtype} "
            f"on {frames.device}"
        )
    kernels = _import_numba_kernels()
    if not isinstance(kernels, ModuleType):
        raise ModuleNotFoundError(
            "backend='numba' needs the numba package (pip install numba); backend='torch' runs "
            "without it"
        ) from kernels
    return kernels


def _per_frame(matrix: torch.Tensor, n_frames: int, size: int, name: str) -> torch.Tensor:
    if matrix.shape == (size, size):
        return matrix.expand(n_frames, size, size)
    if matrix.shape == (n_frames, size, size):
        return matrix
    raise ValueError(f"{name} must be ({size}, {size}) or ({n_frames}, {size}, {size})")


def _pixel_maps(
    n_frames: int,
    K_src: torch.Tensor,
    w2c_src: torch.Tensor,
    K_tgt: torch.Tensor,
    w2c_tgt: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame ``A`` (T, 3, 3) and ``b`` (T, 3): padded-canvas position ``~ A [u, v, 1] + b / d``.

    From ``p' ~ K_t (R K_s^-1 [u, v, 1] d + t)`` divided by the depth d, shifted by one pixel
    into the padded canvas (TrajectoryCrafter's ``+ 1``). ``A`` is written
    ``S (I + (K_t R - K_s) K_s^-1)`` (built in float64) so that identical cameras give exactly
    the shift ``S`` and a frame warped to its own camera lands exactly on its pixels.
    """

    def matrices(matrix: torch.Tensor, size: int, name: str) -> torch.Tensor:
        per_frame = _per_frame(matrix, n_frames, size, name)
        return per_frame.to(device=device, dtype=torch.float64)

    k_src, k_tgt = matrices(K_src, 3, "K_src"), matrices(K_tgt, 3, "K_tgt")
    src, tgt = matrices(w2c_src, 4, "w2c_src"), matrices(w2c_tgt, 4, "w2c_tgt")
    eye4 = torch.eye(4, dtype=torch.float64, device=device)
    same = (src == tgt).flatten(1).all(dim=1)[:, None, None]
    rel = torch.where(same, eye4, relative_pose(src, tgt))
    rotation, translation = rel[:, :3, :3], rel[:, :3, 3:]
    eye3 = torch.eye(3, dtype=torch.float64, device=device)
    shift = torch.tensor([[1.0, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=torch.float64, device=device)
    a_matrix = shift @ (eye3 + (k_tgt @ rotation - k_src) @ torch.linalg.inv(k_src))
    b_vector = (shift @ k_tgt @ translation).squeeze(-1)
    return a_matrix.to(dtype), b_vector.to(dtype)


def _homogeneous(
    a_matrix: torch.Tensor, b_vector: torch.Tensor, row: int, rows: slice, inv_depth: torch.Tensor
) -> torch.Tensor:
    """Row ``row`` of ``A [u, v, 1] + b / depth`` for image rows ``rows``: (n, len(rows), W)."""
    dtype, device = inv_depth.dtype, inv_depth.device
    u = torch.arange(inv_depth.shape[-1], dtype=dtype, device=device)
    v = torch.arange(rows.start, rows.stop, dtype=dtype, device=device)[:, None]
    coeff = a_matrix[:, row, :, None, None]  # (n, 3, 1, 1)
    ray = (coeff[:, 1] * v + coeff[:, 2]) + coeff[:, 0] * u
    return ray.addcmul_(inv_depth, b_vector[:, row, None, None])


def _warp_chunk(
    frames: torch.Tensor,
    depth: torch.Tensor,
    a_matrix: torch.Tensor,
    b_vector: torch.Tensor,
    out: torch.Tensor,
    out_mask: torch.Tensor,
    zbuffer: str,
    rows_per_block: int,
) -> None:
    """Warp a chunk of frames (n, C, H, W) into ``out`` and ``out_mask`` (views of the result).

    Splats accumulate in n stacked (H + 2) x (W + 2) canvases: pixel (u, v) of frame f is cell
    ``f * (H + 2) * (W + 2) + (v + 1) * (W + 2) + u + 1``; neighbours outside the image fall
    in the border, which is cropped. Everything runs by blocks of ``rows_per_block`` rows.
    """
    n, channels, height, width = frames.shape
    dtype, device = frames.dtype, frames.device
    blocks = [
        slice(start, min(start + rows_per_block, height))
        for start in range(0, height, rows_per_block)
    ]

    # Pass 1: each point's inverse source depth, homogeneous z (NaN for points that never
    # land) and depth in the target camera, and each frame's deepest valid point.
    inv_depth = torch.empty_like(depth)
    z = torch.empty_like(depth)
    target_depth = torch.empty_like(depth)
    deepest = torch.zeros(n, 1, 1, dtype=dtype, device=device)
    nan = torch.full((), torch.nan, dtype=dtype, device=device)
    for rows in blocks:
        inv = torch.reciprocal(depth[:, rows], out=inv_depth[:, rows])
        z_rows = _homogeneous(a_matrix, b_vector, 2, rows, inv)
        # 0, negative, NaN, inf and denormal depths fail the first two tests (then x, y, z are
        # finite), points behind the target camera the last.
        valid = (inv > 0) & (inv < torch.inf) & (z_rows > 0)
        torch.where(valid, z_rows, nan, out=z[:, rows])
        depth_rows = torch.mul(z[:, rows], depth[:, rows], out=target_depth[:, rows])
        torch.maximum(
            deepest, depth_rows.nan_to_num(0.0).amax(dim=(1, 2), keepdim=True), out=deepest
        )
    # Soft z-buffer: weights exp(-50 log(1 + clamp(z)) / max log(1 + clamp(z))).
    exponent = None
    if zbuffer == "soft":
        peak = deepest.clamp_(0.0, MAX_SPLAT_DEPTH).log1p_().clamp_min_(torch.finfo(dtype).tiny)
        exponent = -SOFT_ZBUFFER_SHARPNESS / peak

    # The C channels and a constant 1 (whose splat is the weight), packed in pairs as complex
    # numbers on the CPU: one complex add does two real ones and halves the scattered memory
    # traffic, which is what the serial CPU scatter kernel is bound by.
    pack = _PACK.get(device.type, 1) if dtype in _complex_types() else 1
    slots = -(-(channels + 1) // pack)
    padded = (height + 2) * (width + 2)
    canvas_dtype = _complex_types()[dtype] if pack == 2 else dtype
    if device.type == "cpu":  # zeroed in pieces small enough for single-threaded kernels
        canvas = torch.empty(slots, n * padded, dtype=canvas_dtype, device=device)
        step = max(1, _CPU_BLOCK_POINTS // slots)
        for start in range(0, n * padded, step):
            canvas[:, start : start + step].zero_()
    else:
        canvas = torch.zeros(slots, n * padded, dtype=canvas_dtype, device=device)

    ones = torch.ones((), dtype=dtype, device=device)
    zeros = torch.zeros((), dtype=dtype, device=device)
    for rows in blocks:
        planes = [*frames[:, :, rows].unbind(1), ones.expand_as(depth[:, rows])]
        planes += [zeros.expand_as(depth[:, rows])] * (slots * pack - channels - 1)
        if pack == 2:
            packed = [
                torch.complex(re, im) for re, im in zip(planes[::2], planes[1::2], strict=True)
            ]
        else:
            packed = planes
        _splat_rows(
            packed, inv_depth[:, rows], z[:, rows], target_depth[:, rows], exponent,
            a_matrix, b_vector, rows, width, height, canvas,
        )  # fmt: skip

    # Weighted sums over summed weights, border cropped.
    sums = canvas.view(slots, n, height + 2, width + 2)[:, :, 1:-1, 1:-1]
    sums = torch.view_as_real(sums) if pack == 2 else sums.unsqueeze(-1)
    for rows in blocks:
        weight = sums[channels // pack, :, rows, :, channels % pack]
        landed = torch.gt(weight, 0, out=out_mask[:, rows])
        # Dividing (not multiplying by a reciprocal) keeps the ratio within the inputs' range.
        weight = torch.where(landed, weight, 1.0)
        for channel in range(channels):
            torch.div(
                sums[channel // pack, :, rows, :, channel % pack], weight, out=out[:, channel, rows]
            )


def _splat_rows(
    packed: list[torch.Tensor],
    inv_depth: torch.Tensor,
    z: torch.Tensor,
    target_depth: torch.Tensor,
    exponent: torch.Tensor | None,
    a_matrix: torch.Tensor,
    b_vector: torch.Tensor,
    rows: slice,
    width: int,
    height: int,
    canvas: torch.Tensor,
) -> None:
    """Splat the points of image rows ``rows`` into ``canvas`` (slots, n * padded).

    ``packed`` holds the values splatted per canvas slot, (n, rows, W) each; ``z`` is NaN for
    points that never land. ``exponent`` (per frame) gives the soft z-buffer weight
    ``exp(exponent * log(1 + clamp(z)))``; without it this is the hard z-buffer, which needs
    all rows of the frames in one call.
    """
    n, block_rows, _ = inv_depth.shape
    dtype, device = inv_depth.dtype, inv_depth.device
    pos_x = _homogeneous(a_matrix, b_vector, 0, rows, inv_depth).div_(z)
    pos_y = _homogeneous(a_matrix, b_vector, 1, rows, inv_depth).div_(z)
    # A point lands if one of its neighbours is inside: position in (0, W + 1) x (0, H + 1),
    # i.e. pos * (W + 1 - pos) > 0 on both axes (NaN for invalid points fails).
    # The others (TrajectoryCrafter clamps them into the border) get weight 0 at their own
    # source pixel instead: piling them onto one border cell would serialise the scatter.
    inside_x = torch.sub(width + 1, pos_x).mul_(pos_x)
    inside_y = torch.sub(height + 1, pos_y).mul_(pos_y)
    lands = torch.minimum(inside_x, inside_y) > 0
    u = torch.arange(1, width + 1, dtype=dtype, device=device)
    v = torch.arange(rows.start + 1, rows.stop + 1, dtype=dtype, device=device)[:, None]
    pos_x = torch.where(lands, pos_x, u)
    pos_y = torch.where(lands, pos_y, v)
    x0, y0 = torch.floor(pos_x), torch.floor(pos_y)

    # TrajectoryCrafter's bilinear weights are 1 - (pos - floor) at floor and 1 - (ceil - pos)
    # at ceil, both 1 on an integer position, where floor and ceil are the same pixel. So, with
    # f = pos - floor: 1 - f (+ 1 if f == 0) at floor and f at floor + 1.
    fx = pos_x.sub_(x0)
    fy = pos_y.sub_(y0)
    gx = torch.sub(1.0, fx).masked_fill_(fx == 0, 2.0)
    gy = torch.sub(1.0, fy).masked_fill_(fy == 0, 2.0)
    if exponent is None:
        scale = lands.to(dtype)
    else:
        scale = target_depth.clamp(0.0, MAX_SPLAT_DEPTH).log1p_().mul_(exponent).exp_()
        scale = torch.where(lands, scale, 0.0)
    gx.mul_(scale)
    fx.mul_(scale)
    weights = [gy * gx, gy * fx, fy * gx, fy * fx]  # at +0, +1, +W+2, +W+3 from the floor

    # Flat cell index of the floor neighbour (in the floating dtype while exact: float32 holds
    # integers up to 2^24), plus each frame's canvas offset.
    padded = (height + 2) * (width + 2)
    index_dtype = dtype
    if dtype != torch.float64 and n * padded > _EXACT_FLOAT32_INTEGERS:
        index_dtype = torch.float64
    base = torch.add(x0.to(index_dtype), y0.to(index_dtype), alpha=width + 2)
    if n > 1:
        base += torch.arange(n, dtype=index_dtype, device=device)[:, None, None] * padded
    base = base.view(-1).long()
    indices = [base, base + 1, base + (width + 2), base + (width + 3)]

    if exponent is None:  # hard z-buffer: keep splats near the nearest depth on their pixel
        nearest = torch.full((n * padded,), torch.inf, dtype=dtype, device=device)
        depths = [torch.where(w > 0, target_depth, torch.inf).view(-1) for w in weights]
        for index, splat_depth in zip(indices, depths, strict=True):
            nearest.scatter_reduce_(0, index, splat_depth, reduce="amin")
        for weight, index, splat_depth in zip(weights, indices, depths, strict=True):
            keep = splat_depth <= nearest.gather(0, index).mul_(1.0 + HARD_ZBUFFER_RTOL)
            weight.mul_(keep.view(weight.shape))

    contribution = torch.empty_like(packed[0])
    for weight, index in zip(weights, indices, strict=True):
        for slot, values in enumerate(packed):
            torch.mul(weight, values, out=contribution)
            canvas[slot].scatter_add_(0, index, contribution.view(-1))


def _clean(warped: torch.Tensor, mask: torch.Tensor) -> None:
    """Blank every pixel within the 5x5 neighbourhood of a hole, in place."""
    holes = (~mask).to(warped.dtype)[:, None]
    near_hole = F.max_pool2d(holes, CLEAN_KERNEL, stride=1, padding=CLEAN_KERNEL // 2)[:, 0] > 0
    mask &= ~near_hole
    warped.mul_(mask[:, None])
