"""Atomic writes: a reader never sees a half-written file, and a crash leaves the old file or none.

Every output is written under a staging name in the target's own directory (the same
filesystem, so the final rename is atomic), flushed to disk with fsync, then renamed onto the
target with :func:`os.replace`; the directory is fsync'ed after the rename (POSIX) so the new
name itself survives a power loss. A writer that fails removes its staging file and leaves the
target as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A staging path beside ``path`` to write; renamed onto ``path`` when the block succeeds.

    The staging name keeps ``path``'s suffix (writers such as ``savefig`` pick the format from
    it) and is unique, so concurrent writers of one target never write into each other's file.
    """
    path = Path(path)
    staging = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield staging
        _fsync(staging)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """``path`` holding ``text``, written atomically."""
    with atomic_path(path) as staging:
        staging.write_text(text)


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """A staging directory beside ``path`` to fill; it replaces ``path`` when the block succeeds.

    The caller must be the target's only writer (a training run's main process): the staging
    name is fixed, so the leftover of a write killed mid-way is cleared by the next write of
    the same target instead of piling up.
    """
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        for file in sorted(staging.rglob("*")):
            if file.is_file():
                _fsync(file)
        _fsync_directory(staging)
        shutil.rmtree(path, ignore_errors=True)  # a directory cannot be renamed onto a full one
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_directory(path.parent)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable; only POSIX can open a directory to sync it."""
    if os.name == "posix":
        _fsync(directory)
