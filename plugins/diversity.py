"""Metrics ``lpips-diversity``, ``clip-diversity`` and ``pixel-diversity``: how different the
samples of a group are.

Table 3 of the paper measures the diversity of a sampling group as the mean pairwise LPIPS
and the mean pairwise CLIP-embedding distance between its videos. Both metrics take the
group as one batch ``(G, T, 3, H, W)`` (``target`` and ``mask`` are ignored) and return, for
each video, its mean distance to the other ``G - 1``; the mean of that vector is the mean
pairwise distance of the group. Distances are per frame (frame ``t`` against frame ``t``),
averaged over frames; the CLIP distance is ``1 - cosine`` of CLIP ViT-L/14 image embeddings.
``pixel-diversity`` (not in the paper) is the same with the RMSE of the pixels as the distance:
it needs no weights, so toy-scale runs can report a diversity. A single video has no pair: NaN
with a warning.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

import devis_core
from devis_core.lazy import lazy_import
from devis_core.toolkit.clip_network import CLIPImageEmbedder
from devis_core.toolkit.lpips_network import LPIPSDistance, LPIPSSettings

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class LPIPSDiversityConfig(LPIPSSettings):
    """LPIPS network and where its trunk weights are."""


class PixelDiversityConfig(BaseModel):
    """No settings: the distance is the pixel RMSE."""


class CLIPDiversityConfig(BaseModel):
    """Where the CLIP ViT-L/14 checkpoint is."""

    clip_path: Path | None = Field(
        None, description="Local Hugging Face directory of openai/clip-vit-large-patch14."
    )


class _GroupDiversity(ABC):
    """Per video, the mean of its distances to the other videos of the batch."""

    higher_is_better = True

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if prediction.dim() != 5 or prediction.shape[0] < 2:
            warnings.warn(
                "diversity needs a group of at least two videos (G, T, 3, H, W); NaN",
                stacklevel=2,
            )
            count = prediction.shape[0] if prediction.dim() == 5 else 1
            value = torch.full((count,), float("nan"), device=prediction.device)
            return value if prediction.dim() == 5 else value[0]
        distances = self.pairwise(prediction)
        size = prediction.shape[0]
        return (distances.sum(dim=1) / (size - 1)).to(prediction.dtype)

    @abstractmethod
    def pairwise(self, group: torch.Tensor) -> torch.Tensor:
        """``(G, G)`` symmetric distances between the videos of a group, 0 on the diagonal."""


class LPIPSDiversity(_GroupDiversity):
    """Mean LPIPS from each video of a group to the others (group diversity)."""

    def __init__(self, config: LPIPSDiversityConfig):
        self.config = config
        self.distance = LPIPSDistance(config)

    def to(self, device: torch.device | str) -> LPIPSDiversity:
        self.distance.to(device)
        return self

    def pairwise(self, group: torch.Tensor) -> torch.Tensor:
        size = group.shape[0]
        first, second = torch.triu_indices(size, size, offset=1, device=group.device)
        values = self.distance(group[first], group[second]).double()
        matrix = torch.zeros(size, size, dtype=torch.float64, device=group.device)
        matrix[first, second] = values
        return matrix + matrix.T


class CLIPDiversity(_GroupDiversity):
    """Mean CLIP-embedding distance (1 - cosine) from each video of a group to the others."""

    def __init__(self, config: CLIPDiversityConfig):
        self.config = config
        self.embed = CLIPImageEmbedder(config.clip_path)

    def to(self, device: torch.device | str) -> CLIPDiversity:
        self.embed.to(device)
        return self

    def pairwise(self, group: torch.Tensor) -> torch.Tensor:
        size, frames = group.shape[:2]
        embeddings = self.embed(group.reshape(size * frames, *group.shape[2:]))
        embeddings = embeddings.reshape(size, frames, -1).transpose(0, 1).double()
        cosine = embeddings @ embeddings.transpose(1, 2)  # (T, G, G)
        return (1 - cosine).mean(dim=0).fill_diagonal_(0)


class PixelDiversity(_GroupDiversity):
    """Mean pixel RMSE from each video of a group to the others (weight-free diversity)."""

    def __init__(self, config: PixelDiversityConfig):
        self.config = config

    def pairwise(self, group: torch.Tensor) -> torch.Tensor:
        size = group.shape[0]
        matrix = torch.zeros(size, size, dtype=torch.float64, device=group.device)
        for first, second in torch.triu_indices(size, size, offset=1).T.tolist():
            difference = (group[first] - group[second]).double().flatten(start_dim=1)
            matrix[first, second] = difference.square().mean(dim=1).sqrt().mean()
        return matrix + matrix.T


@devis_core.hookimpl
def devis_register_metrics(register):
    register("lpips-diversity", LPIPSDiversity, LPIPSDiversityConfig)
    register("clip-diversity", CLIPDiversity, CLIPDiversityConfig)
    register("pixel-diversity", PixelDiversity, PixelDiversityConfig)
