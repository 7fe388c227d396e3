"""Suite ``main``: the paper's Table 1, methods x datasets x the nine metrics.

Every method runs on the same samples of every dataset and is scored with PSNR, SSIM, LPIPS,
PSNR-Nocc, SSIM-Nocc and VBench's temporal flicker, motion smoothness, aesthetic quality and
imaging quality. The methods are the one-step baseline (the source reprojected by the whole
motion, completed once), ADEVIS with bullet-time accumulation, and, when a trained LoRA is
configured, DEVIS-GRPO: one-step generation with that LoRA. With a LoRA, all three run on
``lora_backbone`` (the first two without the LoRA), so the rows differ by method only.

At toy scale (the default) the dataset is the synthetic world (8 frames of 32x48), the
generator the toy TrajectoryCrafter pre-trained on small orbits (shipped with the package;
``-o 'backbone={kind: inpaint}'`` is the weight-free choice) and depth is carried from the
renderer; metrics whose weights are not configured are reported as not measured. At paper
scale: Kubric-4D (100 trajectories), iPhone (its extreme-view pairs) and DL3DV (DepthSplat
depth), the full TrajectoryCrafter and DepthCrafter, every metric's weights and the LoRA, on
an accelerator; the suite refuses to start without them. With ``paper.models=tiny`` (a dry
run) the tiny models stand in for the checkpoints on a CPU, and the LoRA and metric weights
are used when given. Finished (dataset, method) rows are kept in ``rows/`` of the output
folder and reused when the suite runs again there.

    devis ablate main
    devis ablate main -o lora=runs/grpo-toy/lora.safetensors
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from devis_core.config import apply_overrides
from devis_core.engines.evaluate import compare_variants, statistics_notes, video_output
from devis_core.engines.tables import slug
from devis_core.sections import SaveVideos, Tracker, report_to_field, save_videos_field
from devis_core.types import SuiteContext, SuiteResult
from devis_plugins.paper_suites.assets import (
    SCALE_DESCRIPTION,
    TABLE1_METRICS,
    TOY_BACKBONE,
    TOY_DATASET,
    TOY_DEPTH,
    DatasetName,
    MetricWeights,
    PaperAssets,
    Scale,
    metric_entries,
    toy_training_config,
    with_defaults,
)

EVERY_SAMPLE = 2**31
"""A sample count larger than any dataset: the paper's protocols use every sample."""


class MainSuiteConfig(BaseModel):
    """Datasets, methods, generator and metric weights of Table 1."""

    scale: Scale = Field("toy", description=SCALE_DESCRIPTION)
    samples: int | None = Field(
        None,
        ge=1,
        description="Samples per dataset; default 8 at toy scale, every sample of each "
        "protocol at paper scale.",
    )
    steps: int = Field(3, ge=1, description="K, generation steps of ADEVIS-BTA.")
    dataset: dict[str, Any] = Field(
        default_factory=lambda: dict(TOY_DATASET),
        description="Toy scale: the dataset entry (its num_samples is set from `samples`); "
        "without `kind`, changes to the default synthetic one.",
    )
    backbone: dict[str, Any] = Field(
        default_factory=lambda: dict(TOY_BACKBONE),
        description="Toy scale, no LoRA: the backbone entry.",
    )
    depth: dict[str, Any] = Field(
        default_factory=lambda: dict(TOY_DEPTH),
        description="Toy scale: depth estimator (BTA re-estimates depth of generated videos).",
    )
    lora: Path | None = Field(
        None, description="A trained LoRA of `lora_backbone`: adds the DEVIS-GRPO row."
    )
    lora_backbone: dict[str, Any] | None = Field(
        None,
        description="Backbone of every row when `lora` is set, with the LoRA settings the "
        "checkpoint was trained with; default: the packaged training config's toy "
        "TrajectoryCrafter (at paper scale the full one, the tiny one in a dry run, rank 64).",
    )
    datasets: list[DatasetName] = Field(
        default_factory=lambda: ["kubric4d", "iphone", "dl3dv"],
        description="Paper scale: the datasets to evaluate.",
    )
    metrics: list[str] = Field(
        default_factory=lambda: list(TABLE1_METRICS),
        description="Metrics; at toy scale those whose weights are not set are skipped.",
    )
    weights: MetricWeights = Field(
        default_factory=MetricWeights, description="Weight files of the network metrics."
    )
    paper: PaperAssets = Field(
        default_factory=PaperAssets, description="Datasets and checkpoints for scale=paper."
    )
    save_videos: SaveVideos = save_videos_field("none")
    report_to: list[Tracker] = report_to_field()


class MainSuite:
    """Table 1: one-step baseline, ADEVIS-BTA and DEVIS-GRPO on every dataset."""

    def __init__(self, config: MainSuiteConfig):
        self.config = config

    def run(self, context: SuiteContext) -> SuiteResult:
        cfg = self.config
        if cfg.scale == "paper":
            self._require_paper(context)
            datasets = cfg.paper.datasets(list(cfg.datasets))
            samples = cfg.samples or EVERY_SAMPLE
            backbone = cfg.lora_backbone or cfg.paper.backbone()
        else:
            samples = cfg.samples or 8
            dataset = {**with_defaults(cfg.dataset, TOY_DATASET), "num_samples": samples}
            depth = with_defaults(cfg.depth, TOY_DEPTH)
            datasets = {dataset["kind"]: (dataset, depth)}
            backbone = with_defaults(cfg.backbone, TOY_BACKBONE)
            if cfg.lora is not None:
                backbone = cfg.lora_backbone or toy_training_config()["backbone"]
        no_lora = [] if cfg.lora is None else ["backbone.lora=null"]
        methods = {
            "One-step baseline": ["accumulator={kind: direct}", *no_lora],
            f"ADEVIS-BTA (K={cfg.steps})": [
                "accumulator={kind: bta}",
                f"accumulator.steps={cfg.steps}",
                *no_lora,
            ],
        }
        if cfg.lora is not None:
            methods["DEVIS-GRPO (one step)"] = [
                "accumulator={kind: direct}",
                f"backbone.lora.path={cfg.lora}",
            ]
        metrics, skipped = metric_entries(cfg.metrics, cfg.weights)
        scale, dry_run = cfg.paper.describe(cfg.scale)
        unmeasured = dict.fromkeys(cfg.metrics, math.nan)
        rows, records, directions = [], [], {}
        shared: dict[tuple[str, str, str], Any] = {}  # e.g. one backbone for every dataset
        for name, (dataset, depth) in datasets.items():
            base = {"dataset": dataset, "depth": depth, "backbone": backbone, "metrics": metrics}
            found = compare_variants(
                apply_overrides(base, cfg.paper.pipeline_overrides()),
                methods,
                context,
                samples=samples,
                source=f"suite 'main', dataset {name!r}",
                store=context.output / "rows" / slug(name),
                label="method",
                videos=video_output(context.output / "videos" / slug(name), cfg.save_videos),
                shared=shared,
            )
            for row in found.rows:  # metrics not measured (no weights) are NaN cells, not gaps
                rows.append({"dataset": name, "method": row.pop("method")} | unmeasured | row)
            records += [{"dataset": name, **record} for record in found.records]
            directions |= found.higher_is_better
        reference = f"the {next(iter(methods))} row of its dataset"
        return SuiteResult(
            title=f"Main comparison ({backbone['kind']} backbone, {scale})",
            columns=["dataset", "method", *cfg.metrics, "generator calls", "seconds", "samples"],
            rows=rows,
            notes=[
                "Metrics against the ground-truth target video; -Nocc inside the region the "
                "source sees after reprojection.",
                *statistics_notes(reference),
                *dry_run,
                *skipped,
            ],
            samples=records,
            higher_is_better=directions,
        )

    def _require_paper(self, context: SuiteContext) -> None:
        cfg = self.config
        missing = cfg.paper.missing()
        cfg.paper.require_datasets(missing, list(cfg.datasets))
        cfg.paper.require_models(missing, backbone=cfg.lora_backbone is None)
        missing.checkpoint("the DEVIS-GRPO LoRA", cfg.lora, "lora")
        cfg.weights.require(missing, cfg.metrics)
        missing.accelerator(context.device)
        missing.raise_if_any(
            "main", "the datasets, the model and metric weights, the LoRA and an accelerator"
        )
