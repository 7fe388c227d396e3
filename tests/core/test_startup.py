"""Listing and describing plugins imports no torch, numpy or model code (issue 16).

``devis plugins``, ``schema`` and ``--help`` import every plugin module to read names, config
models and descriptions; heavy libraries load only when a component is built
(:mod:`devis_core.lazy`). Each check runs in a fresh interpreter, since this test process has
long imported torch.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "numpy", "cv2", "scipy", "diffusers", "transformers", "peft", "matplotlib"]

SCRIPT = """
import contextlib, io, json, sys
import devis_core.cli as cli
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = cli.main({argv!r})
print(json.dumps({{"code": code, "chars": len(out.getvalue()),
                  "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _loaded_by(argv: list[str]) -> dict:
    script = SCRIPT.format(argv=argv, heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv", [["plugins"], ["plugins", "--json"], ["schema"], ["--help"], ["configs"]]
)
def test_listing_commands_import_no_heavy_library(argv):
    result = _loaded_by(argv)
    assert result["code"] == 0 and result["chars"] > 0
    assert result["loaded"] == [], f"devis {' '.join(argv)} imported {result['loaded']}"


def test_every_builtin_is_listed_without_torch():
    script = (
        "import sys\n"
        "from devis_core.plugins import load_registry\n"
        "registry = load_registry()\n"
        "print(len(list(registry)), len(registry.failures), 'torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    count, failures, torch_loaded = done.stdout.split()
    assert int(count) > 30 and failures == "0" and torch_loaded == "False"


def test_building_a_component_still_loads_what_it_needs():
    script = (
        "import sys\n"
        "from devis_core.plugins import load_registry\n"
        "metric = load_registry().build('metric', {'kind': 'psnr'})\n"
        "import torch\n"
        "video = torch.rand(2, 3, 8, 8)\n"
        "noisy = (video + 0.1 * torch.randn_like(video)).clamp(0, 1)\n"
        "print(float(metric.compute(noisy, video).mean()) < 40)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["True"]


LAZY_SCRIPT = """
import sys
from devis_core.lazy import lazy_function, lazy_import, no_grad
assert "colorsys" not in sys.modules
colorsys = lazy_import("colorsys")
hls = lazy_function("colorsys", "rgb_to_hls")
print("colorsys" in sys.modules, end=" ")
print(hls(1.0, 0.0, 0.0) == colorsys.rgb_to_hls(1.0, 0.0, 0.0), "colorsys" in sys.modules, end=" ")
@no_grad
def grad_on():
    import torch
    return torch.is_grad_enabled()
print("torch" in sys.modules, grad_on())
"""


def test_lazy_imports_load_on_first_use_only():
    done = subprocess.run(
        [sys.executable, "-c", LAZY_SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["False", "True", "True", "False", "False"]
