"""Built-in pipeline configs, found by name: ``devis run quickstart``.

``pip install devis`` does not install the repository's ``configs/`` folder, so a copy of it is
shipped as package data of the built-in plugins (``plugins/configs/*.yaml``; a test keeps the two
equal). Any plugin package may ship configs the same way: the ``configs/*.yaml`` beside the
top-level package of an entry point of the group ``devis``. The core finds those folders with
:func:`importlib.util.find_spec`, which executes no plugin code, and reads them as data.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

from devis_core.errors import UsageError

ENTRY_POINT_GROUP = "devis"
CONFIG_FOLDER = "configs"
SUFFIX = ".yaml"


def builtin_configs() -> dict[str, Path]:
    """Name (file stem) to path of every shipped config, sorted by name.

    Plugin packages are visited in entry-point name order; the first config of a name wins.
    """
    found: dict[str, Path] = {}
    for folder in _config_folders():
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            if path.is_file():
                found.setdefault(path.name.removesuffix(SUFFIX), path)
    return dict(sorted(found.items()))


def _config_folders() -> list[Path]:
    """The ``configs`` folders of the top-level packages the plugin entry points live in."""
    folders: list[Path] = []
    points = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda point: point.name)
    for package in dict.fromkeys(point.value.split(":")[0].split(".")[0] for point in points):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            folder = Path(location) / CONFIG_FOLDER
            if folder.is_dir() and folder not in folders:
                folders.append(folder)
    return folders


def describe(path: Path) -> str:
    """The first comment line of a config file: what it is for, as its author wrote it."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
        if stripped:
            break
    return ""


def resolve_config(argument: str | Path) -> Path:
    """The config file a command-line argument names: an existing file, else a built-in name.

    A name that is neither is a :class:`UsageError` (exit 2) listing the built-in names, so a
    typo shows what ships.
    """
    path = Path(argument)
    if path.exists():
        return path
    builtins = builtin_configs()
    name = str(argument).removesuffix(SUFFIX)
    if name in builtins:
        return builtins[name]
    names = ", ".join(builtins) or "(none installed)"
    raise UsageError(
        f"config file not found: {argument} (not a file, nor a built-in config; built-in "
        f"configs: {names}; `devis configs` lists them)"
    )
