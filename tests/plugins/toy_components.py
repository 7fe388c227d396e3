"""One toy component per slot, written only against the public hook documentation."""

from __future__ import annotations

import torch
from pydantic import BaseModel

import devis_core
from devis_core.types import AccumulationResult, Conditions, SuiteResult


class ScaleConfig(BaseModel):
    scale: float = 2.0


class ConstantDepth:
    """Depth equal to ``scale`` everywhere."""

    def __init__(self, config: ScaleConfig):
        self.config = config

    def estimate(self, video, sample=None):
        return torch.full(video.shape[:1] + video.shape[2:], self.config.scale)


class IdentityBackbone:
    """Returns the render."""

    def __init__(self, config: ScaleConfig):
        self.config = config

    def generate(self, cond, generator=None):
        return cond.render


class SourceAccumulator:
    """Uses the source itself as the render (no reprojection)."""

    def __init__(self, config: ScaleConfig):
        self.config = config

    def run(self, sample, backbone, depth, *, increments=None, generator=None):
        mask = torch.ones(sample.source.shape[:1] + sample.source.shape[2:], dtype=torch.bool)
        cond = Conditions(sample.source, mask, sample.source)
        return AccumulationResult(backbone.generate(cond, generator), cond, generator_calls=1)


class MeanReward:
    """Mean intensity of the generated video, times ``scale``."""

    higher_is_better = True
    default_range = (0.0, 1.0)

    def __init__(self, config: ScaleConfig):
        self.config = config

    def score(self, batch):
        return batch.generated.mean(dim=(1, 2, 3, 4)) * self.config.scale


class SquaredAlgorithm:
    """Loss = scale * sum of squared trainable parameters."""

    def __init__(self, config: ScaleConfig):
        self.config = config

    def loss(self, batch, policy):
        total = sum((p**2).sum() for p in policy.trainable_parameters())
        return self.config.scale * total, {"params": float(total.detach())}


class ListDataset:
    """``scale`` copies of nothing: a sized, indexable dataset of sample ids."""

    def __init__(self, config: ScaleConfig):
        self.items = [f"item-{i}" for i in range(int(config.scale))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class MaxError:
    """Largest absolute difference, times ``scale``."""

    higher_is_better = False

    def __init__(self, config: ScaleConfig):
        self.config = config

    def compute(self, prediction, target, mask=None):
        return (prediction - target).abs().amax() * self.config.scale


class CountSuite:
    """A one-row table whose only value is ``scale``."""

    def __init__(self, config: ScaleConfig):
        self.config = config

    def run(self, context):
        return SuiteResult(
            "count", ["variant", "value"], [{"variant": "x", "value": self.config.scale}]
        )


@devis_core.hookimpl
def devis_register_backbones(register):
    register("toy-identity", IdentityBackbone, ScaleConfig)


@devis_core.hookimpl
def devis_register_depth_estimators(register):
    register("toy-constant", ConstantDepth, ScaleConfig)


@devis_core.hookimpl
def devis_register_accumulators(register):
    register("toy-source", SourceAccumulator, ScaleConfig)


@devis_core.hookimpl
def devis_register_reward_terms(register):
    register("toy-mean", MeanReward, ScaleConfig)


@devis_core.hookimpl
def devis_register_algorithms(register):
    register("toy-squared", SquaredAlgorithm, ScaleConfig)


@devis_core.hookimpl
def devis_register_datasets(register):
    register("toy-list", ListDataset, ScaleConfig)


@devis_core.hookimpl
def devis_register_metrics(register):
    register("toy-max-error", MaxError, ScaleConfig)


@devis_core.hookimpl
def devis_register_suites(register):
    register("toy-count", CountSuite, ScaleConfig)
