"""Run one pipeline under several sets of overrides on the same samples; average the metrics.

This is the loop behind most ablation suites: a variant is a name and a list of ``KEY=VALUE``
overrides of a base config. Every variant sees the same samples (rendered or loaded once and
shared when the variants do not change the dataset) and the same seeds. With a ``store``
folder each finished variant's row is saved there, and a later run with the same config,
seed and sample count reuses it instead of recomputing it (suites resume).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from devis_core.config import apply_overrides, validate_config
from devis_core.engines.tables import slug
from devis_core.pipeline import Pipeline
from devis_core.results import load_result, save_result
from devis_core.types import SuiteContext, ViewSynthesisSample


def compare_variants(
    base: dict[str, Any],
    variants: Mapping[str, Sequence[str]],
    context: SuiteContext,
    *,
    samples: int,
    source: str = "suite",
    store: Path | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per variant: mean of every metric over the first ``samples`` samples.

    Returns the metric names (in the order first seen) and the rows, each with ``variant``,
    the metrics, ``generator calls``, ``seconds`` (mean per sample) and ``samples``. Rows
    found in ``store`` for the same resolved config and sample count are reused.
    """
    cache: dict[str, list[ViewSynthesisSample]] = {}
    names: list[str] = []
    rows = []
    for variant, overrides in variants.items():
        forced = [f"seed={context.seed}", f"device={context.device}"]
        data = apply_overrides(base, [*overrides, *forced])
        config = validate_config(data, context.registry, source=f"{source}, variant {variant!r}")
        key = {"config": json.loads(json.dumps(data, default=str)), "samples": samples}
        path = None if store is None else store / f"{slug(variant)}.json"
        saved = None if path is None else load_result(path, key)
        if saved is not None:
            names += [name for name in saved["metrics"] if name not in names]
            rows.append(saved["row"])
            continue
        pipeline = Pipeline(config, context.registry)
        dataset = json.dumps(data.get("dataset"), sort_keys=True, default=str)
        if dataset not in cache:
            count = min(samples, len(pipeline.dataset))
            cache[dataset] = [pipeline.dataset[i] for i in range(count)]
        values: dict[str, list[float]] = {}
        calls, seconds = [], []
        for index, sample in enumerate(
            tqdm(cache[dataset], desc=variant, disable=not context.progress, leave=False)
        ):
            started = time.perf_counter()
            result = pipeline.synthesize(sample, seed_offset=index)
            seconds.append(time.perf_counter() - started)
            calls.append(result.generator_calls)
            for name, value in pipeline.score(sample, result.video).items():
                values.setdefault(name, []).append(value)
        names += [name for name in values if name not in names]
        row: dict[str, Any] = {"variant": variant}
        row.update({name: finite_mean(v) for name, v in values.items()})
        row.update(
            {
                "generator calls": finite_mean(calls),
                "seconds": finite_mean(seconds),
                "samples": len(cache[dataset]),
            }
        )
        rows.append(row)
        if path is not None:
            save_result(path, key, {"metrics": list(values), "row": row})
    return names, rows


def finite_mean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there are none (never a made-up 0)."""
    finite = [float(v) for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan
