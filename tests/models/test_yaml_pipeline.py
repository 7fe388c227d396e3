"""The tiny TrajectoryCrafter through YAML configs, with every registered accumulator."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

from devis_core.cli import main
from devis_core.config import parse_yaml, validate_config
from devis_core.pipeline import Pipeline
from devis_core.plugins import load_registry

CONFIG = """
device: cpu
seed: 0
dataset: {kind: synthetic, num_samples: 1, frames: 4, height: 32, width: 48}
depth: {kind: carried}
accumulator: {kind: direct}
backbone:
  kind: trajectorycrafter
  preset: tiny
  resolution: [16, 24]
  steps: 2
  caption: a synthetic scene
  lora: {rank: 2}
metrics: [psnr]
"""


def test_devis_run_with_the_tiny_backbone(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    out = tmp_path / "run"
    assert main(["run", str(path), "--quiet", "-o", f"output={out}"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["generator_calls"] == 1 and 0 < metrics["psnr"] < 60
    assert (out / "generated.mp4").is_file()


def test_unknown_backbone_fields_are_rejected_with_their_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(CONFIG).replace("steps: 2", "stepz: 2"))
    assert main(["validate", str(path)]) == 2


_REGISTRY = load_registry(environ={})
_ACCUMULATORS = sorted(set(_REGISTRY.names("accumulator")) - {"direct"})


@pytest.mark.parametrize("accumulator", _ACCUMULATORS)
def test_every_accumulator_drives_the_tiny_backbone(accumulator):
    data = parse_yaml(textwrap.dedent(CONFIG))
    data["accumulator"] = {"kind": accumulator}
    pipeline = Pipeline(validate_config(data, _REGISTRY), _REGISTRY)
    sample = pipeline.dataset[0]
    result = pipeline.synthesize(sample)
    assert result.video.shape == sample.source.shape
    assert torch.isfinite(result.video).all() and float(result.video.min()) >= 0
    assert float(result.video.max()) <= 1 and result.generator_calls >= 1
