"""Backbone ``inpaint``: a weight-free generator from classical inpainting.

Fills the holes of a render in two passes. First in time: a hole pixel takes its value from
the nearest frame in which that pixel was visible (the camera path of a render is smooth, so
this is usually the same surface a moment earlier or later). Then in space: what no frame saw
is painted with OpenCV's inpainting (Telea's fast marching or Navier-Stokes), frame by frame.
Visible pixels are never changed.

It is deterministic, needs no weights and runs on any accumulator: the embedded default
generator. It makes no claim of matching a diffusion model; it is a fair, transparent
baseline for comparing accumulation strategies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

import devis_core
from devis_core.lazy import lazy_import
from devis_core.types import Conditions

if TYPE_CHECKING:
    import cv2
    import numpy as np
    import torch
else:
    cv2 = lazy_import("cv2")
    np = lazy_import("numpy")
    torch = lazy_import("torch")

_METHODS = {"telea": "INPAINT_TELEA", "ns": "INPAINT_NS"}  # cv2 flags, read on use


class InpaintConfig(BaseModel):
    """Settings of the inpainting generator."""

    method: Literal["telea", "ns"] = Field(
        "telea", description="OpenCV inpainting: Telea (fast marching) or Navier-Stokes."
    )
    radius: float = Field(3.0, gt=0, description="Neighbourhood radius of inpainting, pixels.")
    temporal: bool = Field(
        True, description="First fill holes from the nearest frame where the pixel was visible."
    )


def fill_from_nearest_frame(
    video: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill each hole pixel from the nearest frame (in time) where it is visible.

    Returns the filled video and the mask of pixels that now have a value. Ties between an
    earlier and a later frame at the same distance go to the earlier one.
    """
    frames = video.shape[0]
    index = torch.arange(frames, device=video.device).view(-1, 1, 1).expand_as(mask)
    never = torch.full_like(index, -1)
    last_seen = torch.where(mask, index, never).cummax(dim=0).values
    flipped = torch.where(mask, index, torch.full_like(index, frames)).flip(0)
    next_seen = flipped.cummin(dim=0).values.flip(0)
    has_last, has_next = last_seen >= 0, next_seen < frames
    use_last = has_last & (~has_next | (index - last_seen <= next_seen - index))
    source = torch.where(use_last, last_seen, next_seen).clamp(0, frames - 1)
    gathered = torch.gather(video, 0, source.unsqueeze(1).expand_as(video))
    known = has_last | has_next
    filled = torch.where(known.unsqueeze(1), gathered, video)
    return filled, known


class InpaintBackbone:
    """Weight-free generator: temporal fill from nearby frames, then OpenCV inpainting."""

    def __init__(self, config: InpaintConfig):
        self.config = config

    def generate(self, cond: Conditions, generator: torch.Generator | None = None) -> torch.Tensor:
        video, known = cond.render, cond.mask
        if self.config.temporal:
            video, known = fill_from_nearest_frame(video, known)
        if bool(known.all()):
            return video.clone()
        frames = (video.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        holes = (~known).cpu().numpy().astype(np.uint8)
        painted = np.stack(
            [
                cv2.inpaint(np.ascontiguousarray(frame), hole, self.config.radius,
                            getattr(cv2, _METHODS[self.config.method])) if hole.any() else frame
                for frame, hole in zip(frames, holes, strict=True)
            ]
        )  # fmt: skip
        painted = torch.from_numpy(painted).to(video.device).permute(0, 3, 1, 2).float() / 255
        return torch.where(known.unsqueeze(1), video, painted)


@devis_core.hookimpl
def devis_register_backbones(register):
    register("inpaint", InpaintBackbone, InpaintConfig)
