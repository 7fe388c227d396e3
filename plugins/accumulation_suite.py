"""Suite ``accumulation``: the paper's Table 2, every ADEVIS strategy on the same scenes.

Runs ``direct`` (the one-step baseline), ``rfa``, ``rva``, ``ora-cc``, ``ora-dt`` and ``bta``
with one backbone and one depth estimator over the same synthetic scenes and orbits, and
reports PSNR, SSIM, LPIPS (when weights are configured), PSNR-Nocc and SSIM-Nocc against the
ground truth, with the generator calls and seconds per sample.

At the default (toy) scale it uses the weight-free ``inpaint`` generator: the ranking it
prints is that of a classical inpainter fed each strategy's conditions, not of a diffusion
model; docs/adevis.md reports what it shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

import devis_core
from devis_core.engines.compare import compare_variants
from devis_core.errors import UsageError
from devis_core.types import SuiteContext, SuiteResult

STRATEGIES = {
    "Baseline (direct)": "direct",
    "RFA": "rfa",
    "RVA": "rva",
    "ORA-cc": "ora-cc",
    "ORA-dt": "ora-dt",
    "BTA": "bta",
}


class AccumulationSuiteConfig(BaseModel):
    """Scenes, generator and strategies of the accumulation ablation."""

    samples: int = Field(8, ge=1, description="Synthetic scenes (each with its own orbit).")
    steps: int = Field(3, ge=1, description="K, generation steps of every accumulating strategy.")
    dataset: dict[str, Any] = Field(
        default_factory=lambda: {
            "kind": "synthetic",
            "frames": 16,
            "height": 96,
            "width": 160,
            "azimuth_range": [60.0, 90.0],
            "elevation_range": [0.0, 20.0],
        },  # fmt: skip
        description="The dataset entry (its num_samples is set from `samples`).",
    )
    backbone: dict[str, Any] = Field(
        default_factory=lambda: {"kind": "inpaint"}, description="The backbone entry."
    )
    depth: dict[str, Any] = Field(
        default_factory=lambda: {"kind": "carried"},
        description="Depth estimator; it must run on generated videos (RVA, ORA, BTA need it).",
    )
    strategies: list[str] = Field(
        default_factory=lambda: list(STRATEGIES),
        description=f"Rows to run, among: {', '.join(STRATEGIES)}.",
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["psnr", "ssim", "psnr-nocc", "ssim-nocc"],
        description="Metrics; add lpips with its weights via `lpips_weights`.",
    )
    lpips_weights: Path | None = Field(
        None, description="LPIPS weights file; when given, LPIPS is added to the table."
    )


class AccumulationSuite:
    """Table 2: the ADEVIS strategies against the one-step baseline on the same scenes."""

    def __init__(self, config: AccumulationSuiteConfig):
        self.config = config

    def run(self, context: SuiteContext) -> SuiteResult:
        cfg = self.config
        unknown = [name for name in cfg.strategies if name not in STRATEGIES]
        if unknown:
            raise UsageError(f"unknown strategies {unknown}; choose among {list(STRATEGIES)}")
        metrics: list[Any] = list(cfg.metrics)
        if cfg.lpips_weights is not None:
            metrics.insert(2, {"kind": "lpips", "weights_path": str(cfg.lpips_weights)})
        base = {
            "dataset": {**cfg.dataset, "num_samples": cfg.samples},
            "depth": cfg.depth,
            "backbone": cfg.backbone,
            "metrics": metrics,
        }
        variants = {
            row: [f"accumulator={{kind: {kind}}}"]
            + ([] if kind == "direct" else [f"accumulator.steps={cfg.steps}"])
            for row, kind in STRATEGIES.items()
            if row in cfg.strategies
        }
        names, rows = compare_variants(
            base, variants, context, samples=cfg.samples, source="suite 'accumulation'"
        )
        for row in rows:
            row["strategy"] = row.pop("variant")
        backbone = cfg.backbone["kind"]
        return SuiteResult(
            title=f"Accumulation strategies ({backbone} backbone, {cfg.samples} scenes)",
            columns=["strategy", *names, "generator calls", "seconds"],
            rows=rows,
            notes=[
                f"Backbone {backbone!r}, depth {cfg.depth['kind']!r}, K = {cfg.steps} steps; "
                "metrics against the synthetic ground truth, means over scenes.",
            ],
        )


@devis_core.hookimpl
def devis_register_suites(register):
    register("accumulation", AccumulationSuite, AccumulationSuiteConfig)
