"""The toy preset's pre-training recipe: it runs, resumes exactly, and writes a loadable model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "pretrain_toy.py"
SMALL = [
    "data.num_samples=2",
    "validation.num_samples=1",
    "training.scenes_per_step=1",
    "training.timesteps_per_scene=1",
    "training.warmup_steps=1",
    "training.checkpoint_every=2",
    "training.validate_every=100",
]


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("pretrain_toy", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(recipe, monkeypatch, output: Path, steps: int) -> Path:
    overrides = [*SMALL, f"output={output}", f"training.steps={steps}"]
    argv = ["pretrain_toy.py", "--threads", "1", *[arg for o in overrides for arg in ("-o", o)]]
    monkeypatch.setattr(sys, "argv", argv)
    recipe.main()
    return output / "model" / "transformer" / "diffusion_pytorch_model.safetensors"


def test_a_resumed_run_equals_an_uninterrupted_one(recipe, monkeypatch, tmp_path):
    straight = load_file(str(run(recipe, monkeypatch, tmp_path / "a", steps=4)))
    run(recipe, monkeypatch, tmp_path / "b", steps=2)
    resumed = load_file(str(run(recipe, monkeypatch, tmp_path / "b", steps=4)))
    assert set(straight) == set(resumed)
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-5, atol=1e-6)
    steps = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r] == [1, 2, 3, 4]  # no step twice


def test_the_model_it_writes_loads_as_the_toy_preset(recipe, monkeypatch, tmp_path):
    from devis_plugins.trajectorycrafter.config import TrajectoryCrafterConfig
    from devis_plugins.trajectorycrafter.policy import TrajectoryCrafterBackbone

    weights = run(recipe, monkeypatch, tmp_path, steps=2)
    model = tmp_path / "model"
    backbone = TrajectoryCrafterBackbone(
        TrajectoryCrafterConfig(
            preset="toy",
            transformer_path=str(model / "transformer"),
            base_path=str(model / "base"),
        )
    )
    for name, tensor in load_file(str(weights)).items():
        assert torch.equal(backbone.transformer.state_dict()[name], tensor)
    recipe_file = json.loads((model / "recipe.json").read_text())
    assert recipe_file["steps"] == 2


def test_resuming_with_another_config_is_refused(recipe, monkeypatch, tmp_path):
    run(recipe, monkeypatch, tmp_path, steps=2)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "pretrain_toy.py",
            *[a for o in [*SMALL, f"output={tmp_path}", "seed=5"] for a in ("-o", o)],
        ],
    )
    with pytest.raises(SystemExit, match="another config"):
        recipe.main()
