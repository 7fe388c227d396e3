"""Image-quality formulas shared by metric and reward plugins, batched in torch.

They live in the core because several plugins use them (a metric against ground truth, a
reward against the reprojected source); they run on whatever device the videos are on.
Inputs are ``(T, 3, H, W)`` or ``(B, T, 3, H, W)`` in ``[0, 1]``; outputs are one value per
video (a 0-d tensor for an unbatched video, ``(B,)`` for a batch), averaged over frames.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


def as_batch(video: Tensor) -> tuple[Tensor, bool]:
    """``(B, T, C, H, W)`` view of a video or batch, and whether the input was batched."""
    if video.dim() == 5:
        return video, True
    if video.dim() == 4:
        return video.unsqueeze(0), False
    raise ValueError(f"expected (T, C, H, W) or (B, T, C, H, W), got shape {tuple(video.shape)}")


def psnr(
    prediction: Tensor, target: Tensor, mask: Tensor | None = None, data_range: float = 1.0
) -> Tensor:
    """PSNR per frame (over the masked pixels when ``mask`` is given), averaged over frames.

    Equals scikit-image's ``peak_signal_noise_ratio`` per frame. With a mask, frames with no
    visible pixel are left out of the average; a video with none at all gives NaN and a
    warning rather than a made-up number.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    pred, batched = as_batch(prediction)
    true, _ = as_batch(target)
    error = (pred.double() - true.double()).pow(2)
    if mask is None:
        mse = error.mean(dim=(2, 3, 4))
        per_frame = 10 * torch.log10(data_range**2 / mse)
        value = per_frame.mean(dim=1)
    else:
        weights, _ = as_batch(mask.unsqueeze(-3).to(error.dtype))
        weights = weights.expand_as(error)
        count = weights.sum(dim=(2, 3, 4))
        mse = (error * weights).sum(dim=(2, 3, 4)) / count.clamp_min(1)
        per_frame = 10 * torch.log10(data_range**2 / mse)
        seen = count > 0
        per_frame = torch.where(seen, per_frame, torch.zeros_like(per_frame))
        frames = seen.sum(dim=1)
        value = per_frame.sum(dim=1) / frames.clamp_min(1)
        value = torch.where(frames > 0, value, torch.full_like(value, float("nan")))
        if not bool(seen.any(dim=1).all()):
            warnings.warn("masked PSNR: a video has an empty mask; its value is NaN", stacklevel=2)
    value = value.to(prediction.dtype)
    return value if batched else value[0]
