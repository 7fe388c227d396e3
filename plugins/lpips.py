"""Metric ``lpips``: learned perceptual distance to the ground-truth target (Zhang et al. 2018).

Computed per frame with the ``lpips`` package (AlexNet trunk by default, VGG as an option) and
averaged over frames. The trunk's ImageNet weights are read from a local file
(:mod:`devis_core.toolkit.lpips_network` says which file and where to get it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import devis_core
from devis_core.lazy import lazy_import
from devis_core.toolkit.lpips_network import LPIPSDistance, LPIPSSettings

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class LPIPSConfig(LPIPSSettings):
    """LPIPS network and where its trunk weights are."""


class LPIPSMetric:
    """LPIPS per frame against the target, averaged over frames (lower is better)."""

    higher_is_better = False

    def __init__(self, config: LPIPSConfig):
        self.config = config
        self.distance = LPIPSDistance(config)

    def to(self, device: torch.device | str) -> LPIPSMetric:
        self.distance.to(device)
        return self

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.distance(prediction, target)


@devis_core.hookimpl
def devis_register_metrics(register):
    register("lpips", LPIPSMetric, LPIPSConfig)
