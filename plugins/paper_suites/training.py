"""Suites ``grpo-vs-vanilla`` (the paper's Table 3) and ``paradigms`` (Table 4).

Both train several methods from one warm start with the same sample budget and score every
trained LoRA by one-step generation on held-out scenes
(:func:`devis_core.engines.paradigms.train_methods`): per seed, the training config's
run does the warm start and DEVIS-GRPO, and each other method starts from that warm-started
LoRA with only its own overrides. The table gives the mean over seeds (and the standard
deviation with several seeds) of the config's composite reward and the consistency metrics.

- ``grpo-vs-vanilla``: DEVIS-GRPO against Vanilla-GRPO (groups drawn by one-step generation
  with different noise only), with the diversity of a sampling group drawn as each trains
  (CLIP, LPIPS and the weight-free pixel RMSE) and the seconds per training iteration (one
  round: sampling, rewards and update).
- ``paradigms``: SFT on all samples, on the best of each group, reward-weighted SFT,
  Diffusion-DPO on best against worst, and DEVIS-GRPO.

At toy scale (the default) the training config is the packaged toy one
(``configs/grpo-toy.yaml``: the pre-trained toy TrajectoryCrafter on synthetic scenes, CPU),
changed by ``train_overrides`` (e.g.
``-o 'train_overrides=[training.rounds=2]'``), and the held-out scenes are synthetic scenes
of another seed. At paper scale the training config must be given (the full model's), the
paper's schedule is applied (50 rounds of 32 groups x 16 samples, 10 epochs; then
``train_overrides``), the held-out scenes are the 100 Kubric-4D trajectories, and the suite
refuses to start without the config, the data, the metric weights and an accelerator. With
``paper.models=tiny`` (a dry run on a CPU) the training config's backbone must be the tiny
preset instead, and metric weights are used when given.
Each method's held-out scores are records under the output folder
(``seed<S>/<method>/held_out.jsonl``), reused when the suite runs again there.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from devis_core.config import PipelineBase, apply_overrides, validate_config
from devis_core.engines.evaluate import (
    finite_mean,
    sample_records,
    statistics_notes,
    summarise,
    video_output,
)
from devis_core.lazy import lazy_import
from devis_core.sections import SaveVideos, Tracker, report_to_field, save_videos_field
from devis_core.types import SuiteContext, SuiteResult
from devis_plugins.paper_suites.assets import (
    PAPER_SCHEDULE,
    SCALE_DESCRIPTION,
    MetricWeights,
    PaperAssets,
    Scale,
    metric_entries,
    training_config,
)

if TYPE_CHECKING:
    from devis_core.engines import paradigms
else:  # the trainer (torch, peft): loaded when a training suite runs
    paradigms = lazy_import("devis_core.engines.paradigms")

DEVIS_GRPO = "DEVIS-GRPO"


class TrainingSuiteConfig(BaseModel):
    """Training config, budget changes, seeds, held-out scenes and metrics."""

    scale: Scale = Field("toy", description=SCALE_DESCRIPTION)
    training_config: Path | None = Field(
        None,
        description="Training config (warm start + DEVIS-GRPO); default at toy scale: the "
        "packaged toy config (configs/grpo-toy.yaml). Required at paper scale (with the "
        "tiny backbone preset in a dry run, paper.models=tiny).",
    )
    train_overrides: list[str] = Field(
        default_factory=list,
        description="KEY=VALUE overrides of the training config for every method, e.g. "
        "training.rounds=2 (at paper scale applied after the paper's schedule).",
    )
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="Seeds.")
    held_out: int | None = Field(
        None,
        ge=1,
        description="Held-out scenes; default 8 synthetic scenes at toy scale, the 100 "
        "Kubric-4D trajectories at paper scale.",
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["psnr", "ssim", "lpips", "psnr-nocc", "ssim-nocc"],
        description="Consistency metrics; those whose weights are not set are skipped.",
    )
    weights: MetricWeights = Field(
        default_factory=MetricWeights, description="Weight files of the network metrics."
    )
    paper: PaperAssets = Field(
        default_factory=PaperAssets, description="Kubric-4D folder for scale=paper."
    )
    save_videos: SaveVideos = save_videos_field("none")
    report_to: list[Tracker] = report_to_field()


class GRPOVsVanillaConfig(TrainingSuiteConfig):
    """Table 3 adds the diversity of the sampling groups."""

    diversity: list[str] = Field(
        default_factory=lambda: ["clip-diversity", "lpips-diversity", "pixel-diversity"],
        description="Group diversity metrics; those whose weights are not set are skipped.",
    )


class TrainingSuite:
    """Methods trained from one warm start, scored on held-out scenes (Tables 3 and 4)."""

    name = ""
    title = ""
    methods: dict[str, list[str]] = {}
    """Method -> overrides; DEVIS-GRPO (the training config as it is) first: it warm-starts."""
    order: list[str] = []
    """Row order of the table (the paper's)."""
    diversity: list[str] = []
    extra: list[str] = []
    """Columns after the metrics."""
    remarks: list[str] = []
    """Notes on the suite's own columns."""

    def __init__(self, config: TrainingSuiteConfig):
        self.config = config

    def run(self, context: SuiteContext) -> SuiteResult:
        cfg = self.config
        if cfg.scale == "paper":
            self._require_paper(context)
        base = training_config(cfg.training_config)
        if cfg.scale == "paper":
            paper_changes = [*PAPER_SCHEDULE, *cfg.paper.pipeline_overrides()]
            base = apply_overrides(base, [*paper_changes, f"device={context.device}"])
            dataset = cfg.paper.datasets(["kubric4d"])["Kubric-4D"][0]
            samples = cfg.held_out or dataset["count"]
            dataset = {**dataset, "count": samples}
        else:
            dataset, samples = None, cfg.held_out or 8
        base = apply_overrides(base, cfg.train_overrides)
        metrics, skipped = metric_entries(cfg.metrics, cfg.weights)
        diversity, skipped_diversity = metric_entries(self.diversity, cfg.weights)
        held_out = paradigms.HeldOut(samples, metrics, dataset=dataset, diversity=diversity)
        records, times = [], {}
        for seed in cfg.seeds:
            trained = paradigms.train_methods(
                apply_overrides(base, [f"seed={seed}"]),
                self.methods,
                context.output / f"seed{seed}",
                context.registry,
                held_out,
                progress=context.progress,
                videos=video_output(context.output / "videos" / f"seed{seed}", cfg.save_videos),
            )
            for method, result in trained.items():
                records += [{"seed": seed, **record} for record in result.records]
                times.setdefault(method, []).append(result.times)
        order = [paradigms.WARM_START, *self.order]
        _, rows = summarise(records, order, reference=DEVIS_GRPO, pair_by=("seed", "index"))
        unmeasured = dict.fromkeys([*cfg.metrics, *self.diversity], math.nan)
        rows = [{"method": row.pop("method")} | unmeasured | row for row in rows]
        for row in rows:
            row |= _mean_over_seeds(times[row["method"]], self.extra)
        budget = _budget(validate_config(base, context.registry, source="training config"))
        scale, dry_run = cfg.paper.describe(cfg.scale)
        spread = " ± std" if len(cfg.seeds) > 1 else ""
        return SuiteResult(
            title=f"{self.title} ({scale})",
            columns=["method", "reward", *cfg.metrics, *self.diversity, *self.extra, "samples"],
            rows=rows,
            notes=[
                f"Every method trains from the same warm-started LoRA with {budget}; "
                f"seeds {cfg.seeds}.",
                f"Scored on {samples} held-out scenes by one-step generation; reward: the "
                "training config's composite reward.",
                *statistics_notes(DEVIS_GRPO, "scenes and seeds"),
                *dry_run,
                *[remark.format(spread=spread) for remark in self.remarks],
                *skipped,
                *skipped_diversity,
            ],
            samples=sample_records(records, "method"),
            higher_is_better=paradigms.held_out_directions(base, context.registry, held_out),
        )

    def _require_paper(self, context: SuiteContext) -> None:
        """The training config with a backbone of ``paper.models``' size (the full one with its
        checkpoints), Kubric-4D, the metric weights and an accelerator."""
        cfg = self.config
        missing = cfg.paper.missing()
        size = "tiny" if missing.dry_run else "full-size"
        config = cfg.training_config
        missing.path(
            f"a training config for the {cfg.paper.models} model", config, "training_config"
        )
        if config is not None and config.is_file():
            data = apply_overrides(training_config(config), cfg.train_overrides)
            backbone = data.get("backbone") or {}
            if backbone.get("preset") != cfg.paper.models:
                missing.items.append(
                    f"a {size} backbone in {config} (backbone.preset: {cfg.paper.models})"
                )
            for key in ("transformer_path", "base_path"):
                hint = f"it in the training config or -o 'train_overrides=[backbone.{key}=PATH]'"
                missing.checkpoint(
                    f"backbone.{key} of the training config", backbone.get(key), hint
                )
        cfg.paper.require_datasets(missing, ["kubric4d"])
        cfg.weights.require(missing, [*cfg.metrics, *self.diversity])
        missing.accelerator(context.device)
        missing.raise_if_any(
            self.name, "the full model's training config, Kubric-4D, metric weights and an "
            "accelerator",
        )  # fmt: skip


class GRPOVsVanillaSuite(TrainingSuite):
    """Table 3: DEVIS-GRPO against Vanilla-GRPO: consistency, diversity, time."""

    name = "grpo-vs-vanilla"
    title = "DEVIS-GRPO vs Vanilla-GRPO"
    methods = {DEVIS_GRPO: [], "Vanilla-GRPO": ["training.sampling=one-step"]}
    order = ["Vanilla-GRPO", DEVIS_GRPO]
    extra = ["seconds / iteration", "train minutes"]
    remarks = [
        "Diversity: one group of G videos per held-out scene, drawn the way the method samples "
        "in training (the warm start's as DEVIS-GRPO's), mean distance between its videos.",
        "seconds / iteration: mean wall time of one training round (sampling, rewards, "
        "update); train minutes include the warm start for DEVIS-GRPO; both are means over "
        "seeds{spread}.",
    ]

    def __init__(self, config: GRPOVsVanillaConfig):
        super().__init__(config)
        self.diversity = list(config.diversity)


class ParadigmsSuite(TrainingSuite):
    """Table 4: SFT (all, best, weight), Diffusion-DPO and DEVIS-GRPO."""

    name = "paradigms"
    title = "Training paradigms"
    methods = {
        DEVIS_GRPO: [],
        "SFT-all": ["algorithm={kind: sft, mode: all}"],
        "SFT-best": ["algorithm={kind: sft, mode: best}"],
        "SFT-weight": ["algorithm={kind: sft, mode: weight}"],
        "DPO": ["algorithm={kind: dpo}"],
    }
    order = ["SFT-all", "SFT-best", "SFT-weight", "DPO", DEVIS_GRPO]
    extra = ["train minutes"]
    remarks = ["train minutes: mean over seeds{spread}, warm start included for DEVIS-GRPO."]


def _mean_over_seeds(times: list[dict[str, float]], columns: list[str]) -> dict[str, float]:
    """Each training time's mean over seeds and, over several, its ``std``."""
    row = {}
    for column in columns:
        finite = [t[column] for t in times if math.isfinite(t.get(column, math.nan))]
        row[column] = finite_mean(finite)
        if len(times) > 1:
            row[f"{column} std"] = statistics.stdev(finite) if len(finite) > 1 else math.nan
    return row


def _budget(config: PipelineBase) -> str:
    """The sample budget of a training config, in words."""
    rounds, groups = config.training.rounds, config.training.groups_per_round
    size = config.algorithm.num_generations
    return f"{rounds} rounds x {groups} groups x {size} samples = {rounds * groups * size} videos"
