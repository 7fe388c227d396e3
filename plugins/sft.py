"""Algorithm ``sft``: the supervised baselines of the paper's Table 4 (STF-all, -best, -weight).

Each sample's final video is a denoising target under its group's one-step conditions (the
source reprojected to the target camera): the one-step generator learns to produce what
accumulation produced. ``all`` trains on every sample, ``best`` on the best of each group,
``weight`` weighs each sample's loss by its reward min-max normalised over the round (the
worst sample of the round gets weight 0, the best 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

import devis_core
from devis_core.lazy import lazy_import
from devis_core.training import (
    Capabilities,
    GroupAlgorithmConfig,
    SeededBatch,
    TrainingAlgorithm,
    best_and_worst,
    draw_timesteps_and_noise,
)
from devis_core.types import Policy

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class SFTConfig(GroupAlgorithmConfig):
    """Which samples are targets, and how many timesteps each gets per step."""

    mode: Literal["all", "best", "weight"] = Field(
        "all", description="all: every sample; best: each group's best; weight: reward-weighted."
    )
    timesteps_per_sample: int = Field(1, ge=1, description="Timesteps drawn per sample and step.")


class SFT(TrainingAlgorithm):
    """Denoising loss (v-prediction) against the samples, weighted by their advantages."""

    capabilities = Capabilities(trains_on="videos", batch_unit="sample")
    config: SFTConfig

    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """The weight of each sample: 1, 1 for the best of its group, or the normalised reward.

        Samples with a non-finite reward get weight 0 in every mode.
        """
        finite = torch.isfinite(rewards)
        if self.config.mode == "all":
            return finite.to(rewards.dtype)
        weights = torch.zeros_like(rewards)
        if self.config.mode == "best":
            for best, _ in best_and_worst(rewards, group_ids).values():
                weights[best] = 1.0
            return weights
        if finite.any():
            low, high = rewards[finite].min(), rewards[finite].max()
            scale = (high - low).clamp_min(torch.finfo(rewards.dtype).tiny)
            weights[finite] = (rewards[finite] - low) / scale
        return weights

    def trained_steps(self, num_steps: int, generator: torch.Generator) -> list[int]:
        """None: SFT trains final videos as denoising targets, no chain transition."""
        return []

    def loss(self, batch: SeededBatch, policy: Policy) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over the batch of weight times the v-prediction error of the sample."""
        terms, errors = [], []
        for index, (cond, rollout) in enumerate(zip(batch.conditions, batch.rollouts, strict=True)):
            timesteps, noise = draw_timesteps_and_noise(
                policy, batch, index, self.config.timesteps_per_sample, batch.generator
            )
            error = policy.v_prediction_error(cond, rollout.video, timesteps, noise).mean()
            terms.append(batch.advantages[index].to(error.dtype) * error)
            errors.append(float(error.detach()))
        if not terms:
            raise ValueError("SFT batch is empty")
        return torch.stack(terms).mean(), {"v_error": sum(errors) / len(errors)}


@devis_core.hookimpl
def devis_register_algorithms(register):
    register("sft", SFT, SFTConfig)
