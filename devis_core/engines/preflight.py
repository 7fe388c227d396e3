"""The checks a command runs before it starts work, shared with ``devis validate``.

``devis run``, ``train`` and ``eval`` call :func:`preflight` before they build a model or write
a file, and ``devis validate CONFIG --for COMMAND`` calls the same function, so a config that
validates is one the command accepts, with the same message when it does not. Nothing here
builds a model or reads weights: the checks read the config, the registry, the file system
and, for ``run.sample``, the dataset's length (datasets index files; they load no weights).
``devis ablate`` has :func:`preflight_suite`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, get_args

from pydantic import BaseModel, ValidationError

from devis_core.config import (
    PROVENANCE_KEY,
    PipelineBase,
    apply_overrides,
    format_path,
    validate_config,
)
from devis_core.devices import resolve_device
from devis_core.engines.run_directory import check_output
from devis_core.errors import ConfigError, UsageError
from devis_core.registry import Component, Registry
from devis_core.slots import get_slot
from devis_core.types import Dataset

Command = Literal["run", "train", "eval"]
COMMANDS: tuple[Command, ...] = get_args(Command)
DEFAULT_METHOD = "as configured"

_SYNTHESIS = ("dataset", "depth", "accumulator", "backbone")
NEEDS: dict[str, tuple[str, ...]] = {
    "run": _SYNTHESIS,
    "eval": (*_SYNTHESIS, "metric"),
    "train": (*_SYNTHESIS, "algorithm", "reward"),
}
"""The slots each command builds: their sections must be in the config."""


def preflight(
    config: PipelineBase,
    registry: Registry,
    command: Command,
    *,
    output: Path | None = None,
    dataset: Callable[[], Dataset] | None = None,
    processes: int = 1,
) -> None:
    """Raise :class:`UsageError` for anything that would stop ``devis COMMAND`` from running.

    ``output`` is the run directory when it is not the config's (``train --resume DIR``);
    ``dataset`` returns the caller's dataset, built once for the check and the run (else
    ``run`` builds one to check ``run.sample``); ``processes`` is the number of ``torchrun``
    processes of a training run.
    """
    if command not in NEEDS:
        raise UsageError(f"unknown command {command!r}: expected one of {', '.join(NEEDS)}")
    resolve_device(config.device)
    check_sections(config, registry, command)
    if command == "train":
        _check_training(config, processes)
    if command == "eval":
        check_unused(config, registry, command)
        for name, method in evaluation_methods(config, registry).items():
            check_sections(method, registry, command)
            check_unused(method, registry, command, f"evaluation.methods[{name!r}]")
            check_paths(method, command)
    check_paths(config, command)
    if command == "run":
        _check_sample(config, registry, dataset)
    check_output(Path(config.output) if output is None else Path(output))


def applicable_commands(config: PipelineBase) -> list[Command]:
    """The commands whose sections ``config`` has (``validate``'s default ``--for``)."""
    present = {slot for slot in set().union(*NEEDS.values()) if _entries(config, slot)}
    found: list[Command] = []
    if set(_SYNTHESIS) <= present:
        found.append("run")
        if "metric" in present and "reward" not in present:  # eval refuses rewards
            found.append("eval")
        if present & {"algorithm", "reward"}:
            found.append("train")
    return found


def check_sections(config: PipelineBase, registry: Registry, command: Command) -> None:
    """The sections ``command`` builds components from are in the config."""
    for slot_name in NEEDS[command]:
        if _entries(config, slot_name):
            continue
        slot = get_slot(slot_name)
        key = slot.config_key
        names = ", ".join(registry.names(slot_name)) or "(none installed)"
        if slot.many:
            raise UsageError(
                f"devis {command} needs at least one entry in `{key}`, e.g. "
                f"{key}: [{{kind: ...}}]; registered: {names}"
            )
        article = "an" if str(key)[0] in "aeiou" else "a"
        raise UsageError(
            f"devis {command} needs {article} `{key}` section in the config, e.g. "
            f"{key}: {{kind: ...}}; registered: {names}"
        )


def check_unused(
    config: PipelineBase, registry: Registry, command: Command, where: str = "the config"
) -> None:
    """``devis eval`` refuses a ``rewards`` list rather than ignore it.

    Eval scores with ``metrics``; rewards left in its config would read as if they were scored,
    or changed the result. ``where`` names the config (an evaluation method) in the message.
    """
    rewards = _entries(config, "reward")
    if command != "eval" or not rewards:
        return
    kinds = ", ".join(entry.kind for entry in rewards)
    metrics = ", ".join(registry.names("metric")) or "(none installed)"
    raise UsageError(
        f"devis eval does not use `rewards` ({where} lists {kinds}): reward terms score the "
        "samples of devis train (and of the ablation suites that train), while devis eval "
        "scores with `metrics`. Remove the `rewards` section, or list what to score under "
        f"`metrics:` (registered metrics: {metrics})"
    )


def check_paths(config: PipelineBase, command: Command) -> None:
    """Every required path field (typed ``Path``, no default) of the command's entries exists.

    Optional path fields are left to their components: some name files that a run writes
    when they are missing (a cache, a draw of trajectories).
    """
    for slot_name in NEEDS[command]:
        key = get_slot(slot_name).config_key or slot_name
        entries = _entries(config, slot_name)
        many = get_slot(slot_name).many
        for index, entry in enumerate(entries):
            root: list[str | int] = [key, index] if many else [key]
            for where, value in _required_paths(entry, root):
                if not Path(value).exists():
                    raise UsageError(f"{format_path(where)}: {value} does not exist")


def evaluation_methods(config: PipelineBase, registry: Registry) -> dict[str, PipelineBase]:
    """``devis eval``'s methods: the config with each ``evaluation.methods`` entry's overrides
    (the config as it is when there are none), validated."""
    raw = {k: v for k, v in config.model_dump(mode="json").items() if k != PROVENANCE_KEY}
    overrides = config.evaluation.methods or {config.name or DEFAULT_METHOD: []}
    return {
        name: validate_config(
            apply_overrides(raw, changes), registry, source=f"evaluation.methods[{name!r}]"
        )
        for name, changes in overrides.items()
    }


def preflight_suite(
    registry: Registry, name: str, overrides: Sequence[str], output: Path
) -> tuple[Component, BaseModel]:
    """``devis ablate``'s checks: the suite exists, its overrides validate, the output can be
    a directory. Returns the suite's component and validated config."""
    component = registry.get("suite", name)
    data = apply_overrides({}, overrides)
    try:
        config = component.config_model.model_validate(data)
    except ValidationError as error:
        problems = [(format_path(list(e["loc"])), e["msg"]) for e in error.errors()]
        raise ConfigError(problems, source=f"suite {name!r} (-o overrides)") from None
    check_output(output)
    return component, config


def _check_training(config: PipelineBase, processes: int) -> None:
    settings = config.training
    if settings.groups_per_round % processes:
        raise UsageError(
            f"training.groups_per_round ({settings.groups_per_round}) must be a "
            f"multiple of the number of processes ({processes})"
        )
    if settings.sampling == "one-step" and settings.same_noise:
        raise UsageError("sampling: one-step with same_noise gives identical videos per group")
    for index, entry in enumerate(_entries(config, "reward")):
        configured = getattr(entry, "range", None)
        if configured is not None:
            low, high = configured
            if not high > low:
                kind = getattr(entry, "kind", "?")
                raise UsageError(
                    f"rewards[{index}] ({kind}): range must have low < high, got [{low}, {high}]"
                )


def _check_sample(
    config: PipelineBase, registry: Registry, dataset: Callable[[], Dataset] | None
) -> None:
    entry = config.dataset  # type: ignore[attr-defined]
    built = registry.build("dataset", entry) if dataset is None else dataset()
    size = len(built)
    if config.run.sample >= size:
        raise UsageError(
            f"run.sample={config.run.sample} is out of range: the dataset has {size} "
            f"sample{'s' if size != 1 else ''} (indices 0 to {size - 1})"
        )


def _entries(config: PipelineBase, slot_name: str) -> list[Any]:
    """The config's entries of a slot: a list for many-slots, [entry] or [] for the others."""
    value = getattr(config, get_slot(slot_name).config_key or "", None)
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _required_paths(
    model: Any, where: list[str | int]
) -> Iterator[tuple[list[str | int], PurePath]]:
    """(YAML path, value) of every field typed exactly ``Path`` in ``model`` and its submodels."""
    if not isinstance(model, BaseModel):
        return
    for name, field in type(model).model_fields.items():
        value = getattr(model, name, None)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, PurePath):
            if isinstance(value, PurePath):
                yield [*where, name], value
        elif isinstance(value, BaseModel):
            yield from _required_paths(value, [*where, name])
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                yield from _required_paths(item, [*where, name, index])
