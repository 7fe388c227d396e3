"""Shared fixtures: installed-looking fake distributions, and the real registry."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from devis_core.plugins import load_registry
from devis_core.registry import Registry


@pytest.fixture
def registry() -> Registry:
    """Everything installed in this environment, loaded the way the CLI loads it."""
    return load_registry(environ={})


@pytest.fixture
def make_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a distribution (dist-info with ``devis`` entry points + modules) onto sys.path.

    This is exactly what ``pip install`` leaves behind, so entry-point discovery, provenance
    and the allow/block lists are exercised for real.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def make(name: str, version: str, modules: dict[str, str], entry_points: dict[str, str]):
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            monkeypatch.delitem(sys.modules, module, raising=False)
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = [f"{ep} = {target}" for ep, target in entry_points.items()]
        (info / "entry_points.txt").write_text("[devis]\n" + "\n".join(lines) + "\n")
        return info

    return make
