"""Backbone ``passthrough``: the render itself, holes left as they are.

No generator at all: the floor every real backbone must beat, and the cheapest backbone for
testing accumulators and metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

import devis_core
from devis_core.lazy import lazy_import
from devis_core.types import Conditions

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class PassthroughConfig(BaseModel):
    """Settings of the pass-through backbone."""

    fill: float = Field(0.0, ge=0.0, le=1.0, description="Grey level written into holes.")


class PassthroughBackbone:
    """Returns the render unchanged, with holes set to a constant grey (no generation)."""

    def __init__(self, config: PassthroughConfig):
        self.config = config

    def generate(self, cond: Conditions, generator: torch.Generator | None = None) -> torch.Tensor:
        visible = cond.mask.unsqueeze(-3).to(cond.render.dtype)
        return cond.render * visible + self.config.fill * (1 - visible)


@devis_core.hookimpl
def devis_register_backbones(register):
    register("passthrough", PassthroughBackbone, PassthroughConfig)
