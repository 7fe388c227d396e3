"""Checkpoints in the published key layouts load: the transformer, DEVIS and peft LoRA files.

``tests/models/manifests/trajectorycrafter_*.json`` list the tensor names and full-size shapes:
the transformer's from upstream's own model definition (``models/crosstransformer3d.py``), the
LoRA layouts from peft. Each test writes a tiny random checkpoint under exactly the manifest's
names (a 42-layer model of width 32, so every published name exists) and loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from devis_core.errors import MissingWeightsError
from devis_plugins.trajectorycrafter.loading import build_components
from devis_plugins.trajectorycrafter.model import CrossTransformer3DModel
from devis_plugins.trajectorycrafter.presets import FULL, TINY
from tests.models.conftest import tiny_backbone

MANIFESTS = Path(__file__).parent / "manifests"
TRANSFORMER = json.loads((MANIFESTS / "trajectorycrafter_transformer.json").read_text())
LORA_DEVIS = json.loads((MANIFESTS / "trajectorycrafter_lora_devis.json").read_text())
LORA_PEFT = json.loads((MANIFESTS / "trajectorycrafter_lora_peft.json").read_text())
PUBLISHED_DEPTH = {**TINY.transformer, "num_layers": FULL.transformer["num_layers"]}
"""The tiny width with the published 42 blocks and 21 reference cross-attentions."""
RANK = 4
UNUSED = {"pos_embedding": (1, 8, 32), "training_step": (1,)}
"""Tensors a checkpoint may carry that the model does not define (upstream's model has a
``pos_embedding`` buffer; it is not persistent, but a checkpoint saved otherwise would hold it)."""

TRIPPED: list[bool] = []


def _trip() -> torch.Tensor:
    TRIPPED.append(True)
    return torch.zeros(1)


class _Tripwire:
    """Unpickling this runs ``_trip``: what a malicious ``.bin`` could do with any function."""

    def __reduce__(self):
        return (_trip, ())


def _tiny_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = CrossTransformer3DModel(**PUBLISHED_DEPTH)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def _random(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def _write_transformer(directory: Path, state: dict[str, torch.Tensor], pickled: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {"_class_name": "CrossTransformer3DModel", **PUBLISHED_DEPTH}
    (directory / "config.json").write_text(json.dumps(config))
    if pickled:
        torch.save(state, directory / "diffusion_pytorch_model.bin")
    else:
        save_file(state, str(directory / "diffusion_pytorch_model.safetensors"))
    return directory


def _load_transformer(directory: Path) -> CrossTransformer3DModel:
    return build_components(
        TINY,
        transformer_path=str(directory),
        base_path=None,
        dtype=torch.float32,
        init_seed=0,
        require_weights=False,
    ).transformer


def _lora_tensors(names: list[str], prefix: str = "") -> dict[str, torch.Tensor]:
    """Random ``lora_A (r, in)`` / ``lora_B (out, r)`` under ``names``, sized by the tiny model."""
    with torch.device("meta"):
        model = CrossTransformer3DModel(**PUBLISHED_DEPTH)
    generator = torch.Generator().manual_seed(1)
    state = {}
    for name in names:
        module_name, which = name.removeprefix(prefix).rsplit(".lora_", 1)
        linear = model.get_submodule(module_name)
        shape = (RANK, linear.in_features) if which == "A.weight" else (linear.out_features, RANK)
        state[name] = torch.randn(shape, generator=generator)
    return state


def _adapter_weights(model: CrossTransformer3DModel, name: str) -> torch.Tensor:
    module_name, which = name.rsplit(".lora_", 1)
    return getattr(model.get_submodule(module_name), f"lora_{which[0]}")["default"].weight


def test_transformer_manifest_is_the_full_architecture():
    with torch.device("meta"):
        model = CrossTransformer3DModel(**TRANSFORMER["config"])
    ours = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    assert ours == TRANSFORMER["tensors"]
    assert len(ours) == 1173


@pytest.mark.parametrize("pickled", [False, True], ids=["safetensors", "bin"])
def test_published_layout_loads_and_unused_tensors_are_reported(tmp_path, pickled):
    shapes = _tiny_shapes()
    assert sorted(shapes) == sorted(TRANSFORMER["tensors"])
    state = _random(shapes)
    written = {**state, **_random(UNUSED, seed=1)}
    directory = _write_transformer(tmp_path / "transformer", written, pickled)
    with pytest.warns(UserWarning, match=r"skipped 2 tensors .*pos_embedding, training_step"):
        model = _load_transformer(directory)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())


def test_pickled_checkpoint_cannot_run_code(tmp_path):
    state = _random(_tiny_shapes())
    state["proj_out.bias"] = _Tripwire()
    directory = _write_transformer(tmp_path / "transformer", state, pickled=True)
    with pytest.raises(MissingWeightsError, match=r"cannot read .*diffusion_pytorch_model\.bin"):
        _load_transformer(directory)
    assert not TRIPPED


def test_missing_and_reshaped_published_tensors_are_errors(tmp_path):
    state = _random(_tiny_shapes())
    state.pop("perceiver_cross_attention.20.to_kv.weight")
    state["ref_patch_embed.proj.weight"] = torch.zeros(32, 5, 2, 2)
    directory = _write_transformer(tmp_path / "transformer", state, pickled=False)
    with pytest.raises(MissingWeightsError) as error:
        _load_transformer(directory)
    message = str(error.value)
    assert "missing keys (1): perceiver_cross_attention.20.to_kv.weight" in message
    assert "ref_patch_embed.proj.weight expected (32, 3, 2, 2) found (32, 5, 2, 2)" in message


def test_devis_lora_file_loads(tmp_path):
    transformer = _write_transformer(tmp_path / "transformer", _random(_tiny_shapes()), False)
    state = _lora_tensors(sorted(LORA_DEVIS["tensors"]))
    metadata = {**LORA_DEVIS["metadata"], "rank": str(RANK), "alpha": "8.0"}
    save_file(state, str(tmp_path / "adapter.safetensors"), metadata=metadata)
    backbone = tiny_backbone(
        transformer_path=str(transformer), lora={"path": str(tmp_path / "adapter.safetensors")}
    )
    assert (backbone.lora_settings.rank, backbone.lora_settings.alpha) == (RANK, 8.0)
    for name, tensor in state.items():
        assert torch.equal(_adapter_weights(backbone.transformer, name), tensor)


@pytest.mark.parametrize("weights", ["adapter_model.safetensors", "adapter_model.bin"])
def test_peft_adapter_directory_loads(tmp_path, weights):
    transformer = _write_transformer(tmp_path / "transformer", _random(_tiny_shapes()), False)
    names = sorted(LORA_PEFT["tensors"])
    assert {name.removeprefix("base_model.model.") for name in names} == set(LORA_DEVIS["tensors"])
    state = _lora_tensors(names, prefix="base_model.model.")
    adapter = tmp_path / "peft-adapter"
    adapter.mkdir()
    config = {**LORA_PEFT["adapter_config"], "r": RANK, "lora_alpha": 16}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    if weights.endswith(".bin"):
        torch.save(state, adapter / weights)
    else:
        save_file(state, str(adapter / weights), metadata={"format": "pt"})
    backbone = tiny_backbone(transformer_path=str(transformer), lora={"path": str(adapter)})
    settings = backbone.lora_settings
    assert (settings.rank, settings.alpha, settings.target_modules) == (
        RANK,
        16.0,
        config["target_modules"],
    )
    for name, tensor in state.items():
        plain = name.removeprefix("base_model.model.")
        assert torch.equal(_adapter_weights(backbone.transformer, plain), tensor)


def test_peft_adapter_with_other_arithmetic_is_refused(tmp_path):
    adapter = tmp_path / "peft-adapter"
    adapter.mkdir()
    config = {**LORA_PEFT["adapter_config"], "use_dora": True}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    save_file({"x": torch.zeros(1)}, str(adapter / "adapter_model.safetensors"))
    with pytest.raises(MissingWeightsError, match=r"only a plain peft LoRA .*use_dora=True"):
        tiny_backbone(lora={"path": str(adapter)})
