"""Suite ``variants``: one pipeline, several named sets of overrides, one table.

The generic ablation: every variant runs the same pipeline config with its own overrides
(``accumulator.kind=rfa``, ``backbone.fill=0.5``, ...) on the same dataset samples and seeds,
and the table reports the mean of each configured metric per variant.

    devis ablate variants -o pipeline=my.yaml \\
        -o 'variants={direct: [], clean: [accumulator.clean=true]}'
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

import devis_core
from devis_core.config import load_config
from devis_core.pipeline import Pipeline
from devis_core.types import SuiteContext, SuiteResult


class VariantsConfig(BaseModel):
    """Which pipeline to vary, how, and on how many samples."""

    pipeline: Path = Field(description="Pipeline YAML every variant starts from.")
    variants: dict[str, list[str]] = Field(
        default_factory=lambda: {"as configured": []},
        description="Variant name -> list of KEY=VALUE overrides of the pipeline.",
    )
    samples: int = Field(2, ge=1, description="Dataset samples per variant (the first N).")


class VariantsSuite:
    """Compare named override sets of one pipeline on the same samples."""

    def __init__(self, config: VariantsConfig):
        self.config = config

    def run(self, context: SuiteContext) -> SuiteResult:
        rows, metric_names = [], []
        for variant, overrides in self.config.variants.items():
            forced = [f"seed={context.seed}", f"device={context.device}"]
            config = load_config(self.config.pipeline, context.registry, [*overrides, *forced])
            pipeline = Pipeline(config, context.registry)
            count = min(self.config.samples, len(pipeline.dataset))
            totals: dict[str, list[float]] = {}
            calls = []
            for index in tqdm(range(count), desc=variant, disable=not context.progress):
                sample = pipeline.dataset[index]
                result = pipeline.synthesize(sample, seed_offset=index)
                calls.append(result.generator_calls)
                for name, value in pipeline.score(sample, result.video).items():
                    totals.setdefault(name, []).append(value)
            metric_names += [name for name in totals if name not in metric_names]
            row = {"variant": variant, "samples": count, "generator calls": sum(calls) / count}
            row.update({name: _mean(values) for name, values in totals.items()})
            rows.append(row)
        return SuiteResult(
            title=f"Variants of {self.config.pipeline.name}",
            columns=["variant", *metric_names, "generator calls", "samples"],
            rows=rows,
        )


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


@devis_core.hookimpl
def devis_register_suites(register):
    register("variants", VariantsSuite, VariantsConfig)
