"""Loading the published DepthCrafter UNet from a local directory.

The directory is what ``tencent/DepthCrafter`` ships: ``config.json`` plus
``diffusion_pytorch_model.safetensors`` (older diffusers exports: ``diffusion_pytorch_model.bin``,
read with ``torch.load(weights_only=True)`` so a checkpoint cannot run code). Every tensor the
model needs must be there with its shape; tensors the model does not use (left by a training
script, say) are skipped and reported with a warning instead of failing the load, as diffusers'
own ``from_pretrained`` does. ``tests/models/manifests/depthcrafter_unet.json`` lists the names
and shapes of the published checkpoint.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from devis_core.checkpoints import CONFIG_NAME, check_state_dict, read_state_dict, weight_files
from devis_core.errors import MissingWeightsError
from devis_plugins.depthcrafter.model import DepthCrafterUNet

PICKLED_WEIGHTS_NAME = "diffusion_pytorch_model.bin"


def read_unet_state(directory: Path, *, where: str) -> tuple[dict[str, torch.Tensor], str]:
    """Every tensor of the UNet checkpoint in ``directory`` and a name for it in messages.

    Safetensors (one file or shards) win over a pickled ``.bin`` when both are present.
    """
    if any(directory.glob("diffusion_pytorch_model*.safetensors")):
        files = weight_files(directory, where=where)
        source = str(files[0]) if len(files) == 1 else f"{directory} ({len(files)} shards)"
        return read_state_dict(files), source
    pickled = directory / PICKLED_WEIGHTS_NAME
    if not pickled.is_file():
        found = sorted(p.name for p in directory.iterdir())
        raise MissingWeightsError(
            f"no UNet weights in {directory}: expected diffusion_pytorch_model.safetensors or "
            f"{PICKLED_WEIGHTS_NAME}; found {found or 'nothing'}. {where}"
        )
    try:
        state = torch.load(pickled, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:  # weights_only refuses code
        raise MissingWeightsError(f"cannot read {pickled} as weights: {error}. {where}") from None
    if not isinstance(state, dict) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise MissingWeightsError(f"{pickled} is not a state dict of tensors. {where}")
    return state, str(pickled)


def load_unet(
    directory: str | Path, *, where: str, dtype: torch.dtype = torch.float32
) -> tuple[DepthCrafterUNet, list[str]]:
    """The UNet of ``directory`` in ``dtype`` and the names of the checkpoint's unused tensors.

    The model is built from ``config.json`` on the ``meta`` device and the tensors assigned, so
    the checkpoint is read once. Missing tensors and shape mismatches are errors naming them.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise MissingWeightsError(f"model directory {directory} does not exist. {where}")
    if not (directory / CONFIG_NAME).is_file():
        raise MissingWeightsError(
            f"{directory / CONFIG_NAME} is missing (the UNet's config). {where}"
        )
    config = dict(DepthCrafterUNet.load_config(str(directory)))
    with torch.device("meta"):
        model = DepthCrafterUNet.from_config(config)
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    state, source = read_unet_state(directory, where=where)
    used = {name: tensor for name, tensor in state.items() if name in expected}
    check_state_dict(expected, used, source=source, where=where)
    unused = sorted(set(state) - set(expected))
    if unused:
        shown = ", ".join(unused[:5]) + (
            f", ... ({len(unused) - 5} more)" if len(unused) > 5 else ""
        )
        warnings.warn(
            f"{source}: {len(unused)} tensors the DepthCrafter UNet does not use were skipped: "
            f"{shown}",
            stacklevel=2,
        )
    used = {
        name: tensor.to(dtype) if tensor.is_floating_point() else tensor
        for name, tensor in used.items()
    }
    model.load_state_dict(used, strict=True, assign=True)
    return model.eval(), unused
