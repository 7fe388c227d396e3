"""The component slots of a DEVIS pipeline.

A slot is one kind of replaceable part (a backbone, a depth estimator, ...). Each slot has one
register hook in :mod:`devis_core.hookspecs` and, where pipelines use it, one key in the YAML
config. This table is the single place that ties the three together.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    """One kind of component: its name, its register hook and its key in a pipeline config."""

    name: str
    hook: str
    config_key: str | None
    many: bool = False
    """True when the config holds a list of entries (rewards, metrics) rather than one."""

    summary: str = ""


SLOTS: tuple[Slot, ...] = (
    Slot("backbone", "devis_register_backbones", "backbone", summary="video generators"),
    Slot("depth", "devis_register_depth_estimators", "depth", summary="depth estimators"),
    Slot(
        "accumulator",
        "devis_register_accumulators",
        "accumulator",
        summary="accumulation strategies (ADEVIS)",
    ),
    Slot("reward", "devis_register_reward_terms", "rewards", many=True, summary="reward terms"),
    Slot("algorithm", "devis_register_algorithms", "algorithm", summary="training algorithms"),
    Slot("dataset", "devis_register_datasets", "dataset", summary="datasets"),
    Slot("metric", "devis_register_metrics", "metrics", many=True, summary="evaluation metrics"),
    Slot("suite", "devis_register_suites", None, summary="ablation suites"),
)

SLOT_NAMES: tuple[str, ...] = tuple(slot.name for slot in SLOTS)


def get_slot(name: str) -> Slot:
    """Look a slot up by name (``backbone``, ``depth``, ...)."""
    for slot in SLOTS:
        if slot.name == name:
            return slot
    raise KeyError(f"unknown slot {name!r}; slots are: {', '.join(SLOT_NAMES)}")
