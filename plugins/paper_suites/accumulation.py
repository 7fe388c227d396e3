"""Suite ``accumulation``: the paper's Table 2, every ADEVIS strategy on the same scenes.

Runs ``direct`` (the one-step baseline), ``rfa``, ``rva``, ``ora-cc``, ``ora-dt`` and ``bta``
with one backbone and one depth estimator over the same synthetic scenes and orbits, and
reports PSNR, SSIM, LPIPS (when weights are configured), PSNR-Nocc and SSIM-Nocc against the
ground truth (mean ± std over scenes, with a paired test of each row against the baseline),
with the generator calls and seconds per sample.

With ``lora`` set, every strategy runs twice with the same backbone, without and with that
LoRA (the paper's "w/o LoRA" and "w LoRA" halves: the model before and after the small-view
fine-tune); the backbone is then ``lora_backbone`` (by default the toy TrajectoryCrafter of
the packaged training config, whose LoRA ``devis train`` of that config writes).

At the default (toy) scale it uses the toy TrajectoryCrafter, pre-trained on the synthetic
world's small orbits and shipped with the package (``-o 'backbone={kind: inpaint}'`` ranks
the strategies with a classical inpainter instead); docs/adevis.md reports what it shows.
At ``scale: paper`` it runs the paper's setting:
100 Kubric-4D trajectories, the full TrajectoryCrafter without and with the Kubric-4D LoRA,
DepthCrafter depth and LPIPS, on an accelerator, and refuses to start without them; with
``paper.models=tiny`` (a dry run) the tiny models stand in for the checkpoints on a CPU, and
the LoRA and LPIPS weights are used when given. Finished rows are kept in ``rows/`` of the
output folder and reused when the suite runs again there.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from devis_core.config import apply_overrides
from devis_core.engines.evaluate import compare_variants, statistics_notes, video_output
from devis_core.errors import UsageError
from devis_core.sections import SaveVideos, Tracker, report_to_field, save_videos_field
from devis_core.types import SuiteContext, SuiteResult
from devis_plugins.paper_suites.assets import (
    SCALE_DESCRIPTION,
    TOY_BACKBONE,
    TOY_DATASET,
    TOY_DEPTH,
    MetricWeights,
    PaperAssets,
    Scale,
    metric_entries,
    toy_training_config,
    with_defaults,
)

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

    scale: Scale = Field("toy", description=SCALE_DESCRIPTION)
    samples: int | None = Field(
        None,
        ge=1,
        description="Scenes (each with its own orbit); default 8 at toy scale, the 100 "
        "Kubric-4D trajectories at paper scale.",
    )
    steps: int = Field(3, ge=1, description="K, generation steps of every accumulating strategy.")
    dataset: dict[str, Any] = Field(
        default_factory=lambda: dict(TOY_DATASET),
        description="The dataset entry (its num_samples is set from `samples`); without "
        "`kind`, changes to the default synthetic one.",
    )
    backbone: dict[str, Any] = Field(
        default_factory=lambda: dict(TOY_BACKBONE), description="The backbone entry."
    )
    depth: dict[str, Any] = Field(
        default_factory=lambda: dict(TOY_DEPTH),
        description="Depth estimator; it must run on generated videos (RVA, ORA, BTA need it).",
    )
    strategies: list[str] = Field(
        default_factory=lambda: list(STRATEGIES),
        description=f"Rows to run, among: {', '.join(STRATEGIES)}.",
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["psnr", "ssim", "lpips", "psnr-nocc", "ssim-nocc"],
        description="Metrics (Table 2's); those whose weights are not set are skipped.",
    )
    weights: MetricWeights = Field(
        default_factory=MetricWeights, description="Weight files of the network metrics."
    )
    lora: Path | None = Field(
        None, description="A LoRA of `lora_backbone`: adds the w/o LoRA / w LoRA split."
    )
    lora_backbone: dict[str, Any] | None = Field(
        None,
        description="Backbone of both halves when `lora` is set, with the LoRA settings the "
        "checkpoint was trained with; default: the packaged training config's toy "
        "TrajectoryCrafter (at paper scale the full one, the tiny one in a dry run, rank 64).",
    )
    paper: PaperAssets = Field(
        default_factory=PaperAssets, description="Datasets and checkpoints for scale=paper."
    )
    save_videos: SaveVideos = save_videos_field("none")
    report_to: list[Tracker] = report_to_field()


class AccumulationSuite:
    """Table 2: the ADEVIS strategies against the one-step baseline on the same scenes."""

    def __init__(self, config: AccumulationSuiteConfig):
        self.config = config

    def run(self, context: SuiteContext) -> SuiteResult:
        cfg = self.config
        unknown = [name for name in cfg.strategies if name not in STRATEGIES]
        if unknown:
            raise UsageError(f"unknown strategies {unknown}; choose among {list(STRATEGIES)}")
        if cfg.scale == "paper":
            self._require_paper(context)
            dataset, depth = cfg.paper.datasets(["kubric4d"])["Kubric-4D"]
            samples = cfg.samples or dataset["count"]
            dataset = {**dataset, "count": samples}
            backbone = cfg.lora_backbone or cfg.paper.backbone()
        else:
            samples = cfg.samples or 8
            dataset = {**with_defaults(cfg.dataset, TOY_DATASET), "num_samples": samples}
            depth = with_defaults(cfg.depth, TOY_DEPTH)
            backbone = with_defaults(cfg.backbone, TOY_BACKBONE)
            if cfg.lora is not None:
                backbone = cfg.lora_backbone or toy_training_config()["backbone"]
        metrics, skipped = metric_entries(cfg.metrics, cfg.weights)
        base = {"dataset": dataset, "depth": depth, "backbone": backbone, "metrics": metrics}
        base = apply_overrides(base, cfg.paper.pipeline_overrides())
        halves = {"": []} if cfg.lora is None else {
            " w/o LoRA": ["backbone.lora=null"],
            " w LoRA": [f"backbone.lora.path={cfg.lora}"],
        }  # fmt: skip
        variants = {
            row + half: [f"accumulator={{kind: {kind}}}", *changes]
            + ([] if kind == "direct" else [f"accumulator.steps={cfg.steps}"])
            for half, changes in halves.items()
            for row, kind in STRATEGIES.items()
            if row in cfg.strategies
        }
        found = compare_variants(
            base,
            variants,
            context,
            samples=samples,
            source="suite 'accumulation'",
            store=context.output / "rows",
            label="strategy",
            videos=video_output(context.output / "videos", cfg.save_videos),
        )
        unmeasured = dict.fromkeys(cfg.metrics, math.nan)  # no weights: NaN cells, not gaps
        rows = [{"strategy": row.pop("strategy")} | unmeasured | row for row in found.rows]
        kind = backbone["kind"]
        scale, dry_run = cfg.paper.describe(cfg.scale)
        reference = next(iter(variants)) if len(variants) > 1 else None
        return SuiteResult(
            title=f"Accumulation strategies ({kind} backbone, {samples} scenes, {scale})",
            columns=["strategy", *cfg.metrics, "generator calls", "seconds", "samples"],
            rows=rows,
            notes=[
                f"Backbone {kind!r}, depth {depth['kind']!r}, K = {cfg.steps} steps; "
                "metrics against the ground truth.",
                *statistics_notes(reference, "scenes"),
                *dry_run,
                *skipped,
            ],
            samples=found.records,
            higher_is_better=found.higher_is_better,
        )

    def _require_paper(self, context: SuiteContext) -> None:
        cfg = self.config
        missing = cfg.paper.missing()
        cfg.paper.require_datasets(missing, ["kubric4d"])
        cfg.paper.require_models(missing, backbone=cfg.lora_backbone is None)
        missing.checkpoint("the Kubric-4D fine-tuned LoRA (w LoRA rows)", cfg.lora, "lora")
        cfg.weights.require(missing, cfg.metrics)
        missing.accelerator(context.device)
        missing.raise_if_any(
            "accumulation",
            "Kubric-4D, TrajectoryCrafter and DepthCrafter weights, the LoRA and an accelerator",
        )
