"""Metrics ``psnr``, ``ssim``, ``psnr-nocc`` and ``ssim-nocc`` against the ground-truth target.

``psnr`` and ``ssim`` cover the whole frame and equal scikit-image's per frame; the ``-nocc``
variants count only the pixels the source reaches when it is reprojected to the target camera
(the paper's non-occluded region), SSIM with the Kubric-4D masked definition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

import devis_core
from devis_core.lazy import lazy_import
from devis_core.toolkit.measures import psnr, ssim

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class PSNRConfig(BaseModel):
    """PSNR has no settings: videos are compared on a data range of 1."""


class SSIMConfig(BaseModel):
    """SSIM has no settings: scikit-image's defaults on a data range of 1."""


class PSNR:
    """Peak signal-to-noise ratio per frame (dB), averaged over frames."""

    higher_is_better = True

    def __init__(self, config: BaseModel):
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
        return psnr(prediction, target, _required(mask, "psnr-nocc"))


class SSIM(PSNR):
    """Structural similarity per frame (scikit-image's defaults), averaged over frames."""

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return ssim(prediction, target)


class MaskedSSIM(PSNR):
    """SSIM inside the eroded visibility mask (SSIM-Nocc, Kubric-4D), averaged over frames."""

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return ssim(prediction, target, _required(mask, "ssim-nocc"))


def _required(mask: torch.Tensor | None, name: str) -> torch.Tensor:
    if mask is None:
        raise ValueError(f"{name} needs the visibility mask of the reprojection")
    return mask


@devis_core.hookimpl
def devis_register_metrics(register):
    register("psnr", PSNR, PSNRConfig)
    register("psnr-nocc", MaskedPSNR, PSNRConfig)
    register("ssim", SSIM, SSIMConfig)
    register("ssim-nocc", MaskedSSIM, SSIMConfig)
