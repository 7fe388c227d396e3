"""The toy preset: shipped pre-trained weights, loaded with no path, competent on small orbits."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from devis_core.errors import MissingWeightsError
from devis_core.plugins import load_registry
from devis_core.toolkit.accumulation import one_step_conditions
from devis_core.toolkit.measures import psnr, ssim


def toy(**fields):
    from devis_plugins.trajectorycrafter.config import TrajectoryCrafterConfig
    from devis_plugins.trajectorycrafter.policy import TrajectoryCrafterBackbone

    return TrajectoryCrafterBackbone(TrajectoryCrafterConfig(preset="toy", **fields))


def test_toy_loads_the_shipped_weights_without_a_path():
    from devis_plugins.trajectorycrafter.loading import SHIPPED_WEIGHTS

    backbone = toy()
    shipped = load_file(
        str(SHIPPED_WEIGHTS / "toy" / "transformer" / "diffusion_pytorch_model.safetensors")
    )
    state = backbone.transformer.state_dict()
    assert set(shipped) == set(state)
    for name, tensor in shipped.items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)
    assert backbone.pipeline.guidance_scale == 1.0  # never trained with a second caption
    assert backbone.pipeline.resolution == (32, 48)


def test_random_init_ignores_the_shipped_weights():
    from devis_plugins.trajectorycrafter.loading import SHIPPED_WEIGHTS

    shipped = load_file(
        str(SHIPPED_WEIGHTS / "toy" / "transformer" / "diffusion_pytorch_model.safetensors")
    )
    weight = toy(random_init=True).transformer.state_dict()["proj_out.weight"]
    assert not torch.equal(weight, shipped["proj_out.weight"])


def test_missing_shipped_weights_name_the_recipe(tmp_path, monkeypatch):
    from devis_plugins.trajectorycrafter import loading

    monkeypatch.setattr(loading, "SHIPPED_WEIGHTS", tmp_path)
    with pytest.raises(MissingWeightsError, match=r"recipes/pretrain_toy\.py"):
        toy()


def _one_step_scores(backbone, angle: float, scenes: int = 3) -> dict[str, float]:
    """Mean PSNR, SSIM and PSNR of the holes of one-step generation at ``angle`` degrees on
    scenes of seed 2027 (neither a pre-training seed, 7919 and 7920, nor an evaluation one)."""
    dataset = load_registry().build(
        "dataset",
        {
            "kind": "synthetic",
            "num_samples": scenes,
            "seed": 2027,
            "frames": 8,
            "height": 32,
            "width": 48,
            "azimuth_range": [angle, angle],
            "elevation_range": [0, 0],
        },
    )
    totals = {"psnr": 0.0, "ssim": 0.0, "psnr-holes": 0.0}
    for index in range(scenes):
        sample = dataset[index]
        cond = one_step_conditions(sample, sample.source_depth)
        video = backbone.generate(cond, torch.Generator().manual_seed(index))
        totals["psnr"] += float(psnr(video, sample.target)) / scenes
        totals["ssim"] += float(ssim(video, sample.target)) / scenes
        totals["psnr-holes"] += float(psnr(video, sample.target, ~cond.mask)) / scenes
    return totals


def test_toy_is_competent_on_small_orbits_and_fails_on_extreme_ones():
    """The preset's claim: it has learned the world where it was trained (orbits of at most
    20 degrees): at 10 degrees it fills the holes better than inpainting and wins on PSNR;
    at 75 degrees, far outside its training, its quality collapses."""
    torch.set_num_threads(1)
    model, inpaint = toy(), load_registry().build("backbone", {"kind": "inpaint"})
    ours, theirs = _one_step_scores(model, 10), _one_step_scores(inpaint, 10)
    assert ours["psnr"] > theirs["psnr"] + 0.3
    assert ours["psnr-holes"] > theirs["psnr-holes"] + 0.8
    extreme = _one_step_scores(model, 75)
    assert extreme["psnr"] < ours["psnr"] - 3.0
    assert extreme["ssim"] < ours["ssim"] - 0.1


def test_quiet_runs_print_no_loading_bar(tmp_path):
    """`--quiet` means no progress bars: loading the shipped model must not print
    transformers' "Loading weights" bar (it did before the CLI silenced the libraries)."""
    config = tmp_path / "toy.yaml"
    config.write_text(
        "device: cpu\n"
        f"output: {tmp_path / 'run'}\n"
        "dataset: {kind: synthetic, num_samples: 1, frames: 8, height: 32, width: 48}\n"
        "depth: {kind: carried}\n"
        "accumulator: {kind: direct}\n"
        "backbone: {kind: trajectorycrafter, preset: toy, steps: 2}\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    result = subprocess.run(
        [sys.executable, "-m", "devis_core.cli", "run", str(config), "--quiet"],
        capture_output=True,
        text=True,
        env={**environment, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Loading weights" not in result.stderr and "it/s" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("written to")
