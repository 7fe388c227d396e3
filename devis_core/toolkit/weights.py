"""Local weight files: find them, or say exactly which file is missing and where to get it.

DEVIS never downloads weights at run time (``docs/metrics.md`` lists every file a component
needs and where it comes from); a component that needs one takes its path in the config. That
path may also be a Hugging Face repo id (``org/name``, ``org/name/sub/path``), resolved from
the local Hugging Face cache only (:mod:`devis_core.toolkit.hub_cache`).

torch is imported where tensors are read, not at import: plugins import these helpers while
DEVIS only lists them (``devis plugins``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devis_core.errors import MissingWeightsError
from devis_core.toolkit.hub_cache import resolve_model_path


def require_file(path: str | Path | None, what: str, how_to_get: str, field: str) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is an existing file, else a clear error.

    ``what`` names the file's content, ``how_to_get`` says where users obtain it and ``field``
    is the config field that points at it.
    """
    if path is None:
        raise MissingWeightsError(
            f"{what} is needed and no file is configured: set `{field}` to its local path. "
            f"{how_to_get}"
        )
    path = resolve_model_path(path, what, how_to_get, field, file=True)
    if not path.exists():
        raise MissingWeightsError(f"{what} not found at {path} (from `{field}`). {how_to_get}")
    return path


def load_tensors(path: str | Path, what: str, how_to_get: str = "") -> Any:
    """The content of a weights file: a ``.safetensors`` file's tensors, or else a pickle read
    tensors-only (``torch.load(weights_only=True)``: a downloaded file cannot run code).

    A corrupt or truncated file (an interrupted download, the wrong file) is a
    :class:`MissingWeightsError` that names it, not a traceback from deep inside the reader.
    ``what`` names the file's content, ``how_to_get`` ends the message.
    """
    import torch

    path = Path(path).expanduser()
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MissingWeightsError(f"{what} not found at {path}. {how_to_get}".rstrip()) from None
    except IsADirectoryError:
        raise MissingWeightsError(f"{what} at {path} is a directory, not a file") from None
    except Exception as error:  # safetensors, zip and pickle readers raise many types
        kind = "safetensors" if path.suffix == ".safetensors" else "torch"
        raise MissingWeightsError(
            f"cannot read {what} from {path}: not a valid {kind} weights file, or a corrupt or "
            f"truncated one ({type(error).__name__}: {error}). {how_to_get}".rstrip()
        ) from None
