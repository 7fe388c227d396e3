"""Algorithm ``dpo``: Diffusion-DPO on the best and the worst sample of each group.

The paper's DPO baseline (Table 4): for each group the sample with the highest reward is the
winner ``w`` and the one with the lowest the loser ``l``. Both videos are noised at the *same*
timestep with the *same* noise under the group's one-step conditions, and with ``e`` the
v-prediction error of the policy and ``e_ref`` that of the reference (the adapter off), the
loss is ``-log sigmoid(-beta / 2 * ((e_w - e_ref_w) - (e_l - e_ref_l)))`` (Wallace et al.,
2023): lower the winner's error relative to the reference more than the loser's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    import torch.nn.functional as F
else:
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")


class DPOConfig(GroupAlgorithmConfig):
    """Hyper-parameters of Diffusion-DPO."""

    beta: float = Field(
        500.0,
        gt=0.0,
        description="Inverse temperature; Diffusion-DPO uses thousands for pixel-mean errors.",
    )
    timesteps_per_pair: int = Field(1, ge=1, description="Timesteps drawn per pair and step.")


class DPO(TrainingAlgorithm):
    """Diffusion-DPO: prefer each group's best sample over its worst, against the reference."""

    capabilities = Capabilities(trains_on="videos", batch_unit="group")
    config: DPOConfig

    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """+1 for the best sample of each group, -1 for the worst, 0 for the others."""
        marks = torch.zeros_like(rewards)
        for winner, loser in best_and_worst(rewards, group_ids).values():
            marks[winner], marks[loser] = 1.0, -1.0
        return marks

    def trained_steps(self, num_steps: int, generator: torch.Generator) -> list[int]:
        """None: DPO compares final videos as denoising targets, no chain transition."""
        return []

    def loss(self, batch: SeededBatch, policy: Policy) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean of the DPO loss over the (winner, loser) pairs of the batch's groups."""
        terms, accuracies, margins = [], [], []
        for group in torch.unique(batch.group_ids).tolist():
            members = (batch.group_ids == group).nonzero().flatten().tolist()
            winners = [i for i in members if batch.advantages[i] > 0]
            losers = [i for i in members if batch.advantages[i] < 0]
            if not winners or not losers:
                continue
            w, l = winners[0], losers[0]
            timesteps, noise = draw_timesteps_and_noise(
                policy, batch, w, self.config.timesteps_per_pair, batch.generator
            )
            errors = []
            for index in (w, l):
                cond, video = batch.conditions[index], batch.rollouts[index].video
                error = policy.v_prediction_error(cond, video, timesteps, noise)
                with torch.no_grad(), policy.disable_adapter():
                    reference = policy.v_prediction_error(cond, video, timesteps, noise)
                errors.append(error - reference)
            margin = errors[0] - errors[1]
            terms.append(-F.logsigmoid(-self.config.beta / 2 * margin).mean())
            accuracies.append(float((margin < 0).float().mean()))
            margins.append(float(margin.detach().mean()))
        if not terms:
            raise ValueError("DPO batch has no group with a best and a worst sample")
        stats = {
            "preference_accuracy": sum(accuracies) / len(accuracies),
            "error_margin": sum(margins) / len(margins),
        }
        return torch.stack(terms).mean(), stats


@devis_core.hookimpl
def devis_register_algorithms(register):
    register("dpo", DPO, DPOConfig)
