"""The core names no built-in plugin kind: what the built-ins are is said by the plugins.

The kinds come from the registry (every component the installed ``devis`` distribution
registers), and every module under devis_core/ is read with :mod:`ast`: a string constant equal
to a kind (``"synthetic"``, ``{"kind": "inpaint"}``, ``["psnr", "ssim"]``) is the core knowing
a plugin, and would break when that plugin is disabled or renamed.

Documentation does not count: a string that is a statement by itself (a module, class, function
or attribute docstring) is prose for readers, which may cite a built-in as an example
(``-o dataset.kind=video``) without the code depending on it. Comments are not string constants.
"""

from __future__ import annotations

import ast
from pathlib import Path

from devis_core.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "devis_core"

HOMONYMS = {
    ("devis_core/types.py", "direct"): "the target trajectory mode direct | gradual",
    (
        "devis_core/toolkit/geometry/trajectory.py",
        "direct",
    ): "the target trajectory mode direct | gradual",
    ("devis_core/training/state_files.py", "files"): "the checkpoint manifest's list of files",
}
"""Strings that spell a kind but mean something else there, with what they mean."""


def _builtin_kinds(registry: Registry) -> set[str]:
    return {
        name
        for by_name in registry.components.values()
        for name, component in by_name.items()
        if component.provenance.distribution == "devis"
    }


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant of the module that is not documentation."""
    tree = ast.parse(path.read_text(), filename=str(path))
    documentation = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in documentation
    ]


def test_the_builtin_kinds_are_found(registry):
    assert not [f for f in registry.failures if f.distribution == "devis"]
    assert {"synthetic", "inpaint", "trajectorycrafter", "psnr", "main"} <= _builtin_kinds(registry)


def test_no_core_module_names_a_builtin_kind_in_code(registry):
    kinds = _builtin_kinds(registry)
    found = []
    for path in sorted(CORE.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        for line, text in _code_strings(path):
            if text in kinds and (module, text) not in HOMONYMS:
                found.append(f"{module}:{line}: {text!r}")
    assert not found, (
        "devis_core names built-in plugin kinds; move the code that needs them into the "
        "plugin that uses them, or into a YAML file it ships:\n" + "\n".join(found)
    )
