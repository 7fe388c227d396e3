"""Reference pages generated from the code, so they cannot drift from it.

``python -m devis_core.docgen`` writes ``docs/reference/hooks.md`` (from the hookspec
docstrings), ``docs/reference/configuration.md`` and ``docs/reference/pipeline.schema.json``
(from the config models of the engines and the built-in plugins). They are committed, so plugin
authors read them on the forge without building Sphinx, and a test fails when they are stale.
Only components that DEVIS itself ships are listed: the pages must not depend on which
third-party plugins happen to be installed where they are generated.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from devis_core import hookspecs
from devis_core.config import PipelineBase, pipeline_model
from devis_core.plugins import load_registry
from devis_core.registry import Registry
from devis_core.slots import SLOTS
from devis_core.toolkit.files import atomic_write_text

BUILT_IN_DISTRIBUTION = "devis"
"""The distribution whose components the committed reference lists."""
REFERENCE_FILES = ("hooks.md", "configuration.md", "pipeline.schema.json")


def hook_reference() -> str:
    """Markdown of the hook reference: the module's introduction, then one section per hook."""
    lines = ["# Hook reference", "", _markdown(inspect.getdoc(hookspecs) or ""), ""]
    for slot in SLOTS:
        hook = getattr(hookspecs, slot.hook)
        lines += [
            f"## Slot `{slot.name}`: {slot.summary}",
            "",
            f"`devis_core.hookspecs.{slot.hook}({', '.join(inspect.signature(hook).parameters)})`",
            "",
            _markdown(inspect.getdoc(hook) or ""),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _markdown(text: str) -> str:
    """The reStructuredText of DEVIS's docstrings as markdown: literal blocks (``::``) become
    fenced Python, definition lists become bullets, roles and double backquotes become code."""
    out: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        term = re.fullmatch(r"``([^`]+)``", line.strip())
        follows = index + 1 < len(lines) and lines[index + 1].startswith("    ")
        if term and follows and not line.startswith(" "):
            body = []
            index += 1
            while index < len(lines) and lines[index].startswith("    "):
                body.append(lines[index].strip())
                index += 1
            out.append(f"- `{term.group(1)}`: {_inline(' '.join(body))}")
            continue
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-2].rstrip()
            if head:
                out.append(_inline(head + ":"))
            block: list[str] = []
            index += 1
            while index < len(lines) and (not lines[index].strip() or lines[index][:1] == " "):
                block.append(lines[index][4:])
                index += 1
            while block and not block[-1].strip():
                block.pop()
            while block and not block[0].strip():
                block.pop(0)
            out += ["", "```python", *block, "```", ""]
            continue
        out.append(_inline(line))
        index += 1
    return "\n".join(out)


def _inline(text: str) -> str:
    """``code`` and :role:`target` (``~`` keeps the last name) as markdown code spans."""

    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        return f"`{target[1:].rsplit('.', 1)[-1] if target.startswith('~') else target}`"

    text = re.sub(r":[a-z]+:`([^`]+)`", role, text)
    return text.replace("``", "`")


def config_reference(registry: Registry) -> str:
    """Markdown of every config section and every registered component's fields."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the config models of the engines and the built-in plugins by "
        "`python -m devis_core.docgen`; third-party plugins document their own.",
        "Every slot entry is `{kind: <name>, ...fields}`; unknown fields are errors.",
        "The JSON schema of the whole pipeline is in "
        "[pipeline.schema.json](pipeline.schema.json) (`devis schema` prints the same).",
        "",
        "## Top-level sections",
        "",
    ]
    lines += _field_table(PipelineBase)
    lines += _section_tables(PipelineBase, prefix="")
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


def _section_tables(model: type[BaseModel], prefix: str) -> list[str]:
    """A table for each field of ``model`` that is itself a model (``training``, then
    ``training.warm_start``, ...), so nested settings are listed field by field."""
    lines: list[str] = []
    for name, info in model.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            path = f"{prefix}{name}"
            lines += ["", f"### `{path}:`", "", *_field_table(nested)]
            lines += _section_tables(nested, prefix=f"{path}.")
    return lines


def _field_table(model: type[BaseModel]) -> list[str]:
    if not model.model_fields:
        return ["No fields."]
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        default: Any = info.default
        if default is PydanticUndefined:
            default = "required" if info.default_factory is None else info.default_factory()
        if isinstance(default, BaseModel):
            default = "see below"
        kind = _type_name(info.annotation)
        text = (info.description or "").replace("|", "\\|").replace("\n", " ")
        shown = default if default == "see below" else f"`{default!r}`"
        rows.append(f"| `{name}` | `{kind}` | {shown} | {text} |")
    return rows


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return (text or str(annotation)).replace("typing.", "").replace("|", "or")


def reference_pages(registry: Registry) -> dict[str, str]:
    """The text of each file in :data:`REFERENCE_FILES`, from the built-in components only."""
    built_in = registry.subset(BUILT_IN_DISTRIBUTION)
    schema = pipeline_model(built_in).model_json_schema()
    return {
        "hooks.md": hook_reference(),
        "configuration.md": config_reference(built_in),
        "pipeline.schema.json": json.dumps(schema, indent=2) + "\n",
    }


def write_reference(directory: Path, registry: Registry) -> list[Path]:
    """Write the reference pages into ``directory`` (``docs/reference``)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in reference_pages(registry).items():
        atomic_write_text(directory / name, text)
        written.append(directory / name)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs") / "reference"
    for path in write_reference(target, load_registry()):
        print(f"wrote {path}")
