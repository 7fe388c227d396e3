"""DPO and SFT against hand-computed values, with a toy policy whose errors are known."""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from devis_core.plugins import load_registry
from devis_core.training import Capabilities, SeededBatch, TrainingAlgorithm, best_and_worst
from devis_core.types import Conditions, Rollout
from devis_plugins.dpo import DPO, DPOConfig
from devis_plugins.grpo import GRPO, GRPOConfig
from devis_plugins.sft import SFT, SFTConfig


class ErrorPolicy:
    """v-prediction error = (shift - video mean)^2, whatever the noise; reference: shift 0."""

    def __init__(self, shift: float):
        self.shift = torch.nn.Parameter(torch.tensor(shift))
        self.adapter_on = True
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def latent_shape(self, cond):
        return (1, 2)

    def v_prediction_error(self, cond, video, timesteps, noise):
        self.calls.append((timesteps.clone(), noise.clone()))
        shift = self.shift if self.adapter_on else torch.tensor(0.0)
        return ((shift - video.mean()) ** 2).expand(timesteps.shape[0])

    @contextmanager
    def disable_adapter(self):
        self.adapter_on = False
        try:
            yield
        finally:
            self.adapter_on = True


def _batch(videos, advantages, groups):
    frame = torch.zeros(1, 3, 1, 1)
    cond = Conditions(frame, torch.ones(1, 1, 1, dtype=torch.bool), frame)
    return SeededBatch(
        conditions=[cond] * len(videos),
        rollouts=[Rollout([], torch.full((1, 3, 1, 1), v)) for v in videos],
        rewards=torch.zeros(len(videos)),
        advantages=torch.tensor(advantages),
        group_ids=torch.tensor(groups),
        generator=torch.Generator().manual_seed(0),
    )


def test_best_and_worst_skips_flat_and_small_groups():
    rewards = torch.tensor([1.0, 3.0, 2.0, 5.0, 5.0, 7.0, float("nan")])
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert best_and_worst(rewards, groups) == {0: (1, 0)}


def test_dpo_marks_best_and_worst_and_is_log2_at_the_reference():
    dpo = DPO(DPOConfig(beta=10.0))
    marks = dpo.advantages(torch.tensor([0.2, 0.9, 0.5, 1.0, 1.0]), torch.tensor([0, 0, 0, 1, 1]))
    assert marks.tolist() == [-1.0, 1.0, 0.0, 0.0, 0.0]
    policy = ErrorPolicy(shift=0.0)  # adapter on == reference: both differences are 0
    loss, stats = dpo.loss(_batch([0.5, 0.1], [1.0, -1.0], [0, 0]), policy)
    assert float(loss.detach()) == pytest.approx(math.log(2.0))
    assert stats["error_margin"] == 0.0
    # winner and loser saw the same timestep and noise, policy and reference alike
    first = policy.calls[0]
    assert all(torch.equal(t, first[0]) and torch.equal(n, first[1]) for t, n in policy.calls)


def test_dpo_loss_and_gradient_by_hand():
    beta, shift, win, lose = 4.0, 0.3, 0.5, 0.1
    policy = ErrorPolicy(shift=shift)
    loss, stats = DPO(DPOConfig(beta=beta)).loss(_batch([win, lose], [1.0, -1.0], [0, 0]), policy)
    margin = ((shift - win) ** 2 - win**2) - ((shift - lose) ** 2 - lose**2)  # -0.24
    assert stats["error_margin"] == pytest.approx(margin)
    expected_loss = -F.logsigmoid(torch.tensor(-beta / 2 * margin))
    assert float(loss.detach()) == pytest.approx(float(expected_loss))
    assert stats["preference_accuracy"] == 1.0
    loss.backward()
    # d loss / d margin = beta/2 * sigmoid(beta/2 * margin); d margin / d shift = 2(lose - win)
    expected = beta / 2 * torch.sigmoid(torch.tensor(beta / 2 * margin)) * 2 * (lose - win)
    assert float(policy.shift.grad) == pytest.approx(float(expected))


def test_dpo_batch_without_a_pair_is_an_error():
    with pytest.raises(ValueError, match="best and a worst"):
        DPO(DPOConfig()).loss(_batch([0.5], [1.0], [0]), ErrorPolicy(0.0))


def test_sft_weights_per_mode():
    rewards = torch.tensor([1.0, 3.0, 2.0, 2.0, float("nan")])
    groups = torch.tensor([0, 0, 1, 1, 1])
    assert SFT(SFTConfig(mode="all")).advantages(rewards, groups).tolist() == [1, 1, 1, 1, 0]
    assert SFT(SFTConfig(mode="best")).advantages(rewards, groups).tolist() == [0, 1, 0, 0, 0]
    weights = SFT(SFTConfig(mode="weight")).advantages(rewards, groups)
    assert weights.tolist() == [0.0, 1.0, 0.5, 0.5, 0.0]


def test_sft_loss_is_the_weighted_mean_error():
    policy = ErrorPolicy(shift=1.0)
    loss, stats = SFT(SFTConfig()).loss(_batch([0.0, 0.5], [1.0, 0.5], [0, 0]), policy)
    assert float(loss.detach()) == pytest.approx((1.0 * 1.0 + 0.5 * 0.25) / 2)
    assert stats["v_error"] == pytest.approx((1.0 + 0.25) / 2)
    loss.backward()  # d/dshift: (2 * 1 * 1 + 0.5 * 2 * 0.5) / 2
    assert float(policy.shift.grad) == pytest.approx(1.25)


def test_grpo_trains_a_fraction_of_the_steps():
    grpo = GRPO(GRPOConfig(timestep_fraction=0.5))
    steps = grpo.trained_steps(5, torch.Generator().manual_seed(0))
    assert len(steps) == 3 and steps == sorted(set(steps)) and max(steps) < 5
    assert GRPO(GRPOConfig(timestep_fraction=1.0)).trained_steps(4, None) == [0, 1, 2, 3]
    assert grpo.trained_steps(0, None) == []


@pytest.mark.parametrize(
    ("entry", "trains_on", "batch_unit"),
    [
        ({"kind": "grpo"}, "chains", "sample"),  # a chain's transitions, sample by sample
        ({"kind": "dpo"}, "videos", "group"),  # a group's best against its worst video
        ({"kind": "sft", "mode": "best"}, "videos", "sample"),  # each weighted video alone
    ],
)
def test_built_in_algorithms_declare_what_they_train(entry, trains_on, batch_unit):
    algorithm = load_registry().build("algorithm", entry)
    assert isinstance(algorithm, TrainingAlgorithm)
    assert algorithm.capabilities == Capabilities(trains_on=trains_on, batch_unit=batch_unit)
    if trains_on == "videos":  # no chain transition is trained
        assert algorithm.trained_steps(4, torch.Generator().manual_seed(0)) == []
