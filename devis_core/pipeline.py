"""A validated config turned into live components, built once, on one device.

Engines (run, eval, train, suites) share this: it builds each component a config names the
first time it is needed, moves components that hold tensors to the run's device (those that
define ``to(device)``) and offers the two steps every engine repeats: synthesise the target
view of a sample, and score it against ground truth. Its depth estimator is the one place
where relative depth is aligned to the cameras' units (:class:`AligningDepth`), so every
engine reprojects with aligned depth.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from devis_core.config import PipelineBase
from devis_core.devices import resolve_device
from devis_core.errors import UsageError
from devis_core.lazy import lazy_import
from devis_core.registry import Registry
from devis_core.slots import get_slot
from devis_core.toolkit.accumulation import one_step_conditions
from devis_core.toolkit.geometry import AlignmentMode, DepthFit, fit_depth, sparse_depth
from devis_core.types import (
    AccumulationResult,
    Accumulator,
    Backbone,
    Conditions,
    Dataset,
    DepthEstimator,
    Metric,
    ViewSynthesisSample,
)

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

logger = logging.getLogger(__name__)


class _Observed:
    """A backbone that reports each video it generates, and is otherwise the same."""

    def __init__(self, backbone: Backbone, callback: Callable[[torch.Tensor], None]):
        self._backbone, self._callback = backbone, callback

    def generate(self, cond: Conditions, generator: torch.Generator | None = None) -> torch.Tensor:
        video = self._backbone.generate(cond, generator)
        self._callback(video)
        return video

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backbone, name)


class AligningDepth:
    """A depth estimator whose estimates are fitted to the cameras' units.

    Each estimate is fitted (:func:`~devis_core.toolkit.geometry.fit_depth`) to the depth in camera
    units that the sample has for that video (:func:`reference_depth`). Without one, the
    estimate is returned as it is, on the assumption that the cameras are in the estimate's
    units (a user video whose orbit is set around the estimate's own pivot), and a warning
    says so once per sample. ``fits`` keeps the latest fit of each sample id; every fit is
    also logged at INFO level by this module's logger.
    """

    def __init__(self, estimator: DepthEstimator, mode: AlignmentMode):
        self.estimator, self.mode = estimator, mode
        self.fits: dict[str, DepthFit] = {}
        self._warned: set[str] = set()

    def estimate(
        self, video: torch.Tensor, sample: ViewSynthesisSample | None = None
    ) -> torch.Tensor:
        depth = self.estimator.estimate(video, sample)
        if sample is None or (reference := reference_depth(video, sample)) is None:
            self._warn_unaligned(sample)
            return depth
        fit = fit_depth(depth, reference, self.mode, sample_id=sample.sample_id)
        self.fits[sample.sample_id] = fit
        logger.info(
            "depth of %s aligned (%s): scale %.6g, shift %.6g, over %d pixels",
            sample.sample_id,
            fit.mode,
            fit.scale,
            fit.shift,
            fit.pixels,
        )
        return fit.apply(depth)

    def _warn_unaligned(self, sample: ViewSynthesisSample | None) -> None:
        name = "a video without a sample" if sample is None else repr(sample.sample_id)
        if name in self._warned:
            return
        self._warned.add(name)
        logger.warning(
            "%s: no depth in the cameras' units for this video (dataset depth, points or render "
            "depth); its relative depth estimate is used unaligned, assuming the cameras are in "
            "the estimate's units",
            name,
        )

    def to(self, device: torch.device | str) -> AligningDepth:
        """Move the wrapped estimator and stay its wrapper (so ``place_on`` keeps aligning)."""
        self.estimator = place_on(self.estimator, torch.device(device))
        return self

    def __getattr__(self, name: str) -> Any:
        """The wrapped estimator's own declarations (``generated_videos``, ...) show through."""
        return getattr(self.estimator, name)


def reference_depth(video: torch.Tensor, sample: ViewSynthesisSample) -> torch.Tensor | None:
    """Depth in the cameras' units of ``video``, when ``video`` is the source of ``sample``.

    In order: a generated video's render depth, the dataset's depth, the dataset's world points
    projected into the source cameras; None when the sample has none of them.
    """
    if not sample.is_source(video):
        return None
    if sample.render_depth is not None:
        return sample.render_depth
    if sample.source_depth is not None:
        return sample.source_depth
    if sample.points is not None:
        return sparse_depth(sample.points, sample.K, sample.source_w2c, sample.size)
    return None


def alignment_mode(configured: str, estimator: DepthEstimator) -> AlignmentMode | None:
    """The fit the config asks for; ``auto`` fits estimators that declare relative depth."""
    if configured == "auto":
        relative = getattr(estimator, "relative_depth", False)
        return "scale-shift-disparity" if relative else None
    return None if configured == "none" else cast(AlignmentMode, configured)


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator: the same seed gives the same draws whatever device computes on."""
    return torch.Generator(device="cpu").manual_seed(seed)


def place_on(component: Any, device: torch.device) -> Any:
    """``component.to(device)`` for a component that has one (the same object if it returns
    None, as a module-style ``to`` may); anything else unchanged."""
    mover = getattr(component, "to", None)
    if callable(mover) and not isinstance(component, torch.Tensor):
        moved = mover(device)
        return component if moved is None else moved
    return component


class Pipeline:
    """The components of one pipeline config.

    ``shared`` is a dict that several pipelines pass to reuse each other's components: a
    component whose config entry and device are the same is built once (the variants of an
    evaluation share their dataset, depth model, backbone and metrics unless they change them).
    """

    def __init__(
        self,
        config: PipelineBase,
        registry: Registry,
        shared: dict[tuple[str, str, str], Any] | None = None,
    ):
        self.config = config
        self.registry = registry
        self.device = resolve_device(config.device)
        self._shared = {} if shared is None else shared

    def build(self, slot_name: str) -> Any:
        """Build the single component of a slot (``backbone``, ``depth``, ...)."""
        slot = get_slot(slot_name)
        entry = getattr(self.config, slot.config_key or "", None)
        if entry is None:
            names = ", ".join(self.registry.names(slot_name)) or "(none installed)"
            raise UsageError(
                f"this command needs a '{slot.config_key}' section in the config, "
                f"e.g. {slot.config_key}: {{kind: ...}}; registered: {names}"
            )
        return self._built(slot_name, entry)

    def _built(self, slot_name: str, entry: Any) -> Any:
        """The component of ``entry`` on this pipeline's device, built once per shared dict."""
        data = entry.model_dump(mode="json") if isinstance(entry, BaseModel) else entry
        key = (slot_name, json.dumps(data, sort_keys=True, default=str), str(self.device))
        if key not in self._shared:
            self._shared[key] = self._placed(self.registry.build(slot_name, entry))
        return self._shared[key]

    def _placed(self, component: Any) -> Any:
        return place_on(component, self.device)

    @cached_property
    def backbone(self) -> Backbone:
        return self.build("backbone")

    @cached_property
    def depth(self) -> DepthEstimator:
        """The configured estimator, aligned to the cameras' units when ``depth_alignment``
        asks for it (by default: when the estimator declares ``relative_depth``)."""
        estimator = self.build("depth")
        mode = alignment_mode(self.config.depth_alignment.mode, estimator)
        return estimator if mode is None else AligningDepth(estimator, mode)

    @cached_property
    def accumulator(self) -> Accumulator:
        return self.build("accumulator")

    @cached_property
    def dataset(self) -> Dataset:
        return self.build("dataset")

    @cached_property
    def metrics(self) -> dict[str, Metric]:
        """The configured metrics in config order, by kind (``lpips#2`` for a second lpips)."""
        built: dict[str, Metric] = {}
        for entry in getattr(self.config, get_slot("metric").config_key):
            name, count = entry.kind, 1
            while name in built:
                count += 1
                name = f"{entry.kind}#{count}"
            built[name] = self._built("metric", entry)
        return built

    def synthesize(
        self,
        sample: ViewSynthesisSample,
        seed_offset: int = 0,
        on_generate: Callable[[torch.Tensor], None] | None = None,
    ) -> AccumulationResult:
        """Generate the target view of ``sample`` with the configured accumulator.

        ``on_generate`` is called with every video the backbone returns (progress bars).
        """
        generator = make_generator(self.config.seed + seed_offset)
        backbone = self.backbone if on_generate is None else _Observed(self.backbone, on_generate)
        return self.accumulator.run(
            sample.to(self.device), backbone, self.depth, generator=generator
        )

    def visibility(self, sample: ViewSynthesisSample) -> torch.Tensor:
        """Where the source, reprojected to the target camera in one step, lands (``*-nocc``)."""
        sample = sample.to(self.device)
        depth = sample.source_depth
        if depth is None:
            depth = self.depth.estimate(sample.source, sample)
        return one_step_conditions(sample, depth).mask

    def score(self, sample: ViewSynthesisSample, video: torch.Tensor) -> dict[str, float]:
        """Every configured metric of ``video`` against the sample's ground truth."""
        if sample.target is None:
            return {}
        mask = self.visibility(sample)
        target = sample.target.to(self.device)
        values = {}
        for name, metric in self.metrics.items():
            value = metric.compute(video.to(self.device), target, mask)
            values[name] = float(value.mean()) if value.numel() else math.nan
        return values
