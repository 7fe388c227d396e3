"""The top-level sections of a pipeline config that belong to the engines, not to a slot.

``run``, ``evaluation``, ``training`` (with its ``warm_start``) and ``depth_alignment``:
settings of ``devis run``, ``eval`` and ``train`` and of the pipeline's depth, each a model
with unknown keys forbidden, so a typo is an error that names its YAML path. The
``save_videos`` and ``report_to`` settings are also keys of every built-in suite's config
(:func:`save_videos_field`, :func:`report_to_field`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SaveVideos = Literal["none", "mp4", "lossless"]
"""Which videos a command keeps: none, H.264 mp4 (small, lossy) or lossless (FFV1 in mkv)."""


def save_videos_field(default: SaveVideos) -> Any:
    """The ``save_videos`` field of ``evaluation``, ``run`` and the suites' configs."""
    return Field(
        default,
        description="Which videos to write: none; mp4 (H.264, near-lossless, to look at); "
        "lossless (FFV1 in .mkv: the pixels round-trip exactly, so metrics can be recomputed "
        "from the files). devis run writes source, render, mask, generated (and target); "
        "evaluations and suites each generated video, as videos/<method>/<sample_id>.<ext>.",
    )


Tracker = Literal["tensorboard", "wandb"]
"""An experiment tracker of ``report_to`` (``devis_core.training.tracking``)."""


RESULTS = (
    "each method's scores of each sample as they are made, and the final table (wandb: a "
    "Table; tensorboard: scalars per row, HParams and the table as text)"
)


def report_to_field(what: str = RESULTS) -> Any:
    """The ``report_to`` field of ``training``, ``evaluation`` and the suites' configs;
    ``what`` says what the trackers get (default: an evaluation's results)."""
    return Field(
        default_factory=list,
        description=f"Experiment trackers (TRL's name; default none) that also get {what}. "
        "tensorboard: RUN/tensorboard/; wandb: project $WANDB_PROJECT (or devis), mode "
        "$WANDB_MODE. A tracker that is not installed stops the run at its start naming the "
        "extra: pip install 'devis[tensorboard]' / 'devis[wandb]'.",
    )


class EvaluationSection(BaseModel):
    """How ``devis eval`` runs: which variants side by side, on how many samples."""

    model_config = ConfigDict(extra="forbid")

    methods: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Method name -> KEY=VALUE overrides of this config; one table row each. "
        "Empty: the config as it is.",
    )
    max_samples: int | None = Field(
        None, ge=1, description="Evaluate the first N dataset samples only (default: all)."
    )
    save_videos: SaveVideos = save_videos_field("none")
    report_to: list[Tracker] = report_to_field()


class RunSection(BaseModel):
    """What ``devis run`` synthesises."""

    model_config = ConfigDict(extra="forbid")

    sample: int = Field(0, ge=0, description="Index of the dataset sample to synthesise.")
    save_videos: SaveVideos = save_videos_field("mp4")


class WarmStartSection(BaseModel):
    """The supervised LoRA fine-tune for small views that precedes RL (the paper's warm start)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(0, ge=0, description="Optimizer steps of the warm start; 0: none.")
    batch_size: int = Field(2, ge=1, description="Pairs per optimizer step.")
    learning_rate: float = Field(1e-3, gt=0, description="AdamW learning rate of the warm start.")
    dataset: dict[str, Any] | None = Field(
        None,
        description="A dataset entry {kind: ..., ...} of small-motion pairs with ground-truth "
        "targets (e.g. synthetic with azimuth_range [5, 15]); the source reprojected to the "
        "target is the input, the target the output. Null: the main dataset.",
    )


class TrainingSection(BaseModel):
    """How ``devis train`` runs: sampling rounds, the optimizer and its schedule (TRL names)."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(50, ge=1, description="Sampling rounds (the paper: 50).")
    groups_per_round: int = Field(
        32, ge=1, description="Groups (source video + target motion) per round (the paper: 32)."
    )
    sampling: Literal["accumulated", "one-step"] = Field(
        "accumulated",
        description="How a group's videos are drawn. accumulated (DEVIS-GRPO): each runs the "
        "accumulator with its own K in [k_min, k_max] and unequal increments (Eq. 14); "
        "one-step (Vanilla-GRPO): one generation (K = 1), only the noise differs.",
    )
    k_min: int = Field(1, ge=1, description="Smallest step count K of an accumulated sample.")
    k_max: int = Field(3, ge=1, description="Largest step count K of an accumulated sample.")
    same_noise: bool = Field(
        False, description="Every sample of a group starts from the same initial noise."
    )
    trained_chain: Literal["one-step", "accumulated"] = Field(
        "one-step",
        description="Which conditions GRPO scores the sampled final chain under: one-step (the "
        "source rendered at the full target motion, what inference sees; the paper's reading) "
        "or accumulated (the last accumulation step's own render and reference: teaches the "
        "model to refine accumulated renders). docs/training.md says why.",
    )
    train_intermediate: bool = Field(
        False,
        description="With trained_chain: accumulated, also train on the denoising chains of "
        "earlier accumulation steps, with the sample's advantage (default: the last step's "
        "chain only).",
    )
    learning_rate: float = Field(1e-4, gt=0, description="AdamW learning rate of the LoRA.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, gt=0)
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping (global L2 norm).")
    max_invalid_reward_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Largest fraction of a round's rewards that may be non-finite (NaN or "
        "infinite): those samples are skipped and counted (rewards_non_finite); above it, or "
        "when every reward is, the run stops as diverged (exit code 3) keeping its last good "
        "checkpoint.",
    )
    per_device_train_batch_size: int = Field(
        4,
        ge=1,
        description="Samples per micro-batch and process (groups, for algorithms that train "
        "on whole groups: dpo).",
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches per optimizer step."
    )
    lr_scheduler_type: Literal["constant", "cosine"] = Field(
        "constant", description="Learning-rate schedule over all optimizer steps of the run."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up of the learning rate.")
    report_to: list[Tracker] = report_to_field("the logged numbers")
    log_videos_every: int = Field(
        0,
        ge=0,
        description="Send one generated video of every N-th round (rounds 0, N, 2N, ...) to "
        "the trackers of report_to; 0: never.",
    )
    save_total_limit: int | None = Field(
        2,
        ge=2,
        description="Checkpoints kept (checkpoints/round-NNNNN, one per round): the newest and "
        "the ones before it, at least 2 so that a damaged latest resumes from the previous; "
        "null keeps every round's (e.g. to score each round's LoRA for a learning curve).",
    )
    warm_start: WarmStartSection = Field(
        default_factory=WarmStartSection, description="Supervised warm start before RL."
    )

    @model_validator(mode="after")
    def _k_range(self) -> TrainingSection:
        if self.k_min > self.k_max:
            raise ValueError("k_min must not exceed k_max")
        if self.train_intermediate and self.trained_chain == "one-step":
            raise ValueError(
                "train_intermediate needs trained_chain: accumulated (the chains of earlier "
                "steps generate intermediate poses, not the one-step target)"
            )
        return self


class DepthAlignmentSection(BaseModel):
    """How estimated depth is brought to the cameras' units before any reprojection."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["auto", "scale", "scale-shift-disparity", "none"] = Field(
        "auto",
        description="Fit of each estimate to the sample's depth in camera units (its dataset "
        "depth or points, or a generated video's render depth). scale: depth times one factor "
        "per video; scale-shift-disparity: 1/depth = a/estimate + b per video; none: the "
        "estimate as it is; auto: scale-shift-disparity for estimators of relative depth "
        "(depthcrafter), none for the others. docs/reproducing.md, 'Depth units'.",
    )
