"""Loading diffusers-style model directories from local paths, with errors users can act on.

A diffusers model directory is ``config.json`` plus ``diffusion_pytorch_model.safetensors``,
shards listed by ``diffusion_pytorch_model.safetensors.index.json``, or (older exports)
``diffusion_pytorch_model.bin``. Plugins that wrap published checkpoints (TrajectoryCrafter,
DepthCrafter) load them here so that a missing file or a checkpoint of the wrong model says
which file, which keys, and where the weights come from, instead of a stack trace from deep
inside ``load_state_dict``.

The published code loads these directories with diffusers' ``from_pretrained``, which skips
tensors the model does not define; :func:`load_model_directory` accepts the same checkpoints
and reports the skipped tensors. A ``.bin`` is unpickled tensors-only
(``torch.load(weights_only=True)``), so a downloaded checkpoint cannot run code.

The model is built on the ``meta`` device and the tensors are assigned, so a 5B-parameter
checkpoint is read once into memory, never initialised at random first.

A directory may be a Hugging Face repo id (``org/name`` or ``org/name/subfolder``), found in
the local cache only (:mod:`devis_core.toolkit.hub_cache`). torch is imported by the functions
that use it, so importing this module stays cheap for ``devis plugins``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from devis_core.errors import MissingWeightsError
from devis_core.toolkit.hub_cache import resolve_model_path
from devis_core.toolkit.weights import load_tensors

if TYPE_CHECKING:
    import torch

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
PICKLED_WEIGHTS_NAME = "diffusion_pytorch_model.bin"
CONFIG_NAME = "config.json"

ModelT = TypeVar("ModelT", bound="torch.nn.Module")


def weight_files(directory: Path, *, where: str) -> list[Path]:
    """The weights of a diffusers model directory: one safetensors file, or every shard, or
    else the pickled ``.bin`` (safetensors win when both are there, as in diffusers)."""
    single = directory / WEIGHTS_NAME
    if single.is_file():
        return [single]
    index = directory / WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            weight_map = dict(json.loads(index.read_text())["weight_map"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
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
    if (directory / PICKLED_WEIGHTS_NAME).is_file():
        return [directory / PICKLED_WEIGHTS_NAME]
    found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    raise MissingWeightsError(
        f"no weights in {directory}: expected {WEIGHTS_NAME} (or shards with "
        f"{WEIGHTS_INDEX_NAME}) or {PICKLED_WEIGHTS_NAME}; found {found or 'nothing'}. {where}"
    )


def read_tensors(file: Path, *, where: str) -> dict[str, torch.Tensor]:
    """The tensors of one weights file, on the CPU: safetensors, or a pickle read tensors-only.

    ``weights_only=True`` makes ``torch.load`` refuse anything but tensors and plain
    containers, so a downloaded ``.bin`` cannot run code while it is read.
    """
    import torch

    state = load_tensors(file, "weights", where)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MissingWeightsError(f"{file} is not a state dict of tensors. {where}")
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
    dtype: torch.dtype | None = None,
    name: str | None = None,
) -> tuple[ModelT, list[str]]:
    """``model_class`` built from ``directory/config.json`` with the directory's weights, in
    ``dtype``, and the names of the checkpoint's tensors the model does not define.

    ``model_class`` is a diffusers ``ModelMixin``/``ConfigMixin`` class; ``dtype`` defaults to
    float32; ``directory`` may be a cached Hugging Face repo id. Every tensor the model
    defines must be there with its shape (an error names the file and the keys); the others are
    skipped and listed in a warning, which calls the model ``name`` (default: the class name).
    ``where`` tells the user where the weights come from and ends every error.
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    directory = resolve_model_path(directory, "model directory", where)
    if not directory.is_dir():
        raise MissingWeightsError(f"model directory {directory} does not exist. {where}")
    config_file = directory / CONFIG_NAME
    if not config_file.is_file():
        raise MissingWeightsError(f"{config_file} is missing (the model's config). {where}")
    files = weight_files(directory, where=where)
    source = str(files[0]) if len(files) == 1 else f"{directory} ({len(files)} shards)"
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(read_tensors(file, where=where))
    try:
        config = model_class.load_config(str(directory))  # type: ignore[attr-defined]
        with torch.device("meta"):
            model = model_class.from_config(config)  # type: ignore[attr-defined]
    except (OSError, ValueError, TypeError) as error:  # diffusers: invalid JSON is an OSError
        raise MissingWeightsError(f"cannot use {config_file}: {error}. {where}") from None
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    unused = sorted(set(state) - set(expected))
    if unused:
        warnings.warn(
            f"{source}: skipped {len(unused)} tensors the {name or model_class.__name__} does "
            f"not use: {', '.join(unused)}",
            stacklevel=2,
        )
    used = {key: value for key, value in state.items() if key in expected}
    check_state_dict(expected, used, source=source, where=where)
    used = {
        key: value.to(dtype) if value.is_floating_point() else value for key, value in used.items()
    }
    model.load_state_dict(used, strict=True, assign=True)
    left_on_meta = [key for key, tensor in _tensors(model) if tensor.is_meta]
    if left_on_meta:
        raise MissingWeightsError(
            f"{source} leaves tensors uninitialised: {_few(left_on_meta, 5)}. {where}"
        )
    return model.eval(), unused


def _tensors(model: torch.nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    yield from model.named_parameters()
    yield from model.named_buffers()


def _few(names: list[str], show: int) -> str:
    head = ", ".join(names[:show])
    return head + (f", ... ({len(names) - show} more)" if len(names) > show else "")
