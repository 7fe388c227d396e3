"""Module-level imports that run on first use, so listing plugins never imports torch.

``devis plugins``, ``schema`` and ``--help`` import every plugin module to read its names,
config models and descriptions, and those modules (and the toolkit modules they use) name
torch, numpy or OpenCV at the top. Importing those costs seconds; listing should not. A module
writes::

    if TYPE_CHECKING:
        import torch
    else:
        torch = lazy_import("torch")

and uses ``torch`` as before: the real module is imported on the first attribute access
(``torch.zeros``), inside the function that needs it. Nothing is put in ``sys.modules`` until
then, so ``"torch" in sys.modules`` tells whether torch really loaded. Touching the module at
import time (a default argument ``dtype=torch.float32``, a base class ``torch.nn.Module``) loads
it at once, which is correct but slow: keep such uses inside functions.
"""

from __future__ import annotations

import functools
import importlib
import types
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class LazyModule(types.ModuleType):
    """Stands for a module until an attribute is read, then forwards to the imported module."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def _load(self) -> types.ModuleType:
        module = importlib.import_module(self.__dict__["_lazy_target"])
        self.__dict__["_lazy_module"] = module
        return module

    def __getattr__(self, attribute: str) -> Any:
        module = self.__dict__.get("_lazy_module") or self._load()
        return getattr(module, attribute)

    def __dir__(self) -> list[str]:
        return dir(self.__dict__.get("_lazy_module") or self._load())

    def __repr__(self) -> str:
        state = "loaded" if "_lazy_module" in self.__dict__ else "not loaded yet"
        return f"<lazy module {self.__dict__['_lazy_target']!r} ({state})>"


def lazy_import(name: str) -> Any:
    """A stand-in for ``import name`` (``name`` may be dotted) that imports on first use."""
    return LazyModule(name)


def no_grad(function: F) -> F:
    """``@torch.no_grad()`` that imports torch when the function is called, not when defined."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def lazy_function(module: str, name: str) -> Callable[..., Any]:
    """A stand-in for ``from module import name`` (a function) that imports on the first call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``{module}.{name}``, imported on the first call."
    return call


def lazy_attributes(package: str, sources: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` (PEP 562) for ``package`` that imports each name of
    ``sources`` (name -> module) from its module on first access, so a package can re-export
    names from heavy modules without importing them::

        __getattr__ = lazy_attributes(__name__, {"Trainer": "devis_core.training.trainer"})
    """

    def __getattr__(name: str) -> Any:
        if name in sources:
            return getattr(importlib.import_module(sources[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
