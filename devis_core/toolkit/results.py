"""Results kept on disk so that an interrupted or repeated run reuses them, never mixing others.

Two shapes, one rule (a result is reused only under the key it was computed with):

- :class:`RecordLog`: an append-only JSONL file, one record per finished unit of work (a
  sample scored by one method, a training round). Each record is flushed as soon as it is
  written, so a crash loses at most the unit in progress; a line cut short is dropped on
  reading. Evaluations key each record by the method's config (:func:`config_key`).
- :func:`load_result` / :func:`save_result`: one JSON file per finished result.

A saved result's row can take hours; saved as ``{"key": ..., <fields>}`` in a JSON file, it is
reused by an interrupted or repeated suite whose key (resolved config, sample count, held-out
setting, ...) is the same, and never by one whose key differs. Results are written atomically:
a crash leaves the previous result or none, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from devis_core.errors import UsageError
from devis_core.toolkit.files import atomic_write_text


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


def config_key(data: Any) -> str:
    """A short, stable digest of JSON-like ``data`` (a resolved config): equal data, equal key."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_records(path: Path) -> list[dict[str, Any]]:
    """The complete records of a JSONL file; a last line cut short by a crash is dropped
    (and removed from the file, so that later appends start on a fresh line)."""
    if not path.exists():
        return []
    text = path.read_text()
    complete, _, partial = text.rpartition("\n")
    if partial:
        atomic_write_text(path, complete + "\n" if complete else "")
    records = []
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}, line {number}: not a JSON record ({error})") from None
    return records


class RecordLog:
    """An append-only JSONL file of records, read once when opened; with no path, the same
    in memory only (nothing saved, nothing resumed)."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.records = [] if path is None else read_records(path)

    def append(self, record: dict[str, Any]) -> None:
        """Add ``record`` to ``records`` and to the file (see :func:`append_record`)."""
        if self.path is not None:
            append_record(self.path, record)
        self.records.append(record)


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line, flushed and synced before returning (numbers that
    are not Python floats, such as numpy scalars, are written as floats)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
