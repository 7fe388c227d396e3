"""Tiny TrajectoryCrafter models and conditions shared by the model tests."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from devis_core.types import Conditions

TINY_SIZE = (16, 24)
TINY_STEPS = 4  # 1000 // 4 = 250: the last step lands on alpha_prev = 1 (sigma 0)


def tiny_config(**overrides: Any):
    """A tiny TrajectoryCrafter config small enough for many calls per test."""
    from devis_plugins.trajectorycrafter.config import TrajectoryCrafterConfig

    fields: dict[str, Any] = {"preset": "tiny", "resolution": TINY_SIZE, "steps": TINY_STEPS}
    fields.update(overrides)
    return TrajectoryCrafterConfig(**fields)


def tiny_backbone(**overrides: Any):
    from devis_plugins.trajectorycrafter.policy import TrajectoryCrafterBackbone

    return TrajectoryCrafterBackbone(tiny_config(**overrides))


def make_conditions(
    frames: int = 3, size: tuple[int, int] = TINY_SIZE, seed: int = 0, caption: str = "a toy"
) -> Conditions:
    """A render with a hole in its right half, and a reference video of other frames."""
    generator = torch.Generator().manual_seed(seed)
    render = torch.rand(frames, 3, *size, generator=generator)
    mask = torch.ones(frames, *size, dtype=torch.bool)
    mask[:, :, size[1] // 2 :] = False
    reference = torch.rand(frames + 2, 3, *size, generator=generator)
    return Conditions(render, mask, reference, caption)


def perturb_lora(backbone, scale: float = 0.5, seed: int = 0) -> None:
    """Give the adapter non-zero weights (a fresh one has B = 0 and changes nothing)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in backbone.trainable_parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny models' matrices are a few dozen wide: intra-op threads only add overhead, and
    on a busy 2-core machine OpenMP spinning makes each call 10-50x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def conditions() -> Conditions:
    return make_conditions()
