"""``devis train CONFIG``: online RL (GRPO) or its baselines (DPO, SFT) of a backbone's LoRA.

The entry of the command: it finds this process's place under ``torchrun`` and runs a
:class:`~devis_core.training.Trainer`. The training itself is the :mod:`devis_core.training`
package; ``docs/training.md`` documents the fields, the paper's schedule, ``torchrun`` and the
logs.
"""

from __future__ import annotations

from pathlib import Path

from devis_core import distributed
from devis_core.config import PipelineBase
from devis_core.registry import Registry
from devis_core.training import Trainer


def train_pipeline(
    config: PipelineBase, registry: Registry, *, resume: Path | None = None, progress: bool = True
) -> Path:
    """Train as ``config.training`` says; return the run directory."""
    world = distributed.world_from_environment()
    trainer = Trainer(config, registry, world=world, resume=resume, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
        distributed.destroy_process_group(world)
