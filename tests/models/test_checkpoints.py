"""Missing and mismatched checkpoints: errors that name the file, the keys and the source."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from devis_core.errors import MissingWeightsError
from devis_plugins.trajectorycrafter.loading import load_model
from devis_plugins.trajectorycrafter.model import CrossTransformer3DModel
from devis_plugins.trajectorycrafter.presets import TINY
from tests.models.conftest import tiny_backbone

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = CrossTransformer3DModel(**{**TINY.transformer, "num_layers": 2})
    model.save_pretrained(tmp_path / "transformer")
    return tmp_path / "transformer"


def _load(directory):
    return load_model(CrossTransformer3DModel, directory, where="GET IT HERE", dtype=torch.float32)


def test_missing_directory_config_and_weights(tmp_path, saved):
    with pytest.raises(MissingWeightsError, match=r"does not exist.*GET IT HERE"):
        _load(tmp_path / "nowhere")
    (saved / "config.json").rename(saved / "moved.json")
    with pytest.raises(MissingWeightsError, match=r"config\.json is missing"):
        _load(saved)
    (saved / "moved.json").rename(saved / "config.json")
    (saved / WEIGHTS).rename(saved / "weights.bin")
    with pytest.raises(MissingWeightsError, match=rf"no weights in .*expected {WEIGHTS}"):
        _load(saved)


def test_mismatched_keys_are_named_with_the_file(saved):
    state = load_file(str(saved / WEIGHTS))
    state.pop("ref_patch_embed.proj.weight")
    state["perceiver_cross_attention.0.gate"] = torch.zeros(1)
    state["proj_out.bias"] = torch.zeros(5)
    save_file(state, str(saved / WEIGHTS))
    with (
        pytest.warns(
            UserWarning, match=r"skipped 1 tensors .*: perceiver_cross_attention\.0\.gate"
        ),
        pytest.raises(MissingWeightsError) as error,
    ):
        _load(saved)
    message = str(error.value)
    assert str(saved / WEIGHTS) in message
    assert "missing keys (1): ref_patch_embed.proj.weight" in message
    assert "unexpected" not in message  # unused tensors are reported, not fatal
    assert "proj_out.bias expected (12,) found (5,)" in message
    assert message.endswith("GET IT HERE")


def test_missing_shard_is_reported(saved):
    shard = "diffusion_pytorch_model-00002-of-00002.safetensors"
    index = {"weight_map": {"proj_out.weight": shard}}
    (saved / WEIGHTS).unlink()
    (saved / f"{WEIGHTS}.index.json").write_text(json.dumps(index))
    with pytest.raises(MissingWeightsError, match="lists shards that are not there"):
        _load(saved)


def test_the_base_cogvideox_transformer_is_not_trajectorycrafter(tmp_path):
    torch.manual_seed(0)
    base = CrossTransformer3DModel(**{**TINY.transformer, "is_train_cross": False})
    base.save_pretrained(tmp_path / "base-transformer")
    config = json.loads((tmp_path / "base-transformer" / "config.json").read_text())
    config["is_train_cross"] = True  # a config claiming the reference stream it lacks
    (tmp_path / "base-transformer" / "config.json").write_text(json.dumps(config))
    with pytest.raises(MissingWeightsError, match=r"missing keys \(\d+\): perceiver_cross"):
        tiny_backbone(transformer_path=str(tmp_path / "base-transformer"))


def test_full_preset_without_paths_says_where_to_get_the_weights(tmp_path):
    with pytest.raises(MissingWeightsError, match="TrajectoryCrafter/TrajectoryCrafter"):
        tiny_backbone(preset="full", resolution=None)
    with pytest.raises(MissingWeightsError, match="alibaba-pai/CogVideoX-Fun-V1.1-5b-InP"):
        tiny_backbone(preset="full", resolution=None, transformer_path=str(tmp_path))
    with pytest.raises(MissingWeightsError, match=r"base model directory .* does not exist"):
        tiny_backbone(base_path=str(tmp_path / "no-base"))
