"""Experiment trackers of a training run: ``training.report_to`` (TRL's name).

``tensorboard`` writes ``RUN/tensorboard/``; ``wandb`` starts a Weights & Biases run
(project ``$WANDB_PROJECT`` or ``devis``, the config's name, the resolved config, mode from
``$WANDB_MODE``). A tracker that is asked for but not installed is an error at the start of
the run naming the extra to install, never silently off: a long run that logs nowhere is
found out only when it is over. Only the main process opens trackers (:class:`RunLog`).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import torch

from devis_core.errors import UsageError

TRACKERS = {"tensorboard": "torch.utils.tensorboard", "wandb": "wandb"}
"""Tracker name -> the module it needs (the pyproject extra has the tracker's name)."""
VIDEO_FPS = 8


class Tracker(Protocol):
    """Where a run's numbers (and a sample video now and then) go besides metrics.jsonl."""

    def log(self, event: str, values: Mapping[str, float], step: int) -> None: ...

    def video(self, name: str, frames: torch.Tensor, step: int) -> None: ...

    def close(self) -> None: ...


def tracker_module(name: str) -> ModuleType:
    """The module tracker ``name`` needs; a UsageError naming the extra when it is missing."""
    if name not in TRACKERS:
        raise UsageError(f"unknown tracker {name!r} in training.report_to; known: {list(TRACKERS)}")
    try:
        return importlib.import_module(TRACKERS[name])
    except ImportError as error:
        raise UsageError(
            f"training.report_to asks for {name!r}, but it is not installed ({error}); install "
            f"it with: pip install 'devis[{name}]', or remove {name!r} from training.report_to"
        ) from None


def check_trackers(names: Sequence[str]) -> None:
    """Fail before any work when a requested tracker cannot be imported."""
    for name in names:
        tracker_module(name)


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

    def close(self) -> None:
        self.run.finish()
