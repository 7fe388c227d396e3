"""Pipeline configs: YAML in, a validated pydantic object out.

A pipeline is one YAML file. Top-level sections are ``device``, ``seed``, ``output`` and one
entry per slot in use; each slot entry is ``{kind: <registered name>, ...fields}`` and is checked
against that component's own config model, with unknown keys forbidden. Configs name
registered components, never Python import paths, and are read with ``yaml.safe_load`` only.

Two conveniences:

- ``extends: base.yaml`` (relative to the file) starts from another config; mappings are
  merged key by key, everything else (lists included) is replaced, and an entry that names
  another ``kind`` replaces the parent's entry whole (one component's fields do not apply to
  another).
- overrides ``accumulator.steps=3`` or ``rewards[1].weight=0.5`` (the CLI's ``-o``) set one
  value each, parsed as YAML (``3`` is an int, ``[1, 2]`` a list, ``null`` None).

The model of the whole pipeline is built from the installed plugins, so the JSON schema and
the error messages always describe what is really available.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from devis_core.errors import ConfigError, UsageError, unknown_component_message
from devis_core.registry import Registry
from devis_core.sections import (
    DepthAlignmentSection,
    EvaluationSection,
    RunSection,
    TrainingSection,
)
from devis_core.slots import SLOTS, Slot

EXTENDS_KEY = "extends"
PROVENANCE_KEY = "provenance"
"""Written by DEVIS next to each run (which plugin versions ran); ignored when read back."""

REWARD_ENTRY_FIELDS = ("weight", "range")


class PipelineBase(BaseModel):
    """Sections every pipeline has, whatever plugins are installed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="A name for the run, used in tables and logs.")
    device: str = Field(
        "auto", description="cpu, cuda, cuda:N, npu, npu:N, or auto (cuda, then npu, then cpu)."
    )
    seed: int = Field(0, description="Seed of every random draw of the run.")
    output: str = Field("runs/devis", description="Run directory: outputs and config.yaml.")
    run: RunSection = Field(default_factory=RunSection, description="Settings of `devis run`.")
    evaluation: EvaluationSection = Field(
        default_factory=EvaluationSection, description="Settings of `devis eval`."
    )
    training: TrainingSection = Field(
        default_factory=TrainingSection, description="Settings of `devis train`."
    )
    depth_alignment: DepthAlignmentSection = Field(
        default_factory=DepthAlignmentSection,
        description="Alignment of estimated depth to the cameras' units.",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|(cuda|npu)(:\d+)?", value):
            raise ValueError("expected cpu, cuda, cuda:N, npu, npu:N or auto")
        return value


def pipeline_model(registry: Registry) -> type[PipelineBase]:
    """The pydantic model of a pipeline config, with one typed entry per slot."""
    fields: dict[str, Any] = {}
    for slot in SLOTS:
        if slot.config_key is None:
            continue
        entry = _entry_union(registry, slot)
        if slot.many:
            fields[slot.config_key] = (list[entry], Field(default_factory=list))  # type: ignore[valid-type]
        else:
            fields[slot.config_key] = (entry | None, None)
    return create_model("PipelineConfig", __base__=PipelineBase, **fields)


def entry_models(registry: Registry, slot: Slot) -> list[type[BaseModel]]:
    """One model per registered component of a slot, each with its ``kind`` discriminator."""
    models = []
    for name in registry.names(slot.name):
        component = registry.get(slot.name, name)
        base = component.config_model
        extra: dict[str, Any] = {}
        if slot.name == "reward":
            clash = set(REWARD_ENTRY_FIELDS) & set(base.model_fields)
            if clash:
                raise UsageError(
                    f"reward term {name!r} uses reserved field(s) {sorted(clash)} in its config"
                )
            extra = {
                "weight": (float, Field(1.0, description="Weight in the composite reward.")),
                "range": (
                    tuple[float, float] | None,
                    Field(None, description="Normalisation range; default: the term's own."),
                ),
            }
        model = create_model(
            _model_name(slot, name),
            __base__=base,
            __doc__=component.description or base.__doc__,
            kind=(Literal[name], Field(description=f"{slot.name} component name")),
            **extra,
        )
        models.append(model)
    return models


def _entry_union(registry: Registry, slot: Slot) -> Any:
    models = entry_models(registry, slot)
    if not models:
        return dict[str, Any]  # nothing registered: the kind check reports any entry
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="kind")]  # noqa: UP007


def _model_name(slot: Slot, name: str) -> str:
    words = re.split(r"[-_]", name) + [slot.name]
    return "".join(word.capitalize() for word in words) + "Entry"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file and the chain of files it ``extends``, merged (child wins)."""
    return _read_with_extends(Path(path), seen=())


def _read_with_extends(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError([(EXTENDS_KEY, f"extends loops back on itself: {chain}")], str(path))
    data = _load_yaml_file(path)
    parent = data.pop(EXTENDS_KEY, None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError([(EXTENDS_KEY, "expected the path of another YAML file")], str(path))
    parent_path = (path.parent / parent).resolve()
    if not parent_path.is_file():
        raise ConfigError([(EXTENDS_KEY, f"no such file: {parent_path}")], str(path))
    return deep_merge(_read_with_extends(parent_path, (*seen, path)), data)


def _load_yaml_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except UnicodeDecodeError as error:
        raise UsageError(
            f"config file {path} is not UTF-8 text (byte {error.start}): is it a binary file?"
        ) from None
    except OSError as error:
        raise UsageError(f"cannot read config file {path}: {error}") from None
    data = parse_yaml(text, str(path))
    if not data:  # an empty file runs nothing: almost always the wrong file or a failed copy
        raise UsageError(f"config file {path} is empty: it holds no settings")
    return data


def parse_yaml(text: str, source: str = "<string>") -> dict[str, Any]:
    """Parse YAML text that must hold a mapping (the top level of a config)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError([(where, f"not valid YAML: {reason}")], source) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        got = type(data).__name__
        raise ConfigError([("", f"expected a mapping at the top, got {got}")], source)
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into a copy of ``base``: mappings key by key, anything else replaced.

    A mapping of ``update`` that names another ``kind`` than the one of ``base`` replaces it
    whole, as ``-o KEY.kind=...`` does: the fields of one component would not validate (or
    would mean something else) in another.
    """
    merged = copy.deepcopy(base)
    for key, value in update.items():
        previous = merged.get(key)
        if isinstance(value, dict) and isinstance(previous, dict):
            switched = "kind" in value and previous.get("kind") not in (None, value["kind"])
            merged[key] = copy.deepcopy(value) if switched else deep_merge(previous, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_KEY = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*")
_KEY_PART = re.compile(r"\[(\d+)\]|([\w-]+)")


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """Split ``a.b[1].c=value`` into its path and its YAML-parsed value.

    A path part of digits (``rewards.1``) is a list index, like ``rewards[1]``.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        raise UsageError(
            f"override {text!r}: expected KEY=VALUE with KEY like accumulator.steps "
            "or rewards[1].weight"
        )
    path: list[str | int] = []
    for index, name in _KEY_PART.findall(key):
        path.append(int(index) if index else int(name) if name.isdigit() else name)
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as error:
        raise UsageError(f"override {text!r}: value is not valid YAML ({error})") from None
    return path, parsed


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``KEY=VALUE`` override set, in order.

    Setting an entry's ``kind`` to another component starts that entry afresh (the previous
    component's fields are dropped), so ``-o dataset.kind=video -o dataset.path=clip.mp4``
    switches datasets in one command line.
    """
    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            node = _step_into(node, part, path[depth + 1], text)
        last = path[-1]
        if isinstance(node, list):
            if not isinstance(last, int) or not 0 <= last <= len(node):
                raise UsageError(f"override {text!r}: index {last} is out of range")
            if last == len(node):
                node.append(value)
            else:
                node[last] = value
        elif isinstance(node, dict):
            if last == "kind" and node.get("kind") not in (None, value):
                node.clear()  # another component: the old one's fields do not apply to it
            node[last] = value
        else:
            raise UsageError(f"override {text!r}: cannot set a field inside a plain value")
    return data


def _step_into(node: Any, part: str | int, following: str | int, text: str) -> Any:
    if isinstance(node, dict) and isinstance(part, str):
        if node.get(part) is None:
            node[part] = [] if isinstance(following, int) else {}
        return node[part]
    if isinstance(node, list) and isinstance(part, int):
        if not 0 <= part < len(node):
            raise UsageError(f"override {text!r}: index {part} is out of range ({len(node)} items)")
        if isinstance(node[part], str):  # a bare metric name becomes {kind: name}
            node[part] = {"kind": node[part]}
        return node[part]
    raise UsageError(f"override {text!r}: {part!r} does not match the config's structure")


def validate_config(
    data: dict[str, Any], registry: Registry, source: str | None = None
) -> PipelineBase:
    """Validate raw config data; every problem is reported at once, with its YAML path."""
    data = {k: v for k, v in data.items() if k != PROVENANCE_KEY}
    data = _expand_shorthands(data)
    problems = _kind_problems(data, registry) + non_finite_problems(data)
    model = pipeline_model(registry)
    if not problems:
        try:
            config = model.model_validate(data)
        except ValidationError as error:
            problems = [
                (_yaml_path(item["loc"], data), _reason(item, data, model))
                for item in error.errors()
            ]
        else:
            # pydantic reads the strings "nan" and "inf" as floats: check what it made of them
            problems = non_finite_problems(config.model_dump())
            if not problems:
                return config
    raise ConfigError(problems, source)


NON_FINITE = "NaN and infinity are not accepted: give a finite number"


def non_finite_problems(node: Any, parts: tuple[str | int, ...] = ()) -> list[tuple[str, str]]:
    """``(yaml_path, reason)`` of every NaN or infinite float in ``node`` (plain config data).

    No setting of DEVIS means anything at NaN or infinity, and one such value (a reward weight,
    a learning rate) silently turns every number of a run into NaN, so they are refused at load.
    """
    if isinstance(node, float) and not math.isfinite(node):
        return [(format_path(list(parts)), f"{node} is not a finite number; {NON_FINITE}")]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in non_finite_problems(v, (*parts, str(k)))]
    if isinstance(node, list | tuple):
        return [p for i, v in enumerate(node) for p in non_finite_problems(v, (*parts, i))]
    return []


def load_config(
    path: str | Path, registry: Registry, overrides: Iterable[str] = ()
) -> PipelineBase:
    """Read, merge (``extends``), override and validate a pipeline config file."""
    data = apply_overrides(read_yaml(path), overrides)
    return validate_config(data, registry, source=str(path))


def _expand_shorthands(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    for slot in SLOTS:
        value = data.get(slot.config_key) if slot.config_key else None
        if slot.many and isinstance(value, list):
            data[slot.config_key] = [{"kind": v} if isinstance(v, str) else v for v in value]
    return data


def _kind_problems(data: dict[str, Any], registry: Registry) -> list[tuple[str, str]]:
    problems = []
    for slot in SLOTS:
        key = slot.config_key
        if key is None or data.get(key) is None:
            continue
        value = data[key]
        if slot.many:
            if not isinstance(value, list):
                problems.append((key, f"expected a list of {{kind: ...}} entries, got {value!r}"))
                continue
            entries = [(f"{key}[{i}]", entry) for i, entry in enumerate(value)]
        else:
            entries = [(key, value)]
        for path, entry in entries:
            if not isinstance(entry, dict):
                problems.append((path, f"expected a mapping with a 'kind', got {entry!r}"))
            elif "kind" not in entry:
                names = ", ".join(registry.names(slot.name)) or "(none installed)"
                problems.append((f"{path}.kind", f"missing; choose one of: {names}"))
            elif entry["kind"] not in registry.components[slot.name]:
                message = unknown_component_message(
                    slot.name, str(entry["kind"]), registry.names(slot.name)
                )
                problems.append((f"{path}.kind", message))
    return problems


def _yaml_path(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """A pydantic location without the union tags it inserts, as ``a.b[1].c``."""
    node: Any = data
    parts: list[str | int] = []
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # the discriminator tag pydantic adds for tagged unions
        parts.append(part)
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (
                node[part]
                if isinstance(node, list) and isinstance(part, int) and part < len(node)
                else None
            )
        )
    return format_path(parts)


def format_path(parts: list[str | int]) -> str:
    """``['rewards', 1, 'weight']`` as ``rewards[1].weight``."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _reason(item: dict[str, Any], data: dict[str, Any], model: type[BaseModel]) -> str:
    if item["type"] != "extra_forbidden":
        return item["msg"]
    allowed = _allowed_fields(item["loc"][:-1], data, model)
    return f"unknown field; allowed: {', '.join(allowed)}" if allowed else "unknown field"


def _allowed_fields(
    loc: tuple[Any, ...], data: dict[str, Any], model: type[BaseModel]
) -> list[str]:
    """Field names of the model at ``loc``: the pipeline itself or one slot entry."""
    if not loc:
        return sorted(model.model_fields)
    annotation = model.model_fields[loc[0]].annotation if loc[0] in model.model_fields else None
    if annotation is None:
        return []
    entry = data.get(loc[0])
    if isinstance(entry, list) and len(loc) > 1 and isinstance(loc[1], int):
        entry = entry[loc[1]] if loc[1] < len(entry) else None
    kind = entry.get("kind") if isinstance(entry, dict) else None
    for candidate in _models_in(annotation):
        fields = candidate.model_fields
        if "kind" in fields and kind in getattr(fields["kind"].annotation, "__args__", ()):
            return sorted(fields)
    return []


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def dump_config(config: PipelineBase, registry: Registry) -> dict[str, Any]:
    """The resolved config as plain data, with the provenance of each component it uses."""
    data = config.model_dump(mode="json")
    used = []
    for slot in SLOTS:
        value = data.get(slot.config_key) if slot.config_key else None
        entries = value if isinstance(value, list) else [value] if value else []
        for entry in entries:
            origin = registry.get(slot.name, entry["kind"]).provenance
            used.append(
                {
                    "slot": slot.name,
                    "name": entry["kind"],
                    "plugin": origin.plugin,
                    "distribution": origin.distribution,
                    "version": origin.version,
                }
            )
    data[PROVENANCE_KEY] = used
    return data


def differing_sections(
    previous: dict[str, Any], current: dict[str, Any], ignored: Iterable[str] = ()
) -> list[str]:
    """The top-level sections where two resolved configs differ, sorted; ``ignored`` left out.

    What resuming commands name when they refuse a directory holding another config.
    """
    skip = set(ignored)
    return sorted(
        str(key)
        for key in set(previous) | set(current)
        if key not in skip and previous.get(key) != current.get(key)
    )


def to_yaml(data: dict[str, Any]) -> str:
    """YAML text of plain config data, keys in their given order."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
