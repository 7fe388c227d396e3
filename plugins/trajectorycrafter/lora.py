"""LoRA on the transformer's attention projections (peft), saved and loaded as safetensors.

The adapter is the trainable part of the RL policy; switching it off gives the reference
policy (the base model, exactly). A LoRA file holds the adapter tensors under peft's
adapter-free names (``transformer_blocks.0.attn1.to_q.lora_A.weight``, ...) and, in the
safetensors metadata, the settings needed to rebuild the adapter (rank, alpha, targets).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

from devis_core.checkpoints import check_state_dict
from devis_core.errors import MissingWeightsError
from devis_plugins.trajectorycrafter.config import LoraSettings
from devis_plugins.trajectorycrafter.model import CrossTransformer3DModel

ADAPTER = "default"
FORMAT = "devis-lora-v1"


def add_lora(model: CrossTransformer3DModel, settings: LoraSettings) -> None:
    """Inject a freshly initialised adapter (``B = 0``: the model's outputs are unchanged)."""
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        target_modules=list(settings.target_modules),
        lora_dropout=settings.dropout,
        init_lora_weights=True,
    )
    model.add_adapter(config, adapter_name=ADAPTER)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name)


def lora_parameters(model: CrossTransformer3DModel) -> list[torch.nn.Parameter]:
    """The adapter's parameters (what the optimiser trains)."""
    return [p for name, p in model.named_parameters() if ".lora_" in name]


def save_lora(model: CrossTransformer3DModel, settings: LoraSettings, path: str | Path) -> Path:
    """Write the adapter to ``path`` (a ``.safetensors`` file); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        key: value.detach().contiguous().clone()
        for key, value in get_peft_model_state_dict(model, adapter_name=ADAPTER).items()
    }
    metadata = {
        "format": FORMAT,
        "rank": str(settings.rank),
        "alpha": str(settings.alpha),
        "dropout": str(settings.dropout),
        "target_modules": json.dumps(list(settings.target_modules)),
    }
    save_file(state, str(path), metadata=metadata)
    return path


def read_lora_settings(path: str | Path) -> LoraSettings:
    """The adapter settings stored in a LoRA file's metadata."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(
            f"LoRA file {path} does not exist (backbone.lora.path); LoRA files are written by "
            "the backbone's save_lora (DEVIS training checkpoints)"
        )
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise MissingWeightsError(
            f"{path} is not a DEVIS LoRA file (metadata format {metadata.get('format')!r}, "
            f"expected {FORMAT!r}); write LoRA files with the backbone's save_lora"
        )
    return LoraSettings(
        rank=int(metadata["rank"]),
        alpha=float(metadata["alpha"]),
        dropout=float(metadata["dropout"]),
        target_modules=json.loads(metadata["target_modules"]),
        path=str(path),
    )


def load_lora(model: CrossTransformer3DModel, path: str | Path) -> None:
    """Load adapter weights into the model's adapter; keys and shapes must match exactly."""
    path = Path(path).expanduser()
    expected = {
        key: tuple(value.shape)
        for key, value in get_peft_model_state_dict(model, adapter_name=ADAPTER).items()
    }
    with safe_open(str(path), framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    check_state_dict(
        expected,
        state,
        source=str(path),
        where="The file's adapter (rank, target modules) must match backbone.lora.",
    )
    device = next(model.parameters()).device
    state = {key: value.to(device) for key, value in state.items()}
    result = set_peft_model_state_dict(model, state, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise MissingWeightsError(f"{path}: peft did not place keys {unexpected[:5]}")
