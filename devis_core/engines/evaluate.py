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
  method) scores only what is missing.

:func:`summarise` turns records into rows: mean, sample standard deviation and count of every
metric, over the samples whose value is finite.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from tqdm.auto import tqdm

from devis_core.config import (
    PROVENANCE_KEY,
    PipelineBase,
    apply_overrides,
    dump_config,
    to_yaml,
    validate_config,
)
from devis_core.engines.preflight import evaluation_methods, preflight
from devis_core.engines.run_directory import run_directory, same_config
from devis_core.engines.tables import json_safe, markdown_table, slug, write_tables
from devis_core.pipeline import Pipeline
from devis_core.registry import Registry
from devis_core.toolkit.files import atomic_write_text
from devis_core.toolkit.results import RecordLog, config_key
from devis_core.types import SuiteContext, SuiteResult, ViewSynthesisSample

RECORDS = "metrics.jsonl"
_NOT_COMPARED = ("evaluation", "name", "output", PROVENANCE_KEY)
"""Config keys that do not change what a method computes (left out of its key)."""
_RECORD_FIELDS = ("method", "key", "overrides", "sample_id", "index", "generator_calls", "seconds")


def method_key(config: PipelineBase) -> str:
    """The key of a method's records: its resolved config, without the keys that do not change
    its results (``output``, ``name``, ``evaluation``, provenance)."""
    data = config.model_dump(mode="json")
    return config_key({k: v for k, v in data.items() if k not in _NOT_COMPARED})


def score_methods(
    methods: Mapping[str, PipelineBase],
    registry: Registry,
    *,
    samples: int | None = None,
    log: RecordLog | None = None,
    progress: bool = True,
    label: str = "evaluation",
) -> list[dict[str, Any]]:
    """Score each method on its dataset's first ``samples`` samples (all when None).

    Returns one record per method and sample, in method order then sample order: ``method``,
    ``key``, ``sample_id``, ``index``, ``generator_calls``, ``seconds`` (synthesis wall time)
    and every metric. Records already in ``log`` under the same method and key are reused;
    new ones are appended to it as they finish.
    """
    log = RecordLog() if log is None else log
    shared: dict[tuple[str, str, str], Any] = {}
    pipelines = {name: Pipeline(config, registry, shared) for name, config in methods.items()}
    keys = {name: method_key(config) for name, config in methods.items()}
    for pipeline in pipelines.values():
        _ = pipeline.metrics  # built before any work, so missing weights fail at once
    counts = {name: _count(pipeline, samples) for name, pipeline in pipelines.items()}
    done = {(r["method"], r.get("key"), r["index"]): r for r in log.records}
    todo = [
        (index, name)
        for index in range(max(counts.values(), default=0))
        for name in methods
        if index < counts[name] and (name, keys[name], index) not in done
    ]
    loaded: dict[int, ViewSynthesisSample] = {}  # this index's sample, by dataset
    current = -1
    for index, name in tqdm(todo, desc=label, unit="run", disable=not progress):
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
        log.append(record)
        done[(name, keys[name], index)] = record
    return [done[(name, keys[name], index)] for name in methods for index in range(counts[name])]


def summarise(
    records: Sequence[dict[str, Any]], methods: Sequence[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Metric names (in the order first seen) and one row per method: ``method``, and for
    every metric its mean, ``<metric> std`` (sample, ``n - 1``) and ``<metric> n`` over the
    samples whose value is finite (NaN when none is), ``generator calls`` and ``seconds``
    (means) and ``samples`` (the number of records)."""
    names: list[str] = []
    for record in records:
        names += [k for k in record if k not in _RECORD_FIELDS and k not in names]
    rows = []
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        row: dict[str, Any] = {"method": method}
        for metric in names:
            finite = _finite(r.get(metric) for r in mine)
            row[metric] = statistics.fmean(finite) if finite else math.nan
            row[f"{metric} std"] = statistics.stdev(finite) if len(finite) > 1 else math.nan
            row[f"{metric} n"] = len(finite)
        for field, column in (("generator_calls", "generator calls"), ("seconds", "seconds")):
            finite = _finite(r.get(field) for r in mine)
            row[column] = statistics.fmean(finite) if finite else math.nan
        row["samples"] = len(mine)
        rows.append(row)
    return names, rows


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
    provenance), ``metrics.jsonl`` (the records of :func:`score_methods`) and the table as
    ``table.md``, ``table.csv`` and ``table.json``. A directory holding an evaluation of the
    same config is resumed; one holding anything else is refused unless ``overwrite`` clears
    it first. Returns the run directory.
    """
    preflight(config, registry, "eval")
    methods = evaluation_methods(config, registry)
    output = Path(config.output)
    resolved = dump_config(config, registry)
    reusable = same_config(resolved, command="eval", ignored=_NOT_COMPARED)
    with run_directory(output, command="eval", overwrite=overwrite, reusable=reusable):
        atomic_write_text(output / "config.yaml", to_yaml(resolved))
        records = score_methods(
            methods,
            registry,
            samples=config.evaluation.max_samples,
            log=RecordLog(output / RECORDS),
            progress=progress,
        )
        names, rows = summarise(records, list(methods))
        columns = ["method"]
        for metric in names:
            columns += [metric, f"{metric} std"]
        table = SuiteResult(
            title=f"Evaluation of {config.name}" if config.name else "Evaluation",
            columns=[*columns, "generator calls", "samples"],
            rows=rows,
            notes=["mean and sample standard deviation over the samples with a finite value"],
        )
        write_tables(table, output)
    click.echo(markdown_table(table))
    return output


# -- suites ------------------------------------------------------------------------------------


def compare_variants(
    base: dict[str, Any],
    variants: Mapping[str, Sequence[str]],
    context: SuiteContext,
    *,
    samples: int,
    source: str = "suite",
    store: Path | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per variant (``KEY=VALUE`` overrides of ``base``) over the first ``samples``
    samples, as :func:`summarise` makes them, with the method's name under ``variant``.

    Every variant runs with the suite's seed and device. With ``store``, the records are kept
    in ``store/metrics.jsonl`` and a later call reuses those of unchanged variants.
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
    records = score_methods(
        methods,
        context.registry,
        samples=samples,
        log=RecordLog(None if store is None else store / RECORDS),
        progress=context.progress,
        label=slug(source),
    )
    names, rows = summarise(records, list(methods))
    return names, [{"variant": row.pop("method"), **row} for row in rows]
