"""What ``paper.models=tiny`` asks for before it starts: datasets, never checkpoints.

A dry run substitutes the tiny models for every checkpoint and runs on the CPU, so it lists
only missing datasets (and training config), and the checkpoints it is given but cannot find.
"""

from __future__ import annotations

import pytest

from devis_core.config import to_yaml
from devis_core.errors import UsageError
from devis_plugins.paper_suites.assets import DRY_RUN_BACKBONE, PaperAssets
from tests.paper_scale.conftest import run_dry

pytestmark = pytest.mark.paper_scale

DATASETS = {
    "main": ["Kubric-4D dataset", "iPhone (DyCheck) dataset", "DL3DV dataset", "DepthSplat"],
    "accumulation": ["Kubric-4D dataset"],
    "grpo-vs-vanilla": ["a training config for the tiny model", "Kubric-4D dataset"],
    "paradigms": ["a training config for the tiny model", "Kubric-4D dataset"],
}
NEVER = ["TrajectoryCrafter", "DepthCrafter", "LoRA", "weights", "accelerator", "backbone"]


@pytest.mark.parametrize("suite", sorted(DATASETS))
def test_a_dry_run_lists_only_what_it_reads(registry, tmp_path, suite):
    with pytest.raises(UsageError) as caught:
        run_dry(registry, suite, ["scale=paper", "paper.models=tiny"], tmp_path)
    message = str(caught.value)
    assert f"suite {suite!r} at scale=paper (a dry run: paper.models=tiny) missing:" in message
    listed = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(listed) == len(DATASETS[suite])
    for item, line in zip(DATASETS[suite], listed, strict=True):
        assert line.startswith(f"  - {item}")
    assert not any(word in line for line in listed for word in NEVER)


def test_a_dry_run_checks_the_checkpoints_it_is_given(registry, tmp_path):
    kubric = tmp_path / "kubric"
    kubric.mkdir()
    overrides = [
        "scale=paper",
        "paper.models=tiny",
        f"paper.kubric4d={kubric}",
        f"lora={tmp_path / 'no-lora.safetensors'}",
        f"weights.lpips={tmp_path / 'no-alexnet.pth'}",
    ]
    with pytest.raises(UsageError) as caught:
        run_dry(registry, "accumulation", overrides, tmp_path / "out")
    listed = [line for line in str(caught.value).splitlines() if line.startswith("  - ")]
    assert listed == [
        f"  - the Kubric-4D fine-tuned LoRA (w LoRA rows): {tmp_path / 'no-lora.safetensors'} "
        "does not exist (set -o lora=PATH)",
        f"  - lpips weights: {tmp_path / 'no-alexnet.pth'} does not exist "
        "(set -o weights.lpips=PATH)",
    ]


@pytest.mark.parametrize(("models", "preset"), [("tiny", "full"), ("full", "tiny")])
def test_the_training_config_backbone_must_match_paper_models(registry, tmp_path, models, preset):
    config = tmp_path / "train.yaml"
    config.write_text(to_yaml({"backbone": {"kind": "trajectorycrafter", "preset": preset}}))
    overrides = ["scale=paper", f"paper.models={models}", f"training_config={config}"]
    with pytest.raises(UsageError) as caught:
        run_dry(registry, "paradigms", overrides, tmp_path / "out")
    size = "tiny" if models == "tiny" else "full-size"
    assert f"  - a {size} backbone in {config} (backbone.preset: {models})" in str(caught.value)
    matching = ["scale=paper", "paper.models=tiny", f"training_config={config}"]
    config.write_text(to_yaml({"backbone": {"kind": "trajectorycrafter", "preset": "tiny"}}))
    with pytest.raises(UsageError) as caught:
        run_dry(registry, "paradigms", matching, tmp_path / "out")
    assert "backbone" not in str(caught.value)


def test_a_dry_run_substitutes_the_tiny_models():
    dry_run = PaperAssets(models="tiny", transformer="checkpoints/TrajectoryCrafter")
    assert dry_run.backbone() == DRY_RUN_BACKBONE
    assert dry_run.depth()["kind"] == "depthcrafter" and dry_run.depth()["preset"] == "tiny"
    assert dry_run.pipeline_overrides() == ["depth_alignment.mode=scale"]
    full = PaperAssets(transformer="checkpoints/TrajectoryCrafter", base="checkpoints/base")
    assert full.backbone()["preset"] == "full" and full.pipeline_overrides() == []
    changed = PaperAssets(kubric4d="k", dataset_changes={"kubric4d": {"frames": 3}})
    (entry, depth) = changed.datasets(["kubric4d"])["Kubric-4D"]
    assert entry == {"kind": "kubric4d", "root": "k", "count": 100, "frames": 3}
    assert depth["preset"] == "full"


@pytest.mark.parametrize(("section", "field"), [("paper", "model"), ("weights", "lpip")])
def test_a_misspelt_paper_or_weights_key_is_an_error_naming_it(registry, section, field):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=rf"{section}\.{field}\n.*Extra inputs"):
        registry.build("suite", {"kind": "main", section: {field: "x"}})
