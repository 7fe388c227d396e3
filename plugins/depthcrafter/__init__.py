"""Depth ``depthcrafter``: DepthCrafter video depth, converted to depth as TrajectoryCrafter does.

DepthCrafter (Hu et al.) is Stable Video Diffusion fine-tuned to output relative disparity,
consistent over long videos. The UNet comes from a local DepthCrafter directory, the VAE, CLIP
image encoder and scheduler from a local SVD-xt directory; the defaults are TrajectoryCrafter's
(5 steps, guidance 1.0, windows of 110 frames overlapping by 25, at most 1024 pixels). The
relative disparity is turned into depth with :func:`devis_core.toolkit.geometry.disparity_to_depth`.
``preset: tiny`` builds the same classes at CPU size with random weights, for tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import devis_core
from devis_plugins.depthcrafter.config import DepthCrafterConfig

if TYPE_CHECKING:
    from devis_plugins.depthcrafter.estimator import DepthCrafter

__all__ = ["DepthCrafterConfig", "build_depthcrafter"]


def build_depthcrafter(config: DepthCrafterConfig) -> DepthCrafter:
    """DepthCrafter video depth (SVD-based), converted to depth as TrajectoryCrafter does."""
    from devis_plugins.depthcrafter.estimator import DepthCrafter  # diffusers loads slowly

    return DepthCrafter(config)


@devis_core.hookimpl
def devis_register_depth_estimators(register):
    register("depthcrafter", build_depthcrafter, DepthCrafterConfig)
