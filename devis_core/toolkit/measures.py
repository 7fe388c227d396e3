"""Image-quality formulas shared by metric and reward plugins, batched in torch.

They live in the core because several plugins use them (a metric against ground truth, a
reward against the reprojected source); they run on whatever device the videos are on.
Inputs are ``(T, 3, H, W)`` or ``(B, T, 3, H, W)`` in ``[0, 1]``; outputs are one value per
video (a 0-d tensor for an unbatched video, ``(B,)`` for a batch), averaged over frames.
Masks are ``(T, H, W)`` or ``(B, T, H, W)`` booleans, True where the reprojected source is
visible; frames with nothing visible are left out of a video's average, and a video with no
visible frame at all is NaN (with a warning), never a made-up number.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

from devis_core.lazy import lazy_import

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy_import("torch")


SSIM_WINDOW = 7
"""Side of scikit-image's default uniform SSIM window (and of the Kubric-4D masked SSIM)."""

CHUNK_ELEMENTS = {"cpu": 1 << 20, "other": 1 << 24}
"""Elements of one intermediate map when frames are processed a few at a time: on the CPU,
chunks that stay in cache (these filters are memory bound); on accelerators, large ones."""


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
    batch, frames, channels, height, width = pred.shape
    flat_pred = pred.reshape(batch * frames, channels, height, width)
    flat_true = true.reshape(batch * frames, channels, height, width)
    flat_mask = None
    if mask is not None:
        masks, _ = as_batch(mask.unsqueeze(-3))
        flat_mask = masks.reshape(batch * frames, 1, height, width)
    sums, counts = [], []
    for start, stop in frame_chunks(batch * frames, channels * height * width, pred.device):
        error = (flat_pred[start:stop] - flat_true[start:stop]).square()
        if flat_mask is None:
            counts.append(
                torch.full((stop - start,), channels * height * width, device=pred.device)
            )
        else:
            visible = flat_mask[start:stop]
            error = error * visible
            counts.append(visible.sum(dim=(1, 2, 3)) * channels)
        sums.append(error.sum(dim=(1, 2, 3), dtype=torch.float64))  # exact enough: float64 sums
    count = torch.cat(counts).reshape(batch, frames).double()
    mse = torch.cat(sums).reshape(batch, frames) / count.clamp_min(1)
    per_frame = 10 * torch.log10(data_range**2 / mse)
    value = _masked_frame_mean(per_frame, count > 0, "masked PSNR")
    value = value.to(prediction.dtype)
    return value if batched else value[0]


def ssim(
    prediction: Tensor, target: Tensor, mask: Tensor | None = None, data_range: float = 1.0
) -> Tensor:
    """SSIM per frame, averaged over frames; inside the eroded mask when ``mask`` is given.

    Without a mask this equals scikit-image's ``structural_similarity`` with its defaults
    (7x7 uniform window, sample covariance, ``K1 = 0.01``, ``K2 = 0.03``, a 3-pixel border
    cropped from the SSIM map, channels averaged). With a mask it is the masked SSIM of the
    Kubric-4D evaluation: the same map, averaged over the mask eroded by 3 pixels (a 7x7
    square, so every window counted lies wholly in the visible region), then over channels.
    Computed in float32 on inputs centred on 0.5, which keeps the variances exact to about
    1e-7; a few frames at a time, so memory stays bounded for long, large videos.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    pred, batched = as_batch(prediction)
    true, _ = as_batch(target)
    batch, frames, channels, height, width = pred.shape
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    flat_pred = pred.reshape(batch * frames, channels, height, width)
    flat_true = true.reshape(batch * frames, channels, height, width)
    flat_mask = None
    if mask is not None:
        masks, _ = as_batch(mask.unsqueeze(-3))
        if masks.shape[:2] != (batch, frames) or masks.shape[-2:] != (height, width):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not fit the videos")
        flat_mask = masks.reshape(batch * frames, height, width)
    sums, counts = [], []
    for start, stop in frame_chunks(batch * frames, channels * height * width, pred.device):
        smap = ssim_map(flat_pred[start:stop], flat_true[start:stop], data_range).double()
        if flat_mask is None:
            sums.append(smap.mean(dim=(1, 2, 3)))
            counts.append(torch.ones_like(sums[-1]))
        else:
            kept = eroded(flat_mask[start:stop], SSIM_WINDOW // 2).unsqueeze(1).expand_as(smap)
            counts.append(kept.sum(dim=(1, 2, 3)).double())
            sums.append(torch.where(kept, smap, 0.0).sum(dim=(1, 2, 3)) / counts[-1].clamp_min(1))
    per_frame = torch.cat(sums).reshape(batch, frames)
    seen = torch.cat(counts).reshape(batch, frames) > 0
    value = _masked_frame_mean(per_frame, seen, "masked SSIM")
    value = value.to(prediction.dtype)
    return value if batched else value[0]


def ssim_map(prediction: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """The SSIM map of ``(N, C, H, W)`` frames, border already cropped: ``(N, C, H-6, W-6)``.

    scikit-image filters with reflected borders and then crops the 3 pixels the reflection
    reaches, so the map it averages is exactly the "valid" box filter computed here.
    """
    centre = 0.5 * data_range
    x = prediction.float() - centre
    y = target.float() - centre
    stats = box_mean(torch.stack([x, y, x * x + y * y, x * y]), SSIM_WINDOW)
    mean_x, mean_y, mean_sq, mean_xy = stats.unbind(0)
    n = SSIM_WINDOW * SSIM_WINDOW
    cov_norm = n / (n - 1)  # sample covariance, as scikit-image's default
    var_sum = cov_norm * (mean_sq - mean_x * mean_x - mean_y * mean_y)
    cov_xy = cov_norm * (mean_xy - mean_x * mean_y)
    mean_x = mean_x + centre
    mean_y = mean_y + centre
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)
    denominator = (mean_x * mean_x + mean_y * mean_y + c1) * (var_sum + c2)
    return numerator / denominator


def box_mean(x: Tensor, size: int) -> Tensor:
    """Mean over every ``size x size`` window of the last two dimensions ("valid" windows)."""
    return x.unfold(-1, size, 1).sum(-1).unfold(-2, size, 1).sum(-1) / (size * size)


def eroded(mask: Tensor, radius: int) -> Tensor:
    """``(N, H, W)`` mask eroded by a ``(2r+1)`` square, the ``r``-pixel border cropped.

    A pixel stays True when its whole window is True; the result is ``(N, H-2r, W-2r)``,
    aligned with :func:`ssim_map` for ``r = 3``.
    """
    size = 2 * radius + 1
    counts = mask.float().unfold(-1, size, 1).sum(-1).unfold(-2, size, 1).sum(-1)
    return counts > size * size - 0.5


def temporal_flicker(video: Tensor) -> Tensor:
    """VBench's temporal flickering: ``(255 - mean |frame[t+1] - frame[t]|) / 255``.

    VBench reads 8-bit frames, so the video is first quantised to the levels
    ``round(255 x)``; the mean absolute difference runs over every pixel and channel of each
    consecutive pair, then over pairs.
    Higher is steadier; a video of one frame has no pair and gives NaN.
    """
    frames, batched = as_batch(video)
    if frames.shape[1] < 2:
        warnings.warn("temporal flicker needs at least two frames; the value is NaN", stacklevel=2)
        value = torch.full(frames.shape[:1], float("nan"), device=video.device)
    else:
        values = to_uint8_levels(frames)
        difference = (values[:, 1:] - values[:, :-1]).abs().mean(dim=(2, 3, 4))
        value = (255.0 - difference.mean(dim=1)) / 255.0
    value = value.to(video.dtype)
    return value if batched else value[0]


def to_uint8_levels(video: Tensor) -> Tensor:
    """The 0..255 integer levels an 8-bit encoder stores for ``[0, 1]`` values, as float64."""
    return torch.round(video.double().clamp(0, 1) * 255.0)


def frame_chunks(
    count: int, elements_per_item: int, device: torch.device
) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges over ``count`` frames, sized for ``device`` (``CHUNK_ELEMENTS``)."""
    budget = CHUNK_ELEMENTS["cpu" if device.type == "cpu" else "other"]
    step = max(1, budget // max(1, elements_per_item))
    for start in range(0, count, step):
        yield start, min(count, start + step)


def _masked_frame_mean(per_frame: Tensor, seen: Tensor, what: str) -> Tensor:
    """Mean over the frames marked ``seen``; NaN (and a warning) for a video with none."""
    per_frame = torch.where(seen, per_frame, torch.zeros_like(per_frame))
    frames = seen.sum(dim=1)
    value = per_frame.sum(dim=1) / frames.clamp_min(1)
    value = torch.where(frames > 0, value, torch.full_like(value, float("nan")))
    if not bool((frames > 0).all()):
        warnings.warn(f"{what}: a video has an empty mask; its value is NaN", stacklevel=3)
    return value
