"""What the suites that reproduce the paper's tables share.

- the ``scale`` switch: ``toy`` runs on the synthetic world with the embedded models on a CPU,
  ``paper`` on the real datasets with the full-size models and refuses to start, with one
  error listing everything it lacks (:class:`Missing`);
- :class:`PaperAssets`: where the datasets and checkpoints of a paper-scale run are, and the
  config entries built from them; with ``models: tiny`` the tiny presets with random weights
  stand in for every checkpoint (a dry run of the paper-scale path on a CPU);
- :class:`MetricWeights` and :func:`metric_entries`: the paper's metrics, the weight-free ones
  always and the network ones when their weights are configured (else reported as skipped);
- :func:`toy_training_config`: the toy training config shipped inside this package, because
  the repository's ``configs/`` folder is not installed by ``pip install``.

The entries name components by their registered names only: the suites import no other plugin.
It lives here, not in the core, because it names built-in kinds: the core names none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from devis_core.config import parse_yaml, read_yaml
from devis_core.errors import UsageError
from devis_core.lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

Scale = Literal["toy", "paper"]

SCALE_DESCRIPTION = (
    "toy: the synthetic world, embedded models, a CPU; paper: the real datasets, full-size "
    "models and the paper's settings (refuses to start when something is missing)."
)

Models = Literal["full", "tiny"]

MODELS_DESCRIPTION = (
    "full: the published checkpoints, on an accelerator; tiny: substitute the tiny presets with "
    "random weights for every checkpoint: a dry run of the paper-scale path on a CPU; its "
    "numbers mean nothing."
)

DatasetName = Literal["kubric4d", "iphone", "dl3dv"]

DRY_RUN_BACKBONE: dict[str, Any] = {
    "kind": "trajectorycrafter",
    "preset": "tiny",
    "resolution": [16, 24],
    "steps": 2,
}
"""The tiny TrajectoryCrafter of a dry run, at its smallest settings (fewest DDIM steps)."""

DRY_RUN_DEPTH: dict[str, Any] = {
    "kind": "depthcrafter",
    "preset": "tiny",
    "steps": 1,
    "max_res": 64,
}
"""The tiny DepthCrafter of a dry run: one denoising step on 64-pixel frames."""

TOY_DATASET: dict[str, Any] = {
    "kind": "synthetic",
    "frames": 8,
    "height": 32,
    "width": 48,
    "azimuth_range": [60.0, 90.0],
    "elevation_range": [0.0, 20.0],
}
"""The toy scenes of the evaluation suites: extreme orbits of 60 to 90 degrees, at the toy
generator's size."""

TOY_BACKBONE: dict[str, Any] = {"kind": "trajectorycrafter", "preset": "toy"}
"""The toy generator of the suites: TrajectoryCrafter pre-trained on the synthetic world's small
orbits (shipped weights; ``-o backbone={kind: inpaint}`` is the weight-free choice)."""

TOY_DEPTH: dict[str, Any] = {"kind": "carried"}
"""Depth of the toy suites: exact for the source, carried along for generated views."""

TABLE1_METRICS = [
    "psnr",
    "ssim",
    "lpips",
    "psnr-nocc",
    "ssim-nocc",
    "temporal-flicker",
    "motion-smoothness",
    "aesthetic-quality",
    "imaging-quality",
]
"""The nine metrics of Table 1, in its column order."""

PAPER_SCHEDULE = [
    "training.rounds=50",
    "training.groups_per_round=32",
    "algorithm.num_generations=16",
    "algorithm.num_iterations=10",
]
"""The paper's training schedule: 50 rounds of 32 groups x 16 samples, 10 epochs each."""

PAPER_KUBRIC_TRAJECTORIES = 100
"""Kubric-4D protocol: 100 random large-angle trajectories from the test scenes."""


def with_defaults(entry: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """A suite's component entry: without ``kind`` it changes fields of ``default``
    (``-o dataset.frames=6``); with one it replaces the default entirely."""
    return dict(entry) if "kind" in entry else {**default, **entry}


def toy_training_config() -> dict[str, Any]:
    """The packaged copy of ``configs/grpo-toy.yaml`` (DEVIS-GRPO of the pre-trained toy model)."""
    preset = resources.files("devis_plugins.paper_suites").joinpath("presets/grpo-toy.yaml")
    return parse_yaml(preset.read_text(), source=str(preset))


def training_config(path: Path | None) -> dict[str, Any]:
    """The training config at ``path``, or the packaged toy one when none is given."""
    return toy_training_config() if path is None else read_yaml(path)


@dataclass
class Missing:
    """What a paper-scale run lacks, collected so that one error lists all of it."""

    items: list[str] = field(default_factory=list)
    dry_run: bool = False
    """A dry run (``paper.models=tiny``) needs no checkpoint and no accelerator."""

    def path(self, what: str, value: Path | str | None, option: str) -> None:
        """Require a file or folder: unset and nonexistent paths are both listed, with the
        ``-o`` option that sets it (``option``, or a whole hint when it contains a space)."""
        how = option if " " in option else f"-o {option}=PATH"
        if value is None:
            self.items.append(f"{what}: set {how}")
        elif not Path(value).expanduser().exists():
            self.items.append(f"{what}: {value} does not exist (set {how})")

    def checkpoint(self, what: str, value: Path | str | None, option: str) -> None:
        """Require a checkpoint as :meth:`path` does; a dry run substitutes or skips
        checkpoints, so there only one that is given must exist."""
        if value is not None or not self.dry_run:
            self.path(what, value, option)

    def accelerator(self, device: torch.device) -> None:
        """Require a GPU or an NPU: the full-size models do not run on a CPU in useful time
        (a dry run's tiny ones do)."""
        if device.type == "cpu" and not self.dry_run:
            self.items.append(
                "an accelerator: no CUDA GPU or Ascend NPU was found (or --device cpu was given)"
            )

    def raise_if_any(self, suite: str, needs: str) -> None:
        """Refuse to start with a :class:`UsageError` naming each missing thing."""
        if self.items:
            listing = "\n".join(f"  - {item}" for item in self.items)
            needing = "(a dry run: paper.models=tiny)" if self.dry_run else f"needs {needs};"
            raise UsageError(
                f"suite {suite!r} at scale=paper {needing} missing:\n{listing}\n"
                "Run it without -o scale=paper for the toy-scale version."
            )


class PaperAssets(BaseModel):
    """Where the datasets and checkpoints of a paper-scale run are (docs/reproducing.md)."""

    model_config = ConfigDict(extra="forbid")

    models: Models = Field("full", description=MODELS_DESCRIPTION)
    dataset_changes: dict[DatasetName, dict[str, Any]] = Field(
        default_factory=dict,
        description="Fields changed in a dataset's protocol entry, e.g. "
        "-o paper.dataset_changes.kubric4d.frames=3 (short clips for a dry run); the "
        "protocol's own settings otherwise.",
    )
    kubric4d: Path | None = Field(None, description="Kubric-4D release data/ folder.")
    iphone: Path | None = Field(None, description="DyCheck iPhone folder of sequences.")
    dl3dv: Path | None = Field(None, description="DL3DV folder of scenes.")
    dl3dv_depth: Path | None = Field(
        None, description="DepthSplat depth exports of the DL3DV scenes (<sample_id>.npz)."
    )
    transformer: Path | None = Field(None, description="TrajectoryCrafter transformer folder.")
    base: Path | None = Field(None, description="CogVideoX-Fun-V1.1-5b-InP folder.")
    depthcrafter: Path | None = Field(None, description="DepthCrafter UNet folder.")
    svd: Path | None = Field(None, description="stable-video-diffusion-img2vid-xt folder.")

    @property
    def dry_run(self) -> bool:
        """Whether the tiny presets stand in for every checkpoint."""
        return self.models == "tiny"

    def missing(self) -> Missing:
        """An empty list of what the run lacks, knowing whether it is a dry run."""
        return Missing(dry_run=self.dry_run)

    def describe(self, scale: Scale) -> tuple[str, list[str]]:
        """How a table's title names its scale, and the notes a dry run adds: its numbers
        must never be mistaken for the paper's."""
        if scale == "paper" and self.dry_run:
            note = (
                "Dry run (paper.models=tiny): the tiny TrajectoryCrafter and DepthCrafter with "
                "random weights stood in for every checkpoint; these numbers mean nothing."
            )
            return "paper scale, dry run", [note]
        return f"{scale} scale", []

    def pipeline_overrides(self) -> list[str]:
        """Overrides of every pipeline config the run builds. A dry run fits estimated depth
        by one scale (always positive): the random DepthCrafter's disparity need not grow with
        depth, so the paper's scale-and-shift fit could come out negative and stop the run."""
        return ["depth_alignment.mode=scale"] if self.dry_run else []

    def require_models(self, missing: Missing, *, backbone: bool = True) -> None:
        """DepthCrafter with its base model, and unless ``backbone`` is False (a backbone
        entry was given instead) the full TrajectoryCrafter with its base model."""
        if backbone:
            missing.checkpoint(
                "TrajectoryCrafter transformer", self.transformer, "paper.transformer"
            )
            missing.checkpoint("CogVideoX-Fun base model", self.base, "paper.base")
        missing.checkpoint("DepthCrafter UNet", self.depthcrafter, "paper.depthcrafter")
        missing.checkpoint("Stable Video Diffusion XT", self.svd, "paper.svd")

    def require_datasets(self, missing: Missing, names: list[str]) -> None:
        """The dataset folders of ``names`` (``kubric4d``, ``iphone``, ``dl3dv``)."""
        labels = {"kubric4d": "Kubric-4D dataset", "iphone": "iPhone (DyCheck) dataset"}
        for name in names:
            if name == "dl3dv":
                missing.path("DL3DV dataset", self.dl3dv, "paper.dl3dv")
                missing.path("DepthSplat depth of DL3DV", self.dl3dv_depth, "paper.dl3dv_depth")
            else:
                missing.path(labels[name], getattr(self, name), f"paper.{name}")

    def backbone(self) -> dict[str, Any]:
        """The full TrajectoryCrafter (the tiny one in a dry run)."""
        if self.dry_run:
            return dict(DRY_RUN_BACKBONE)
        return {
            "kind": "trajectorycrafter",
            "preset": "full",
            "transformer_path": str(self.transformer),
            "base_path": str(self.base),
        }

    def depth(self) -> dict[str, Any]:
        """DepthCrafter at full size, the paper's video depth (the tiny one in a dry run)."""
        if self.dry_run:
            return dict(DRY_RUN_DEPTH)
        return {
            "kind": "depthcrafter",
            "preset": "full",
            "unet_path": str(self.depthcrafter),
            "svd_path": str(self.svd),
        }

    def datasets(self, names: list[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
        """Row label -> (dataset entry, depth entry) under each dataset's protocol, with its
        ``dataset_changes`` applied."""
        protocols = {
            "kubric4d": (
                "Kubric-4D",
                {
                    "kind": "kubric4d",
                    "root": str(self.kubric4d),
                    "count": PAPER_KUBRIC_TRAJECTORIES,
                },
                self.depth(),
            ),
            "iphone": ("iPhone", {"kind": "iphone", "root": str(self.iphone)}, self.depth()),
            "dl3dv": (
                "DL3DV",
                {"kind": "dl3dv", "root": str(self.dl3dv)},
                {"kind": "depthsplat", "root": str(self.dl3dv_depth)},
            ),
        }
        chosen = {}
        for name in names:
            label, dataset, depth = protocols[name]
            chosen[label] = ({**dataset, **self.dataset_changes.get(name, {})}, depth)
        return chosen


class MetricWeights(BaseModel):
    """Weight files of the network metrics; a metric whose files are not set is skipped."""

    model_config = ConfigDict(extra="forbid")

    lpips: Path | None = Field(None, description="LPIPS AlexNet trunk (alexnet-owt-7be5be79.pth).")
    amt: Path | None = Field(None, description="AMT-S checkpoint (motion smoothness).")
    clip: Path | None = Field(None, description="CLIP ViT-L/14 folder (aesthetics, diversity).")
    aesthetic_head: Path | None = Field(None, description="LAION aesthetic head (.pth).")
    musiq: Path | None = Field(None, description="MUSIQ SPAQ checkpoint (imaging quality).")

    def needs(self, metric: str) -> dict[str, str]:
        """The metric entry's field -> this model's field, for each weight file it needs."""
        return {
            "lpips": {"weights_path": "lpips"},
            "lpips-diversity": {"weights_path": "lpips"},
            "motion-smoothness": {"weights_path": "amt"},
            "aesthetic-quality": {"clip_path": "clip", "head_path": "aesthetic_head"},
            "clip-diversity": {"clip_path": "clip"},
            "imaging-quality": {"weights_path": "musiq"},
        }.get(metric, {})

    def require(self, missing: Missing, metrics: list[str]) -> None:
        """Every weight file of ``metrics`` (a paper-scale table has no skipped column)."""
        for metric in metrics:
            for own in self.needs(metric).values():
                missing.checkpoint(f"{metric} weights", getattr(self, own), f"weights.{own}")


def metric_entries(
    metrics: list[str], weights: MetricWeights
) -> tuple[list[str | dict[str, Any]], list[str]]:
    """Config entries of the metrics whose weights are set, and a note per skipped metric."""
    entries: list[str | dict[str, Any]] = []
    notes = []
    for metric in metrics:
        needs = weights.needs(metric)
        unset = [own for own in needs.values() if getattr(weights, own) is None]
        if unset:
            options = ", ".join(f"-o weights.{own}=PATH" for own in unset)
            notes.append(f"{metric}: not measured (no weights configured; set {options})")
        elif needs:
            fields = {name: str(getattr(weights, own)) for name, own in needs.items()}
            entries.append({"kind": metric, **fields})
        else:
            entries.append(metric)
    return entries, notes
