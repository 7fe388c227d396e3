"""The separately packaged example plugin goes through the third-party path end to end.

The README's test command installs contrib/devis-example-plugin, so these tests expect it.
"""

from __future__ import annotations

import json
import textwrap

from devis_core.cli import main


def test_example_plugin_is_listed_by_devis_plugins(capsys):
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    mine = {(r["slot"], r["name"]) for r in rows if r["distribution"] == "devis-example-plugin"}
    assert mine == {("depth", "plane"), ("accumulator", "refine")}


def test_example_plugin_components_validate_from_yaml(capsys, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        textwrap.dedent("""
        depth: {kind: plane, distance: 3.0}
        accumulator: {kind: refine, passes: 3}
    """)
    )
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "kind: refine" in out and "distribution: devis-example-plugin" in out
    assert main(["validate", str(path), "-o", "accumulator.pases=2"]) == 2
    assert "accumulator.pases: unknown field; allowed: kind, passes" in capsys.readouterr().err
