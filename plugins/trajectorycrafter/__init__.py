"""Backbone ``trajectorycrafter``: TrajectoryCrafter's video diffusion transformer, as a policy.

The generator of the paper (Eq. 2): CogVideoX-Fun-V1.1-5b-InP with TrajectoryCrafter's
reference cross-attention, loaded from local checkpoints at full size, or at a tiny size with
the same classes for CPUs, tests and the embedded training demo. Besides ``generate`` it is a
:class:`~devis_core.types.Policy` (DDIM with ``eta > 0``, LoRA adapter, reference policy with
the adapter off). ``docs/models.md`` describes the checkpoints, fields and memory options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import devis_core
from devis_core.lazy import lazy_attributes
from devis_plugins.trajectorycrafter.config import LoraSettings, TrajectoryCrafterConfig

if TYPE_CHECKING:
    from devis_plugins.trajectorycrafter.model import CrossTransformer3DModel
    from devis_plugins.trajectorycrafter.policy import TrajectoryCrafterBackbone

__all__ = [
    "CrossTransformer3DModel",
    "LoraSettings",
    "TrajectoryCrafterBackbone",
    "TrajectoryCrafterConfig",
]

# diffusers, transformers and peft take seconds to import: only when a model is built, not
# every time DEVIS lists its plugins
__getattr__ = lazy_attributes(
    __name__,
    {
        "CrossTransformer3DModel": "devis_plugins.trajectorycrafter.model",
        "TrajectoryCrafterBackbone": "devis_plugins.trajectorycrafter.policy",
    },
)


def build_trajectorycrafter(config: TrajectoryCrafterConfig) -> TrajectoryCrafterBackbone:
    """TrajectoryCrafter (CogVideoX-5B inpainting + reference stream), also an RL policy."""
    from devis_plugins.trajectorycrafter.policy import TrajectoryCrafterBackbone

    return TrajectoryCrafterBackbone(config)


@devis_core.hookimpl
def devis_register_backbones(register):
    register("trajectorycrafter", build_trajectorycrafter, TrajectoryCrafterConfig)
