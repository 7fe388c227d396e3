"""Which chain GRPO trains: the sampled final chain, scored under the one-step conditions.

The paper's generator makes the extreme view in one step at inference, so the loss must take
the log-probabilities of the accumulated sample's transitions under the *one-step* conditions
(the source rendered at the full target motion), for the old policy as for the new one.
``trained_chain: accumulated`` keeps the last accumulation step's own conditions.
"""

from __future__ import annotations

import pytest
import torch

from devis_core.config import validate_config
from devis_core.distributed import World
from devis_core.pipeline import make_generator
from devis_core.plugins import load_registry
from devis_core.toolkit.geometry import forward_warp
from devis_core.training import Trainer
from devis_core.training.units import seeded_batch
from tests.training.conftest import training_data

BULLET = 2


@pytest.fixture(scope="module")
def registry():
    return load_registry()


class _ConditionsSpy:
    """The policy, recording the conditions every ``log_prob`` call is made under."""

    def __init__(self, policy):
        self.policy, self.seen = policy, []

    def log_prob(self, cond, rollout, step):
        self.seen.append((cond, rollout.steps[step]))
        return self.policy.log_prob(cond, rollout, step)

    def __getattr__(self, name):
        return getattr(self.policy, name)


def _trainer(tmp_path, registry, chain):
    data = training_data(
        str(tmp_path / chain),
        accumulator={"kind": "bta", "bullet_frames": BULLET},
        training={"k_min": 2, "k_max": 2, "trained_chain": chain, "warm_start": {"steps": 0}},
    )
    return Trainer(validate_config(data, registry), registry, world=World(), resume=None,
                   progress=False)  # fmt: skip


def _round_units(trainer):
    """Sample round 0 and build its trained units, as the trainer does before updating."""
    groups = trainer.sample(0)
    batches = trainer.units(0, groups, trainer.score(groups))
    return groups, [unit for batch in batches for unit in batch]


def _losses_conditions(trainer):
    """The round's units, and GRPO's loss on them evaluated through a spy."""
    groups, units = _round_units(trainer)
    spy = _ConditionsSpy(trainer.policy)
    _, stats = trainer.algorithm.loss(seeded_batch(units, make_generator(0)), spy)
    return groups, units, spy.seen, stats


def test_default_scores_the_final_chain_under_the_one_step_render(tmp_path, registry):
    trainer = _trainer(tmp_path, registry, "one-step")
    groups, units, seen, stats = _losses_conditions(trainer)
    assert seen, "the loss computed no log-probability"
    for cond, record in seen:
        group = next(g for g in groups if g.conditions is cond)
        sample = group.sample
        # independently: the source splatted to the target cameras with its exact depth
        render, mask = forward_warp(
            sample.source, sample.source_depth, sample.K, sample.source_w2c, sample.K,
            sample.target_w2c,
        )  # fmt: skip
        assert cond.render.shape[0] == sample.num_frames  # no bullet-time prefix
        torch.testing.assert_close(cond.render, render)
        assert torch.equal(cond.mask, mask)
        assert torch.equal(cond.reference, sample.source)
        assert record.latents.shape[1] == sample.num_frames  # pixel-space tiny model
    # the old log-probabilities were taken under the same conditions: the ratio starts at 1
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert stats["clip_fraction"] == 0.0


def test_one_step_chain_is_the_kept_tail_of_the_sampled_chain(tmp_path, registry):
    trainer = _trainer(tmp_path, registry, "one-step")
    groups, units = _round_units(trainer)
    frames = groups[0].sample.num_frames
    sampled = [s for g in groups for m in g.members for s in m.chains[-1][1].steps]
    assert units and all(s.latents.shape[1] == BULLET + frames for s in sampled)
    for unit in units:
        for step in unit.rollout.steps:
            # the BTA chain has BULLET + frames latent frames; the trained one its last frames
            assert any(
                torch.equal(s.latents[:, BULLET:], step.latents)
                and torch.equal(s.next_latents[:, BULLET:], step.next_latents)
                and float(s.timestep) == float(step.timestep)
                for s in sampled
            )


def test_accumulated_option_scores_the_last_steps_own_conditions(tmp_path, registry):
    trainer = _trainer(tmp_path, registry, "accumulated")
    groups, units, seen, stats = _losses_conditions(trainer)
    frames = groups[0].sample.num_frames
    assert seen
    for cond, record in seen:
        assert all(cond is not g.conditions for g in groups)
        assert cond.render.shape[0] == BULLET + frames  # the prefix and the clip
        assert record.latents.shape[1] == BULLET + frames
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-5)


def test_train_intermediate_needs_the_accumulated_chain(registry):
    from pydantic import ValidationError

    from devis_core.errors import ConfigError

    data = training_data("unused", training={"train_intermediate": True})
    with pytest.raises((ValidationError, ConfigError), match="trained_chain"):
        validate_config(data, registry)
