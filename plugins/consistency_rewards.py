"""Reward term ``psnr-visible``: pixel fidelity to the reprojected source (Eq. 15).

PSNR between the generated video and the source reprojected to the target camera, inside the
visibility mask only: where the source was seen, the generation should not change it.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel

import devis_core
from devis_core.measures import psnr
from devis_core.types import RewardInputs


class VisiblePSNRConfig(BaseModel):
    """The visible-region PSNR term has no settings of its own."""


class VisiblePSNR:
    """PSNR (dB) between generated video and render, inside the visibility mask."""

    higher_is_better = True
    default_range = (10.0, 40.0)

    def __init__(self, config: VisiblePSNRConfig):
        self.config = config

    def score(self, batch: RewardInputs) -> torch.Tensor:
        return psnr(batch.generated, batch.render, batch.mask)


@devis_core.hookimpl
def devis_register_reward_terms(register):
    register("psnr-visible", VisiblePSNR, VisiblePSNRConfig)
