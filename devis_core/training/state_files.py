"""Checkpoint state as safetensors plus JSON, and the manifest that verifies a checkpoint.

Training state (optimizer and scheduler state dicts, RNG states, counters) is a tree of dicts,
lists, tuples, numbers, strings and tensors. :func:`write_state` keeps its tensors in a
safetensors file and the rest of the tree in a JSON file, where each tensor is a reference to
its key; :func:`read_state` rebuilds the tree. Neither file format can hold code, so loading a
checkpoint from someone else never runs any (``torch.load`` of a pickle could).

:func:`write_manifest` records the size and SHA-256 of every file of a checkpoint directory;
:func:`verify_manifest` checks them, so a truncated or corrupted checkpoint is noticed before
anything is loaded from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

STATE_TENSORS = "state.safetensors"
STATE_TREE = "state.json"
MANIFEST = "manifest.json"
FORMAT = 1
"""Version of the checkpoint layout, recorded in the manifest."""

_TENSOR, _ARRAY, _TUPLE, _ITEMS = "__tensor__", "__ndarray__", "__tuple__", "__items__"
_MARKERS = {_TENSOR, _ARRAY, _TUPLE, _ITEMS}


class ChecksumError(ValueError):
    """A checkpoint directory does not match its manifest (or has none)."""


def write_state(directory: Path, state: dict[str, Any]) -> None:
    """``state`` as ``state.safetensors`` (its tensors) and ``state.json`` (everything else)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors)
    save_file(tensors, str(directory / STATE_TENSORS))
    (directory / STATE_TREE).write_text(json.dumps(tree))


def read_state(directory: Path) -> dict[str, Any]:
    """The state :func:`write_state` wrote in ``directory`` (no unpickling: safetensors and
    JSON only)."""
    tensors = load_file(str(directory / STATE_TENSORS), device="cpu")
    tree = json.loads((directory / STATE_TREE).read_text())
    state = _decode(tree, tensors)
    if not isinstance(state, dict):
        raise ValueError(f"{directory / STATE_TREE} does not hold a state dictionary")
    return state


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of ``value`` whose tensors are moved to ``tensors`` (by reference)."""
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        key = str(len(tensors))
        # safetensors has no unsigned 32-bit type: numpy's MT19937 key fits in int64
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value.astype(np.int64)))
        return {_ARRAY: key, "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(item, tensors) for item in value]}
    if isinstance(value, list):
        return [_encode(item, tensors) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not (_MARKERS & set(value)):
            return {key: _encode(item, tensors) for key, item in value.items()}
        # int keys (an optimizer's per-parameter state) would come back as strings from JSON
        return {
            _ITEMS: [[_encode(key, tensors), _encode(item, tensors)] for key, item in value.items()]
        }
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint's state")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        return tensors[value[_TENSOR]]
    if _ARRAY in value:
        return tensors[value[_ARRAY]].numpy().astype(np.dtype(value["dtype"]))
    if _TUPLE in value:
        return tuple(_decode(item, tensors) for item in value[_TUPLE])
    if _ITEMS in value:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in value[_ITEMS]}
    return {key: _decode(item, tensors) for key, item in value.items()}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


# --- the manifest ---------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes (read in chunks: optimizer states can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path) -> None:
    """``manifest.json`` in ``directory``: the size and SHA-256 of each of its other files."""
    files = {
        path.name: {"size": path.stat().st_size, "sha256": file_digest(path)}
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != MANIFEST
    }
    (directory / MANIFEST).write_text(json.dumps({"format": FORMAT, "files": files}, indent=1))


def verify_manifest(directory: Path, required: tuple[str, ...]) -> None:
    """Check every file the manifest of ``directory`` lists (size, then SHA-256), and that the
    ``required`` ones are listed; raise :class:`ChecksumError` saying what is wrong."""
    manifest = directory / MANIFEST
    try:
        data = json.loads(manifest.read_text())
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except FileNotFoundError:
        raise ChecksumError(f"{manifest} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ChecksumError(f"{manifest} is unreadable ({error})") from None
    for name in required:
        if name not in files:
            raise ChecksumError(f"{manifest} does not list {name}")
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ChecksumError(f"{path} is missing")
        size = path.stat().st_size
        if size != expected.get("size"):
            raise ChecksumError(f"{path} has {size} bytes, the manifest {expected.get('size')}")
        if file_digest(path) != expected.get("sha256"):
            raise ChecksumError(f"{path} does not match its SHA-256 in the manifest")
