"""Turning a config's ``device`` string into a ``torch.device``.

``npu`` devices need Huawei's ``torch_npu`` (the ``devis[npu]`` extra); it is imported only
when an NPU is asked for, so CPU and CUDA users never need it installed.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from devis_core.errors import UsageError
from devis_core.lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda[:N]``, ``npu[:N]`` or ``auto`` (CUDA, then an NPU, then the CPU)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _npu_available():
            return torch.device("npu")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} requested but CUDA is not available on this machine")
    if kind == "npu":
        _import_torch_npu()
        if not torch.npu.is_available():  # type: ignore[attr-defined]
            raise UsageError(f"device {name!r} requested but no Ascend NPU is available")
    if kind not in ("cpu", "cuda", "npu"):
        raise UsageError(f"unknown device {name!r}: expected cpu, cuda[:N], npu[:N] or auto")
    return torch.device(name)


def distributed_backend(device: torch.device) -> str:
    """The ``torch.distributed`` backend for a device type: gloo, nccl or hccl."""
    return {"cpu": "gloo", "cuda": "nccl", "npu": "hccl"}[device.type]


def _import_torch_npu() -> None:
    try:
        importlib.import_module("torch_npu")
    except ImportError:
        raise UsageError(
            "device 'npu' needs torch_npu: install it with `pip install 'devis[npu]'` "
            "(or Huawei's build matching your CANN toolkit)"
        ) from None


def _npu_available() -> bool:
    if importlib.util.find_spec("torch_npu") is None:
        return False
    _import_torch_npu()
    return bool(torch.npu.is_available())  # type: ignore[attr-defined]
