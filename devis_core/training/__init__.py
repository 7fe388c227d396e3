"""Training a policy's LoRA with GRPO, DPO, SFT or a plugin's algorithm (``devis train``).

One job per module:

- :mod:`~devis_core.training.algorithm`: the contract an algorithm plugin implements;
- :mod:`~devis_core.training.sampling`: a round's groups, their one-step conditions and rewards;
- :mod:`~devis_core.training.units`: what each rewarded sample trains;
- :mod:`~devis_core.training.update`: the optimizer, its schedule and the synchronised step;
- :mod:`~devis_core.training.checkpoints`: atomic, verified checkpoints and the run's weight
  files (:mod:`~devis_core.training.state_files`: their state as safetensors and JSON);
- :mod:`~devis_core.training.logs`: ``metrics.jsonl``, TensorBoard, the reward curve;
- :mod:`~devis_core.training.seeds`: every draw seeded from (seed, round, ...);
- :mod:`~devis_core.training.trainer`: the run, orchestrating them.

``devis train`` itself is :func:`devis_core.engines.train.train_pipeline`.
"""

from typing import TYPE_CHECKING

from devis_core.lazy import lazy_attributes
from devis_core.training.algorithm import (
    Capabilities,
    GroupAlgorithmConfig,
    SeededBatch,
    TrainingAlgorithm,
    best_and_worst,
    draw_timesteps_and_noise,
)

if TYPE_CHECKING:
    from devis_core.training.checkpoints import CHECKPOINTS, FINAL_LORA, LATEST, WARM_START_LORA
    from devis_core.training.logs import METRICS
    from devis_core.training.trainer import Trainer

# The trainer and its checkpoints import torch and peft: algorithm plugins import this package
# while `devis plugins` lists them, so those names load on first use (PEP 562).
__getattr__ = lazy_attributes(
    __name__,
    {
        "CHECKPOINTS": "devis_core.training.checkpoints",
        "FINAL_LORA": "devis_core.training.checkpoints",
        "LATEST": "devis_core.training.checkpoints",
        "WARM_START_LORA": "devis_core.training.checkpoints",
        "METRICS": "devis_core.training.logs",
        "Trainer": "devis_core.training.trainer",
    },
)


__all__ = [
    "CHECKPOINTS",
    "FINAL_LORA",
    "LATEST",
    "METRICS",
    "WARM_START_LORA",
    "Capabilities",
    "GroupAlgorithmConfig",
    "SeededBatch",
    "Trainer",
    "TrainingAlgorithm",
    "best_and_worst",
    "draw_timesteps_and_noise",
]
