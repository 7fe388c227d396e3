"""The evaluation engine: score several methods (pipeline configs) on the same samples.

One engine serves ``devis eval`` (:func:`evaluate_pipeline`: the methods of the config's
``evaluation.methods``), the ablation suites and the ``variants`` suite
(:func:`compare_variants`: overrides of a base config). :func:`score_methods` does the work:

- every method sees the same samples with the same seeds (seed offset = sample index);
- methods share what their configs share (:class:`~devis_core.pipeline.Pipeline`'s
  ``shared`` components): a dataset is loaded, and a model built, once for all of them;
- samples are the outer loop, so each sample is loaded once, whatever the number of methods;
- each (method, sample) is one record of a :class:`~devis_core.toolkit.results.RecordLog`,
  keyed by the method's resolved config (:func:`method_key`), flushed as soon as it is
  scored: a crash loses nothing finished, and running again (with more samples, or another
  method) scores only what is missing;
- under ``torchrun`` the processes share the samples (:mod:`devis_core.distributed`) and the
  main process keeps every record, so the table is the one a single process makes;
- each new record, and the final table, go to the trackers of ``report_to``
  (:mod:`~devis_core.engines.reporting`).

:func:`summarise` turns records into rows: mean, sample standard deviation, count and 95%
confidence interval of every metric over the samples whose value is finite, and the p-value of
the paired t-test of each row against the reference row (:mod:`~devis_core.engines.statistics`).
With ``save_videos``, every generated video is kept (:class:`VideoOutput`).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from tqdm.auto import tqdm

from devis_core import distributed
from devis_core.config import (
    PROVENANCE_KEY,
    PipelineBase,
    apply_overrides,
    dump_config,
    to_yaml,
    validate_config,
)
from devis_core.devices import resolve_device
from devis_core.engines.preflight import evaluation_methods, preflight
from devis_core.engines.reporting import active_reporter, reporting
from devis_core.engines.run_directory import run_directory, same_config
from devis_core.engines.statistics import SIGNIFICANCE, mean_interval, paired_p_value
from devis_core.engines.tables import json_safe, markdown_table, slug, write_tables
from devis_core.pipeline import Pipeline
from devis_core.registry import Registry
from devis_core.sections import SaveVideos
from devis_core.toolkit.files import atomic_write_text
from devis_core.toolkit.results import RecordLog, config_key
from devis_core.training.tracking import check_trackers, video_frames
from devis_core.types import SuiteContext, SuiteResult, ViewSynthesisSample

if TYPE_CHECKING:
    import torch

RECORDS = "metrics.jsonl"
_NOT_COMPARED = ("evaluation", "name", "output", PROVENANCE_KEY)
"""Config keys that do not change what a method computes (left out of its key)."""
_RECORD_FIELDS = ("method", "key", "seed", "sample_id", "index", "generator_calls", "seconds")


def method_key(config: PipelineBase) -> str:
    """The key of a method's records: its resolved config, without the keys that do not change
    its results (``output``, ``name``, ``evaluation``, provenance)."""
    data = config.model_dump(mode="json")
    return config_key({k: v for k, v in data.items() if k not in _NOT_COMPARED})


@dataclass(frozen=True)
class VideoOutput:
    """Where generated videos are kept (``save_videos``): ``<root>/<method>/<sample_id>.mp4``
    (H.264) or ``.mkv`` (lossless FFV1, whose pixels read back exactly)."""

    root: Path
    lossless: bool

    def path(self, method: str, sample_id: str) -> Path:
        """The file of ``method``'s video of sample ``sample_id``."""
        from devis_core.toolkit.media import video_suffix

        name = re.sub(r"[^A-Za-z0-9._-]+", "_", sample_id)
        return self.root / slug(method) / f"{name}{video_suffix(self.lossless)}"

    def write(self, method: str, sample_id: str, video: torch.Tensor, fps: float) -> Path:
        """Encode ``video`` to :meth:`path` (atomically: a file there is whole)."""
        from devis_core.toolkit.media import write_video

        path = self.path(method, sample_id)
        return write_video(path, video.cpu(), fps, lossless=self.lossless)


def video_output(root: Path, save_videos: SaveVideos) -> VideoOutput | None:
    """The :class:`VideoOutput` under ``root`` of a ``save_videos`` setting; None for none."""
    return None if save_videos == "none" else VideoOutput(root, save_videos == "lossless")


def score_methods(
    methods: Mapping[str, PipelineBase],
    registry: Registry,
    *,
    samples: int | None = None,
    log: RecordLog | None = None,
    progress: bool = True,
    label: str = "evaluation",
    videos: VideoOutput | None = None,
    shared: dict[tuple[str, str, str], Any] | None = None,
) -> list[dict[str, Any]]:
    """Score each method on its dataset's first ``samples`` samples (all when None).

    Returns one record per method and sample, in method order then sample order: ``method``,
    ``key``, ``sample_id``, ``index``, ``generator_calls``, ``seconds`` (synthesis wall time)
    and every metric. Records already in ``log`` under the same method and key are reused;
    new ones are appended to it as they finish, and sent to the command's trackers
    (:func:`~devis_core.engines.reporting.active_reporter`, as events ``LABEL/METHOD``). With
    ``videos``, each generated video is written there too, and a record whose video is
    missing is made again. ``shared`` holds the built components to reuse (see
    :class:`~devis_core.pipeline.Pipeline`).

    Under ``torchrun`` the processes share the samples to score (dealt round-robin,
    :func:`~devis_core.distributed.shared_work`), each on its own device; only the main
    process reads and writes ``log`` and the videos (give the others a log without a path,
    :func:`record_log`), and every process returns the records one process would.
    """
    world = distributed.world_from_environment()
    log = RecordLog() if log is None else log
    shared = {} if shared is None else shared
    keys = {name: method_key(config) for name, config in methods.items()}  # same everywhere
    pipelines = {
        name: Pipeline(distributed.with_local_device(config, world), registry, shared)
        for name, config in methods.items()
    }
    for pipeline in pipelines.values():
        _ = pipeline.metrics  # built before any work, so missing weights fail at once
    counts = {name: _count(pipeline, samples) for name, pipeline in pipelines.items()}
    done = {(r["method"], r.get("key"), r["index"]): r for r in log.records}

    def finished(name: str, index: int) -> bool:
        record = done.get((name, keys[name], index))
        if record is None or videos is None:
            return record is not None
        return videos.path(name, record["sample_id"]).is_file()

    todo = distributed.broadcast_object(
        [
            (index, name)
            for index in range(max(counts.values(), default=0))
            for name in methods
            if index < counts[name] and not finished(name, index)
        ]
        if world.is_main
        else None,
        world,
    )  # the main process, which alone reads the run directory, says what is missing
    loaded: dict[int, ViewSynthesisSample] = {}  # this index's sample, by dataset
    current = -1

    def score(unit: tuple[int, str]) -> tuple[dict[str, Any], torch.Tensor | None, float]:
        nonlocal loaded, current
        index, name = unit
        pipeline = pipelines[name]
        if index != current:
            loaded, current = {}, index
        dataset = pipeline.dataset
        if id(dataset) not in loaded:
            loaded[id(dataset)] = dataset[index]
        sample = loaded[id(dataset)]
        started = time.perf_counter()
        result = pipeline.synthesize(sample, seed_offset=index)
        seconds = time.perf_counter() - started
        values = pipeline.score(sample, result.video)
        record = {
            "method": name,
            "key": keys[name],
            "sample_id": sample.sample_id,
            "index": index,
            "generator_calls": result.generator_calls,
            "seconds": seconds,
            **{metric: json_safe(value) for metric, value in values.items()},
        }
        return record, None if videos is None else video_frames(result.video), sample.fps

    reporter = active_reporter()
    bar = tqdm(total=len(todo), desc=label, unit="run", disable=not (progress and world.is_main))
    with bar:
        for made in distributed.shared_work(todo, world, score, group=lambda unit: unit[0]):
            for record, frames, fps in made:
                if videos is not None:  # uint8 frames: what the file keeps, exactly
                    videos.write(record["method"], record["sample_id"], frames / 255.0, fps)
                log.append(record)
                done[(record["method"], record["key"], record["index"])] = record
                reporter.sample(label, record)
            bar.update(len(made))
    return distributed.broadcast_object(
        [done[(name, keys[name], index)] for name in methods for index in range(counts[name])]
        if world.is_main
        else None,
        world,
    )


def record_log(path: Path | None) -> RecordLog:
    """The record log at ``path``, kept by the main process of a ``torchrun`` job (the others
    keep theirs in memory: :func:`score_methods` sends their records to the main one)."""
    main = distributed.world_from_environment().is_main
    return RecordLog(path if main else None)


def metric_directions(pipelines: Iterable[Pipeline]) -> dict[str, bool]:
    """Whether a higher value is better, for every metric of ``pipelines`` (by name)."""
    return {
        name: bool(metric.higher_is_better)
        for pipeline in pipelines
        for name, metric in pipeline.metrics.items()
    }


def summarise(
    records: Sequence[dict[str, Any]],
    methods: Sequence[str],
    *,
    reference: str | None = None,
    pair_by: Sequence[str] = ("index",),
) -> tuple[list[str], list[dict[str, Any]]]:
    """Metric names (in the order first seen) and one row per method.

    A row holds ``method``; for every metric, over the samples whose value is finite, its
    mean, ``<metric> std`` (sample, ``n - 1``), ``<metric> n``, ``<metric> ci95 low`` and
    ``high`` (the 95% confidence interval of the mean) and, when there are several methods,
    ``<metric> p``: the p-value of the paired t-test against ``reference`` (default: the first
    method; NaN in its own row) over the samples both scored, paired by the ``pair_by`` fields
    of the records; then ``generator calls`` and ``seconds`` (means) and ``samples`` (the
    number of records). Means, deviations and intervals are NaN where they are undefined.
    """
    names: list[str] = []
    for record in records:
        names += [k for k in record if k not in _RECORD_FIELDS and k not in names]
    by_method = {method: [r for r in records if r["method"] == method] for method in methods}
    reference = methods[0] if reference is None and methods else reference
    rows = []
    for method, mine in by_method.items():
        row: dict[str, Any] = {"method": method}
        for metric in names:
            finite = _finite(r.get(metric) for r in mine)
            row[metric] = statistics.fmean(finite) if finite else math.nan
            row[f"{metric} std"] = statistics.stdev(finite) if len(finite) > 1 else math.nan
            row[f"{metric} n"] = len(finite)
            row[f"{metric} ci95 low"], row[f"{metric} ci95 high"] = mean_interval(finite)
            if len(methods) > 1:
                others = by_method[reference] if method != reference else []
                row[f"{metric} p"] = _paired_p(mine, others, metric, pair_by)
        for field, column in (("generator_calls", "generator calls"), ("seconds", "seconds")):
            finite = _finite(r.get(field) for r in mine)
            row[column] = statistics.fmean(finite) if finite else math.nan
        row["samples"] = len(mine)
        rows.append(row)
    return names, rows


def _paired_p(
    records: Sequence[dict[str, Any]],
    reference: Sequence[dict[str, Any]],
    metric: str,
    pair_by: Sequence[str],
) -> float:
    """The paired t-test's p-value of ``metric`` between two methods' records of the same
    samples (NaN with fewer than two such pairs)."""
    theirs = {tuple(r.get(f) for f in pair_by): r.get(metric) for r in reference}
    pairs = []
    for record in records:
        mine, other = record.get(metric), theirs.get(tuple(record.get(f) for f in pair_by))
        if _finite([mine]) and _finite([other]):
            pairs.append((float(mine), float(other)))
    return paired_p_value([a for a, _ in pairs], [b for _, b in pairs])


def statistics_notes(reference: str | None, unit: str = "samples") -> list[str]:
    """The notes that say what a table of :func:`summarise` rows shows; ``reference`` names
    the row the p-values compare against (None: a table of one row, no test)."""
    notes = [
        f"Cells: mean ± sample standard deviation over the {unit} with a finite value (n = "
        "their count where it is below the row's samples); table.json adds each mean's 95% "
        "confidence interval (t distribution), samples.jsonl the values of every sample."
    ]
    if reference is not None:
        notes.append(
            f"p (table.json, table.csv): paired t-test of each row against {reference} on the "
            f"same {unit}; † marks a difference within the noise of the {unit} (p ≥ "
            f"{SIGNIFICANCE}, not significant)."
        )
    return notes


def sample_records(records: Iterable[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    """Records as ``samples.jsonl`` keeps them: the method's name under ``label``, no key."""
    return [
        {label: r["method"], **{k: v for k, v in r.items() if k not in ("method", "key")}}
        for r in records
    ]


def finite_mean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there are none (never a made-up 0)."""
    finite = _finite(values)
    return statistics.fmean(finite) if finite else math.nan


def _finite(values: Any) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _count(pipeline: Pipeline, samples: int | None) -> int:
    count = len(pipeline.dataset)
    return count if samples is None else min(count, samples)


# -- devis eval --------------------------------------------------------------------------------


def evaluate_pipeline(
    config: PipelineBase, registry: Registry, *, progress: bool = True, overwrite: bool = False
) -> Path:
    """``devis eval``: score every configured method; write the records and the table.

    The run directory (the config's ``output``) receives ``config.yaml`` (resolved, with
    provenance), ``metrics.jsonl`` (the records of :func:`score_methods`, resumed from), the
    table as ``table.md``, ``table.tex``, ``table.csv`` and ``table.json``, the records behind
    it as ``samples.jsonl`` and, with ``evaluation.save_videos``, ``videos/``; the trackers of
    ``evaluation.report_to`` get each record and the table. A directory holding an evaluation
    of the same config is resumed; one holding anything else is refused unless ``overwrite``
    clears it first. Under ``torchrun`` the processes share the samples and the main one
    writes everything. Returns the run directory.
    """
    world = distributed.world_from_environment()
    preflight(config, registry, "eval")
    check_trackers(config.evaluation.report_to, "evaluation.report_to")
    methods = evaluation_methods(config, registry)
    output = Path(config.output)
    resolved = dump_config(config, registry)
    reusable = same_config(resolved, command="eval", ignored=_NOT_COMPARED)
    device = distributed.local_device(resolve_device(config.device), world)
    with (
        run_directory(
            output, command="eval", overwrite=overwrite, reusable=reusable, main=world.is_main
        ),
        distributed.process_group(world, device),
        reporting(
            config.evaluation.report_to,
            directory=output,
            run_name=config.name,
            config=resolved,
            main=world.is_main,
        ) as reporter,
    ):
        if world.is_main:
            atomic_write_text(output / "config.yaml", to_yaml(resolved))
        shared: dict[tuple[str, str, str], Any] = {}
        records = score_methods(
            methods,
            registry,
            samples=config.evaluation.max_samples,
            log=record_log(output / RECORDS),
            progress=progress,
            videos=video_output(output / "videos", config.evaluation.save_videos),
            shared=shared,
        )
        names, rows = summarise(records, list(methods))
        table = SuiteResult(
            title=f"Evaluation of {config.name}" if config.name else "Evaluation",
            columns=["method", *names, "generator calls", "samples"],
            rows=rows,
            notes=statistics_notes(next(iter(methods)) if len(methods) > 1 else None),
            samples=sample_records(records, "method"),
            higher_is_better=metric_directions(
                Pipeline(distributed.with_local_device(method, world), registry, shared)
                for method in methods.values()
            ),
        )
        if world.is_main:
            write_tables(table, output)
            reporter.table(table)
    if world.is_main:
        click.echo(markdown_table(table))
    return output


# -- suites ------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """What :func:`compare_variants` measured: the metric names, one summary row and the
    records of each variant (its name under the same label in both), and which way each
    metric is better."""

    metrics: list[str]
    rows: list[dict[str, Any]]
    records: list[dict[str, Any]]
    higher_is_better: dict[str, bool]


def compare_variants(
    base: dict[str, Any],
    variants: Mapping[str, Sequence[str]],
    context: SuiteContext,
    *,
    samples: int,
    source: str = "suite",
    store: Path | None = None,
    label: str = "variant",
    videos: VideoOutput | None = None,
    shared: dict[tuple[str, str, str], Any] | None = None,
) -> Comparison:
    """Score each variant (``KEY=VALUE`` overrides of ``base``) on the first ``samples``
    samples; its rows are :func:`summarise`'s (against the first variant), with the variant's
    name under ``label``.

    Every variant runs with the suite's seed and device. With ``store``, the records are kept
    in ``store/metrics.jsonl`` and a later call reuses those of unchanged variants; with
    ``videos``, the generated videos are kept there; ``shared`` reuses built components
    across calls.
    """
    forced = [f"seed={context.seed}", f"device={context.device}"]
    methods = {
        variant: validate_config(
            apply_overrides(base, [*changes, *forced]),
            context.registry,
            source=f"{source}, variant {variant!r}",
        )
        for variant, changes in variants.items()
    }
    shared = {} if shared is None else shared
    records = score_methods(
        methods,
        context.registry,
        samples=samples,
        log=record_log(None if store is None else store / RECORDS),
        progress=context.progress,
        label=slug(source),
        videos=videos,
        shared=shared,
    )
    names, rows = summarise(records, list(methods))
    world = distributed.world_from_environment()
    pipelines = (
        Pipeline(distributed.with_local_device(config, world), context.registry, shared)
        for config in methods.values()
    )
    return Comparison(
        metrics=names,
        rows=[{label: row.pop("method"), **row} for row in rows],
        records=sample_records(records, label),
        higher_is_better=metric_directions(pipelines),
    )
