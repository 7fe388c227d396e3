"""Experiment trackers: ``report_to`` (TRL's name) of training, ``devis eval`` and the suites.

``tensorboard`` writes ``RUN/tensorboard/``; ``wandb`` starts a Weights & Biases run
(project ``$WANDB_PROJECT`` or ``devis``, the run's name, its resolved config, mode from
``$WANDB_MODE``). A tracker that is asked for but not installed is an error at the start of
the run naming the extra to install, never silently off: a long run that logs nowhere is
found out only when it is over. Only the main process opens trackers: the trainer's
:class:`~devis_core.training.logs.RunLog` sends them a training's numbers,
:mod:`devis_core.engines.reporting` an evaluation's per-sample scores and table. torch is
imported when a video is sent: the evaluation engine imports this module while plugins are
listed.
"""

from __future__ import annotations

import importlib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from devis_core.errors import UsageError
from devis_core.lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

TRACKERS = {"tensorboard": "torch.utils.tensorboard", "wandb": "wandb"}
"""Tracker name -> the module it needs (the pyproject extra has the tracker's name)."""
VIDEO_FPS = 8


class Tracker(Protocol):
    """Where a run's numbers (and a sample video now and then, and a result table at the end)
    go besides its own files."""

    def log(self, event: str, values: Mapping[str, float], step: int) -> None: ...

    def video(self, name: str, frames: torch.Tensor, step: int) -> None: ...

    def table(self, name: str, table: TrackedTable) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class TrackedTable:
    """A result table as trackers take it: ``columns`` (the labels first, then every number),
    ``rows`` (NaN as None), how many leading columns label a row, and the markdown text."""

    columns: list[str]
    rows: list[list[Any]]
    labels: int
    markdown: str

    def measures(self, row: list[Any]) -> dict[str, float]:
        """The finite numbers of ``row`` by column (the scalars a row gives a tracker)."""
        cells = zip(self.columns[self.labels :], row[self.labels :], strict=True)
        return {
            column: float(value)
            for column, value in cells
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        }

    def label(self, row: list[Any]) -> str:
        """The row's label cells as one name (``synthetic / BTA``)."""
        return " / ".join(str(cell) for cell in row[: self.labels])


def tracker_module(name: str, setting: str = "training.report_to") -> ModuleType:
    """The module tracker ``name`` needs; a UsageError naming the extra (and ``setting``, where
    it was asked for) when it is missing."""
    if name not in TRACKERS:
        raise UsageError(f"unknown tracker {name!r} in {setting}; known: {list(TRACKERS)}")
    try:
        return importlib.import_module(TRACKERS[name])
    except ImportError as error:
        raise UsageError(
            f"{setting} asks for {name!r}, but it is not installed ({error}); install it with: "
            f"pip install 'devis[{name}]', or remove {name!r} from {setting}"
        ) from None


def check_trackers(names: Sequence[str], setting: str = "training.report_to") -> None:
    """Fail before any work when a requested tracker cannot be imported."""
    for name in names:
        tracker_module(name, setting)


def open_trackers(
    names: Sequence[str], *, directory: Path, run_name: str | None, config: dict[str, Any]
) -> list[Tracker]:
    """One tracker per name, logging the run in ``directory``."""
    trackers: list[Tracker] = []
    for name in dict.fromkeys(names):
        module = tracker_module(name)
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(module, directory / "tensorboard"))
        else:
            trackers.append(WandbTracker(module, directory, run_name, config))
    return trackers


def video_frames(video: torch.Tensor) -> torch.Tensor:
    """``(T, 3, H, W)`` in ``[0, 1]`` -> uint8 on the CPU, what both trackers take."""
    return (video.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


class TensorBoardTracker:
    """Scalars as ``EVENT/NAME`` at the record's round or optimizer step."""

    def __init__(self, module: ModuleType, directory: Path):
        self.writer = module.SummaryWriter(str(directory))

    def log(self, event: str, values: Mapping[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{event}/{name}", value, step)

    def video(self, name: str, frames: torch.Tensor, step: int) -> None:
        # add_video takes (N, T, C, H, W); it needs moviepy to encode, and says so itself
        self.writer.add_video(name, video_frames(frames).unsqueeze(0), step, fps=VIDEO_FPS)

    def table(self, name: str, table: TrackedTable) -> None:
        """Each row's numbers as scalars ``NAME/ROW/COLUMN``, one HParams entry per row (its
        labels as hyperparameters, its means as metrics) and the markdown table as text."""
        for row in table.rows:
            label, measures = table.label(row), table.measures(row)
            for column, value in measures.items():
                self.writer.add_scalar(f"{name}/{label}/{column}", value, 0)
            labels = dict(zip(table.columns[: table.labels], map(str, row), strict=False))
            run = re.sub(r"[^A-Za-z0-9._-]+", "_", label)  # a folder of its own
            self.writer.add_hparams(
                labels, {f"{name}/{c}": v for c, v in measures.items()}, run_name=run
            )
        self.writer.add_text(name, table.markdown, 0)

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    """A wandb run; each event has its own x axis (``EVENT/index``: the round or step)."""

    def __init__(
        self, module: ModuleType, directory: Path, run_name: str | None, config: dict[str, Any]
    ):
        self.wandb = module
        self.run = module.init(
            project=os.environ.get("WANDB_PROJECT", "devis"),
            name=run_name,
            config=config,
            dir=str(directory),
            mode=os.environ.get("WANDB_MODE"),
        )
        self._axes: set[str] = set()

    def log(self, event: str, values: Mapping[str, float], step: int) -> None:
        axis = f"{event}/index"
        if event not in self._axes:
            self.run.define_metric(axis)
            self.run.define_metric(f"{event}/*", step_metric=axis)
            self._axes.add(event)
        self.run.log({axis: step, **{f"{event}/{name}": v for name, v in values.items()}})

    def video(self, name: str, frames: torch.Tensor, step: int) -> None:
        clip = self.wandb.Video(video_frames(frames).numpy(), fps=VIDEO_FPS, format="mp4")
        self.run.log({name: clip, "round/index": step})

    def table(self, name: str, table: TrackedTable) -> None:
        """The table as a ``wandb.Table``, every number in its own column."""
        self.run.log({name: self.wandb.Table(columns=table.columns, data=table.rows)})

    def close(self) -> None:
        self.run.finish()
