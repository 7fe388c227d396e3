"""Tests of the example plugin, as its author would write them (see docs: Testing a plugin)."""

from __future__ import annotations

import torch

from devis_core.config import validate_config
from devis_core.plugins import load_registry
from devis_core.types import ViewSynthesisSample


def test_plane_depth_is_registered_by_this_distribution():
    component = load_registry().get("depth", "plane")
    assert component.provenance.distribution == "devis-example-plugin"


def test_plane_depth_returns_the_configured_distance_everywhere():
    registry = load_registry()
    config = validate_config({"depth": {"kind": "plane", "distance": 2.5}}, registry)
    depth = registry.build("depth", config.depth)
    estimate = depth.estimate(torch.rand(3, 3, 4, 6))
    assert estimate.shape == (3, 4, 6) and torch.all(estimate == 2.5)


class RecordingBackbone:
    """Returns a new constant video per call and remembers each call's reference."""

    def __init__(self):
        self.references = []

    def generate(self, cond, generator=None):
        self.references.append(cond.reference)
        return torch.full_like(cond.render, len(self.references) / 10)


def test_refine_calls_the_backbone_passes_times_with_the_last_video_as_reference():
    registry = load_registry()
    accumulator = registry.build("accumulator", {"kind": "refine", "passes": 3})
    depth = registry.build("depth", {"kind": "plane"})
    source = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    K = torch.tensor([[5.0, 0, 3], [0, 5.0, 2], [0, 0, 1]])
    eye = torch.eye(4).expand(2, 4, 4)
    sample = ViewSynthesisSample("s", source, K, eye, eye)
    backbone = RecordingBackbone()
    result = accumulator.run(sample, backbone, depth)
    assert result.generator_calls == 3 and len(backbone.references) == 3
    assert backbone.references[0] is source
    assert torch.all(backbone.references[2] == 0.2)  # the second pass's output
    assert torch.all(result.video == 0.3) and len(result.intermediate) == 2
    # same camera: the render is the source wherever something landed
    assert torch.allclose(result.conditions.render, source, atol=1e-5)
