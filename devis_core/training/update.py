"""The update of a round: AdamW over the trainable parameters, its learning-rate schedule, and
the optimizer step every process takes together.

A round's update is ``num_iterations`` epochs of shuffled micro-batches of units,
``gradient_accumulation_steps`` micro-batches per step. Gradients are summed over processes and
divided by the number of trained units of the global step (the gradient of the mean loss over
the global batch, as DDP computes it), clipped to ``max_grad_norm``, and checked: a non-finite
loss or gradient norm stops the run before the optimizer steps, and non-finite weights after a
step stop it before anything saves them (:class:`~devis_core.errors.TrainingDivergedError`, exit
code 3). Nothing is skipped silently: a diverged run is not worth continuing, and its last
checkpoint is the state to inspect or resume with other settings.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from devis_core import distributed
from devis_core.distributed import World
from devis_core.errors import TrainingDivergedError
from devis_core.pipeline import make_generator
from devis_core.sections import TrainingSection
from devis_core.training.algorithm import TrainingAlgorithm
from devis_core.training.logs import RunLog
from devis_core.training.seeds import derived_seed
from devis_core.training.units import Unit, seeded_batch
from devis_core.types import Policy


def adamw(
    parameters: Sequence[torch.nn.Parameter], settings: TrainingSection, learning_rate: float
) -> torch.optim.AdamW:
    """AdamW with the run's betas, epsilon and weight decay."""
    return torch.optim.AdamW(
        parameters,
        lr=learning_rate,
        betas=(settings.adam_beta1, settings.adam_beta2),
        eps=settings.adam_epsilon,
        weight_decay=settings.weight_decay,
    )


def planned_steps(settings: TrainingSection, algorithm: TrainingAlgorithm, processes: int) -> int:
    """Optimizer steps of the whole run if every sample were trained (the cosine schedule's
    length)."""
    groups = settings.groups_per_round // processes
    units = groups
    if algorithm.capabilities.batch_unit == "sample":
        units *= algorithm.config.num_generations
    micro = math.ceil(units / settings.per_device_train_batch_size)
    per_epoch = math.ceil(micro / settings.gradient_accumulation_steps)
    return settings.rounds * algorithm.config.num_iterations * per_epoch


class Updater:
    """The optimizer and schedule of a run, and the steps that use them."""

    def __init__(
        self,
        parameters: Sequence[torch.nn.Parameter],
        *,
        settings: TrainingSection,
        algorithm: TrainingAlgorithm,
        world: World,
        collective_device: torch.device,
    ):
        self.parameters = list(parameters)
        self.settings, self.algorithm, self.world = settings, algorithm, world
        self.collective_device = collective_device
        """Where collectives run: nccl and hccl need device tensors, gloo CPU ones."""
        self.optimizer = adamw(self.parameters, settings, settings.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)

    def _lr_factor(self, step: int) -> float:
        settings = self.settings
        if step < settings.warmup_steps:
            return (step + 1) / (settings.warmup_steps + 1)
        if settings.lr_scheduler_type == "constant":
            return 1.0
        planned = planned_steps(settings, self.algorithm, self.world.size)
        span = max(1, planned - settings.warmup_steps)
        progress = min(1.0, (step - settings.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def train_round(
        self,
        round_index: int,
        units: list[list[Unit]],
        policy: Policy,
        *,
        seed: int,
        log: RunLog,
        progress: bool,
    ) -> dict[str, float]:
        """``num_iterations`` epochs over ``units`` (in batching units); returns the means of
        the round's step statistics and its number of optimizer steps."""
        settings, algorithm, rank = self.settings, self.algorithm, self.world.rank
        per_batch, accumulate = (
            settings.per_device_train_batch_size,
            settings.gradient_accumulation_steps,
        )
        local = torch.tensor([math.ceil(len(units) / per_batch)], device=self.collective_device)
        micro_batches = int(distributed.all_reduce_max(local, self.world))
        stats: dict[str, list[float]] = defaultdict(list)
        total_steps = math.ceil(micro_batches / accumulate) * algorithm.config.num_iterations
        bar = tqdm(total=total_steps, desc=f"round {round_index} updates", disable=not progress)
        step = 0
        for epoch in range(algorithm.config.num_iterations):
            order = torch.randperm(
                len(units),
                generator=make_generator(derived_seed(seed, round_index, "shuffle", epoch, rank)),
            ).tolist()
            for first in range(0, micro_batches, accumulate):
                self.optimizer.zero_grad(set_to_none=True)
                loss_sum, count, step_stats, groups_seen = (
                    torch.zeros((), dtype=torch.float64),
                    0,
                    defaultdict(list),
                    [],
                )
                bad: str | None = None
                for micro in range(first, min(first + accumulate, micro_batches)):
                    chosen = order[micro * per_batch : (micro + 1) * per_batch]
                    if not chosen:
                        continue
                    batch_units = [unit for index in chosen for unit in units[index]]
                    groups_seen += sorted({unit.group for unit in batch_units})
                    generator = make_generator(
                        derived_seed(seed, round_index, "loss", epoch, micro, rank)
                    )
                    loss, algorithm_stats = algorithm.loss(
                        seeded_batch(batch_units, generator), policy
                    )
                    if not torch.isfinite(loss):
                        # every process must reach the collective below before stopping
                        bad = bad or (
                            f"non-finite loss ({float(loss.detach())}) in round {round_index}, "
                            f"epoch {epoch}, step {step}, groups "
                            f"{sorted({unit.group for unit in batch_units})}"
                        )
                        continue
                    (loss * len(chosen)).backward()
                    loss_sum += float(loss.detach()) * len(chosen)
                    count += len(chosen)
                    for name, value in algorithm_stats.items():
                        step_stats[name].append(value)
                seen = sorted(set(groups_seen))
                where = f"round {round_index}, epoch {epoch}, step {step}, groups {seen}"
                result = self.step(
                    self.optimizer, self.scheduler, loss_sum, count, where=where, bad=bad
                )
                means = {name: statistics.fmean(values) for name, values in step_stats.items()}
                if result["units"]:
                    record = {"event": "step", "round": round_index, "epoch": epoch, "step": step}
                    log.write({**record, **result, **means}, self.scheduler.last_epoch)
                    for name, value in {**result, **means}.items():
                        stats[name].append(value)
                step += 1
                bar.update()
        bar.close()
        summary = {
            f"{name}_mean": statistics.fmean(values)
            for name, values in stats.items()
            if name != "units"
        }
        summary["optimizer_steps"] = len(stats.get("loss", []))
        return summary

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None,
        loss_sum: torch.Tensor,
        count: int,
        *,
        where: str,
        bad: str | None = None,
    ) -> dict[str, float]:
        """Average gradients over the global step's units, clip, check, and step.

        Each process's gradient is the sum over its units (losses were scaled by unit counts);
        summing over processes and dividing by the global count is the gradient of the mean
        loss over the global batch, whatever the number of processes. ``bad`` says why this
        process's loss was not finite; any process's stops all of them.
        """
        totals = torch.tensor([float(loss_sum), float(count), float(bad is not None)])
        totals = totals.to(self.collective_device, torch.float64)
        totals = distributed.all_reduce_sum(totals, self.world).cpu()
        if totals[2] > 0:
            optimizer.zero_grad(set_to_none=True)
            raise TrainingDivergedError(
                f"{bad or f'a non-finite loss on another process at {where}'} (rank "
                f"{self.world.rank})"
            )
        units = int(totals[1])
        if units == 0:
            return {"units": 0}
        distributed.sum_gradients(self.parameters, self.world)
        for parameter in self.parameters:
            if parameter.grad is not None:
                parameter.grad.div_(units)
        norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.settings.max_grad_norm)
        if not torch.isfinite(norm):
            optimizer.zero_grad(set_to_none=True)
            raise TrainingDivergedError(f"non-finite gradient norm ({float(norm)}) at {where}")
        try:
            optimizer.step()
        except RuntimeError as error:
            # a learning rate beyond float32 fails inside the step ("cannot be converted to
            # type float without overflow"): divergence too, not a crash
            if "overflow" not in str(error):
                raise
            raise TrainingDivergedError(
                f"the optimizer step overflowed at {where} (learning rate "
                f"{optimizer.param_groups[0]['lr']:g}): {error}"
            ) from None
        if scheduler is not None:
            scheduler.step()
        # the step is the same on every process (same gradients, same weights): no collective
        for parameter in self.parameters:
            if not bool(torch.isfinite(parameter.detach()).all()):
                raise TrainingDivergedError(
                    f"non-finite weights after the optimizer step at {where} (learning rate "
                    f"{optimizer.param_groups[0]['lr']:g})"
                )
        return {
            "loss": float(totals[0]) / units,
            "grad_norm": float(norm),
            "learning_rate": optimizer.param_groups[0]["lr"],
            "units": units,
        }
