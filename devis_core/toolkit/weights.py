"""Local weight files: find them, or say exactly which file is missing and where to get it.

DEVIS never downloads weights at run time (``docs/metrics.md`` lists every file a component
needs and where it comes from); a component that needs one takes its path in the config.
"""

from __future__ import annotations

from pathlib import Path

from devis_core.errors import MissingWeightsError


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
    path = Path(path).expanduser()
    if not path.exists():
        raise MissingWeightsError(f"{what} not found at {path} (from `{field}`). {how_to_get}")
    return path
