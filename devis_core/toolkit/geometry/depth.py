"""Depth the warper can use: from a video model's relative disparity, or carried by a render."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devis_core.errors import UsageError
from devis_core.lazy import lazy_import

if TYPE_CHECKING:
    import numpy as np
    import torch
    from scipy import ndimage
else:
    np = lazy_import("numpy")
    torch = lazy_import("torch")
    ndimage = lazy_import("scipy.ndimage")


def disparity_to_depth(
    disparity: torch.Tensor, *, near: float = 1e-4, far: float = 1e4
) -> torch.Tensor:
    """Depth (T, H, W) from relative disparity (T, H, W), exactly as TrajectoryCrafter does.

    TrajectoryCrafter's diffusion model was trained on point-cloud renders built from
    DepthCrafter disparity converted this way, so reusing the conversion keeps the renders (and
    the ``pivot_depth`` cap of 5 scene units) on the scale it knows: the disparity is min-max
    normalised over the whole video, scaled by 3900, floored at 1e-5, inverted as
    ``10000 / value`` and clipped to ``[near, far]``. The nearest pixel therefore sits at
    10000 / 3900 ~= 2.56 and zero disparity at ``far``. A constant video (no range to
    normalise) maps to ``far`` everywhere instead of dividing by zero.
    """
    disparity = disparity.float() if not disparity.is_floating_point() else disparity
    low, high = disparity.min(), disparity.max()
    span = high - low
    normalised = (disparity - low) / span if span > 0 else torch.zeros_like(disparity)
    scaled = (normalised * 3900.0).clamp_min(1e-5)
    return (10000.0 / scaled).clamp(near, far)


def known_depth(depth: torch.Tensor) -> torch.Tensor:
    """Where depth is known: finite and positive (0 or non-finite means unknown)."""
    return torch.isfinite(depth) & (depth > 0)


def require_known_depth(depth: torch.Tensor, what: str) -> torch.Tensor:
    """``depth`` if some pixel of it is known, else a :class:`UsageError` about ``what``.

    Depth with no known pixel lifts no point: every render is empty and every masked score NaN,
    so the run would mean nothing; the error says whose depth it was instead.
    """
    if not bool(known_depth(depth).any()):
        raise UsageError(
            f"{what} has no valid depth: every value is NaN, infinite or <= 0 (unknown)"
        )
    return depth


def fill_from_nearest(depth: torch.Tensor) -> torch.Tensor:
    """Per frame, replace unknown depth (<= 0 or non-finite) by the nearest known pixel's.

    How depth carried by a render (known where points landed) covers the holes a generator
    painted: the nearest surface is the simplest depth consistent with invented colours.
    """
    known = known_depth(depth).cpu().numpy()
    values = depth.detach().cpu().numpy()
    filled = np.empty_like(values)
    for index in range(values.shape[0]):
        if not known[index].any():
            raise UsageError(f"frame {index} has no pixel with known depth to carry")
        nearest = ndimage.distance_transform_edt(
            ~known[index], return_distances=False, return_indices=True
        )
        filled[index] = values[index][tuple(nearest)]
    return torch.from_numpy(filled).to(depth.device)
