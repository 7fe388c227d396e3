"""DEVIS core: hook specifications, plugin loading, configs, geometry and engines.

Plugins import what they need from here::

    import devis_core

    @devis_core.hookimpl
    def devis_register_accumulators(register): ...

The core never imports a plugin.
"""

from importlib.metadata import PackageNotFoundError, version

from devis_core.hookspecs import hookimpl

try:
    __version__ = version("devis")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "hookimpl"]
