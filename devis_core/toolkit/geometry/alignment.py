"""Fitting estimated depth to reference depth: relative depth into the cameras' units.

Video depth models such as DepthCrafter predict disparity up to an unknown scale and shift,
while a dataset's cameras are metric (Kubric-4D, iPhone) or in COLMAP's units. Reprojecting
with one and moving the cameras with the other puts every point at the wrong distance, so
estimated depth is fitted per video, by least squares over the pixels known in both maps, to
depth in the cameras' units: a dense map, or sparse world points seen through the cameras
(:func:`sparse_depth`). The two models are the config's ``depth_alignment.mode`` values:

* ``scale``: ``depth * s``, for depth that is right up to its unit (fitted in disparity,
  ``1 / depth ~ (1 / s) / estimate``, so far pixels weigh little);
* ``scale-shift-disparity``: ``1 / depth ~ a / estimate + b``, affine in disparity, the
  alignment MiDaS and DepthCrafter use to compare relative depth with metric depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from devis_core.errors import UsageError
from devis_core.lazy import lazy_import
from devis_core.toolkit.geometry.cameras import project, transform_points
from devis_core.toolkit.geometry.depth import known_depth

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy_import("torch")

AlignmentMode = Literal["scale", "scale-shift-disparity"]


@dataclass(frozen=True)
class DepthFit:
    """A fitted alignment: ``scale`` is ``s`` or ``a``, ``shift`` is ``b`` (0 for ``scale``)."""

    mode: AlignmentMode
    scale: float
    shift: float
    pixels: int
    """How many pixels the fit used."""

    def apply(self, depth: Tensor) -> Tensor:
        """``depth`` in the reference's units; unknown pixels stay unknown.

        In disparity, a pixel whose aligned disparity is not positive lies at or beyond
        infinity: it becomes 0 (unknown) rather than a negative or infinite depth.
        """
        if self.mode == "scale":
            return depth * self.scale
        known = known_depth(depth)
        disparity = self.scale / torch.where(known, depth, 1.0) + self.shift
        return torch.where(known & (disparity > 0), 1.0 / disparity, 0.0)


def fit_depth(
    estimate: Tensor, reference: Tensor, mode: AlignmentMode, *, sample_id: str
) -> DepthFit:
    """The least-squares ``mode`` fit of ``estimate`` to ``reference`` (both ``(T, H, W)``).

    Raises :class:`~devis_core.errors.UsageError`, naming ``sample_id``, when the maps differ
    in shape, share no known pixel, cannot determine a shift (a constant estimate), or give a
    scale that is not positive (the estimate would turn the scene inside out).
    """
    where = f"depth alignment of sample {sample_id!r}"
    if estimate.shape != reference.shape:
        raise UsageError(
            f"{where}: the estimated depth is {tuple(estimate.shape)}, the reference depth "
            f"{tuple(reference.shape)}"
        )
    reference = reference.to(estimate.device)
    both = known_depth(estimate) & known_depth(reference)
    count = int(both.sum())
    if count == 0:
        raise UsageError(
            f"{where}: no pixel has both an estimated and a reference depth, so there is "
            "nothing to fit the estimate's scale to"
        )
    estimated, wanted = estimate[both].double(), reference[both].double()
    if mode == "scale":
        # in disparity, like the other mode: a few far pixels (a depth model's clip at 1e4)
        # would dominate a least-squares fit in depth and pull the whole scene to the camera
        near, wanted_near = 1.0 / estimated, 1.0 / wanted
        scale = float((near * near).sum() / (near * wanted_near).sum())
        shift = 0.0
    else:
        scale, shift = _fit_line(1.0 / estimated, 1.0 / wanted, where)
    if not (math.isfinite(scale) and math.isfinite(shift) and scale > 0):
        raise UsageError(
            f"{where}: the fitted scale is {scale:.6g} (shift {shift:.6g}); it must be "
            "positive: the estimated depth does not grow with the reference depth"
        )
    return DepthFit(mode, scale, shift, count)


def _fit_line(x: Tensor, y: Tensor, where: str) -> tuple[float, float]:
    """Slope and intercept of the least-squares line ``y ~ slope * x + intercept``."""
    centred = x - x.mean()
    spread = float((centred * centred).sum())
    if spread <= 1e-12 * float((x * x).sum()):
        raise UsageError(
            f"{where}: the estimated depth is constant over the {x.numel()} pixel(s) with "
            "reference depth, so a scale and a shift cannot both be fitted (use mode: scale)"
        )
    slope = float((centred * (y - y.mean())).sum()) / spread
    return slope, float(y.mean() - slope * x.mean())


def sparse_depth(points: Tensor, K: Tensor, w2c: Tensor, size: tuple[int, int]) -> Tensor:
    """Depth map ``(T, H, W)`` of world points ``(N, 3)`` seen by cameras ``w2c`` ``(T, 4, 4)``.

    Each point lands on the pixel whose centre is nearest its projection; where several land
    on one pixel the nearest is kept (the others are likely hidden behind it), and pixels
    that no point reaches are 0 (unknown). ``K`` is ``(3, 3)`` or ``(T, 3, 3)``.
    """
    height, width = size
    frames = w2c.shape[0]
    seen = transform_points(w2c, points.to(w2c.dtype).expand(frames, -1, -1))
    pixels, z = project(seen, K)
    column, row = pixels.round().unbind(-1)
    inside = (z > 0) & (column >= 0) & (column < width) & (row >= 0) & (row < height)
    frame = torch.arange(frames, device=z.device).unsqueeze(1).expand_as(z)[inside]
    index = (frame * height + row[inside].long()) * width + column[inside].long()
    nearest = torch.full((frames * height * width,), math.inf, dtype=z.dtype, device=z.device)
    nearest.scatter_reduce_(0, index, z[inside], reduce="amin")
    return torch.where(torch.isinf(nearest), 0.0, nearest).view(frames, height, width)
