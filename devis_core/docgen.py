"""Reference pages generated from the code, so they cannot drift from it.

The docs build (``docs/conf.py``) calls :func:`write_reference`: the hook reference comes from
the hookspec docstrings (Sphinx autodoc), the configuration reference and the JSON schema from
the config models of the plugins installed where the docs are built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from devis_core.config import PipelineBase, pipeline_model
from devis_core.registry import Registry
from devis_core.slots import SLOTS


def hook_reference() -> str:
    """reStructuredText of the hook reference: one autodoc entry per hook, by slot."""
    lines = [
        "Hook reference",
        "==============",
        "",
        ".. automodule:: devis_core.hookspecs",
        "",
    ]
    for slot in SLOTS:
        title = f"Slot ``{slot.name}``: {slot.summary}"
        lines += [
            title,
            "-" * len(title),
            "",
            f".. autofunction:: devis_core.hookspecs.{slot.hook}",
        ]
        lines.append("")
    return "\n".join(lines)


def config_reference(registry: Registry) -> str:
    """Markdown of every config section and every registered component's fields."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the installed plugins' config models when the docs are built.",
        "Every slot entry is `{kind: <name>, ...fields}`; unknown fields are errors.",
        "The JSON schema of the whole pipeline is in "
        "[pipeline.schema.json](pipeline.schema.json) (`devis schema` prints the same).",
        "",
        "## Top-level sections",
        "",
    ]
    lines += _field_table(PipelineBase)
    for slot in SLOTS:
        key = slot.config_key
        heading = f"`{key}:`" if key else "`devis ablate` suites"
        lines += ["", f"## {slot.summary.capitalize()}: {heading}", ""]
        if slot.name == "reward":
            lines += [
                "Each entry also takes `weight` (default 1.0) and `range` (`[low, high]`, "
                "default: the term's own), used by the composite reward.",
                "",
            ]
        names = registry.names(slot.name)
        if not names:
            lines.append("No component of this slot is installed.")
        for name in names:
            component = registry.get(slot.name, name)
            origin = component.provenance
            lines += [
                f"### `{name}`",
                "",
                f"{component.description} *(from {origin.distribution} {origin.version})*",
                "",
            ]
            lines += _field_table(component.config_model)
            lines.append("")
    return "\n".join(lines) + "\n"


def _field_table(model: type[BaseModel]) -> list[str]:
    if not model.model_fields:
        return ["No fields."]
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        default: Any = info.default
        if default is PydanticUndefined:
            default = "required" if info.default_factory is None else info.default_factory()
        kind = _type_name(info.annotation)
        text = (info.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | `{kind}` | `{default!r}` | {text} |")
    return rows


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return (text or str(annotation)).replace("typing.", "").replace("|", "or")


def write_reference(directory: Path, registry: Registry) -> list[Path]:
    """Write ``hooks.rst``, ``config.md`` and ``pipeline.schema.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    schema = pipeline_model(registry).model_json_schema()
    files = {
        "hooks.rst": hook_reference(),
        "config.md": config_reference(registry),
        "pipeline.schema.json": json.dumps(schema, indent=2) + "\n",
    }
    for name, text in files.items():
        (directory / name).write_text(text)
    return [directory / name for name in files]
