"""Results kept on disk so that an interrupted or repeated run reuses them, never mixing others.

One scheme serves every engine and suite: a :class:`RecordLog`, an append-only JSONL file with
one record per finished unit of work (a sample scored by one method, a held-out scene, a
training step or round). Each record is flushed and synced as soon as it is written, so a
crash loses at most the unit in progress, and a line cut short is dropped on reading. Records
that may be reused carry the key of what they were computed from (:func:`config_key` of a
resolved config), and are reused only under the same key. :func:`write_records` writes a
finished set of records at once in the same format (a table's ``samples.jsonl``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from devis_core.errors import UsageError
from devis_core.toolkit.files import atomic_write_text


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
        handle.write(_line(record))
        handle.flush()
        os.fsync(handle.fileno())


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` with ``records``, one JSON line each as :func:`append_record` writes
    them (atomically: readers see the old file or the whole new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(_line(record) for record in records))


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, default=float) + "\n"
