"""Group sampling (Eq. 14): step counts, recorded chains, own or shared noise, rewards."""

from __future__ import annotations

import pytest
import torch

from devis_core.config import validate_config
from devis_core.pipeline import Pipeline
from devis_core.plugins import load_registry
from devis_core.rewards import CompositeReward
from devis_core.training.sampling import sample_group, score_group
from devis_core.training.seeds import derived_seed
from tests.training.conftest import training_data


@pytest.fixture(scope="module")
def pipeline():
    registry = load_registry()
    return Pipeline(validate_config(training_data("unused"), registry), registry)


def _group(pipeline, mode, k_range=(1, 2), same_noise=False, size=3):
    return sample_group(
        0,
        pipeline.dataset[0],
        policy=pipeline.backbone,
        accumulator=pipeline.accumulator,
        depth=pipeline.depth,
        size=size,
        mode=mode,
        k_range=k_range,
        same_noise=same_noise,
        seed_parts=(0, "round", 0),
    )


def test_devis_samples_have_their_own_steps_chains_and_noise(pipeline):
    group = _group(pipeline, "accumulated", k_range=(1, 3), size=4)
    frames = pipeline.dataset[0].num_frames
    for member in group.members:
        assert 1 <= member.steps <= 3 and len(member.chains) == member.steps
        assert member.video.shape[0] == frames  # BTA kept the last L frames
        conditions, rollout = member.chains[-1]
        assert conditions.render.shape[0] == frames + 1  # the bullet-time prefix of 1 frame
        assert len(rollout.steps) == 2  # 3 DDIM steps, the last one has no density
    videos = [member.video for member in group.members]
    assert not torch.allclose(videos[0], videos[1])


def test_vanilla_samples_are_one_step_from_the_one_step_conditions(pipeline):
    group = _group(pipeline, "one-step")
    assert all(member.steps == 1 for member in group.members)
    assert all(member.chains[0][0] is group.conditions for member in group.members)
    assert not torch.allclose(group.members[0].video, group.members[1].video)


def test_same_noise_with_one_step_gives_equal_videos(pipeline):
    # K = 1 for everyone: same conditions, so shared noise must give the same video
    group = _group(pipeline, "accumulated", k_range=(1, 1), same_noise=True)
    assert torch.equal(group.members[0].video, group.members[2].video)


def test_rewards_compare_with_the_one_step_render(pipeline):
    group = _group(pipeline, "one-step", size=2)
    reward = CompositeReward([{"kind": "psnr-visible", "range": [0.0, 30.0]}], pipeline.registry)
    result = score_group(group, reward)
    assert result.total.shape == (2,) and torch.isfinite(result.total).all()
    assert group.rewards is result and 0.0 <= float(result.total.min()) <= 1.0


def test_derived_seeds_depend_on_every_part():
    assert derived_seed(0, "round", 1) == derived_seed(0, "round", 1)
    assert derived_seed(0, "round", 1) != derived_seed(0, "round", 2) != derived_seed(1, "round", 2)
