"""Exceptions with a meaning for the user: what went wrong, where, and what to do.

The CLI prints the message of every :class:`DevisError` without a traceback and exits with its
``exit_code``: 2 for :class:`UsageError` (bad input: a config, an argument, a file the user
pointed at), 3 for :class:`TrainingDivergedError`, 1 for any other. ``docs/cli.md`` lists them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DevisError(Exception):
    """Base class of every error DEVIS raises on purpose."""

    exit_code = 1


class UsageError(DevisError):
    """Bad input from the user: a config, an argument, a file they pointed at."""

    exit_code = 2


class TrainingDivergedError(DevisError):
    """Training produced non-finite losses, gradients or rewards; the run stopped after
    keeping its last good checkpoint."""

    exit_code = 3


class ConfigError(UsageError):
    """A pipeline config failed validation; ``problems`` holds ``(yaml_path, reason)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"invalid config{where}:"]
        lines += [f"  {path or '<root>'}: {reason}" for path, reason in problems]
        super().__init__("\n".join(lines))


class UnknownComponentError(UsageError):
    """A config names a component that no installed plugin registered."""

    def __init__(self, slot: str, name: str, known: Iterable[str]):
        self.slot, self.name = slot, name
        self.known = sorted(known)
        super().__init__(unknown_component_message(slot, name, self.known))


class PluginConflictError(DevisError):
    """Two plugins registered a component under the same name in one slot."""


class PluginContractError(DevisError):
    """A plugin registered a component that breaks its slot's contract: a malformed name, config
    model or factory, or a reward term's direction or range. The plugin is not loaded."""


class MissingWeightsError(UsageError):
    """A component needs a local file (weights, checkpoint) that is not there."""


def unknown_component_message(slot: str, name: str, known: list[str]) -> str:
    """Name the registered components of a slot and the closest match to a typo."""
    message = f"unknown {slot} {name!r}"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        message += f"; did you mean {close[0]!r}?"
    listing = ", ".join(known) if known else "(none installed)"
    return f"{message} Registered {slot} components: {listing}"
