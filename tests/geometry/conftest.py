"""The forward warp's backends: every behaviour test runs on each one installed."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable

import pytest

from devis_core.toolkit.geometry import forward_warp

BACKENDS = [
    "torch",
    pytest.param(
        "numba",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("numba") is None, reason="numba (extra 'fast') not installed"
        ),
    ),
]


@pytest.fixture(params=BACKENDS)
def warp(request: pytest.FixtureRequest) -> Callable[..., tuple]:
    """``forward_warp`` on one backend (``backend="..."`` already given)."""
    return functools.partial(forward_warp, backend=request.param)
