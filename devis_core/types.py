"""The data that flows between components, and the interfaces engines rely on.

Conventions (``docs/concepts.md`` says why): videos are ``float32`` ``(T, 3, H, W)`` in
``[0, 1]`` (batched ``(B, T, 3, H, W)``); depth is ``(T, H, W)`` planar depth in scene units,
0 or non-finite where unknown; cameras use OpenCV axes, world-to-camera ``4x4`` extrinsics
and ``3x3`` pixel intrinsics.

torch appears in annotations only (``from __future__ import annotations``) and is imported by
the two methods that need it: plugins import these types while ``devis plugins`` lists them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from devis_core.registry import Registry
    from devis_core.toolkit.geometry import Motion


@dataclass
class ViewSynthesisSample:
    """One source video and the camera it should be seen from.

    ``target_w2c`` gives the target camera of every frame. ``motion`` is the same target as
    TrajectoryCrafter's relative motion ``(theta, phi, r, x, y)`` when the dataset knows it,
    orbiting ``pivot_depth`` with the ``trajectory`` mode of
    :func:`~devis_core.toolkit.geometry.orbit_trajectory`: accumulators split that motion into
    increments. ``render_depth`` is set only on samples that describe a *generated* video (an
    accumulation step's ``V_{k-1}``): the depth of the reprojected points it was made from.
    ``points`` are world points ``(N, 3)`` in the cameras' units that the source cameras see (a
    sparse reconstruction such as COLMAP's), for datasets that have them and no dense depth:
    relative depth estimates are aligned to them (``docs/reproducing.md``, "Depth units").
    """

    sample_id: str
    source: Tensor
    K: Tensor
    source_w2c: Tensor
    target_w2c: Tensor
    source_depth: Tensor | None = None
    points: Tensor | None = None
    motion: Motion | None = None
    target: Tensor | None = None
    target_depth: Tensor | None = None
    pivot_depth: float | None = None
    trajectory: Literal["direct", "gradual"] = "direct"
    render_depth: Tensor | None = None
    caption: str = ""
    fps: float = 8.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> ViewSynthesisSample:
        """A copy with every tensor on ``device`` (a no-op copy when already there)."""
        import torch

        moved = {
            name: value.to(device) if isinstance(value, torch.Tensor) else value
            for name, value in self.__dict__.items()
        }
        return ViewSynthesisSample(**moved)

    @property
    def num_frames(self) -> int:
        return int(self.source.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames."""
        return int(self.source.shape[-2]), int(self.source.shape[-1])

    def is_source(self, video: Tensor) -> bool:
        """Whether ``video`` is this sample's source (the same tensor, or equal to it).

        Depth that exists for the source only (the dataset's, an export, a render's) may be
        used for ``video`` only then.
        """
        import torch

        return video is self.source or (
            video.shape == self.source.shape and torch.equal(video, self.source)
        )


@dataclass
class Conditions:
    """What a backbone is conditioned on for one generation step (Eq. 2).

    ``render`` and ``mask`` come from reprojection (``mask`` True where something landed);
    ``reference`` is the video the reference stream attends to; ``render_depth`` is the
    depth of the rendered points in the target camera, kept for strategies that need it.
    """

    render: Tensor
    mask: Tensor
    reference: Tensor
    caption: str = ""
    render_depth: Tensor | None = None


@dataclass
class AccumulationResult:
    """The output of an accumulator: the final video and how it was made."""

    video: Tensor
    conditions: Conditions
    """The conditions of the last generation step (RL training reuses them)."""

    generator_calls: int
    intermediate: list[Tensor] = field(default_factory=list)
    """The video of every step before the last, ``V_1 .. V_{K-1}``."""


@dataclass
class RewardInputs:
    """A batch of generated videos with what the reward terms compare them to.

    All tensors are on one device, with batch size ``B``, ``T`` frames of ``H x W``; videos
    are float in ``[0, 1]``.
    """

    generated: Tensor
    """``(B, T, 3, H, W)``: the videos to score, at the target camera."""
    source: Tensor
    """``(B, T_s, 3, H, W)``: each sample's source video (``T_s`` may differ from ``T``)."""
    render: Tensor
    """``(B, T, 3, H, W)``: the source reprojected to the target camera in one step (the
    one-step conditions' render); valid where ``mask`` is true, 0 in its holes."""
    mask: Tensor
    """``(B, T, H, W)`` bool: where the reprojected source landed (the visible region)."""
    sample_ids: Sequence[str] = ()
    """The dataset sample id of each video, for warnings that name a sample (may be empty)."""


@runtime_checkable
class DepthEstimator(Protocol):
    """Per-frame depth ``(T, H, W)`` of a video; ``sample`` describes the video when known.

    An estimator whose depth is right only up to an unknown scale and shift (relative depth,
    such as DepthCrafter's) says so with a class attribute ``relative_depth = True``; the
    attribute is optional and read with a default of False (metric, or in the cameras' units).
    The pipeline then fits each estimate to the sample's own depth before any reprojection
    (``depth_alignment`` in the config; :mod:`devis_core.toolkit.geometry.alignment`).

    An estimator that has depth of dataset videos only (exported maps) says
    so with ``generated_videos = False`` (default True): accumulation steps then use the depth
    a generated video's render carried through the warp instead of asking it.
    """

    def estimate(self, video: Tensor, sample: ViewSynthesisSample | None = None) -> Tensor: ...


@runtime_checkable
class Backbone(Protocol):
    """A video generator: completes a render into a video (slot ``backbone``)."""

    def generate(self, cond: Conditions, generator: torch.Generator | None = None) -> Tensor:
        """A ``(T, 3, H, W)`` video in ``[0, 1]`` with the render's frame count and size;
        ``generator`` (a CPU generator) makes the draw reproducible."""
        ...


@dataclass
class RolloutStep:
    """One denoising step of a stochastic rollout, as GRPO needs it."""

    timestep: Tensor
    latents: Tensor
    next_latents: Tensor
    mean: Tensor
    std: Tensor
    log_prob: Tensor


@dataclass
class Rollout:
    """A sampled denoising chain and the video it ends in."""

    steps: list[RolloutStep]
    video: Tensor


@runtime_checkable
class Policy(Protocol):
    """A backbone seen as a stochastic policy over denoising steps (DDIM with eta > 0)."""

    def rollout(self, cond: Conditions, generator: torch.Generator | None = None) -> Rollout:
        """Sample a denoising chain under ``cond``, keeping every step's latents and
        log-probability (no gradients)."""
        ...

    def log_prob(
        self, cond: Conditions, rollout: Rollout, step: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(log_prob, mean, std)`` of ``rollout.steps[step]`` under the current weights,
        differentiable with respect to :meth:`trainable_parameters` (the GRPO ratio)."""
        ...

    def trainable_parameters(self) -> Iterator[torch.nn.Parameter]:
        """The parameters training updates (the LoRA); everything else stays frozen."""
        ...

    def disable_adapter(self) -> AbstractContextManager[None]:
        """A context in which the policy is its reference (the adapter off), for the KL term."""
        ...

    def latent_shape(self, cond: Conditions) -> tuple[int, ...]:
        """Shape of the latent of one video under ``cond`` (to draw shared noise)."""
        ...

    def v_prediction_error(
        self, cond: Conditions, video: Tensor, timesteps: Tensor, noise: Tensor
    ) -> Tensor:
        """Per-sample squared error of the v-prediction of ``video`` noised at ``timesteps``.

        The denoising loss of supervised fine-tuning and of Diffusion-DPO.
        """
        ...


@runtime_checkable
class Accumulator(Protocol):
    """An ADEVIS strategy: reaches the target camera in one or more generation steps."""

    def run(
        self,
        sample: ViewSynthesisSample,
        backbone: Backbone,
        depth: DepthEstimator,
        *,
        increments: Sequence[Motion] | Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> AccumulationResult:
        """Generate the target view of ``sample``; ``increments`` (motions or fractions of the
        whole move that sum to it) override the strategy's own split of the camera path."""
        ...


@runtime_checkable
class RewardTerm(Protocol):
    """One term of the composite reward (slot ``reward``)."""

    higher_is_better: bool
    """Direction: the composite reward flips terms where lower is better."""
    default_range: tuple[float, float]
    """``(low, high)`` raw scores mapped to 0 and 1 (clipped) unless the config sets ``range``."""

    def score(self, batch: RewardInputs) -> Tensor:
        """One raw score per video, ``(B,)``; non-finite where the term cannot score a video."""
        ...


@runtime_checkable
class Metric(Protocol):
    """An evaluation metric against ground truth, or of a video alone (slot ``metric``)."""

    higher_is_better: bool
    """Direction, for tables and plots."""

    def compute(self, prediction: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-frame (or per-video) values of ``prediction`` against ``target``, ``(T, 3, H,
        W)`` videos in ``[0, 1]``; ``mask`` ``(T, H, W)`` restricts region metrics (``-nocc``)."""
        ...


@dataclass
class TrainingBatch:
    """What an algorithm's loss sees: samples, their conditions, rollouts and advantages."""

    conditions: list[Conditions]
    rollouts: list[Rollout]
    rewards: Tensor
    advantages: Tensor
    group_ids: Tensor
    steps: list[list[int]] = field(default_factory=list)
    """For each sample, the denoising steps to train on."""


@runtime_checkable
class Dataset(Protocol):
    """Samples by index (slot ``dataset``); the same index gives the same sample every time."""

    def __len__(self) -> int:
        """The number of samples."""
        ...

    def __getitem__(self, index: int) -> ViewSynthesisSample:
        """Sample ``index``, on the CPU; an index out of range is an ``IndexError``."""
        ...


@dataclass
class SuiteContext:
    """What a suite gets to run: the plugins, where to write, and how chatty to be."""

    registry: Registry
    output: Path
    device: torch.device
    seed: int = 0
    progress: bool = True


@dataclass
class SuiteResult:
    """A table: one row per variant, one column per metric (NaN where not measured).

    A table whose rows summarise per-sample records (the built-in suites') also keeps those
    records, written as ``samples.jsonl`` beside it so any other statistic can be computed
    later, and which way each metric is better, to mark the best values.
    """

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    """The records behind the rows: one per row and sample (and seed), every metric."""
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    """Whether a higher value is better, by metric (those with no entry have no best)."""


@runtime_checkable
class Suite(Protocol):
    def run(self, context: SuiteContext) -> SuiteResult: ...
