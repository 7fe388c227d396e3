"""Metrics ``psnr`` and ``psnr-nocc`` against the ground-truth target video.

``psnr`` covers the whole frame; ``psnr-nocc`` only the pixels the source reaches when it is
reprojected to the target camera (the paper's non-occluded region).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel

import devis_core
from devis_core.measures import psnr


class PSNRConfig(BaseModel):
    """PSNR has no settings: videos are compared on a data range of 1."""


class PSNR:
    """Peak signal-to-noise ratio per frame (dB), averaged over frames."""

    higher_is_better = True

    def __init__(self, config: PSNRConfig):
        self.config = config

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return psnr(prediction, target)


class MaskedPSNR(PSNR):
    """PSNR over the pixels visible after reprojection (PSNR-Nocc), averaged over frames."""

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if mask is None:
            raise ValueError("psnr-nocc needs the visibility mask of the reprojection")
        return psnr(prediction, target, mask)


@devis_core.hookimpl
def devis_register_metrics(register):
    register("psnr", PSNR, PSNRConfig)
    register("psnr-nocc", MaskedPSNR, PSNRConfig)
