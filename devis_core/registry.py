"""The registry: every component the installed plugins registered, with its provenance.

Plugins fill it through their register hooks (see :mod:`devis_core.hookspecs`); configs and
engines read from it. It keeps, for each component, the distribution and version that
provided it, so ``devis plugins`` and every run directory can say where a piece came from.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from devis_core.errors import PluginConflictError, PluginContractError, UnknownComponentError
from devis_core.rewards import contract_problems
from devis_core.slots import SLOT_NAMES

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Provenance:
    """Who registered a component: the plugin (entry-point) name and its distribution."""

    plugin: str
    distribution: str
    version: str


@dataclass(frozen=True)
class Component:
    """One registered component: how to build it and where it came from."""

    slot: str
    name: str
    factory: Callable[[Any], Any]
    config_model: type[BaseModel]
    description: str
    provenance: Provenance

    def build(self, config: BaseModel | dict[str, Any] | None = None) -> Any:
        """Validate ``config`` against this component's model and call the factory with it."""
        if not isinstance(config, self.config_model):
            data = dict(config or {})
            data.pop("kind", None)
            config = self.config_model.model_validate(data)
        return self.factory(config)


@dataclass
class PluginFailure:
    """A plugin that could not be loaded, and why; the others load regardless."""

    plugin: str
    distribution: str
    error: str


@dataclass
class Registry:
    """Components by slot and name, plus the plugins that failed to load."""

    components: dict[str, dict[str, Component]] = field(
        default_factory=lambda: {slot: {} for slot in SLOT_NAMES}
    )
    failures: list[PluginFailure] = field(default_factory=list)

    def add(self, component: Component) -> None:
        """Add a component; a name already taken in the slot is a :class:`PluginConflictError`."""
        taken = self.components[component.slot].get(component.name)
        if taken is not None:
            raise PluginConflictError(
                f"{component.slot} {component.name!r} is registered twice: by "
                f"{_who(taken.provenance)} and by {_who(component.provenance)}. "
                "Uninstall one of them, or disable one with DEVIS_DISABLE_PLUGINS."
            )
        self.components[component.slot][component.name] = component

    def subset(self, distribution: str) -> Registry:
        """The components one distribution registered (a reference of what it ships)."""
        kept = Registry()
        for component in self:
            if component.provenance.distribution == distribution:
                kept.add(component)
        return kept

    def get(self, slot: str, name: str) -> Component:
        """The component ``name`` of ``slot``; an unknown name lists the known ones."""
        try:
            return self.components[slot][name]
        except KeyError:
            raise UnknownComponentError(slot, name, self.components[slot]) from None

    def names(self, slot: str) -> list[str]:
        """Registered names of a slot, sorted."""
        return sorted(self.components[slot])

    def __iter__(self) -> Iterator[Component]:
        for slot in SLOT_NAMES:
            yield from (self.components[slot][name] for name in self.names(slot))

    def build(self, slot: str, entry: dict[str, Any] | BaseModel) -> Any:
        """Build the component a config entry (``{kind: name, ...}``) describes.

        A validated entry (from :func:`~devis_core.config.validate_config`) is an instance of
        the component's config model and goes to the factory as it is; a dict is validated.
        """
        if isinstance(entry, BaseModel):
            return self.get(slot, entry.kind).build(entry)
        return self.get(slot, entry["kind"]).build(dict(entry))


def make_register(registry: Registry, slot: str, provenance: Provenance) -> Callable[..., None]:
    """The ``register`` callable handed to one plugin's hook for one slot."""

    def register(
        name: str,
        factory: Callable[[Any], Any],
        config: type[BaseModel],
        *,
        description: str | None = None,
    ) -> None:
        problems = registration_problems(slot, name, factory, config)
        if problems:
            raise PluginContractError(
                f"{slot} {name!r} (factory {_qualified(factory)}): " + "; ".join(problems)
            )
        registry.add(
            Component(
                slot=slot,
                name=name,
                factory=factory,
                config_model=strict_model(config),
                description=description or _first_line(factory.__doc__),
                provenance=provenance,
            )
        )

    return register


def registration_problems(slot: str, name: object, factory: object, config: object) -> list[str]:
    """What is wrong with one ``register`` call, read from what it declares: nothing is built
    (so listing plugins imports no model). A reward term's direction and range are part of it."""
    problems = []
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        problems.append(
            f"the name {name!r} is not a valid kind: use lower case letters, digits and dashes, "
            "starting with a letter (like psnr-visible)"
        )
    if not (inspect.isclass(config) and issubclass(config, BaseModel)):
        problems.append(f"config must be a pydantic model class, got {config!r}")
    if not callable(factory):
        problems.append(f"factory must be callable, got {factory!r}")
    elif slot == "reward":
        problems += contract_problems(factory, built=False)
    return problems


def _qualified(factory: object) -> str:
    """``module.Name`` of a factory: where a plugin author finds what they registered."""
    module = getattr(factory, "__module__", None) or "?"
    return f"{module}.{getattr(factory, '__qualname__', type(factory).__qualname__)}"


def strict_model(model: type[BaseModel]) -> type[BaseModel]:
    """The config model itself if it forbids unknown keys, else a subclass that does."""
    if model.model_config.get("extra") == "forbid":
        return model
    return type(
        model.__name__,
        (model,),
        {"model_config": ConfigDict(extra="forbid"), "__module__": model.__module__},
    )


def _who(provenance: Provenance) -> str:
    return (
        f"distribution {provenance.distribution} {provenance.version} "
        f"(plugin {provenance.plugin!r})"
    )


def _first_line(doc: str | None) -> str:
    return inspect.cleandoc(doc).splitlines()[0] if doc else ""
