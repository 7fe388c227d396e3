"""Train several methods from one warm start, then score each on held-out scenes.

The machinery of the training suites (the paper's Tables 3 and 4), as
``benchmarks/learning.py`` does it: the first method's run does the config's supervised warm
start and then trains; every other method starts from that warm-started LoRA (no warm start
of its own) with the same config and therefore the same sample budget, changed only by its
overrides (``algorithm={kind: sft, mode: best}``, ``training.sampling=one-step``, ...). Each
trained LoRA is scored by *one-step* generation (the deterministic sampler, conditioned on
the source reprojected by the whole motion) on held-out scenes: the config's composite reward
and the given metrics against the ground truth.

Each held-out scene's scores are a record of ``<directory>/<method>/held_out.jsonl``
(:class:`~devis_core.toolkit.results.RecordLog`, the scheme the evaluation engine uses), keyed
by the config and held-out settings they were made with: a later call with the same ones
reuses them (a method whose scenes are all scored is neither trained nor scored again), and a
different one is refused. A training interrupted mid-way resumes from its last checkpoint.
With a :class:`~devis_core.engines.evaluate.VideoOutput`, each held-out video is kept too.
Under ``torchrun`` the processes share each training's groups and the held-out scenes; the
main process writes.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from devis_core import distributed
from devis_core.config import apply_overrides, validate_config
from devis_core.devices import resolve_device
from devis_core.engines.evaluate import VideoOutput, metric_directions
from devis_core.engines.reporting import active_reporter
from devis_core.engines.tables import slug
from devis_core.engines.train import train_pipeline
from devis_core.errors import UsageError
from devis_core.pipeline import Pipeline, make_generator, place_on
from devis_core.registry import Registry
from devis_core.rewards import CompositeReward
from devis_core.toolkit.accumulation import one_step_conditions
from devis_core.toolkit.results import RecordLog, config_key, read_records
from devis_core.training import CHECKPOINTS, FINAL_LORA, LATEST, METRICS, WARM_START_LORA
from devis_core.training.sampling import CachedSourceDepth, sample_group
from devis_core.training.tracking import video_frames
from devis_core.types import RewardInputs

WARM_START = "warm start"
"""Row name of the warm-started LoRA every method starts from."""

HELD_OUT_SEED = 1000
"""Dataset seed of the held-out scenes (training uses the config's own seed)."""


@dataclass
class HeldOut:
    """Scenes the trained models are scored on, and with what."""

    samples: int
    metrics: list[str | dict[str, Any]]
    dataset: dict[str, Any] | None = None
    """A dataset entry; None: the training dataset drawn with :data:`HELD_OUT_SEED`."""
    diversity: list[str | dict[str, Any]] = field(default_factory=list)
    """Group metrics (``lpips-diversity``, ...) of one sampling group per held-out scene."""


@dataclass
class TrainedMethod:
    """One trained model's held-out records (one per scene: ``method``, ``key``, ``index``,
    ``sample_id`` and the scores) and its training times (:func:`training_times`; none for
    the warm start)."""

    records: list[dict[str, Any]]
    times: dict[str, float]


def train_methods(
    base: dict[str, Any],
    methods: Mapping[str, Sequence[str]],
    directory: Path,
    registry: Registry,
    held_out: HeldOut,
    *,
    progress: bool = False,
    videos: VideoOutput | None = None,
) -> dict[str, TrainedMethod]:
    """Train each method (overrides of ``base``) from one warm start; score every model on
    ``held_out`` with :func:`score_held_out` (keeping its videos in ``videos``).

    Under ``torchrun`` every process takes part in each training (its share of the groups)
    and in the scoring (its share of the scenes); the main process writes. Returns the
    :data:`WARM_START` model's results, then each method's in order.
    """
    world = distributed.world_from_environment()
    first = next(iter(methods))
    warm = starting_lora(directory, methods)
    trained: dict[str, TrainedMethod] = {}
    device = distributed.local_device(resolve_device(str(base.get("device", "auto"))), world)
    with distributed.process_group(world, device):  # kept between the trainings
        for method, data in method_configs(base, methods, directory).items():
            run = directory / slug(method)
            config = validate_config(data, registry, source=f"training of {method!r}")
            key = config_key({"config": data, "held_out": asdict(held_out)})
            log = _held_out_log(run, key, world)
            train, resume = distributed.broadcast_object(
                _training_plan(run, _unscored(log, method, key, held_out, videos))
                if world.is_main
                else None,
                world,
            )  # what the main process sees: every process trains, or none
            if train:
                # without a checkpoint, what a killed run left there is restarted from scratch
                train_pipeline(
                    config, registry, resume=resume, progress=progress, overwrite=resume is None
                )
                distributed.barrier(world)  # the main process has written the final LoRA
            score = {"registry": registry, "held_out": held_out, "log": log, "videos": videos}
            trained[method] = TrainedMethod(
                score_held_out(data, run / FINAL_LORA, method=method, **score),
                training_times(run),
            )
            if method == first:
                trained[WARM_START] = TrainedMethod(
                    score_held_out(data, warm, method=WARM_START, **score), {}
                )
    return {WARM_START: trained.pop(WARM_START), **trained}


def _training_plan(run: Path, unscored: list[int]) -> tuple[bool, Path | None]:
    """Whether ``run`` must train (scenes to score and no final LoRA) and the directory to
    resume it from (None: a fresh run)."""
    resume = run if (run / CHECKPOINTS / LATEST).is_file() else None
    return bool(unscored) and not (run / FINAL_LORA).is_file(), resume


HELD_OUT_RECORDS = "held_out.jsonl"
"""Per-scene scores of a method's run directory (and of the warm start, in the first's)."""


def _held_out_log(run: Path, key: str, world: distributed.World) -> RecordLog:
    """The run's held-out records (kept by the main process; the others get its records to
    decide alike); records of another key are refused, since the run's training (its
    checkpoints, its final LoRA) could not be reused either."""
    log = RecordLog(run / HELD_OUT_RECORDS if world.is_main else None)
    log.records = distributed.broadcast_object(log.records, world)
    if any(record.get("key") != key for record in log.records):
        raise UsageError(
            f"{run} holds results of another config or held-out setting: run into another "
            "--output, or delete that folder to recompute it"
        )
    return log


def _unscored(
    log: RecordLog, method: str, key: str, held_out: HeldOut, videos: VideoOutput | None
) -> list[int]:
    """The held-out scenes ``method`` has no record of under ``key`` (or, with ``videos``, no
    video of)."""
    done = {r["index"]: r for r in log.records if r["method"] == method and r["key"] == key}
    return [
        index
        for index in range(held_out.samples)
        if index not in done
        or (videos is not None and not videos.path(method, done[index]["sample_id"]).is_file())
    ]


SAMPLE_BUDGET = ("num_generations", "num_iterations")
"""Algorithm fields that set a method's sample budget: group size G and epochs per round."""


def method_config(base: dict[str, Any], changes: Sequence[str], output: Path) -> dict[str, Any]:
    """``base`` with one method's overrides, writing to ``output``, on ``base``'s sample budget.

    A method that replaces the whole algorithm entry (``algorithm={kind: sft, mode: all}``)
    would otherwise fall back to that algorithm's default G and epochs: it keeps ``base``'s
    unless its own overrides set them.
    """
    data = apply_overrides(base, [*changes, f"output={output}"])
    if isinstance(data.get("algorithm"), dict):
        budget = {k: v for k, v in (base.get("algorithm") or {}).items() if k in SAMPLE_BUDGET}
        data["algorithm"] = {**budget, **data["algorithm"]}
    return data


def method_configs(
    base: dict[str, Any], methods: Mapping[str, Sequence[str]], directory: Path
) -> dict[str, dict[str, Any]]:
    """The training config of each method of :func:`train_methods`, in order: each writes to
    ``directory/<slug>``; every method after the first starts from the first's warm-started
    LoRA, with no warm start of its own."""
    first = next(iter(methods))
    warm = starting_lora(directory, methods)
    configs = {}
    for method, changes in methods.items():
        data = method_config(base, changes, directory / slug(method))
        if method != first:
            data = apply_overrides(
                data, [f"backbone.lora.path={warm}", "training.warm_start.steps=0"]
            )
        configs[method] = data
    return configs


def starting_lora(directory: Path, methods: Mapping[str, Sequence[str]]) -> Path:
    """The LoRA every method of :func:`train_methods` starts from: the first method's warm
    start (its starting adapter when the config has no warm start)."""
    return directory / slug(next(iter(methods))) / WARM_START_LORA


def training_times(run: Path) -> dict[str, float]:
    """``train minutes`` (warm start included) and ``seconds / iteration`` of a finished run."""
    records = read_records(run / METRICS)
    rounds = [r for r in records if r.get("event") == "round"]
    iteration = [r["seconds_sampling"] + r["seconds_rewards"] + r["seconds_update"] for r in rounds]
    total = sum(r.get("seconds", 0.0) for r in records if r.get("event") == "warm_start_done")
    total += sum(iteration) + sum(r["seconds_checkpoint"] for r in rounds)
    return {
        "train minutes": total / 60,
        "seconds / iteration": statistics.fmean(iteration) if iteration else math.nan,
    }


def score_held_out(
    data: dict[str, Any],
    lora: Path,
    registry: Registry,
    held_out: HeldOut,
    *,
    log: RecordLog | None = None,
    method: str = "",
    videos: VideoOutput | None = None,
) -> list[dict[str, Any]]:
    """One record per held-out scene of one-step generation with ``lora``: the composite
    reward and metrics and, with ``held_out.diversity``, the diversity of one sampling group
    of the scene, drawn the way the config's training samples (DEVIS or vanilla groups).

    Each scene's record is kept in ``log`` under ``method`` and the key of ``data`` and
    ``held_out``, and sent to the command's trackers (event ``held-out/METHOD``); scenes
    already there (with their video, when ``videos`` keeps them) are not scored again, and
    nothing is built when none is missing, so an interrupted scoring resumes. Under
    ``torchrun`` the processes share the scenes and the main process keeps the records.
    """
    world = distributed.world_from_environment()
    log = RecordLog() if log is None else log
    key = config_key({"config": data, "held_out": asdict(held_out)})
    missing = distributed.broadcast_object(
        _unscored(log, method, key, held_out, videos) if world.is_main else None, world
    )
    if missing:
        score = _scene_scorer(data, lora, registry, held_out, world, keep_video=bool(videos))
        reporter = active_reporter()
        for made in distributed.shared_work(missing, world, score):
            for scores, frames, fps in made:
                if videos is not None:
                    videos.write(method, scores["sample_id"], frames / 255.0, fps)
                record = {"method": method, "key": key, **scores}
                log.append(record)
                reporter.sample("held-out", record)
    done = {r["index"]: r for r in log.records if r["method"] == method and r["key"] == key}
    return distributed.broadcast_object(
        [done[index] for index in range(held_out.samples)] if world.is_main else None, world
    )


def held_out_directions(
    data: dict[str, Any], registry: Registry, held_out: HeldOut
) -> dict[str, bool]:
    """Whether a higher value is better, for each score of :func:`score_held_out`: the
    composite reward, the metrics and the diversity metrics (each built to ask it)."""
    config = validate_config(_held_out_data(data, held_out), registry, source="held-out scoring")
    directions = {"reward": True, **metric_directions([Pipeline(config, registry)])}
    for entry in held_out.diversity:
        metric = registry.build("metric", _entry(entry))
        directions[_entry_name(entry)] = bool(metric.higher_is_better)
    return directions


def _held_out_data(data: dict[str, Any], held_out: HeldOut) -> dict[str, Any]:
    """``data`` scoring ``held_out``'s metrics on its scenes."""
    data = copy.deepcopy(data)
    data["metrics"] = list(held_out.metrics)
    if held_out.dataset is not None:
        data["dataset"] = dict(held_out.dataset)
    else:
        data["dataset"] = {
            **data["dataset"],
            "seed": HELD_OUT_SEED,
            "num_samples": held_out.samples,
        }
    return data


def _scene_scorer(
    data: dict[str, Any],
    lora: Path,
    registry: Registry,
    held_out: HeldOut,
    world: distributed.World,
    *,
    keep_video: bool,
) -> Callable[[int], tuple[dict[str, Any], torch.Tensor | None, float]]:
    """What scores one held-out scene on this process's device: its ``index``, ``sample_id``
    and scores, its generated video as uint8 frames (with ``keep_video``) and frame rate."""
    data = _held_out_data(data, held_out)
    data["backbone"].setdefault("lora", {})["path"] = str(lora)
    config = validate_config(data, registry, source="held-out scoring")
    pipeline = Pipeline(distributed.with_local_device(config, world), registry)
    reward = CompositeReward(data.get("rewards", []), registry)
    reward.to(pipeline.device)
    diversity = {
        _entry_name(entry): place_on(registry.build("metric", _entry(entry)), pipeline.device)
        for entry in held_out.diversity
    }

    def score(index: int) -> tuple[dict[str, Any], torch.Tensor | None, float]:
        if index >= len(pipeline.dataset):
            raise UsageError(
                f"held-out scoring asks for {held_out.samples} scenes; the dataset has "
                f"{len(pipeline.dataset)}"
            )
        sample = pipeline.dataset[index].to(pipeline.device)
        scores: dict[str, Any] = {"index": index, "sample_id": sample.sample_id}
        depth = CachedSourceDepth(pipeline.depth, sample)  # estimated once per scene
        cond = one_step_conditions(sample, depth.estimate(sample.source, sample))
        with torch.no_grad():
            video = pipeline.backbone.generate(cond, make_generator(index))
        inputs = RewardInputs(video[None], sample.source[None], cond.render[None], cond.mask[None])
        scores["reward"] = float(reward(inputs).total[0])
        scores.update(pipeline.score(sample, video))
        if diversity:
            group = sample_group(
                index,
                sample,
                policy=pipeline.backbone,
                accumulator=pipeline.accumulator,
                depth=depth,
                size=config.algorithm.num_generations,
                mode=config.training.sampling,
                k_range=(config.training.k_min, config.training.k_max),
                same_noise=config.training.same_noise,
                seed_parts=(config.seed, "held-out diversity"),
            )
            members = torch.stack([member.video for member in group.members])
            for name, metric in diversity.items():
                scores[name] = float(metric.compute(members, members).double().mean())
        return scores, video_frames(video) if keep_video else None, sample.fps

    return score


def _entry(entry: str | dict[str, Any]) -> dict[str, Any]:
    return {"kind": entry} if isinstance(entry, str) else dict(entry)


def _entry_name(entry: str | dict[str, Any]) -> str:
    return _entry(entry)["kind"]
