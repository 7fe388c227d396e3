"""Each quantity computed once: a DEVIS-GRPO round asks the depth estimator once per video.

In a round, a video's depth is needed for the group's one-step conditions (the source), for
every member's accumulation (the source again, at its first step) and, with BTA, for every
intermediate video ``V_{k-1}`` of step ``k >= 2`` (its bullet-time prefix holds that video's
first frame at its depth). Each of those videos is distinct, so each must be estimated once.
"""

from __future__ import annotations

import pytest
import torch

from devis_core.config import validate_config
from devis_core.distributed import World
from devis_core.plugins import load_registry
from devis_core.training import Trainer
from tests.training.conftest import TINY_TRAINING, training_data

K = 2
"""Every member accumulates in exactly two steps: one intermediate video each."""


class _CountingDepth:
    """The configured estimator, keeping every video it is asked about."""

    def __init__(self, estimator):
        self.estimator, self.videos = estimator, []

    def estimate(self, video, sample=None):
        self.videos.append(video)
        return self.estimator.estimate(video, sample)

    def __getattr__(self, name):
        return getattr(self.estimator, name)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def test_one_devis_grpo_round_estimates_each_distinct_video_once(tmp_path, registry):
    data = training_data(
        str(tmp_path / "run"), training={"k_min": K, "k_max": K, "warm_start": {"steps": 0}}
    )
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=None, progress=False
    )
    counting = _CountingDepth(trainer.pipeline.depth)
    trainer.pipeline.depth = counting
    trainer.run()  # one round: sampling, rewards, update, checkpoint

    groups = TINY_TRAINING["training"]["groups_per_round"]
    size = TINY_TRAINING["algorithm"]["num_generations"]
    assert groups <= TINY_TRAINING["dataset"]["num_samples"]  # one distinct source per group
    asked = counting.videos
    calls = len(asked)
    # the sources once per group, and the one intermediate video of each member
    assert calls == groups * (1 + size * (K - 1))
    for first in range(len(asked)):
        for second in range(first + 1, len(asked)):
            assert not _same(asked[first], asked[second]), "a video's depth was estimated twice"
    for index in range(groups):
        source = trainer.pipeline.dataset[index].source
        assert sum(_same(video, source) for video in asked) == 1
