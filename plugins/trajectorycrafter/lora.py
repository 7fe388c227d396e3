"""LoRA on the transformer's attention projections (peft), saved and loaded as safetensors.

The adapter is the trainable part of the RL policy; switching it off gives the reference
policy (the base model, exactly). A LoRA file holds the adapter tensors under peft's
adapter-free names (``transformer_blocks.0.attn1.to_q.lora_A.weight``, ...) and, in the
safetensors metadata, the settings needed to rebuild the adapter (rank, alpha, targets).

The adapter is kept in float32 whatever the base's dtype (fp32 master weights): with a bf16
base, an update of 1e-4 to a weight near 1 is below bf16's resolution and would be lost.
peft's LoRA layers cast the input to the adapter's dtype and the sum back to the base's, so
the frozen base still runs in bf16 / fp16. Saved adapters are float32 too.

Upstream TrajectoryCrafter publishes no LoRA. An adapter trained elsewhere with peft
(``PeftModel.save_pretrained``: ``adapter_model.safetensors`` or ``.bin`` with the names
prefixed by ``base_model.model.``, settings in ``adapter_config.json`` beside it) loads too.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import LoraConfig
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

from devis_core.errors import MissingWeightsError
from devis_core.toolkit.model_directories import check_state_dict, read_tensors
from devis_plugins.trajectorycrafter.config import LoraSettings
from devis_plugins.trajectorycrafter.model import CrossTransformer3DModel

ADAPTER = "default"
FORMAT = "devis-lora-v1"
MASTER_DTYPE = torch.float32
"""The adapter's dtype (and so the optimizer state's), whatever the base model's."""
_LOW_PRECISION = (torch.float16, torch.bfloat16)
PEFT_PREFIX = "base_model.model."
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
PEFT_PLAIN_LORA = {
    "use_dora": False,
    "use_rslora": False,
    "rank_pattern": {},
    "alpha_pattern": {},
    "bias": "none",
    "modules_to_save": None,
}
"""peft settings that change the adapter's arithmetic or add tensors, at their plain values."""


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
    upcast_adapter(model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name)


def upcast_adapter(model: torch.nn.Module) -> None:
    """Cast the adapter's bf16 / fp16 tensors to float32 (peft's ``autocast_adapter_dtype``).

    peft creates the adapter in the base layer's dtype when it is injected into a model (not
    through ``get_peft_model``, which upcasts); small optimizer updates would round away.
    """
    for module in model.modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        for name in module.adapter_layer_names:
            layers = getattr(module, name, None)
            if layers is None or ADAPTER not in layers:
                continue
            layer = layers[ADAPTER]
            if isinstance(layer, torch.nn.Parameter):
                if layer.dtype in _LOW_PRECISION:
                    layers[ADAPTER] = torch.nn.Parameter(
                        layer.detach().to(MASTER_DTYPE), requires_grad=layer.requires_grad
                    )
            elif any(p.dtype in _LOW_PRECISION for p in layer.parameters()):
                layer.to(MASTER_DTYPE)


def lora_parameters(model: CrossTransformer3DModel) -> list[torch.nn.Parameter]:
    """The adapter's parameters (what the optimiser trains)."""
    return [p for name, p in model.named_parameters() if ".lora_" in name]


def save_lora(model: CrossTransformer3DModel, settings: LoraSettings, path: str | Path) -> Path:
    """Write the adapter to ``path`` (a ``.safetensors`` file, float32); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        key: value.detach().to(MASTER_DTYPE).contiguous().clone()
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


def adapter_file(path: str | Path) -> Path:
    """The adapter weights at ``path``: a file, or the weights file of a peft directory."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = [path / name for name in PEFT_WEIGHTS if (path / name).is_file()]
        if not found:
            raise MissingWeightsError(
                f"{path} holds neither {' nor '.join(PEFT_WEIGHTS)} (backbone.lora.path: a LoRA "
                "file or a peft adapter directory)"
            )
        return found[0]
    if not path.is_file():
        raise MissingWeightsError(
            f"LoRA file {path} does not exist (backbone.lora.path); LoRA files are written by "
            "the backbone's save_lora (DEVIS training checkpoints) or by peft's save_pretrained"
        )
    return path


def read_lora_settings(path: str | Path) -> LoraSettings:
    """The adapter settings of a LoRA file: its DEVIS metadata, or peft's adapter config."""
    file = adapter_file(path)
    metadata = {}
    if file.suffix == ".safetensors":
        try:
            with safe_open(str(file), framework="pt") as handle:
                metadata = handle.metadata() or {}
        except Exception as error:  # SafetensorError: a corrupt or truncated file
            raise MissingWeightsError(
                f"cannot read LoRA file {file} (backbone.lora.path): not a valid safetensors "
                f"file, or a corrupt or truncated one ({error})"
            ) from None
    if metadata.get("format") == FORMAT:
        return LoraSettings(
            rank=int(metadata["rank"]),
            alpha=float(metadata["alpha"]),
            dropout=float(metadata["dropout"]),
            target_modules=json.loads(metadata["target_modules"]),
            path=str(file),
        )
    if (file.parent / PEFT_CONFIG).is_file():
        return _peft_settings(file.parent / PEFT_CONFIG, file)
    raise MissingWeightsError(
        f"{file} is not a DEVIS LoRA file (metadata format {metadata.get('format')!r}, "
        f"expected {FORMAT!r}) and has no peft {PEFT_CONFIG} beside it; write LoRA files with "
        "the backbone's save_lora"
    )


def _peft_settings(config_file: Path, weights: Path) -> LoraSettings:
    """Settings from peft's ``adapter_config.json``, for the plain LoRA this module builds."""
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MissingWeightsError(
            f"cannot read peft adapter config {config_file}: {error}"
        ) from None
    if not isinstance(config, dict):
        raise MissingWeightsError(f"{config_file} is not a peft adapter config (a JSON object)")
    unsupported = [
        f"{name}={config[name]!r}"
        for name, plain in PEFT_PLAIN_LORA.items()
        if config.get(name, plain) not in (plain, None)
    ]
    if config.get("peft_type") != "LORA" or unsupported:
        raise MissingWeightsError(
            f"{config_file}: only a plain peft LoRA adapter can be loaded (found peft_type "
            f"{config.get('peft_type')!r}{', ' if unsupported else ''}{', '.join(unsupported)})"
        )
    return LoraSettings(
        rank=config["r"],
        alpha=config["lora_alpha"],
        dropout=config.get("lora_dropout", 0.0),
        target_modules=config["target_modules"],
        path=str(weights),
    )


def load_lora(model: CrossTransformer3DModel, path: str | Path) -> None:
    """Load adapter weights into the model's adapter; keys and shapes must match exactly.

    peft's own files name every tensor from the ``PeftModel`` wrapper (``base_model.model.``
    first); that prefix is dropped, the rest of the name is the same.
    """
    file = adapter_file(path)
    where = "The file's adapter (rank, target modules) must match backbone.lora."
    expected = {
        key: tuple(value.shape)
        for key, value in get_peft_model_state_dict(model, adapter_name=ADAPTER).items()
    }
    state = read_tensors(file, where=where)
    if state and all(key.startswith(PEFT_PREFIX) for key in state):
        state = {key.removeprefix(PEFT_PREFIX): value for key, value in state.items()}
    check_state_dict(expected, state, source=str(file), where=where)
    device = next(model.parameters()).device
    state = {key: value.to(device) for key, value in state.items()}
    result = set_peft_model_state_dict(model, state, adapter_name=ADAPTER)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise MissingWeightsError(f"{file}: peft did not place keys {unexpected[:5]}")
