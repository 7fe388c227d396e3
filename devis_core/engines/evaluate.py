"""``devis eval CONFIG``: score one or more pipeline variants over a dataset.

The run directory (the config's ``output``) receives ``config.yaml`` (resolved, with
provenance), ``metrics.jsonl`` (one JSON object per method and sample, appended and flushed as
soon as the sample is scored, so a crash loses nothing) and the table, mean and standard
deviation of every metric with one row per method, as ``table.md``, ``table.csv`` and
``table.json``. Re-running into the same directory skips every (method, sample) already in
``metrics.jsonl``: an interrupted evaluation resumes where it stopped, and raising
``evaluation.max_samples`` or adding a method scores only what is new. Samples are the outer
loop, so methods that share a dataset load each sample once.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import click
import yaml
from tqdm.auto import tqdm

from devis_core.config import (
    PROVENANCE_KEY,
    PipelineBase,
    apply_overrides,
    dump_config,
    to_yaml,
    validate_config,
)
from devis_core.engines.tables import json_safe, markdown_table, write_tables
from devis_core.errors import UsageError
from devis_core.files import atomic_write_text
from devis_core.pipeline import Pipeline
from devis_core.registry import Registry
from devis_core.types import SuiteResult, ViewSynthesisSample

RECORDS = "metrics.jsonl"
DEFAULT_METHOD = "as configured"
_NOT_COMPARED = ("evaluation", "name", PROVENANCE_KEY)
"""Config keys that may change between a run and its resumption."""


def evaluate_pipeline(config: PipelineBase, registry: Registry, *, progress: bool = True) -> Path:
    """Evaluate every configured method on the dataset; return the run directory."""
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    resolved = dump_config(config, registry)
    _check_same_run(output / "config.yaml", resolved)
    atomic_write_text(output / "config.yaml", to_yaml(resolved))

    raw = {k: v for k, v in config.model_dump(mode="json").items() if k != PROVENANCE_KEY}
    methods = config.evaluation.methods or {config.name or DEFAULT_METHOD: []}
    records_path = output / RECORDS
    records = read_records(records_path)
    done = {(r["method"], tuple(r.get("overrides", [])), r["index"]) for r in records}
    pipelines = {
        name: Pipeline(_variant(raw, name, overrides, registry), registry)
        for name, overrides in methods.items()
    }
    for pipeline in pipelines.values():
        _ = pipeline.metrics  # built before any work, so missing weights fail at once

    counts = {name: _sample_count(pipeline, config) for name, pipeline in pipelines.items()}
    todo = [
        (index, name)
        for index in range(max(counts.values(), default=0))
        for name, overrides in methods.items()
        if index < counts[name] and (name, tuple(overrides), index) not in done
    ]
    with records_path.open("a") as handle:
        samples: dict[str, ViewSynthesisSample] = {}  # methods sharing a dataset load it once
        current = -1
        for index, name in tqdm(todo, desc="evaluation", unit="run", disable=not progress):
            pipeline, overrides = pipelines[name], methods[name]
            if index != current:
                samples, current = {}, index
            source = json.dumps(pipeline.config.model_dump(mode="json").get("dataset"))
            if source not in samples:
                samples[source] = pipeline.dataset[index]
            sample = samples[source]
            result = pipeline.synthesize(sample, seed_offset=index)
            values = pipeline.score(sample, result.video)
            record = {
                "method": name,
                "overrides": list(overrides),
                "sample_id": sample.sample_id,
                "index": index,
                "generator_calls": result.generator_calls,
                **{metric: json_safe(value) for metric, value in values.items()},
            }
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            records.append(record)

    table = summary_table(records, methods, config.name)
    write_tables(table, output)
    click.echo(markdown_table(table))
    return output


def read_records(path: Path) -> list[dict[str, Any]]:
    """The complete records of ``metrics.jsonl``; a line cut short by a crash is dropped."""
    if not path.exists():
        return []
    text = path.read_text()
    complete, _, partial = text.rpartition("\n")
    if partial:  # the last write never finished: drop it so appends start on a fresh line
        atomic_write_text(path, complete + "\n" if complete else "")
    records = []
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise UsageError(f"{path}, line {number}: not a JSON record ({error})") from None
    return records


def summary_table(
    records: list[dict[str, Any]], methods: dict[str, list[str]], title: str | None = None
) -> SuiteResult:
    """Mean and standard deviation of every metric, one row per method (config order).

    The standard deviation is the sample one (``n - 1``) over the samples whose value is
    finite; a metric with no finite value is NaN, and the ``samples`` column counts records.
    """
    skip = {"method", "overrides", "sample_id", "index", "generator_calls"}
    metric_names: list[str] = []
    rows = []
    for name, overrides in methods.items():
        mine = [r for r in records if r["method"] == name and r.get("overrides", []) == overrides]
        row: dict[str, Any] = {"method": name}
        for record in mine:
            metric_names += [k for k in record if k not in skip and k not in metric_names]
        for metric in metric_names:
            values = [r.get(metric) for r in mine]
            finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
            row[metric] = statistics.fmean(finite) if finite else math.nan
            row[f"{metric} std"] = statistics.stdev(finite) if len(finite) > 1 else math.nan
        calls = [r["generator_calls"] for r in mine if "generator_calls" in r]
        row["generator calls"] = statistics.fmean(calls) if calls else math.nan
        row["samples"] = len(mine)
        rows.append(row)
    columns = ["method"]
    for metric in metric_names:
        columns += [metric, f"{metric} std"]
    columns += ["generator calls", "samples"]
    return SuiteResult(
        title=f"Evaluation of {title}" if title else "Evaluation",
        columns=columns,
        rows=rows,
        notes=["mean and sample standard deviation over the samples with a finite value"],
    )


def _sample_count(pipeline: Pipeline, config: PipelineBase) -> int:
    count = len(pipeline.dataset)
    if config.evaluation.max_samples is not None:
        count = min(count, config.evaluation.max_samples)
    return count


def _variant(
    raw: dict[str, Any], name: str, overrides: list[str], registry: Registry
) -> PipelineBase:
    data = apply_overrides(raw, overrides)
    return validate_config(data, registry, source=f"evaluation.methods[{name!r}]")


def _check_same_run(path: Path, resolved: dict[str, Any]) -> None:
    """Refuse to mix two different configs' samples in one ``metrics.jsonl``."""
    if not path.exists():
        return
    previous = yaml.safe_load(path.read_text()) or {}
    changed = sorted(
        key
        for key in set(previous) | set(resolved)
        if key not in _NOT_COMPARED and previous.get(key) != resolved.get(key)
    )
    if changed:
        raise UsageError(
            f"{path.parent} holds an evaluation of another config (it differs in: "
            f"{', '.join(changed)}); choose another `output` or delete that directory"
        )
