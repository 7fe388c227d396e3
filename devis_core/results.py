"""Finished results saved with the key they were computed from, so that a later run reuses them.

A suite's row can take hours; saved as ``{"key": ..., <fields>}`` in a JSON file, it is
reused by an interrupted or repeated suite whose key (resolved config, sample count, held-out
setting, ...) is the same, and never by one whose key differs. Results are written atomically:
a crash leaves the previous result or none, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devis_core.errors import UsageError
from devis_core.files import atomic_write_text


def load_result(path: Path, key: Any, *, refuse_other: str | None = None) -> dict[str, Any] | None:
    """The fields saved at ``path`` with ``key`` (the key left out); None when there are none.

    A result of another key is None as well, for the caller to recompute and overwrite,
    unless ``refuse_other`` says what the key describes (``"config or held-out setting"``):
    then it is a :class:`UsageError`, for results whose other files could not be reused either.
    """
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if saved.get("key") == key:
        return {name: value for name, value in saved.items() if name != "key"}
    if refuse_other is None:
        return None
    raise UsageError(
        f"{path} holds results of another {refuse_other}: run into another --output, or delete "
        "that folder to recompute it"
    )


def save_result(path: Path, key: Any, fields: dict[str, Any]) -> None:
    """Save ``fields`` at ``path`` with ``key`` (NaN is written as NaN, which Python reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"key": key, **fields}, indent=2) + "\n")
