"""Backbone ``trajectorycrafter``: TrajectoryCrafter's video diffusion transformer, as a policy.

The generator of the paper (Eq. 2): CogVideoX-Fun-V1.1-5b-InP with TrajectoryCrafter's
reference cross-attention, loaded from local checkpoints at full size, or at a tiny size with
the same classes for CPUs, tests and the embedded training demo. Besides ``generate`` it is a
:class:`~devis_core.types.Policy` (DDIM with ``eta > 0``, LoRA adapter, reference policy with
the adapter off). ``docs/models.md`` describes the checkpoints, fields and memory options.
"""

from __future__ import annotations

import devis_core
from devis_plugins.trajectorycrafter.config import LoraSettings, TrajectoryCrafterConfig
from devis_plugins.trajectorycrafter.model import CrossTransformer3DModel
from devis_plugins.trajectorycrafter.policy import TrajectoryCrafterBackbone

__all__ = [
    "CrossTransformer3DModel",
    "LoraSettings",
    "TrajectoryCrafterBackbone",
    "TrajectoryCrafterConfig",
]


@devis_core.hookimpl
def devis_register_backbones(register):
    register("trajectorycrafter", TrajectoryCrafterBackbone, TrajectoryCrafterConfig)
