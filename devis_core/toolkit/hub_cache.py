"""Model paths given as Hugging Face repo ids, resolved from the local cache, never downloaded.

Users of diffusers and transformers keep checkpoints in the Hugging Face cache
(``~/.cache/huggingface/hub``) and name them by repo id. A component's model path may be one:
``org/name`` (the repo's snapshot), or ``org/name/sub/path`` (a folder or file inside it). The
id is looked up with ``huggingface_hub.snapshot_download(local_files_only=True)`` in the cache
that ``HF_HUB_CACHE`` or ``HF_HOME`` name, read when the path is resolved (so a changed
environment counts); DEVIS never downloads (its weights policy, and ``HF_HUB_OFFLINE`` holds by
construction). An id that is not cached is a :class:`MissingWeightsError` naming the repo, the
file and the ``huggingface-cli download`` command that fetches it.

Used by :func:`devis_core.toolkit.weights.require_file` and
:func:`devis_core.toolkit.model_directories.load_model_directory`; a plugin that joins paths
itself calls :func:`resolve_model_path` first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from devis_core.errors import MissingWeightsError

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(/[^/]+)*")


def hub_reference(value: str | Path) -> tuple[str, str] | None:
    """``(repo_id, path inside the repo)`` if ``value`` reads as a repo id, else None.

    Absolute paths, ``./``, ``../`` and ``~`` paths are local paths, never repo ids.
    """
    text = str(value)
    if text.startswith(("/", ".", "~")) or "\\" in text or not _REPO_ID.fullmatch(text):
        return None
    org, name, *rest = text.split("/")
    return f"{org}/{name}", "/".join(rest)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment as it is now (as huggingface_hub reads
    it at import: ``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``HF_HOME``/hub, XDG)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "huggingface" / "hub"


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision`` (default: the hub's default
    branch), or None if it is not cached."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a dependency of diffusers and transformers
        return None
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=hub_cache_dir(), local_files_only=True
        )
    except Exception:  # not cached (LocalEntryNotFoundError), or not a valid repo id
        return None
    return Path(folder)


def resolve_model_path(
    value: str | Path, what: str, how_to_get: str = "", field: str = "", *, file: bool = False
) -> Path:
    """The local path of a model path that may be a repo id (``file``: it must name a file).

    An existing local path is returned as it is, and so is a missing one that cannot be a repo
    id (its caller reports it). A repo id resolves inside the cached snapshot; if the repo or
    the path inside it is not cached, the error says what to download.
    """
    path = Path(value).expanduser()
    reference = None if path.exists() else hub_reference(value)
    if reference is None:
        return path
    repo_id, inside = reference
    origin = f" (from `{field}`)" if field else ""
    command = f"huggingface-cli download {repo_id}" + (f" {inside}" if file and inside else "")
    if not file and inside:
        command += f' --include "{inside}/*"'
    if file and not inside:
        raise MissingWeightsError(
            f"{what}: {value}{origin} names a Hugging Face repo, not a file in it: write "
            f"{repo_id}/<file>. {how_to_get}".rstrip()
        )
    snapshot = cached_snapshot(repo_id)
    if snapshot is None:
        raise MissingWeightsError(
            f"{what}: {value}{origin} is not a local path, and the Hugging Face repo {repo_id} "
            f"is not in the local cache ({hub_cache_dir()}); DEVIS never downloads. Get "
            f"{inside or 'it'} with `{command}`. {how_to_get}".rstrip()
        )
    target = snapshot / inside if inside else snapshot
    if not target.exists():
        raise MissingWeightsError(
            f"{what}: the Hugging Face repo {repo_id} is cached ({snapshot}) but without "
            f"{inside}{origin}. Get it with `{command}`. {how_to_get}".rstrip()
        )
    return target
