"""Loading diffusers-style model directories from local paths, with errors users can act on.

A diffusers model directory is ``config.json`` plus ``diffusion_pytorch_model.safetensors``, or
shards listed by ``diffusion_pytorch_model.safetensors.index.json``. Plugins that wrap
published checkpoints (TrajectoryCrafter, DepthCrafter) load them here so that a missing file
or a checkpoint of the wrong model says which file, which keys, and where the weights come
from, instead of a stack trace from deep inside ``load_state_dict``.

The model is built on the ``meta`` device and the tensors are assigned, so a 5B-parameter
checkpoint is read once into memory, never initialised at random first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file

from devis_core.errors import MissingWeightsError

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
CONFIG_NAME = "config.json"

ModelT = TypeVar("ModelT", bound=torch.nn.Module)


def weight_files(directory: Path, *, where: str) -> list[Path]:
    """The safetensors files of a diffusers model directory (one file, or every shard)."""
    single = directory / WEIGHTS_NAME
    if single.is_file():
        return [single]
    index = directory / WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as error:
            raise MissingWeightsError(
                f"{index} is not a safetensors index (needs a 'weight_map'): {error}. {where}"
            ) from None
        shards = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [str(shard) for shard in shards if not shard.is_file()]
        if missing:
            raise MissingWeightsError(
                f"{index} lists shards that are not there: {', '.join(missing[:3])}. {where}"
            )
        return shards
    shards = sorted(directory.glob("diffusion_pytorch_model*.safetensors"))
    if shards:
        return shards
    found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    raise MissingWeightsError(
        f"no weights in {directory}: expected {WEIGHTS_NAME} (or shards with "
        f"{WEIGHTS_INDEX_NAME}); found {found or 'nothing'}. Only safetensors are read. {where}"
    )


def read_state_dict(files: Iterable[Path]) -> dict[str, torch.Tensor]:
    """Every tensor of the given safetensors files, on the CPU."""
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file), device="cpu"))
    return state


def check_state_dict(
    expected: Mapping[str, tuple[int, ...]],
    found: Mapping[str, torch.Tensor],
    *,
    source: str,
    where: str,
    show: int = 5,
) -> None:
    """Raise :class:`MissingWeightsError` unless ``found`` has exactly the expected keys/shapes.

    The message names the file, a few missing and unexpected keys (with their counts) and shape
    mismatches, which is usually enough to tell a wrong checkpoint (the base CogVideoX-Fun
    transformer instead of TrajectoryCrafter's, say) from a truncated download.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = sorted(
        key for key in set(expected) & set(found) if tuple(found[key].shape) != tuple(expected[key])
    )
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {_few(missing, show)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {_few(unexpected, show)}")
    if mismatched:
        shapes = [
            f"{key} expected {tuple(expected[key])} found {tuple(found[key].shape)}"
            for key in mismatched[:show]
        ]
        parts.append(f"shape mismatches ({len(mismatched)}): {'; '.join(shapes)}")
    raise MissingWeightsError(
        f"{source} does not match the model it should hold: " + "; ".join(parts) + f". {where}"
    )


def load_model_directory(
    model_class: type[ModelT],
    directory: str | Path,
    *,
    where: str,
    dtype: torch.dtype = torch.float32,
    config_overrides: Mapping[str, Any] | None = None,
) -> ModelT:
    """Build ``model_class`` from ``directory/config.json`` and load its safetensors weights.

    ``model_class`` is a diffusers ``ModelMixin``/``ConfigMixin`` class. ``where`` tells the
    user where the weights come from and is appended to every error.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise MissingWeightsError(f"model directory {directory} does not exist. {where}")
    config_file = directory / CONFIG_NAME
    if not config_file.is_file():
        raise MissingWeightsError(f"{config_file} is missing (the model's config). {where}")
    files = weight_files(directory, where=where)
    config = dict(model_class.load_config(str(directory)))  # type: ignore[attr-defined]
    config.update(config_overrides or {})
    with torch.device("meta"):
        model = model_class.from_config(config)  # type: ignore[attr-defined]
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    state = read_state_dict(files)
    source = str(files[0]) if len(files) == 1 else f"{directory} ({len(files)} shards)"
    check_state_dict(expected, state, source=source, where=where)
    state = {
        key: value.to(dtype) if value.is_floating_point() else value for key, value in state.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    left_on_meta = [name for name, t in _tensors(model) if t.is_meta]
    if left_on_meta:
        raise MissingWeightsError(
            f"{source} leaves tensors uninitialised: {_few(left_on_meta, 5)}. {where}"
        )
    return model.eval()


def _tensors(model: torch.nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    yield from model.named_parameters()
    yield from model.named_buffers()


def _few(names: list[str], show: int) -> str:
    head = ", ".join(names[:show])
    return head + (f", ... ({len(names) - show} more)" if len(names) > show else "")
