"""Reward terms ``psnr-visible``, ``ssim-visible`` and ``lpips-source`` (Eq. 15-16).

Pixel-level fidelity: PSNR and SSIM between the generated video and the source reprojected to
the target camera, inside the visibility mask only (where the source was seen, the generation
should not change it). Semantic-level fidelity: LPIPS between the generated video and the
source video itself, frame by frame (lower is better).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

import devis_core
from devis_core.lazy import lazy_import
from devis_core.toolkit.lpips_network import LPIPSDistance, LPIPSSettings
from devis_core.toolkit.measures import psnr, ssim
from devis_core.types import RewardInputs

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class VisiblePSNRConfig(BaseModel):
    """The visible-region PSNR term has no settings of its own."""


class VisibleSSIMConfig(BaseModel):
    """The visible-region SSIM term has no settings of its own."""


class SourceLPIPSConfig(LPIPSSettings):
    """LPIPS network and where its trunk weights are."""


class VisiblePSNR:
    """PSNR (dB) between generated video and render, inside the visibility mask."""

    higher_is_better = True
    default_range = (10.0, 40.0)

    def __init__(self, config: VisiblePSNRConfig):
        self.config = config

    def score(self, batch: RewardInputs) -> torch.Tensor:
        return psnr(batch.generated, batch.render, batch.mask)


class VisibleSSIM:
    """SSIM between generated video and render, inside the eroded visibility mask."""

    higher_is_better = True
    default_range = (0.0, 1.0)

    def __init__(self, config: VisibleSSIMConfig):
        self.config = config

    def score(self, batch: RewardInputs) -> torch.Tensor:
        return ssim(batch.generated, batch.render, batch.mask)


class SourceLPIPS:
    """LPIPS between the generated video and the source video, per frame (lower is better)."""

    higher_is_better = False
    default_range = (0.0, 1.0)

    def __init__(self, config: SourceLPIPSConfig):
        self.config = config
        self.distance = LPIPSDistance(config)

    def to(self, device: torch.device | str) -> SourceLPIPS:
        self.distance.to(device)
        return self

    def score(self, batch: RewardInputs) -> torch.Tensor:
        return self.distance(batch.generated, batch.source)


@devis_core.hookimpl
def devis_register_reward_terms(register):
    register("psnr-visible", VisiblePSNR, VisiblePSNRConfig)
    register("ssim-visible", VisibleSSIM, VisibleSSIMConfig)
    register("lpips-source", SourceLPIPS, SourceLPIPSConfig)
