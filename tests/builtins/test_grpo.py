"""GRPO's advantages and clipped objective against hand-computed values (Eq. 3-6)."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch

from devis_core.training import SeededBatch
from devis_core.types import Conditions, Rollout, RolloutStep
from devis_plugins.grpo import GRPO, GRPOConfig


class GaussianPolicy:
    """One denoising step: x_next ~ N(shift + x, std^2); the adapter is the shift."""

    def __init__(self, shift: float, std: float = 1.0):
        self.shift = torch.nn.Parameter(torch.tensor(shift))
        self.std = torch.tensor(std)
        self.adapter_on = True

    def _mean(self, x):
        return x + (self.shift if self.adapter_on else 0.0)

    def log_prob(self, cond, rollout, step):
        record = rollout.steps[step]
        mean = self._mean(record.latents)
        var = self.std**2
        log_prob = (
            -((record.next_latents - mean) ** 2) / (2 * var)
            - torch.log(self.std)
            - 0.5 * math.log(2 * math.pi)
        ).mean()
        return log_prob, mean, self.std

    def trainable_parameters(self):
        yield self.shift

    @contextmanager
    def disable_adapter(self):
        self.adapter_on = False
        try:
            yield
        finally:
            self.adapter_on = True


def _rollout(policy, x, x_next):
    x, x_next = torch.tensor([x]), torch.tensor([x_next])
    with torch.no_grad():
        record = RolloutStep(torch.tensor(1.0), x, x_next, x, policy.std, torch.tensor(0.0))
        record.log_prob = policy.log_prob(None, Rollout([record], x_next), 0)[0]
    return Rollout([record], x_next)


def _cond():
    frame = torch.zeros(1, 3, 1, 1)
    return Conditions(frame, torch.ones(1, 1, 1, dtype=torch.bool), frame)


def test_group_advantages_are_standardised_per_group():
    grpo = GRPO(GRPOConfig(std_eps=1e-9))
    rewards = torch.tensor([1.0, 3.0, 10.0, 10.0, 20.0, 40.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    s = math.sqrt(2.0)  # sample std of (1, 3), likewise of (20, 40) is 10 * sqrt(2)
    expected = torch.tensor([-1 / s, 1 / s, 0.0, 0.0, -10 / (10 * s), 10 / (10 * s)])
    assert torch.allclose(grpo.advantages(rewards, groups), expected, atol=1e-6)


def test_equal_rewards_and_non_finite_rewards_give_zero_advantage():
    grpo = GRPO(GRPOConfig())
    rewards = torch.tensor([5.0, 5.0, 5.0, 1.0, float("nan"), 3.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    advantages = grpo.advantages(rewards, groups)
    assert torch.equal(advantages[:3], torch.zeros(3))
    assert advantages[4] == 0 and advantages[3] < 0 < advantages[5]


def test_batch_scaling_and_clipping():
    grpo = GRPO(GRPOConfig(scale_rewards="batch", adv_clip=0.5, std_eps=1e-9))
    rewards = torch.tensor([0.0, 2.0, 4.0, 6.0])
    groups = torch.tensor([0, 0, 1, 1])
    batch_std = rewards.std()  # 2.582
    expected = torch.tensor([-1.0, 1.0, -1.0, 1.0]) / batch_std
    assert torch.allclose(grpo.advantages(rewards, groups), expected.clamp(-0.5, 0.5))


def test_loss_at_old_policy_is_minus_advantage_and_gradient_follows_it():
    policy = GaussianPolicy(shift=0.0)
    rollout = _rollout(policy, 0.0, 1.0)  # the step went up by 1
    batch = SeededBatch(
        [_cond()],
        [rollout],
        torch.tensor([2.0]),
        torch.tensor([2.0]),
        torch.tensor([0]),
        steps=[[0]],
    )
    loss, stats = GRPO(GRPOConfig()).loss(batch, policy)
    assert float(loss.detach()) == pytest.approx(-2.0)  # ratio 1: loss = -A
    assert stats["ratio_mean"] == pytest.approx(1.0) and stats["clip_fraction"] == 0.0
    loss.backward()
    # d/dshift of -A * exp(logp - logp_old) at ratio 1 = -A * (x_next - x - shift) / std^2 = -2
    assert float(policy.shift.grad) == pytest.approx(-2.0)


def test_ratio_outside_the_clip_range_stops_the_gradient():
    policy = GaussianPolicy(shift=0.0)
    rollout = _rollout(policy, 0.0, 1.0)
    with torch.no_grad():
        policy.shift.fill_(1.0)  # new policy: mean 1, so logp rises by 0.5 and ratio = e^0.5
    batch = SeededBatch(
        [_cond()],
        [rollout],
        torch.tensor([1.0]),
        torch.tensor([1.0]),
        torch.tensor([0]),
        steps=[[0]],
    )
    loss, stats = GRPO(GRPOConfig(epsilon=0.2)).loss(batch, policy)
    assert stats["ratio_mean"] == pytest.approx(math.exp(0.5))
    assert stats["clip_fraction"] == 1.0
    assert float(loss.detach()) == pytest.approx(-1.2)  # -A * (1 + epsilon)
    loss.backward()
    assert float(policy.shift.grad) == 0.0


def test_kl_to_the_reference_uses_the_means():
    policy = GaussianPolicy(shift=0.5, std=2.0)
    rollout = _rollout(policy, 0.0, 0.5)
    batch = SeededBatch(
        [_cond()],
        [rollout],
        torch.tensor([0.0]),
        torch.tensor([0.0]),
        torch.tensor([0]),
        steps=[[0]],
    )
    loss, stats = GRPO(GRPOConfig(beta=0.1)).loss(batch, policy)
    kl = 0.5**2 / (2 * 2.0**2)  # ||mu - mu_ref||^2 / (2 sigma^2)
    assert stats["kl"] == pytest.approx(kl)
    assert float(loss.detach()) == pytest.approx(0.1 * kl)  # advantage 0
    assert policy.adapter_on  # the context manager restored the adapter


def test_empty_batch_is_an_error():
    policy = GaussianPolicy(0.0)
    batch = SeededBatch(
        [_cond()],
        [_rollout(policy, 0.0, 0.0)],
        torch.zeros(1),
        torch.zeros(1),
        torch.tensor([0]),
        steps=[[]],
    )
    with pytest.raises(ValueError, match="no trained steps"):
        GRPO(GRPOConfig()).loss(batch, policy)
