"""The `extends` example of docs/configuration.md loads as the page says, and a child config
that switches an entry's `kind` starts that entry afresh instead of inheriting the parent's
fields (which belong to another component)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from devis_core.config import load_config, read_yaml, validate_config

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "configuration.md"


def _extends_example() -> tuple[str, str]:
    """The file name (its first comment line) and the YAML text of the page's example."""
    section = PAGE.read_text(encoding="utf-8").split("## Building on another config")[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the extends section has no YAML example"
    text = block.group(1)
    name = re.match(r"# (\S+\.yaml)\n", text)
    assert name is not None, "the example's first line names its file"
    return name.group(1), text


def test_the_documented_extends_example_loads_as_described(tmp_path, registry):
    name, text = _extends_example()
    parent = yaml.safe_load(text)["extends"]
    shutil.copy(REPO / "configs" / parent, tmp_path / parent)
    (tmp_path / name).write_text(text, encoding="utf-8")

    config = load_config(tmp_path / name, registry)

    quickstart = yaml.safe_load((REPO / "configs" / parent).read_text(encoding="utf-8"))
    assert quickstart["accumulator"]["kind"] == "bta"  # so the example does switch kind
    alone = validate_config({"accumulator": {"kind": "rva"}}, registry).accumulator
    assert config.accumulator.model_dump() == alone.model_dump()  # RVA's defaults only
    assert config.dataset.kind == quickstart["dataset"]["kind"]
    assert config.dataset.num_samples == 4
    assert config.dataset.frames == quickstart["dataset"]["frames"]  # merged from the parent
    assert [metric.kind for metric in config.metrics] == ["psnr"]


def test_switching_the_backbone_kind_drops_the_parents_backbone_fields(tmp_path, registry):
    parent = tmp_path / "parent.yaml"
    parent.write_text(
        "backbone: {kind: trajectorycrafter, preset: tiny, steps: 4}\nseed: 5\n", encoding="utf-8"
    )
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nbackbone: {kind: inpaint}\n", encoding="utf-8")

    assert read_yaml(child) == {"backbone": {"kind": "inpaint"}, "seed": 5}
    config = load_config(child, registry)
    alone = validate_config({"backbone": {"kind": "inpaint"}}, registry).backbone
    assert config.backbone.model_dump() == alone.model_dump()


def test_the_same_kind_still_merges_and_a_kindless_entry_merges_into_the_parents(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "backbone: {kind: trajectorycrafter, preset: tiny, steps: 4}\n"
        "depth: {kind: files, path: a.npy}\n",
        encoding="utf-8",
    )
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: parent.yaml\nbackbone: {kind: trajectorycrafter, steps: 8}\n"
        "depth: {path: b.npy}\n",
        encoding="utf-8",
    )
    assert read_yaml(child) == {
        "backbone": {"kind": "trajectorycrafter", "preset": "tiny", "steps": 8},
        "depth": {"kind": "files", "path": "b.npy"},
    }
