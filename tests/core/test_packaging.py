"""The package list and the entry points in pyproject.toml agree with the source tree.

setuptools installs only the packages pyproject lists (plugins/ is mapped to devis_plugins),
and built-in plugins load only through their entry points: a folder or a plugin module that
is forgotten there would silently vanish from an installed DEVIS.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS = {"devis_core": ROOT / "devis_core", "devis_plugins": ROOT / "plugins"}


def _packages_on_disk() -> set[str]:
    found = set()
    for name, folder in PACKAGE_DIRS.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder)
            found.add(".".join((name, *relative.parts)))
    return found


def test_every_package_folder_is_listed_and_every_listed_one_exists():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed == _packages_on_disk()


def test_plugins_folder_is_installed_as_devis_plugins_only():
    mapping = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapping == {"devis_core": "devis_core", "devis_plugins": "plugins"}
    assert not any(
        p == "plugins" or p.startswith("plugins.")
        for p in PYPROJECT["tool"]["setuptools"]["packages"]
    )


def test_every_builtin_plugin_module_has_an_entry_point_and_imports():
    entry_points = PYPROJECT["project"]["entry-points"]["devis"]
    targets = set(entry_points.values())
    modules = {
        f"devis_plugins.{path.stem}"
        for path in (ROOT / "plugins").glob("*.py")
        if path.name != "__init__.py"
    } | {f"devis_plugins.{path.parent.name}" for path in (ROOT / "plugins").glob("*/__init__.py")}
    assert modules <= targets, f"plugin modules without an entry point: {modules - targets}"
    for target in targets:
        module = importlib.import_module(target)
        assert any(name.startswith("devis_register_") for name in vars(module)), target


def test_core_never_imports_a_plugin():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "devis_core").rglob("*.py")
        if "devis_plugins" in path.read_text()
    ]
    assert not offenders, f"devis_core must not import plugins: {offenders}"
