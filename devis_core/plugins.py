"""Finding and loading plugins.

Every plugin, built-in or third party, is a module named by an entry point in the group
``devis``. Entry points are read with :mod:`importlib.metadata` (the standard library's
maintained reader, which pluggy itself uses), so no extra dependency is needed.

Two environment variables choose what loads, by distribution name or plugin (entry-point)
name, comma separated:

``DEVIS_LOAD_PLUGINS``
    Load only these. Set it to an empty string to load no plugins at all. The built-ins
    come from the distribution ``devis``: include it to keep them.
``DEVIS_DISABLE_PLUGINS``
    Load everything except these.

A plugin that fails (its import raises, it implements a hook that does not exist, its
register hook raises, or it registers a component that breaks its slot's contract: a bad name,
or a reward term whose declared direction or range is invalid) is reported in
:attr:`Registry.failures` with its distribution, the error and the plugin's line that caused
it, and the others still load.
"""

from __future__ import annotations

import difflib
import os
import re
import traceback
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pluggy

from devis_core import hookspecs
from devis_core.errors import PluginConflictError
from devis_core.registry import PluginFailure, Provenance, Registry, make_register
from devis_core.slots import SLOTS

ENTRY_POINT_GROUP = "devis"
LOAD_VARIABLE = "DEVIS_LOAD_PLUGINS"
DISABLE_VARIABLE = "DEVIS_DISABLE_PLUGINS"
LOCAL_DISTRIBUTION = "<not installed>"
_REGISTRY_FILE = Path(make_register.__code__.co_filename)
"""Where ``register`` checks its calls: left out of a failure's location."""


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager that knows the DEVIS hook specifications and no plugin yet."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


def load_registry(
    *,
    plugins: Iterable[tuple[str, Any]] = (),
    use_entry_points: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Registry:
    """Load the installed plugins and collect what they register.

    ``plugins`` adds ``(name, module_or_object)`` pairs that are not installed (tests, notebooks);
    ``use_entry_points=False`` skips the installed ones. Nothing is cached between calls.
    """
    environ = os.environ if environ is None else environ
    registry = Registry()
    manager = make_plugin_manager()
    provenance: dict[str, Provenance] = {}

    candidates: list[tuple[str, Any, Provenance]] = []
    if use_entry_points:
        candidates += _entry_point_candidates(registry, environ)
    for name, obj in plugins:
        candidates.append((name, obj, Provenance(name, LOCAL_DISTRIBUTION, "")))

    for name, obj, origin in candidates:
        if _register_plugin(manager, registry, name, obj, origin):
            provenance[name] = origin

    for slot in SLOTS:
        for impl in getattr(manager.hook, slot.hook).get_hookimpls():
            origin = provenance[impl.plugin_name]
            register = make_register(registry, slot.name, origin)
            try:
                impl.function(register=register)
            except PluginConflictError:
                raise
            except Exception as error:  # a broken plugin must not take the others down
                _drop_plugin(registry, origin.plugin)
                registry.failures.append(
                    PluginFailure(origin.plugin, origin.distribution, _describe(error))
                )
    manager.check_pending()
    return registry


def _entry_point_candidates(
    registry: Registry, environ: Mapping[str, str]
) -> list[tuple[str, Any, Provenance]]:
    allow = _name_set(environ.get(LOAD_VARIABLE))
    block = _name_set(environ.get(DISABLE_VARIABLE)) or set()
    found = []
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        origin = _provenance(entry_point)
        names = {_normalise(origin.distribution), _normalise(entry_point.name)}
        if (allow is not None and not names & allow) or names & block:
            continue
        try:
            module = entry_point.load()
        except Exception as error:
            registry.failures.append(
                PluginFailure(entry_point.name, origin.distribution, _describe(error))
            )
            continue
        found.append((entry_point.name, module, origin))
    return found


def _register_plugin(
    manager: pluggy.PluginManager, registry: Registry, name: str, obj: Any, origin: Provenance
) -> bool:
    """Register one plugin object; reject it (and report why) if its hooks are wrong."""
    if manager.has_plugin(name):
        registry.failures.append(
            PluginFailure(name, origin.distribution, f"a plugin named {name!r} is already loaded")
        )
        return False
    try:
        manager.register(obj, name=name)
    except pluggy.PluginValidationError as error:
        registry.failures.append(PluginFailure(name, origin.distribution, str(error)))
        return False
    unknown = [
        impl.function.__name__
        for caller in manager.get_hookcallers(obj) or []
        if not caller.has_spec()
        for impl in caller.get_hookimpls()
        if impl.plugin is obj and not impl.optionalhook
    ]
    if unknown:
        manager.unregister(obj)
        known = [slot.hook for slot in SLOTS]
        reasons = []
        for hook in unknown:
            close = difflib.get_close_matches(hook, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            reasons.append(f"implements unknown hook {hook!r}{hint}")
        registry.failures.append(PluginFailure(name, origin.distribution, "; ".join(reasons)))
        return False
    return True


def _drop_plugin(registry: Registry, plugin: str) -> None:
    for by_name in registry.components.values():
        for component_name in [n for n, c in by_name.items() if c.provenance.plugin == plugin]:
            del by_name[component_name]


def _provenance(entry_point: EntryPoint) -> Provenance:
    dist = entry_point.dist
    if dist is None:
        return Provenance(entry_point.name, LOCAL_DISTRIBUTION, "")
    return Provenance(entry_point.name, dist.name, dist.version)


def _name_set(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {_normalise(part) for part in value.split(",") if part.strip()}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _describe(error: BaseException) -> str:
    """The error and where the plugin raised it: for a refused ``register`` call, the plugin's
    line that made it (not the check inside DEVIS that refused it)."""
    where = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if Path(frame.filename) != _REGISTRY_FILE
    ]
    location = f" (at {where[-1].filename}:{where[-1].lineno})" if where else ""
    return f"{type(error).__name__}: {error}{location}"
