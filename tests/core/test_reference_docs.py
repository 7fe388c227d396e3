"""The committed reference pages (docs/reference) are what the code generates today."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from devis_core.docgen import REFERENCE_FILES, reference_pages

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_committed_reference_is_up_to_date(registry, name):
    committed = (REFERENCE / name).read_text()
    generated = reference_pages(registry)[name]
    if committed != generated:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                generated.splitlines(keepends=True),
                f"committed {name}",
                f"generated {name}",
                n=1,
            )
        )
        pytest.fail(f"docs/reference/{name} is stale: run `python -m devis_core.docgen`\n{diff}")


def test_the_reference_lists_built_ins_only(registry):
    pages = reference_pages(registry)
    assert "### `passthrough`" in pages["configuration.md"]
    third_party = [c for c in registry if c.provenance.distribution != "devis"]
    for component in third_party:  # the contrib example plugin, when installed
        assert f"### `{component.name}`" not in pages["configuration.md"]
