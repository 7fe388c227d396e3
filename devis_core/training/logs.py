"""What a training run records: ``metrics.jsonl``, ``reward_curve.png`` and the trackers of
``training.report_to`` (:mod:`~devis_core.training.tracking`: TensorBoard, wandb).

Only the main process writes. ``metrics.jsonl`` gets one record per warm-start step, per
optimizer step and per round (docs/training.md, *Logs*); a resumed run first drops the records
of the round it was killed in.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devis_core.toolkit.files import atomic_path, atomic_write_text
from devis_core.toolkit.results import append_record, read_records
from devis_core.training.sampling import Group, RoundRewards
from devis_core.training.tracking import Tracker, open_trackers

METRICS = "metrics.jsonl"
REWARD_CURVE = "reward_curve.png"
_BOARD_EVENTS = ("round", "step", "warm_start")


class RunLog:
    """The logs of the run in ``directory``; a no-op on processes other than the main one."""

    def __init__(self, directory: Path, *, main: bool):
        self.directory, self.main = directory, main
        self.history: list[dict[str, Any]] = []
        """The round records so far (what the reward curve plots)."""
        self._trackers: list[Tracker] = []

    def start(
        self,
        *,
        resumed: bool,
        next_round: int,
        report_to: Sequence[str] = (),
        run_name: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        """Begin ``metrics.jsonl``: a resumed run keeps the records of rounds before
        ``next_round`` only; open the trackers of ``report_to`` (``config``: the resolved
        config they record)."""
        if not self.main:
            return
        records = read_records(self.directory / METRICS) if resumed else []
        kept = [r for r in records if r.get("round", -1) < next_round]
        atomic_write_text(self.directory / METRICS, "".join(json.dumps(r) + "\n" for r in kept))
        self.history = [r for r in kept if r.get("event") == "round"]
        self._trackers = open_trackers(
            report_to, directory=self.directory, run_name=run_name, config=config or {}
        )

    def write(self, record: dict[str, Any], board_step: int | None = None) -> None:
        """Append ``record``; its numbers also go to the trackers, at ``board_step`` if given,
        else at its round or step."""
        if not self.main:
            return
        append_record(self.directory / METRICS, record)
        if not self._trackers or record.get("event") not in _BOARD_EVENTS:
            return
        if board_step is None:
            board_step = record.get("round", record.get("step", 0))
        values = {
            name: float(value)
            for name, value in record.items()
            if isinstance(value, (int, float))
            and not isinstance(value, bool)
            and name not in ("round", "step", "epoch")
        }
        for tracker in self._trackers:
            tracker.log(record["event"], values, int(board_step))

    def write_video(self, round_index: int, video: torch.Tensor) -> None:
        """Send one generated video ``(T, 3, H, W)`` in ``[0, 1]`` of the round to the
        trackers (``metrics.jsonl`` holds numbers only)."""
        if not self.main:
            return
        for tracker in self._trackers:
            tracker.video("round/sample_video", video, round_index)

    def write_round(self, record: dict[str, Any]) -> None:
        """Append a round's record and redraw the reward curve."""
        self.write(record)
        if self.main:
            self.history.append(record)
            plot_rewards(self.history, self.directory / REWARD_CURVE)

    @property
    def tracking(self) -> bool:
        """Whether any tracker is open (sample videos are only prepared then)."""
        return bool(self._trackers)

    def close(self) -> None:
        for tracker in self._trackers:
            tracker.close()
        self._trackers = []


def round_record(round_index: int, groups: Sequence[Group], scores: RoundRewards) -> dict[str, Any]:
    """The statistics of a round's samples (rewards of every process, this one's groups)."""
    rewards, group_ids, advantages = scores.rewards, scores.group_ids, scores.advantages
    finite = torch.isfinite(rewards)
    record: dict[str, Any] = {"event": "round", "round": round_index}
    record.update(_mean_std("reward", rewards[finite]))
    for name, values in scores.terms.items():
        record.update(_mean_std(f"reward/{name}", values[torch.isfinite(values)]))
    record.update(_mean_std("advantage", advantages))
    record["advantage_abs_mean"] = float(advantages.abs().mean())
    record["rewards_non_finite"] = int((~finite).sum())
    record["rewards_non_finite_fraction"] = float((~finite).sum()) / max(1, rewards.numel())
    degenerate = 0
    for group in torch.unique(group_ids):
        values = rewards[(group_ids == group) & finite]
        degenerate += int(values.numel() < 2 or bool((values == values[0]).all()))
    record["groups_equal_rewards"] = degenerate
    steps = [member.steps for group in groups for member in group.members]
    record["accumulation_steps_mean"] = statistics.fmean(steps) if steps else math.nan
    return record


def _mean_std(name: str, values: torch.Tensor) -> dict[str, float]:
    if values.numel() == 0:
        return {f"{name}_mean": math.nan, f"{name}_std": math.nan}
    std = float(values.std()) if values.numel() > 1 else 0.0
    return {f"{name}_mean": float(values.mean()), f"{name}_std": std}


def plot_rewards(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Mean composite reward per round with a one-std band (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [record["round"] for record in history]
    means = np.array([record["reward_mean"] for record in history], dtype=float)
    stds = np.array([record["reward_std"] for record in history], dtype=float)
    figure, axes = plt.subplots(figsize=(5, 3.2))
    axes.plot(rounds, means, marker="o")
    axes.fill_between(rounds, means - stds, means + stds, alpha=0.25)
    axes.set_xlabel("round")
    axes.set_ylabel("composite reward")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as staging:
        figure.savefig(staging, dpi=100)
    plt.close(figure)
