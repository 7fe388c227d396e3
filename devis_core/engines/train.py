"""``devis train CONFIG``: online RL (GRPO) or its baselines (DPO, SFT) of a backbone's LoRA.

The entry of the command: it finds this process's place under ``torchrun``, runs the checks
every command shares (:func:`~devis_core.engines.preflight.preflight`), holds the run
directory (:func:`~devis_core.engines.run_directory.run_directory`, main process only) and
runs a :class:`~devis_core.training.Trainer`. The training itself is the
:mod:`devis_core.training` package; ``docs/training.md`` documents the fields, the paper's
schedule, ``torchrun`` and the logs.
"""

from __future__ import annotations

from pathlib import Path

from devis_core import distributed
from devis_core.config import PipelineBase
from devis_core.engines.preflight import preflight
from devis_core.engines.run_directory import run_directory
from devis_core.errors import UsageError
from devis_core.registry import Registry
from devis_core.training import Trainer


def train_pipeline(
    config: PipelineBase,
    registry: Registry,
    *,
    resume: Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Train as ``config.training`` says; return the run directory.

    A fresh run needs an empty directory (``overwrite`` clears one first); ``resume`` continues
    the run in that directory, whose config the trainer checks.
    """
    if resume is not None and overwrite:
        raise UsageError("--resume continues a run and --overwrite deletes it: choose one")
    if resume is not None and not Path(resume).is_dir():
        raise UsageError(f"--resume {resume}: no checkpoint there to resume")
    world = distributed.world_from_environment()
    directory = Path(resume) if resume is not None else Path(config.output)
    preflight(config, registry, "train", output=directory, processes=world.size)

    def reusable(path: Path) -> str | None:
        if resume is not None:
            return None  # the trainer checks the checkpoint and the config
        return f"a new training run starts empty (continue a run with --resume {path})"

    with run_directory(
        directory, command="train", overwrite=overwrite, reusable=reusable, main=world.is_main
    ):
        trainer = Trainer(config, registry, world=world, resume=resume, progress=progress)
        try:
            return trainer.run()
        finally:
            trainer.close()
            distributed.destroy_process_group(world)
