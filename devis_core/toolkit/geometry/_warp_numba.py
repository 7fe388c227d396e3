"""Compiled CPU kernels of :func:`devis_core.toolkit.geometry.forward_warp` (its ``numba`` backend).

Same model and same arithmetic as the torch path of :mod:`devis_core.toolkit.geometry.warp`: the
same ``A``/``b`` folding and order of operations, in the inputs' dtype. The torch path spends
its time launching hundreds of small kernels per frame and in the scattered memory traffic of
``scatter_add_``; here each frame takes four passes over its pixels:

1. ``_project`` (vectorised by LLVM): each point's position, NaN where it does not land, and
   its depth in the target camera;
2. the soft z-buffer weight ``exp(-50 log(1 + z) / max log(1 + z))`` by NumPy's SIMD ``log1p``
   and ``exp``, an order of magnitude faster than scalar calls in a loop;
3. ``_splat``: each landing point adds its 4 bilinear splats into a padded canvas whose cells
   hold the channels and the weight side by side, in groups of ``_LANES`` values, so that a
   splat of RGB and its weight is one vector read-modify-write of a 16- or 32-byte block per
   neighbour (``_splat_point``; numba leaves such short loops scalar);
4. ``_normalise``: the weighted sums over the summed weights, and the mask.

Frames are spread over Python threads calling GIL-free kernels, each thread with its own
buffers, rather than over numba's ``prange``: no threading layer to configure (OpenMP would
compete with PyTorch's), calls from several threads at once are safe, and frames go to
whichever thread is free, which keeps both busy when other processes compete for the cores.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.typing.templates import Signature
from numba.extending import intrinsic

from devis_core.toolkit.geometry.splat_model import (
    CLEAN_KERNEL,
    HARD_ZBUFFER_RTOL,
    MAX_SPLAT_DEPTH,
    SOFT_ZBUFFER_SHARPNESS,
)

_LANES = 4
"""Canvas values per group: RGB and the weight, the usual case, fill exactly one."""


def warp_video(
    frames: np.ndarray,
    depth: np.ndarray,
    a_matrix: np.ndarray,
    b_vector: np.ndarray,
    *,
    soft: bool,
    clean: bool,
    workers: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp (T, C, H, W) ``frames`` with ``workers`` threads: ``(warped, mask)``.

    ``depth`` (T, H, W), ``a_matrix`` (T, 3, 3) and ``b_vector`` (T, 3) are in the frames' dtype,
    all C-contiguous (``warp._pixel_maps`` defines ``A`` and ``b``). The outputs are NumPy
    allocations: NumPy asks Linux for huge pages for large arrays, which makes first touching
    a video-sized output several times cheaper than with PyTorch's allocator.
    """
    n_frames, channels, height, width = frames.shape
    dtype = frames.dtype
    real = dtype.type
    out = np.empty(frames.shape, dtype=dtype)
    out_mask = np.empty((n_frames, height, width), dtype=np.bool_)
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(n_frames):
        pending.put(index)

    def work() -> None:
        groups = channels // _LANES + 1  # the channels and the weight
        canvas = np.empty((groups, (height + 2) * (width + 2), _LANES), dtype=dtype)
        pos_x, pos_y, target_depth, scale = np.empty((4, height, width), dtype=dtype)
        nearest = np.empty(0 if soft else (height + 2) * (width + 2), dtype=dtype)
        while True:
            try:
                i = pending.get_nowait()
            except queue.Empty:
                return
            _project(depth[i], a_matrix[i], b_vector[i], pos_x, pos_y, target_depth)
            if soft:  # deepest valid point of the frame, off-screen ones included
                deepest = min(target_depth.max(), real(MAX_SPLAT_DEPTH))
                peak = max(np.log1p(deepest), real(np.finfo(dtype).tiny))
                # A frame where nothing lands gets -inf and NaN weights, unused, as in torch.
                with np.errstate(over="ignore", invalid="ignore"):
                    np.minimum(target_depth, real(MAX_SPLAT_DEPTH), out=scale)
                    np.log1p(scale, out=scale)
                    np.multiply(scale, real(-SOFT_ZBUFFER_SHARPNESS) / peak, out=scale)
                    np.exp(scale, out=scale)
            else:
                scale.fill(1.0)
                _nearest(pos_x, pos_y, target_depth, nearest)
            _splat(frames[i], pos_x, pos_y, scale, target_depth, nearest, canvas)
            _normalise(canvas, out[i], out_mask[i])
            if clean:
                _clean(out[i], out_mask[i])

    workers = max(1, min(workers, n_frames))
    if workers == 1:
        work()
    else:
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(work) for _ in range(workers)]:
                future.result()  # re-raises the workers' exceptions
    return out, out_mask


@intrinsic
def _fma(
    typingctx: object, a: types.Type, b: types.Type, c: types.Type
) -> tuple[Signature, Callable[..., object]] | None:
    """``a * b + c`` rounded once, as PyTorch's CPU ``addcmul`` computes it.

    Points that land exactly on a pixel in exact arithmetic must land on it here too (a frame
    warped to a camera moved along its axis, say), or they leak a 1e-16 weight into a neighbour
    and change the mask.
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(
        context: object, builder: ir.IRBuilder, signature: Signature, args: tuple
    ) -> ir.Value:
        return builder.fma(*args)

    return a(a, b, c), codegen


@intrinsic
def _splat_point(
    typingctx: object,
    cells: types.Type,
    cell: types.Type,
    stride: types.Type,
    values: types.Type,
    weights: types.Type,
) -> tuple[Signature, Callable[..., object]] | None:
    """``cells[cell + offset] += weight * values`` for the 4 bilinear neighbours.

    ``offset`` runs over 0, 1, ``stride``, ``stride + 1`` and ``weight`` over the 4-tuple
    ``weights``; ``values`` is a ``_LANES``-tuple. The splat is bound by these read-modify-writes:
    as whole-row vector operations they are about twice as fast as a loop over the lanes. Each
    product is rounded before its sum, as in the torch path.
    """
    real = cells.dtype if isinstance(cells, types.Array) else None
    if not (
        isinstance(real, types.Float)
        and cells == types.Array(real, 2, "C")
        and isinstance(cell, types.Integer)
        and isinstance(stride, types.Integer)
        and values == types.UniTuple(real, _LANES)
        and weights == types.UniTuple(real, 4)
    ):
        return None

    def codegen(
        context: object, builder: ir.IRBuilder, signature: Signature, args: tuple
    ) -> ir.Value:
        cells_arg, cell_arg, stride_arg, values_arg, weights_arg = args
        vector = ir.VectorType(context.get_data_type(real), _LANES)
        lane_index = ir.IntType(32)
        everywhere = ir.Constant(ir.VectorType(lane_index, _LANES), [0] * _LANES)

        source = ir.Constant(vector, ir.Undefined)
        for lane in range(_LANES):
            value = builder.extract_value(values_arg, lane)
            source = builder.insert_element(source, value, lane_index(lane))
        data = context.make_array(cells)(context, builder, cells_arg).data
        one, lanes = ir.Constant(cell_arg.type, 1), ir.Constant(cell_arg.type, _LANES)
        stride_arg = builder.sext(stride_arg, cell_arg.type)
        below = builder.add(cell_arg, stride_arg)
        for k, row in enumerate(
            (cell_arg, builder.add(cell_arg, one), below, builder.add(below, one))
        ):
            first = builder.gep(data, [builder.mul(row, lanes)])
            target = builder.bitcast(first, vector.as_pointer())
            weight = builder.extract_value(weights_arg, k)
            weight = builder.insert_element(
                ir.Constant(vector, ir.Undefined), weight, lane_index(0)
            )
            weight = builder.shuffle_vector(weight, weight, everywhere)  # in every lane
            total = builder.fadd(builder.load(target, align=1), builder.fmul(weight, source))
            builder.store(total, target, align=1)
        return context.get_dummy_value()

    return types.void(cells, cell, stride, values, weights), codegen


@njit(cache=True, nogil=True, error_model="numpy")
def _project(
    depth: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    pos_x: np.ndarray,
    pos_y: np.ndarray,
    target_depth: np.ndarray,
) -> None:
    """Padded-canvas positions (``pos_x`` NaN where the point does not land) and target depths.

    ``target_depth`` is 0 for the points that never land (unknown depth, behind the target
    camera) and the depth in the target camera for the others, off-screen ones included.
    """
    height, width = depth.shape
    real = depth.dtype.type
    one, nan = real(1.0), real(np.nan)
    x_end, y_end = real(width + 1), real(height + 1)
    for v in range(height):
        fv = real(v)
        for u in range(width):
            fu = real(u)
            inv = one / depth[v, u]
            # A [u, v, 1] + b / depth in warp._homogeneous's order of operations.
            x = _fma(inv, b[0], (a[0, 1] * fv + a[0, 2]) + a[0, 0] * fu)
            y = _fma(inv, b[1], (a[1, 1] * fv + a[1, 2]) + a[1, 0] * fu)
            z = _fma(inv, b[2], (a[2, 1] * fv + a[2, 2]) + a[2, 0] * fu)
            # 0, negative, NaN, inf and denormal depths fail the first two tests, points behind
            # the target camera the last; a neighbour is in the image if the position is in
            # (0, W + 1) x (0, H + 1).
            valid = (inv > 0) & (inv < np.inf) & (z > 0)
            px, py = x / z, y / z
            lands = valid & ((x_end - px) * px > 0) & ((y_end - py) * py > 0)
            pos_x[v, u] = px if lands else nan
            pos_y[v, u] = py
            target_depth[v, u] = z * depth[v, u] if valid else real(0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _bilinear(
    px: float, py: float, scale: float, stride: int
) -> tuple[int, float, float, float, float]:
    """Canvas cell of the floor neighbour and the weights at +0, +1, +stride, +stride + 1.

    TrajectoryCrafter's weights are 1 - (pos - floor) at floor and 1 - (ceil - pos) at ceil,
    both 1 on an integer position, where floor and ceil are the same pixel: with
    f = pos - floor, 1 - f (2 if f == 0) at floor and f at floor + 1.
    """
    one, two = type(px)(1.0), type(px)(2.0)
    x0, y0 = np.floor(px), np.floor(py)
    fx, fy = px - x0, py - y0
    gx = (two if fx == 0 else one - fx) * scale
    gy = two if fy == 0 else one - fy
    fx *= scale
    cell = int(y0) * stride + int(x0)
    return cell, gy * gx, gy * fx, fy * gx, fy * fx


@njit(cache=True, nogil=True, error_model="numpy")
def _nearest(
    pos_x: np.ndarray, pos_y: np.ndarray, target_depth: np.ndarray, nearest: np.ndarray
) -> None:
    """Hard z-buffer: the nearest target depth splatting a positive weight into each cell."""
    height, width = pos_x.shape
    stride = width + 2
    one = pos_x.dtype.type(1.0)
    nearest[:] = np.inf
    for v in range(height):
        for u in range(width):
            px = pos_x[v, u]
            if px != px:
                continue
            cell, w0, w1, w2, w3 = _bilinear(px, pos_y[v, u], one, stride)
            depth = target_depth[v, u]
            for offset, weight in ((0, w0), (1, w1), (stride, w2), (stride + 1, w3)):
                if weight > 0:
                    nearest[cell + offset] = min(nearest[cell + offset], depth)


@njit(cache=True, nogil=True, error_model="numpy")
def _splat(
    frame: np.ndarray,
    pos_x: np.ndarray,
    pos_y: np.ndarray,
    scale: np.ndarray,
    target_depth: np.ndarray,
    nearest: np.ndarray,
    canvas: np.ndarray,
) -> None:
    """Add every landing point's 4 splats into ``canvas`` (groups, (H + 2) * (W + 2), lanes).

    The canvas is padded by one pixel like the torch path's: neighbours outside the image fall
    in the border, cropped by ``_normalise``. Its lanes hold the channels, then a constant 1
    (summing the weights), then zeros. With a non-empty ``nearest`` (hard z-buffer) only the
    splats within ``HARD_ZBUFFER_RTOL`` of a cell's nearest depth count.
    """
    channels, height, width = frame.shape
    stride = width + 2
    real = frame.dtype.type
    hard = nearest.size > 0
    ratio = real(1.0 + HARD_ZBUFFER_RTOL)
    canvas[:] = 0.0
    for v in range(height):
        for u in range(width):
            px = pos_x[v, u]
            if px != px:
                continue
            cell, w0, w1, w2, w3 = _bilinear(px, pos_y[v, u], scale[v, u], stride)
            if hard:
                depth = target_depth[v, u]
                w0 = w0 if w0 > 0 and depth <= nearest[cell] * ratio else real(0.0)
                w1 = w1 if w1 > 0 and depth <= nearest[cell + 1] * ratio else real(0.0)
                w2 = w2 if w2 > 0 and depth <= nearest[cell + stride] * ratio else real(0.0)
                w3 = w3 if w3 > 0 and depth <= nearest[cell + stride + 1] * ratio else real(0.0)
            for g in range(canvas.shape[0]):
                lanes = (
                    _lane(frame, g * _LANES, v, u),
                    _lane(frame, g * _LANES + 1, v, u),
                    _lane(frame, g * _LANES + 2, v, u),
                    _lane(frame, g * _LANES + 3, v, u),
                )
                _splat_point(canvas[g], cell, stride, lanes, (w0, w1, w2, w3))


@njit(cache=True, nogil=True, error_model="numpy")
def _lane(frame: np.ndarray, lane: int, v: int, u: int) -> float:
    """Canvas lane ``lane`` of pixel (v, u): its channel, 1 just after the last one, then 0."""
    channels = frame.shape[0]
    if lane < channels:
        return frame[lane, v, u]
    return frame.dtype.type(1.0 if lane == channels else 0.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _normalise(canvas: np.ndarray, out: np.ndarray, out_mask: np.ndarray) -> None:
    """Weighted sums over summed weights (0 in holes) and mask = weight > 0, border cropped."""
    channels, height, width = out.shape
    stride = width + 2
    weights = canvas[channels // _LANES, :, channels % _LANES]
    for v in range(height):
        start = (v + 1) * stride + 1
        for u in range(width):
            out_mask[v, u] = weights[start + u] > 0
        for c in range(channels):
            sums = canvas[c // _LANES, :, c % _LANES]
            for u in range(width):
                weight = weights[start + u]
                # Dividing (not multiplying by a reciprocal) keeps the ratio in the inputs' range.
                out[c, v, u] = sums[start + u] / weight if weight > 0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _clean(out: np.ndarray, out_mask: np.ndarray) -> None:
    """Blank every pixel within the 5x5 neighbourhood of a hole, in place (separable dilation).

    Pixels outside the image do not count as holes.
    """
    channels, height, width = out.shape
    radius = CLEAN_KERNEL // 2
    holes = ~out_mask
    near_row = holes.copy()  # a hole within ``radius`` columns
    for shift in range(1, radius + 1):
        for v in range(height):
            for u in range(shift, width):
                near_row[v, u] |= holes[v, u - shift]
                near_row[v, u - shift] |= holes[v, u]
    near = near_row.copy()  # ... and within ``radius`` rows of that
    for shift in range(1, radius + 1):
        for v in range(shift, height):
            for u in range(width):
                near[v, u] |= near_row[v - shift, u]
                near[v - shift, u] |= near_row[v, u]
    for v in range(height):
        for u in range(width):
            if near[v, u]:
                out_mask[v, u] = False
                for c in range(channels):
                    out[c, v, u] = 0.0
