"""Suite ``variants``: one pipeline, several named sets of overrides, one table.

The generic ablation: every variant runs the same pipeline config with its own overrides
(``accumulator.kind=rfa``, ``backbone.fill=0.5``, ...) on the same dataset samples and seeds,
and the table reports the mean of each configured metric per variant. Finished variants are
kept in ``rows/`` of the output folder and reused when the suite runs again there. It has no
``scale`` switch: the pipeline YAML says everything about the models and data.

    devis ablate variants -o pipeline=my.yaml \\
        -o 'variants={direct: [], clean: [accumulator.clean=true]}'
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

import devis_core
from devis_core.config import read_yaml
from devis_core.engines.evaluate import compare_variants
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
        base = read_yaml(self.config.pipeline)
        names, rows = compare_variants(
            base, self.config.variants, context, samples=self.config.samples,
            source=str(self.config.pipeline), store=context.output / "rows",
        )  # fmt: skip
        return SuiteResult(
            title=f"Variants of {self.config.pipeline.name}",
            columns=["variant", *names, "generator calls", "samples"],
            rows=rows,
        )


@devis_core.hookimpl
def devis_register_suites(register):
    register("variants", VariantsSuite, VariantsConfig)
