"""``devis train CONFIG``: online RL (GRPO) or its baselines (DPO, SFT) of a backbone's LoRA.

A run is an optional supervised warm start, then ``training.rounds`` rounds of:

1. **sample** ``groups_per_round`` groups of ``num_generations`` videos, without gradients
   (:mod:`devis_core.engines.sampling`: DEVIS or vanilla groups);
2. **reward** every video with the composite reward of ``rewards``;
3. **advantages** from the rewards of *all* processes' groups (the algorithm's
   ``advantages``); samples with advantage 0 are not trained, so a group whose rewards are
   all equal contributes no gradient;
4. **update**: ``num_iterations`` epochs of shuffled micro-batches, AdamW over the trainable
   (LoRA) parameters, ``gradient_accumulation_steps`` micro-batches per step, gradients summed
   over processes and divided by the number of trained units of the global step, clipped to
   ``max_grad_norm``;
5. **log** (``metrics.jsonl``, TensorBoard when installed, ``reward_curve.png``) and
   **checkpoint** (LoRA, optimizer, scheduler, RNG states, round counter) atomically.

Every random draw of round ``r`` is seeded from ``(seed, r, ...)``, so resuming after the
checkpoint of round ``r - 1`` repeats round ``r`` exactly as an uninterrupted run would.
``docs/training.md`` documents the fields, the paper's schedule, ``torchrun`` and the logs.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from devis_core import distributed
from devis_core.config import PROVENANCE_KEY, PipelineBase, dump_config, to_yaml
from devis_core.distributed import World
from devis_core.engines.evaluate import read_records
from devis_core.engines.sampling import (
    GeneratedSample,
    Group,
    derived_seed,
    one_step_chain,
    one_step_conditions,
    sample_group,
    score_group,
)
from devis_core.errors import DevisError, UsageError
from devis_core.pipeline import Pipeline, make_generator
from devis_core.registry import Registry
from devis_core.rewards import CompositeReward
from devis_core.training import GroupAlgorithm, SeededBatch
from devis_core.types import Conditions, Policy, Rollout

METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
"""A file in ``checkpoints/`` naming the newest complete checkpoint directory."""
FINAL_LORA = "lora.safetensors"
WARM_START_LORA = "warm_start.safetensors"
_RESUMABLE_CHANGES = ("output", "name", PROVENANCE_KEY)


class NonFiniteError(DevisError):
    """A loss or gradient was NaN or infinite: the run stops, the last checkpoint stays."""


@dataclass
class Unit:
    """One trained item: a denoising chain (GRPO) or a video target (DPO, SFT)."""

    conditions: Conditions
    rollout: Rollout
    reward: float
    advantage: float
    group: int
    steps: list[int]


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


class Trainer:
    """The state of one training run (one per process under ``torchrun``)."""

    def __init__(
        self,
        config: PipelineBase,
        registry: Registry,
        *,
        world: World,
        resume: Path | None,
        progress: bool,
    ):
        self.world = world
        pipeline_device = Pipeline(config, registry).device
        device = distributed.local_device(pipeline_device, world)
        if device != pipeline_device:
            config = config.model_copy(update={"device": str(device)})
        self.config, self.registry = config, registry
        self.settings = config.training
        self.directory = Path(resume) if resume is not None else Path(config.output)
        self.resume = resume is not None
        self.progress = progress and world.is_main
        distributed.init_process_group(world, device)
        if self.settings.groups_per_round % world.size:
            raise UsageError(
                f"training.groups_per_round ({self.settings.groups_per_round}) must be a "
                f"multiple of the number of processes ({world.size})"
            )
        entry = getattr(config, "algorithm", None)
        if entry is None:
            raise UsageError("devis train needs an `algorithm` section, e.g. {kind: grpo}")
        self.algorithm: GroupAlgorithm = registry.build("algorithm", entry)
        if self.settings.sampling == "vanilla" and self.settings.same_noise:
            raise UsageError("sampling: vanilla with same_noise gives identical videos per group")
        self.pipeline = Pipeline(config, registry)
        # peft draws fresh LoRA matrices from the global generator: seed it, so every process
        # (and a resumed run, before loading its checkpoint) builds the same adapter
        self._seed_globals("init")
        self.policy: Policy = self.pipeline.backbone
        if not isinstance(self.policy, Policy) or not hasattr(self.policy, "save_lora"):
            raise UsageError(f"backbone {entry.kind!r} cannot be trained: it is not a Policy")
        self.parameters = list(self.policy.trainable_parameters())
        self.reward = CompositeReward(getattr(config, "rewards", []), registry)
        self.reward.to(self.pipeline.device)
        self.optimizer = self._optimizer(self.settings.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.next_round = 0
        self.history: list[dict[str, Any]] = []
        self._board: Any = None

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> Path:
        self._prepare_directory()
        if self.next_round == 0 and not self.resume and self.settings.warm_start.steps:
            self._warm_start()
        for round_index in range(self.next_round, self.settings.rounds):
            self._round(round_index)
        if self.world.is_main:
            _atomic_copy(self._latest() / FINAL_LORA, self.directory / FINAL_LORA)
        return self.directory

    def close(self) -> None:
        if self._board is not None:
            self._board.close()

    def round_gradient(self, round_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample round ``round_index`` and return ``(gradient, rewards)`` without updating.

        ``gradient`` is the flattened gradient of the algorithm's loss over every trained unit
        of the round at the current weights (the direction one full-batch step would take);
        comparing it across independently sampled rounds measures how much of a round's
        gradient is signal rather than sampling noise (``benchmarks/grpo_signal.py``).
        """
        groups = self._sample(round_index)
        rewards, group_ids, _, advantages = self._score(groups)
        units = self._units(round_index, groups, rewards, group_ids, advantages)
        flat = [unit for batch in units for unit in batch]
        self.optimizer.zero_grad(set_to_none=True)
        if flat:
            seed = derived_seed(self.config.seed, round_index, "gradient")
            loss, _ = self.algorithm.loss(_batch(flat, make_generator(seed)), self.policy)
            loss.backward()
        gradient = torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten()
                for p in self.parameters
            ]
        )
        self.optimizer.zero_grad(set_to_none=True)
        return gradient, rewards

    def _prepare_directory(self) -> None:
        resolved = dump_config(self.config, self.registry)
        checkpoint = self._latest_or_none()
        if self.resume:
            if checkpoint is None:
                raise UsageError(f"--resume {self.directory}: no checkpoint there to resume")
            _check_same_config(self.directory / "config.yaml", resolved)
            self._load_checkpoint(checkpoint)
        elif checkpoint is not None:
            raise UsageError(
                f"{self.directory} already holds a training run: continue it with "
                f"--resume {self.directory}, or set another output"
            )
        if self.world.is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                (self.directory / "config.yaml").write_text(to_yaml(resolved))
            records = read_records(self.directory / METRICS) if self.resume else []
            kept = [r for r in records if r.get("round", -1) < self.next_round]
            (self.directory / METRICS).write_text("".join(json.dumps(r) + "\n" for r in kept))
            self.history = [r for r in kept if r.get("event") == "round"]
            if self.settings.tensorboard:
                self._board = _tensorboard_writer(self.directory / "tensorboard")

    # --- warm start -------------------------------------------------------------------------

    def _warm_start(self) -> None:
        """Supervised LoRA fine-tune on small-motion pairs: render in, ground truth out."""
        settings = self.settings.warm_start
        entry = settings.dataset or self.config.dataset
        dataset = self.registry.build("dataset", entry)
        optimizer = self._optimizer(settings.learning_rate)
        started = time.perf_counter()
        bar = tqdm(range(settings.steps), desc="warm start", disable=not self.progress)
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            loss_sum, count = torch.zeros((), dtype=torch.float64), 0
            for slot in range(self.world.rank, settings.batch_size, self.world.size):
                sample = dataset[(step * settings.batch_size + slot) % len(dataset)]
                sample = sample.to(self.pipeline.device)
                if sample.target is None:
                    raise UsageError(f"warm-start sample {sample.sample_id!r} has no target")
                conditions = one_step_conditions(sample, self.pipeline.depth)
                generator = make_generator(derived_seed(self.config.seed, "warm", step, slot))
                shape = self.policy.latent_shape(conditions)
                timesteps = torch.randint(0, 1000, (1,), generator=generator)
                noise = torch.randn((1, *shape[1:]), generator=generator)
                loss = self.policy.v_prediction_error(
                    conditions, sample.target, timesteps, noise
                ).mean()
                loss.backward()
                loss_sum += float(loss.detach())
                count += 1
            result = self._synchronised_step(
                optimizer, None, loss_sum, count, where=f"warm-start step {step}"
            )
            self._log({"event": "warm_start", "step": step, **result})
        self._log({"event": "warm_start_done", "seconds": time.perf_counter() - started})
        if self.world.is_main:
            self._save_lora_atomically(self.directory / WARM_START_LORA)
            self._save_checkpoint(next_round=0)

    # --- one round --------------------------------------------------------------------------

    def _round(self, round_index: int) -> None:
        self._seed_globals(round_index)
        times: dict[str, float] = {}
        started = time.perf_counter()
        groups = self._sample(round_index)
        times["seconds_sampling"] = time.perf_counter() - started

        started = time.perf_counter()
        rewards, group_ids, terms, advantages = self._score(groups)
        times["seconds_rewards"] = time.perf_counter() - started

        started = time.perf_counter()
        units = self._units(round_index, groups, rewards, group_ids, advantages)
        update = self._update(round_index, units)
        times["seconds_update"] = time.perf_counter() - started

        started = time.perf_counter()
        record = self._round_record(round_index, groups, rewards, group_ids, terms, advantages)
        record.update(update)
        if self.world.is_main:
            self._save_checkpoint(next_round=round_index + 1)
        times["seconds_checkpoint"] = time.perf_counter() - started
        record.update(times)
        self._log(record)
        if self.world.is_main:
            self.history.append(record)
            _plot_rewards(self.history, self.directory / "reward_curve.png")

    def _score(
        self, groups: Sequence[Group]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Rewards, group ids and raw terms of every process's samples, and the advantages."""
        for group in groups:
            score_group(group, self.reward)
        rewards, group_ids, terms = self._gathered_rewards(groups)
        return rewards, group_ids, terms, self.algorithm.advantages(rewards, group_ids)

    def _seed_globals(self, round_index: int | str) -> None:
        """Seed torch, Python and NumPy from (seed, round): dropout and the like repeat."""
        seed = derived_seed(self.config.seed, "round", round_index)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)

    def _local_groups(self) -> list[int]:
        return list(range(self.world.rank, self.settings.groups_per_round, self.world.size))

    def _sample(self, round_index: int) -> list[Group]:
        settings, dataset = self.settings, self.pipeline.dataset
        groups = []
        indices = self._local_groups()
        for group in tqdm(indices, desc=f"round {round_index} sampling", disable=not self.progress):
            position = (round_index * settings.groups_per_round + group) % len(dataset)
            groups.append(
                sample_group(
                    group,
                    dataset[position].to(self.pipeline.device),
                    policy=self.policy,
                    accumulator=self.pipeline.accumulator,
                    depth=self.pipeline.depth,
                    size=self.algorithm.config.num_generations,
                    mode=settings.sampling,
                    k_range=(settings.k_min, settings.k_max),
                    same_noise=settings.same_noise,
                    seed_parts=(self.config.seed, "round", round_index),
                )
            )
        return groups

    def _gathered_rewards(
        self, groups: Sequence[Group]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Rewards, group ids and raw terms of every process's samples, in rank order."""
        names = [term.name for term in self.reward.terms]
        rows = []
        for group in groups:
            result = group.rewards
            for member in range(len(group.members)):
                values = [float(result.total[member]), float(group.index)]
                values += [float(result.terms[name][member]) for name in names]
                rows.append(values)
        table = torch.tensor(rows, dtype=torch.float64, device=self._collective_device)
        table = distributed.all_gather_rows(table, self.world).cpu()
        terms = {name: table[:, 2 + i] for i, name in enumerate(names)}
        return table[:, 0], table[:, 1].long(), terms

    def _units(
        self,
        round_index: int,
        groups: Sequence[Group],
        rewards: torch.Tensor,
        group_ids: torch.Tensor,
        advantages: torch.Tensor,
    ) -> list[list[Unit]]:
        """This process's trained units, in batching units (one per sample, or per group)."""
        size = self.algorithm.config.num_generations
        offset = self.world.rank * len(groups) * size
        pick_steps = getattr(self.algorithm, "trained_steps", None)
        batches: list[list[Unit]] = []
        for g, group in enumerate(groups):
            members: list[Unit] = []
            for m, generated in enumerate(group.members):
                row = offset + g * size + m
                advantage, reward = float(advantages[row]), float(rewards[row])
                if advantage == 0.0 or not math.isfinite(reward):
                    continue
                if self.algorithm.trains_on == "videos":
                    target = Rollout(steps=[], video=generated.video)
                    members.append(
                        Unit(group.conditions, target, reward, advantage, group.index, [])
                    )
                    continue
                for c, (conditions, rollout) in enumerate(self._trained_chains(generated)):
                    steps = list(range(len(rollout.steps)))
                    if pick_steps is not None:
                        seed = derived_seed(
                            self.config.seed, round_index, "steps", group.index, m, c
                        )
                        steps = pick_steps(len(rollout.steps), make_generator(seed))
                    if not steps:
                        continue
                    if (
                        self.settings.trained_chain == "one-step"
                        and conditions is not group.conditions  # vanilla chains already are
                    ):
                        rollout = one_step_chain(self.policy, group.conditions, rollout, steps)
                        conditions, steps = group.conditions, list(range(len(steps)))
                    members.append(Unit(conditions, rollout, reward, advantage, group.index, steps))
            if self.algorithm.batch_unit == "group":
                if members:
                    batches.append(members)
            else:
                batches.extend([unit] for unit in members)
        return batches

    def _trained_chains(self, generated: GeneratedSample) -> list[tuple[Conditions, Rollout]]:
        """The chains a sample trains: its last one, or every step's (``train_intermediate``)."""
        return generated.chains if self.settings.train_intermediate else generated.chains[-1:]

    def _update(self, round_index: int, units: list[list[Unit]]) -> dict[str, float]:
        """``num_iterations`` epochs of micro-batches; returns the round's update statistics."""
        settings = self.settings
        per_batch, accumulate = (
            settings.per_device_train_batch_size,
            settings.gradient_accumulation_steps,
        )
        local = torch.tensor([math.ceil(len(units) / per_batch)], device=self._collective_device)
        micro_batches = int(distributed.all_reduce_max(local, self.world))
        stats: dict[str, list[float]] = defaultdict(list)
        total_steps = math.ceil(micro_batches / accumulate) * self.algorithm.config.num_iterations
        bar = tqdm(
            total=total_steps, desc=f"round {round_index} updates", disable=not self.progress
        )
        step = 0
        for epoch in range(self.algorithm.config.num_iterations):
            order = torch.randperm(
                len(units),
                generator=make_generator(
                    derived_seed(self.config.seed, round_index, "shuffle", epoch, self.world.rank)
                ),
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
                    seed = derived_seed(
                        self.config.seed, round_index, "loss", epoch, micro, self.world.rank
                    )
                    loss, algorithm_stats = self.algorithm.loss(
                        _batch(batch_units, make_generator(seed)), self.policy
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
                result = self._synchronised_step(
                    self.optimizer, self.scheduler, loss_sum, count, where=where, bad=bad
                )
                means = {name: statistics.fmean(values) for name, values in step_stats.items()}
                if result["units"]:
                    self._log(
                        {
                            "event": "step",
                            "round": round_index,
                            "epoch": epoch,
                            "step": step,
                            **result,
                            **means,
                        }
                    )
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

    def _synchronised_step(
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
        loss over the global batch, whatever the number of processes.
        """
        totals = torch.tensor([float(loss_sum), float(count), float(bad is not None)])
        totals = totals.to(self._collective_device, torch.float64)
        totals = distributed.all_reduce_sum(totals, self.world).cpu()
        if totals[2] > 0:
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(
                f"{bad or f'a non-finite loss on another process at {where}'} (rank "
                f"{self.world.rank}); nothing was saved, the last checkpoint stays"
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
            raise NonFiniteError(
                f"non-finite gradient norm ({float(norm)}) at {where}; nothing was saved, "
                "the last checkpoint stays"
            )
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return {
            "loss": float(totals[0]) / units,
            "grad_norm": float(norm),
            "learning_rate": optimizer.param_groups[0]["lr"],
            "units": units,
        }

    # --- optimizer and schedule -------------------------------------------------------------

    def _optimizer(self, learning_rate: float) -> torch.optim.AdamW:
        settings = self.settings
        return torch.optim.AdamW(
            self.parameters,
            lr=learning_rate,
            betas=(settings.adam_beta1, settings.adam_beta2),
            eps=settings.adam_epsilon,
            weight_decay=settings.weight_decay,
        )

    def planned_steps(self) -> int:
        """Optimizer steps of the whole run, if every sample were trained (the schedule)."""
        settings, algorithm = self.settings, self.algorithm.config
        groups = settings.groups_per_round // self.world.size
        units = (
            groups if self.algorithm.batch_unit == "group" else groups * algorithm.num_generations
        )
        micro = math.ceil(units / settings.per_device_train_batch_size)
        per_epoch = math.ceil(micro / settings.gradient_accumulation_steps)
        return settings.rounds * algorithm.num_iterations * per_epoch

    def _lr_factor(self, step: int) -> float:
        settings = self.settings
        if step < settings.warmup_steps:
            return (step + 1) / (settings.warmup_steps + 1)
        if settings.lr_scheduler_type == "constant":
            return 1.0
        span = max(1, self.planned_steps() - settings.warmup_steps)
        progress = min(1.0, (step - settings.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    # --- checkpoints ------------------------------------------------------------------------

    def _latest_or_none(self) -> Path | None:
        pointer = self.directory / CHECKPOINTS / LATEST
        if not pointer.is_file():
            return None
        return self.directory / CHECKPOINTS / pointer.read_text().strip()

    def _latest(self) -> Path:
        checkpoint = self._latest_or_none()
        if checkpoint is None:
            raise UsageError(f"{self.directory} has no checkpoint")
        return checkpoint

    def _save_checkpoint(self, *, next_round: int) -> None:
        """Write a new checkpoint directory, then switch ``latest`` to it (atomic rename)."""
        root = self.directory / CHECKPOINTS
        name = f"round-{next_round:05d}"
        staging = root / f".{name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        self.policy.save_lora(staging / FINAL_LORA)
        state = {
            "next_round": next_round,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "round_seed": derived_seed(self.config.seed, "round", next_round),
            },
        }
        torch.save(state, staging / "state.pt")
        previous = self._latest_or_none()
        target = root / name
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        _atomic_write(root / LATEST, name)
        if previous is not None and previous != target:
            shutil.rmtree(previous, ignore_errors=True)

    def _load_checkpoint(self, checkpoint: Path) -> None:
        self.policy.load_lora(checkpoint / FINAL_LORA)
        state = torch.load(checkpoint / "state.pt", map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        np.random.set_state(state["rng"]["numpy"])
        self.next_round = int(state["next_round"])

    def _save_lora_atomically(self, path: Path) -> None:
        staging = path.with_name(f".{path.name}.tmp")
        self.policy.save_lora(staging)
        os.replace(staging, path)

    # --- logging ----------------------------------------------------------------------------

    @property
    def _collective_device(self) -> torch.device:
        """Where collectives run: nccl and hccl need device tensors, gloo CPU ones."""
        return self.pipeline.device if self.world.active else torch.device("cpu")

    def _round_record(
        self,
        round_index: int,
        groups: Sequence[Group],
        rewards: torch.Tensor,
        group_ids: torch.Tensor,
        terms: dict[str, torch.Tensor],
        advantages: torch.Tensor,
    ) -> dict[str, Any]:
        finite = torch.isfinite(rewards)
        record: dict[str, Any] = {"event": "round", "round": round_index}
        record.update(_mean_std("reward", rewards[finite]))
        for name, values in terms.items():
            record.update(_mean_std(f"reward/{name}", values[torch.isfinite(values)]))
        record.update(_mean_std("advantage", advantages))
        record["advantage_abs_mean"] = float(advantages.abs().mean())
        record["rewards_non_finite"] = int((~finite).sum())
        degenerate = 0
        for group in torch.unique(group_ids):
            values = rewards[(group_ids == group) & finite]
            degenerate += int(values.numel() < 2 or bool((values == values[0]).all()))
        record["groups_equal_rewards"] = degenerate
        steps = [member.steps for group in groups for member in group.members]
        record["accumulation_steps_mean"] = statistics.fmean(steps) if steps else math.nan
        return record

    def _log(self, record: dict[str, Any]) -> None:
        if not self.world.is_main:
            return
        with (self.directory / METRICS).open("a") as stream:
            stream.write(json.dumps(record, default=float) + "\n")
        if self._board is not None and record.get("event") in ("round", "step", "warm_start"):
            step = record.get("round", record.get("step", 0))
            if record["event"] == "step":
                step = self.scheduler.last_epoch
            for name, value in record.items():
                if isinstance(value, (int, float)) and name not in ("round", "step", "epoch"):
                    self._board.add_scalar(f"{record['event']}/{name}", value, step)


def _batch(units: Sequence[Unit], generator: torch.Generator) -> SeededBatch:
    return SeededBatch(
        conditions=[unit.conditions for unit in units],
        rollouts=[unit.rollout for unit in units],
        rewards=torch.tensor([unit.reward for unit in units]),
        advantages=torch.tensor([unit.advantage for unit in units]),
        group_ids=torch.tensor([unit.group for unit in units]),
        steps=[unit.steps for unit in units],
        generator=generator,
    )


def _mean_std(name: str, values: torch.Tensor) -> dict[str, float]:
    if values.numel() == 0:
        return {f"{name}_mean": math.nan, f"{name}_std": math.nan}
    std = float(values.std()) if values.numel() > 1 else 0.0
    return {f"{name}_mean": float(values.mean()), f"{name}_std": std}


def _check_same_config(path: Path, resolved: dict[str, Any]) -> None:
    """A resumed run must train what it started with (``training.rounds`` may grow)."""
    import yaml

    if not path.is_file():
        raise UsageError(f"{path} is missing: is this a training run directory?")
    saved = yaml.safe_load(path.read_text()) or {}

    def comparable(data: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in data.items() if k not in _RESUMABLE_CHANGES}
        training = dict(data.get("training") or {})
        training.pop("rounds", None)
        return {**data, "training": training}

    if comparable(saved) != comparable(resolved):
        changed = sorted(
            key
            for key in set(saved) | set(resolved)
            if key not in _RESUMABLE_CHANGES
            and comparable(saved).get(key) != comparable(resolved).get(key)
        )
        raise UsageError(
            f"the config differs from the one the run in {path.parent} started with "
            f"(sections: {', '.join(changed)}); only training.rounds may change on --resume"
        )


def _atomic_write(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text)
    os.replace(staging, path)


def _atomic_copy(source: Path, path: Path) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    shutil.copyfile(source, staging)
    os.replace(staging, path)


def _tensorboard_writer(directory: Path) -> Any:
    """A TensorBoard writer, or None when the ``tensorboard`` package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(directory))


def _plot_rewards(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Mean composite reward per round with a one-std band (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [record["round"] for record in history]
    means = np.array([record["reward_mean"] for record in history], dtype=float)
    stds = np.array([record["reward_std"] for record in history], dtype=float)
    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.plot(rounds, means, marker="o")
    axes.fill_between(rounds, means - stds, means + stds, alpha=0.25)
    axes.set_xlabel("round")
    axes.set_ylabel("composite reward")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    staging = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(staging, dpi=100)
    plt.close(figure)
    os.replace(staging, path)
