"""The trainer: one training run, from its directory to its last round.

A run is an optional supervised warm start, then ``training.rounds`` rounds of:

1. **sample** ``groups_per_round`` groups of ``num_generations`` videos without gradients
   (:mod:`~devis_core.training.sampling`);
2. **reward** every video with the composite reward of ``rewards``;
3. **advantages** from the rewards of *all* processes' groups (the algorithm's);
4. **units** the samples contribute (:mod:`~devis_core.training.units`);
5. **update** (:mod:`~devis_core.training.update`);
6. **checkpoint** (:mod:`~devis_core.training.checkpoints`) and **log**
   (:mod:`~devis_core.training.logs`).

A round whose rewards are all non-finite, or more than ``max_invalid_reward_fraction`` of them,
and a non-finite loss, gradient norm or weight stop the run within the round with
:class:`~devis_core.errors.TrainingDivergedError` (exit code 3): the diverged state is never
checkpointed nor written as the final LoRA, and the message names the last good checkpoint.

Every random draw of round ``r`` is seeded from ``(seed, r, ...)``
(:mod:`~devis_core.training.seeds`), so resuming after the checkpoint of round ``r - 1``
repeats round ``r`` exactly as an uninterrupted run would.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from tqdm.auto import tqdm

from devis_core import distributed
from devis_core.config import (
    PROVENANCE_KEY,
    PipelineBase,
    differing_sections,
    dump_config,
    to_yaml,
)
from devis_core.distributed import World
from devis_core.errors import TrainingDivergedError, UsageError
from devis_core.pipeline import Pipeline, make_generator
from devis_core.registry import Registry
from devis_core.rewards import CompositeReward
from devis_core.toolkit.accumulation import one_step_conditions
from devis_core.training.algorithm import TrainingAlgorithm
from devis_core.training.checkpoints import (
    FINAL_LORA,
    WARM_START_LORA,
    LoraPolicy,
    checkpoint_path,
    copy_atomically,
    latest_checkpoint,
    resume_checkpoint,
    save_checkpoint,
    save_lora,
)
from devis_core.training.logs import RunLog, round_record
from devis_core.training.sampling import (
    Group,
    RoundRewards,
    gather_rewards,
    sample_group,
    score_group,
)
from devis_core.training.seeds import derived_seed, round_seed, seed_globals
from devis_core.training.tracking import check_trackers
from devis_core.training.units import Unit, build_units, seeded_batch
from devis_core.training.update import Updater, adamw
from devis_core.types import Policy

_RESUMABLE_CHANGES = ("output", "name", PROVENANCE_KEY)


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
        check_trackers(self.settings.report_to)  # before any work, on every process
        self.directory = Path(resume) if resume is not None else Path(config.output)
        self.resume = resume is not None
        self.progress = progress and world.is_main
        distributed.init_process_group(world, device)
        if self.settings.groups_per_round % world.size:
            raise UsageError(
                f"training.groups_per_round ({self.settings.groups_per_round}) must be a "
                f"multiple of the number of processes ({world.size})"
            )
        entry = config.algorithm
        if entry is None:
            names = ", ".join(registry.names("algorithm")) or "(none installed)"
            raise UsageError(
                f"devis train needs an `algorithm` section ({{kind: NAME}}); registered: {names}"
            )
        self.algorithm = registry.build("algorithm", entry)
        if not isinstance(self.algorithm, TrainingAlgorithm):
            raise UsageError(
                f"algorithm {entry.kind!r} does not subclass "
                "devis_core.training.TrainingAlgorithm, so devis train cannot run it"
            )
        if self.settings.sampling == "one-step" and self.settings.same_noise:
            raise UsageError("sampling: one-step with same_noise gives identical videos per group")
        self.pipeline = Pipeline(config, registry)
        # peft draws fresh LoRA matrices from the global generator: seed it, so every process
        # (and a resumed run, before loading its checkpoint) builds the same adapter
        seed_globals(config.seed, "init")
        self.policy = trainable_policy(self.pipeline.backbone, config.backbone.kind)
        self.parameters = list(self.policy.trainable_parameters())
        if not self.parameters:
            raise UsageError(
                f"backbone {config.backbone.kind!r} (the `backbone` section) has no trainable "
                "parameters: devis train updates its LoRA adapter, so configure the adapter in "
                "the `backbone` entry (its LoRA fields; `devis schema --slot backbone`)"
            )
        self.reward = CompositeReward(config.rewards, registry)
        self.reward.to(self.pipeline.device)
        # collectives run where the backend wants them: nccl and hccl on the device, gloo on CPU
        self.collective_device = self.pipeline.device if world.active else torch.device("cpu")
        self.updater = Updater(
            self.parameters,
            settings=self.settings,
            algorithm=self.algorithm,
            world=world,
            collective_device=self.collective_device,
        )
        self.next_round = 0
        self.last_good: Path | None = None
        """The checkpoint this run last wrote or resumed from: what a divergence keeps."""
        self.log = RunLog(self.directory, main=world.is_main)

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> Path:
        """Warm start (on a fresh run), the remaining rounds, the final LoRA; the directory."""
        self._prepare_directory()
        try:
            if self.next_round == 0 and not self.resume:
                if self.settings.warm_start.steps:
                    self._warm_start()
                elif self.world.is_main:  # the adapter RL starts from, for runs that compare
                    save_lora(self.policy, self.directory / WARM_START_LORA)
            for round_index in range(self.next_round, self.settings.rounds):
                self._round(round_index)
        except TrainingDivergedError as error:
            raise self._diverged(str(error)) from None
        if self.world.is_main:
            copy_atomically(self._latest() / FINAL_LORA, self.directory / FINAL_LORA)
        return self.directory

    def close(self) -> None:
        self.log.close()

    def round_gradient(self, round_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample round ``round_index`` and return ``(gradient, rewards)`` without updating.

        ``gradient`` is the flattened gradient of the algorithm's loss over every trained unit
        of the round at the current weights (the direction one full-batch step would take);
        comparing it across independently sampled rounds measures how much of a round's
        gradient is signal rather than sampling noise (``benchmarks/grpo_signal.py``).
        """
        groups = self.sample(round_index)
        scores = self.score(groups)
        flat = [unit for batch in self.units(round_index, groups, scores) for unit in batch]
        optimizer = self.updater.optimizer
        optimizer.zero_grad(set_to_none=True)
        if flat:
            seed = derived_seed(self.config.seed, round_index, "gradient")
            loss, _ = self.algorithm.loss(seeded_batch(flat, make_generator(seed)), self.policy)
            loss.backward()
        gradient = torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten()
                for p in self.parameters
            ]
        )
        optimizer.zero_grad(set_to_none=True)
        return gradient, scores.rewards

    def _diverged(self, reason: str) -> TrainingDivergedError:
        """The error that stops a diverged run: why, and which checkpoint is kept (logged)."""
        if self.last_good is not None:
            kept = f"the last good checkpoint {self.last_good} is kept"
        else:
            kept = "no checkpoint had been written yet"
        message = (
            f"training diverged: {reason}. The run stopped without saving the diverged state; "
            f"{kept}"
        )
        self.log.write({"event": "diverged", "round": self.next_round, "reason": message})
        return TrainingDivergedError(message)

    def _prepare_directory(self) -> None:
        resolved = dump_config(self.config, self.registry)
        checkpoint = latest_checkpoint(self.directory)
        if self.resume:
            if checkpoint is None:
                raise UsageError(f"--resume {self.directory}: no checkpoint there to resume")
            _check_same_config(self.directory / "config.yaml", resolved)
            self.last_good, self.next_round = resume_checkpoint(
                self.directory,
                policy=self.policy,
                optimizer=self.updater.optimizer,
                scheduler=self.updater.scheduler,
            )
        elif checkpoint is not None:
            raise UsageError(
                f"{self.directory} already holds a training run: continue it with "
                f"--resume {self.directory}, or set another output"
            )
        if self.world.is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                (self.directory / "config.yaml").write_text(to_yaml(resolved))
            self.log.start(
                resumed=self.resume,
                next_round=self.next_round,
                report_to=self.settings.report_to,
                run_name=self.config.name,
                config=resolved,
            )

    def _latest(self) -> Path:
        checkpoint = latest_checkpoint(self.directory)
        if checkpoint is None:
            raise UsageError(f"{self.directory} has no checkpoint")
        return checkpoint

    def _save_checkpoint(self, next_round: int) -> None:
        """Rank 0 writes the checkpoint; every rank records where it is."""
        if self.world.is_main:
            save_checkpoint(
                self.directory,
                policy=self.policy,
                optimizer=self.updater.optimizer,
                scheduler=self.updater.scheduler,
                next_round=next_round,
                round_seed=round_seed(self.config.seed, next_round),
                keep=self.config.training.save_total_limit,
            )
        self.last_good = checkpoint_path(self.directory, next_round)

    # --- warm start -------------------------------------------------------------------------

    def _warm_start(self) -> None:
        """Supervised LoRA fine-tune on small-motion pairs: render in, ground truth out."""
        settings = self.settings.warm_start
        entry = settings.dataset or self.config.dataset
        dataset = self.registry.build("dataset", entry)
        optimizer = adamw(self.parameters, self.settings, settings.learning_rate)
        started = time.perf_counter()
        bar = tqdm(range(settings.steps), desc="warm start", disable=not self.progress)
        for step in bar:
            optimizer.zero_grad(set_to_none=True)
            loss_sum, count = torch.zeros((), dtype=torch.float64), 0
            bad: str | None = None
            for slot in range(self.world.rank, settings.batch_size, self.world.size):
                sample = dataset[(step * settings.batch_size + slot) % len(dataset)]
                sample = sample.to(self.pipeline.device)
                if sample.target is None:
                    raise UsageError(f"warm-start sample {sample.sample_id!r} has no target")
                depth = self.pipeline.depth.estimate(sample.source, sample)
                conditions = one_step_conditions(sample, depth)
                generator = make_generator(derived_seed(self.config.seed, "warm", step, slot))
                shape = self.policy.latent_shape(conditions)
                timesteps = torch.randint(0, 1000, (1,), generator=generator)
                noise = torch.randn((1, *shape[1:]), generator=generator)
                loss = self.policy.v_prediction_error(
                    conditions, sample.target, timesteps, noise
                ).mean()
                if not torch.isfinite(loss):
                    bad = f"non-finite loss ({float(loss.detach())}) in warm-start step {step}"
                    continue
                loss.backward()
                loss_sum += float(loss.detach())
                count += 1
            result = self.updater.step(
                optimizer, None, loss_sum, count, where=f"warm-start step {step}", bad=bad
            )
            self.log.write({"event": "warm_start", "step": step, **result})
        self.log.write({"event": "warm_start_done", "seconds": time.perf_counter() - started})
        if self.world.is_main:
            save_lora(self.policy, self.directory / WARM_START_LORA)
        self._save_checkpoint(next_round=0)

    # --- one round --------------------------------------------------------------------------

    def _round(self, round_index: int) -> None:
        self.next_round = round_index
        seed_globals(self.config.seed, round_index)
        times: dict[str, float] = {}
        started = time.perf_counter()
        groups = self.sample(round_index)
        times["seconds_sampling"] = time.perf_counter() - started

        started = time.perf_counter()
        scores = self.score(groups)
        self._check_rewards(round_index, scores.rewards)
        times["seconds_rewards"] = time.perf_counter() - started

        started = time.perf_counter()
        units = self.units(round_index, groups, scores)
        update = self.updater.train_round(
            round_index,
            units,
            self.policy,
            seed=self.config.seed,
            log=self.log,
            progress=self.progress,
        )
        times["seconds_update"] = time.perf_counter() - started

        started = time.perf_counter()
        record = round_record(round_index, groups, scores)
        record.update(update)
        record["learning_rate"] = self.updater.optimizer.param_groups[0]["lr"]
        self._save_checkpoint(next_round=round_index + 1)
        times["seconds_checkpoint"] = time.perf_counter() - started
        record.update(times)
        self.log.write_round(record)
        every = self.settings.log_videos_every
        if every and round_index % every == 0 and groups and self.log.tracking:
            self.log.write_video(round_index, groups[0].members[0].video)

    def _check_rewards(self, round_index: int, rewards: torch.Tensor) -> None:
        """Stop when every reward of the round (every process's), or more than
        ``max_invalid_reward_fraction`` of them, is non-finite; fewer are skipped (their
        samples train nothing) and counted in the round's record."""
        invalid, total = int((~torch.isfinite(rewards)).sum()), rewards.numel()
        limit = self.settings.max_invalid_reward_fraction
        if total and (invalid == total or invalid / total > limit):
            raise TrainingDivergedError(
                f"{invalid} of {total} rewards of round {round_index} are not finite (NaN or "
                f"infinite; training.max_invalid_reward_fraction is {limit:g})"
            )

    def sample(self, round_index: int) -> list[Group]:
        """This process's groups of round ``round_index`` (group ``g`` on rank ``g mod size``)."""
        settings, dataset = self.settings, self.pipeline.dataset
        indices = range(self.world.rank, settings.groups_per_round, self.world.size)
        groups = []
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

    def score(self, groups: Sequence[Group]) -> RoundRewards:
        """Reward this process's groups; gather every process's rewards; the advantages."""
        for group in groups:
            score_group(group, self.reward)
        names = [term.name for term in self.reward.terms]
        rewards, group_ids, terms = gather_rewards(
            groups, names, self.world, self.collective_device
        )
        return RoundRewards(
            rewards, group_ids, terms, self.algorithm.advantages(rewards, group_ids)
        )

    def units(
        self, round_index: int, groups: Sequence[Group], scores: RoundRewards
    ) -> list[list[Unit]]:
        """This process's trained units of the round, in batching units."""
        return build_units(
            groups,
            scores,
            algorithm=self.algorithm,
            policy=self.policy,
            settings=self.settings,
            first_row=self.world.rank * len(groups) * self.algorithm.config.num_generations,
            seed_parts=(self.config.seed, round_index),
        )


POLICY_MEMBERS: tuple[str, ...] = tuple(
    name for protocol in (Policy, LoraPolicy) for name in vars(protocol) if not name.startswith("_")
)
"""What a backbone implements to be trained: the :class:`~devis_core.types.Policy` protocol and
saving and loading its adapter."""


def trainable_policy(backbone: object, kind: str) -> LoraPolicy:
    """``backbone`` as the policy a run trains; a :class:`UsageError` that names the configured
    backbone, what it lacks and what would train, when it is a generator only."""
    missing = [name for name in POLICY_MEMBERS if not callable(getattr(backbone, name, None))]
    if not missing:
        return cast(LoraPolicy, backbone)
    raise UsageError(
        f"backbone {kind!r} (the `backbone` section) cannot be trained: devis train fine-tunes "
        "the LoRA adapter of a backbone that is a policy (devis_core.types.Policy, plus "
        f"save_lora and load_lora), and {kind!r} has no {', '.join(missing)}. Configure a "
        "backbone that is one, with its adapter set in its entry (`devis plugins` describes "
        f"the backbones); {kind!r} stays usable by devis run and devis eval"
    )


def _check_same_config(path: Path, resolved: dict[str, Any]) -> None:
    """A resumed run must train what it started with (``training.rounds`` may grow)."""
    if not path.is_file():
        raise UsageError(f"{path} is missing: is this a training run directory?")
    saved = yaml.safe_load(path.read_text()) or {}

    def comparable(data: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in data.items() if k not in _RESUMABLE_CHANGES}
        training = dict(data.get("training") or {})
        training.pop("rounds", None)
        return {**data, "training": training}

    changed = differing_sections(comparable(saved), comparable(resolved))
    if changed:
        raise UsageError(
            f"the config differs from the one the run in {path.parent} started with "
            f"(sections: {', '.join(changed)}); only training.rounds may change on --resume"
        )
