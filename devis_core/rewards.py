"""The consistency-quality reward (Eq. 15-17): reward terms normalised, flipped and weighted.

Each configured term scores a batch of videos; its raw score is mapped to ``[0, 1]`` with its
normalisation range (the config entry's ``range``, else the term's ``default_range``),
clipping outside it; lower-is-better terms are flipped (``1 - x``); the composite reward is
the weighted sum ``R = sum_k w_k x_k``. A non-finite raw score is reported (a warning naming
the sample and the term) and makes that sample's composite reward NaN, so that group
statistics leave the sample out: it is never silently turned into a number.

What a term declares (direction, range) is checked when its plugin registers it
(:func:`contract_problems`), and again, in full, when it is built.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from devis_core.errors import PluginContractError, UsageError
from devis_core.lazy import lazy_import
from devis_core.types import RewardInputs, RewardTerm

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from devis_core.registry import Registry
else:
    torch = lazy_import("torch")

_ABSENT = object()


@dataclass
class RewardResult:
    """Raw and normalised scores of every term, and the composite reward, one value per video."""

    terms: dict[str, Tensor]
    """Raw scores by term name, as the terms returned them."""

    normalised: dict[str, Tensor]
    """Scores in ``[0, 1]``, higher always better; NaN where the raw score is not finite."""

    total: Tensor
    """The composite reward; NaN for a video with any non-finite term."""

    invalid: list[tuple[str, str]] = field(default_factory=list)
    """``(sample_id, term)`` of every non-finite raw score."""


@dataclass
class WeightedTerm:
    """One configured term: its name in results, the component, its weight and range."""

    name: str
    term: RewardTerm
    weight: float
    low: float
    high: float

    def normalise(self, raw: Tensor) -> Tensor:
        """Map to ``[0, 1]`` with the range (clipped), flipped when lower is better."""
        scaled = ((raw.double() - self.low) / (self.high - self.low)).clamp(0.0, 1.0)
        if not self.term.higher_is_better:
            scaled = 1.0 - scaled
        return torch.where(torch.isfinite(raw), scaled, torch.full_like(scaled, float("nan")))


class CompositeReward:
    """The reward of a pipeline config's ``rewards`` list, built from the registry."""

    def __init__(self, entries: Sequence[BaseModel | dict[str, Any]], registry: Registry):
        if not entries:
            raise UsageError("the composite reward needs at least one entry in `rewards`")
        kinds = [_field(entry, "kind") for entry in entries]
        self.terms: list[WeightedTerm] = []
        for index, (kind, entry) in enumerate(zip(kinds, entries, strict=True)):
            weight = float(_field(entry, "weight", 1.0))
            configured = _field(entry, "range", None)
            if isinstance(entry, BaseModel):  # validated: its model is the term's config
                term = registry.build("reward", entry)
            else:
                term_fields = {k: v for k, v in entry.items() if k not in ("weight", "range")}
                term = registry.build("reward", term_fields)
            problems = contract_problems(term, built=True)
            if problems:
                origin = registry.get("reward", kind).provenance
                raise PluginContractError(
                    f"reward term {kind!r} of plugin {origin.plugin!r} (distribution "
                    f"{origin.distribution} {origin.version}), as built for rewards[{index}]: "
                    + "; ".join(problems)
                )
            low, high = configured if configured is not None else term.default_range
            if not high > low:
                raise UsageError(
                    f"rewards[{index}] ({kind}): range must have low < high, got [{low}, {high}]"
                )
            name = kind if kinds.count(kind) == 1 else f"{kind}[{index}]"
            self.terms.append(WeightedTerm(name, term, weight, float(low), float(high)))

    def to(self, device: torch.device | str) -> CompositeReward:
        """Move every term that holds tensors (networks, model parameters) to ``device``."""
        for item in self.terms:
            mover = getattr(item.term, "to", None)
            if callable(mover):
                moved = mover(device)
                item.term = item.term if moved is None else moved
        return self

    def __call__(self, batch: RewardInputs) -> RewardResult:
        """Score a batch of generated videos (computed on the device of the videos)."""
        raw: dict[str, Tensor] = {}
        normalised: dict[str, Tensor] = {}
        total = torch.zeros(batch.generated.shape[0], dtype=torch.float64)
        total = total.to(batch.generated.device)
        invalid: list[tuple[str, str]] = []
        for item in self.terms:
            scores = item.term.score(batch).reshape(-1)
            raw[item.name] = scores
            normalised[item.name] = item.normalise(scores)
            total = total + item.weight * normalised[item.name]
            for index in torch.nonzero(~torch.isfinite(scores)).flatten().tolist():
                sample = _sample_id(batch, index)
                invalid.append((sample, item.name))
                warnings.warn(
                    f"reward term {item.name!r} is {float(scores[index])} for sample {sample}; "
                    "its composite reward is NaN and group statistics leave it out",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return RewardResult(terms=raw, normalised=normalised, total=total, invalid=invalid)


def contract_problems(declares: object, *, built: bool) -> list[str]:
    """What breaks the reward-term contract in what ``declares`` states: ``higher_is_better``
    (True or False) and ``default_range`` (finite ``(low, high)``, low < high), as sentences.

    At registration ``declares`` is the factory and only what it states as plain class
    attributes is checked, without building it (no model, no torch): a term whose direction or
    range depends on its config sets them when built, and the built term (``built``: both
    must be there) is checked when the composite reward builds it.
    """
    problems = []
    direction = _declared(declares, "higher_is_better", built)
    if direction is _ABSENT:
        if built:
            problems.append("it declares no higher_is_better (its direction: True or False)")
    elif not isinstance(direction, bool):
        problems.append(
            f"unknown direction higher_is_better={direction!r}: expected True (higher is "
            "better) or False (lower is better)"
        )
    bounds = _declared(declares, "default_range", built)
    if bounds is _ABSENT:
        if built:
            problems.append("it declares no default_range (the raw scores mapped to 0 and 1)")
    elif (problem := _range_problem(bounds)) is not None:
        problems.append(f"default_range {problem}")
    return problems


def _declared(declares: object, name: str, built: bool) -> Any:
    """The value ``declares`` states for ``name``; ``_ABSENT`` when it states none, or (for a
    factory) when only an instance would know (a property, an attribute set in ``__init__``)."""
    if built:
        return getattr(declares, name, _ABSENT)
    value = inspect.getattr_static(declares, name, _ABSENT)
    return _ABSENT if hasattr(type(value), "__get__") else value


def _range_problem(bounds: object) -> str | None:
    if (
        not isinstance(bounds, tuple | list)
        or len(bounds) != 2
        or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in bounds)
    ):
        return f"must be a pair (low, high) of numbers, got {bounds!r}"
    low, high = (float(b) for b in bounds)
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"must be finite, got ({low}, {high})"
    if not low < high:
        return f"must have low < high, got ({low}, {high})"
    return None


def _field(entry: BaseModel | dict[str, Any], name: str, *default: Any) -> Any:
    """A field of a validated entry or of a dict one (``default`` when absent)."""
    if isinstance(entry, BaseModel):
        return getattr(entry, name, *default)
    return entry.get(name, *default) if default else entry[name]


def _sample_id(batch: RewardInputs, index: int) -> str:
    ids = list(batch.sample_ids)
    return str(ids[index]) if index < len(ids) else f"#{index} of the batch"
