"""Algorithm ``grpo``: group-relative policy optimisation of a stochastic diffusion sampler.

Each denoising step of a DDIM sampler with ``eta > 0`` is a Gaussian policy; GRPO (Eq. 3-6)
raises the probability of the steps that led to above-average rewards in their group, with
PPO's clipped ratio and a KL penalty to the reference policy (the adapter switched off).
Field names follow TRL's ``GRPOConfig`` where the idea is the same.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field

import devis_core
from devis_core.lazy import lazy_import
from devis_core.training import Capabilities, GroupAlgorithmConfig, SeededBatch, TrainingAlgorithm
from devis_core.types import Policy

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class GRPOConfig(GroupAlgorithmConfig):
    """Hyper-parameters of GRPO (names as in TRL's ``GRPOConfig``)."""

    beta: float = Field(0.0, ge=0.0, description="Weight of the KL penalty to the reference.")
    epsilon: float = Field(0.2, gt=0.0, lt=1.0, description="PPO clip range of the ratio.")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="Divide advantages by the std of the group, of the batch, or not."
    )
    adv_clip: float = Field(5.0, gt=0.0, description="Advantages are clipped to +-adv_clip.")
    timestep_fraction: float = Field(
        0.6, gt=0.0, le=1.0, description="Fraction of denoising steps trained per sample."
    )
    std_eps: float = Field(1e-4, gt=0.0, description="Added to the std before dividing.")


class GRPO(TrainingAlgorithm):
    """Group-relative advantages and the clipped policy-gradient loss with a KL penalty."""

    capabilities = Capabilities(trains_on="chains", batch_unit="sample")
    config: GRPOConfig

    def trained_steps(self, num_steps: int, generator: torch.Generator) -> list[int]:
        """A random ``timestep_fraction`` of a chain's steps (at least one), in chain order.

        The chain holds only steps with a density: the sampler's last step (sigma 0, it lands
        on the clean sample) is never recorded, so it is never trained.
        """
        if num_steps == 0:
            return []
        count = max(1, math.ceil(self.config.timestep_fraction * num_steps - 1e-9))
        return sorted(torch.randperm(num_steps, generator=generator)[:count].tolist())

    def advantages(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        """``(R - mean_group) / (std + eps)``, clipped; NaN rewards get advantage 0.

        A group whose rewards are all equal gets zero advantages, so it adds no gradient.
        """
        finite = torch.isfinite(rewards)
        advantages = torch.zeros_like(rewards)
        batch_std = rewards[finite].std() if finite.sum() > 1 else rewards.new_tensor(0.0)
        for group in torch.unique(group_ids):
            members = (group_ids == group) & finite
            if members.sum() < 2:
                continue
            values = rewards[members]
            centred = values - values.mean()
            if self.config.scale_rewards == "group":
                centred = centred / (values.std() + self.config.std_eps)
            elif self.config.scale_rewards == "batch":
                centred = centred / (batch_std + self.config.std_eps)
            advantages[members] = centred
        return advantages.clamp(-self.config.adv_clip, self.config.adv_clip)

    def loss(self, batch: SeededBatch, policy: Policy) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over trained steps of ``max(-A r, -A clip(r))`` plus ``beta`` times the KL."""
        eps, beta = self.config.epsilon, self.config.beta
        terms, ratios, clipped, kls = [], [], [], []
        for index, (cond, rollout) in enumerate(zip(batch.conditions, batch.rollouts, strict=True)):
            advantage = batch.advantages[index]
            for step in batch.steps[index]:
                old = rollout.steps[step]
                log_prob, mean, std = policy.log_prob(cond, rollout, step)
                ratio = torch.exp(log_prob - old.log_prob)
                unclipped_loss = -advantage * ratio
                clipped_loss = -advantage * ratio.clamp(1 - eps, 1 + eps)
                term = torch.maximum(unclipped_loss, clipped_loss)
                if beta > 0:
                    with torch.no_grad(), policy.disable_adapter():
                        _, reference_mean, _ = policy.log_prob(cond, rollout, step)
                    kl = ((mean - reference_mean) ** 2).mean() / (2 * std.float().mean() ** 2)
                    term = term + beta * kl
                    kls.append(float(kl.detach()))
                terms.append(term)
                ratios.append(float(ratio.detach()))
                clipped.append(float((ratio.detach() - 1).abs() > eps))
        if not terms:
            raise ValueError("GRPO batch has no trained steps")
        loss = torch.stack(terms).mean()
        stats = {
            "ratio_mean": sum(ratios) / len(ratios),
            "clip_fraction": sum(clipped) / len(clipped),
            "kl": sum(kls) / len(kls) if kls else 0.0,
        }
        return loss, stats


@devis_core.hookimpl
def devis_register_algorithms(register):
    register("grpo", GRPO, GRPOConfig)
