"""training.report_to: trackers that are missing stop the run at its start naming the extra;
fake tracker modules (no network, no install) record what a tiny run sends them."""

from __future__ import annotations

import contextlib
import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from devis_core.config import validate_config
from devis_core.distributed import World
from devis_core.engines.train import train_pipeline
from devis_core.errors import ConfigError, UsageError
from devis_core.plugins import load_registry
from devis_core.training import Trainer
from tests.training.conftest import training_data

# accelerate checks once, when imported, whether wandb is installed: not the fake one
with contextlib.suppress(ImportError):
    import accelerate  # noqa: F401

ONE_ROUND = {"warm_start": {"steps": 0}, "rounds": 1, "log_videos_every": 1}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


class FakeRun:
    def __init__(self) -> None:
        self.logged: list[dict[str, Any]] = []
        self.metrics: list[tuple[str, dict[str, Any]]] = []
        self.finished = False

    def define_metric(self, name: str, **kwargs: Any) -> None:
        self.metrics.append((name, kwargs))

    def log(self, data: dict[str, Any]) -> None:
        self.logged.append(dict(data))

    def finish(self) -> None:
        self.finished = True


class FakeVideo:
    def __init__(self, data: Any, **kwargs: Any) -> None:
        self.data, self.kwargs = data, kwargs


class FakeTable:
    def __init__(self, columns: list[str], data: list[list[Any]]) -> None:
        self.columns, self.data = columns, data


def fake_wandb() -> types.ModuleType:
    module = types.ModuleType("wandb")
    module.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # find_spec asks for it
    module.runs = []  # type: ignore[attr-defined]
    module.init_kwargs = []  # type: ignore[attr-defined]

    def init(**kwargs: Any) -> FakeRun:
        module.init_kwargs.append(kwargs)  # type: ignore[attr-defined]
        run = FakeRun()
        module.runs.append(run)  # type: ignore[attr-defined]
        return run

    module.init = init  # type: ignore[attr-defined]
    module.Video = FakeVideo  # type: ignore[attr-defined]
    module.Table = FakeTable  # type: ignore[attr-defined]
    return module


class FakeWriter:
    instances: list[FakeWriter] = []

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.scalars: dict[str, list[tuple[float, int]]] = {}
        self.videos: list[tuple[str, torch.Tensor, int]] = []
        self.texts: list[tuple[str, str, int]] = []
        self.hparams: list[tuple[dict, dict, str]] = []
        self.closed = False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.setdefault(tag, []).append((value, step))

    def add_video(self, tag: str, video: torch.Tensor, step: int, fps: int) -> None:
        self.videos.append((tag, video, step))

    def add_text(self, tag: str, text: str, step: int) -> None:
        self.texts.append((tag, text, step))

    def add_hparams(self, hparams: dict, metrics: dict, run_name: str) -> None:
        self.hparams.append((hparams, metrics, run_name))

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "tracker,module", [("wandb", "wandb"), ("tensorboard", "torch.utils.tensorboard")]
)
def test_a_missing_tracker_is_an_error_naming_the_extra_before_any_work(
    tmp_path, registry, monkeypatch, tracker, module
):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    data = training_data(str(tmp_path / "run"), training={"report_to": [tracker]})
    config = validate_config(data, registry)
    with pytest.raises(UsageError, match=rf"pip install 'devis\[{tracker}\]'"):
        Trainer(config, registry, world=World(), resume=None, progress=False)
    assert not (tmp_path / "run").exists()  # nothing was written


def test_report_to_defaults_to_none_and_rejects_unknown_trackers(tmp_path, registry):
    config = validate_config(training_data(str(tmp_path / "run")), registry)
    assert config.training.report_to == [] and config.training.log_videos_every == 0
    with pytest.raises(ConfigError, match="report_to"):
        validate_config(training_data("x", training={"report_to": ["mlflow"]}), registry)
    with pytest.raises(ConfigError, match="tensorboard"):  # the old key is gone
        validate_config(training_data("x", training={"tensorboard": True}), registry)


def test_a_tiny_run_reports_rewards_kl_and_learning_rate_to_wandb(tmp_path, registry, monkeypatch):
    fake = fake_wandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "devis-tests")
    data = training_data(str(tmp_path / "run"), training={**ONE_ROUND, "report_to": ["wandb"]})
    run = train_pipeline(validate_config(data, registry), registry, progress=False)

    (kwargs,) = fake.init_kwargs
    assert kwargs["project"] == "devis-tests" and kwargs["mode"] == "offline"
    assert kwargs["name"] == "train-test" and Path(kwargs["dir"]) == run
    assert kwargs["config"]["training"]["report_to"] == ["wandb"]
    assert kwargs["config"]["algorithm"]["kind"] == "grpo"
    (wandb_run,) = fake.runs
    assert wandb_run.finished
    logged: dict[str, Any] = {}
    for entry in wandb_run.logged:
        logged.update(entry)
    for name in ("psnr-visible", "ssim-visible"):
        assert logged[f"round/reward/{name}_mean"] == logged[f"round/reward/{name}_mean"]
        assert logged[f"round/reward/{name}_std"] >= 0
    for key in (
        "round/kl_mean",
        "round/clip_fraction_mean",
        "round/advantage_abs_mean",
        "round/seconds_sampling",
        "round/seconds_checkpoint",
        "step/kl",
        "step/clip_fraction",
    ):
        assert key in logged, key
    assert logged["round/learning_rate"] == pytest.approx(0.05)
    assert logged["step/learning_rate"] == pytest.approx(0.05)
    assert ("round/*", {"step_metric": "round/index"}) in wandb_run.metrics
    videos = [e for e in wandb_run.logged if "round/sample_video" in e]
    assert len(videos) == 1 and videos[0]["round/index"] == 0
    clip = videos[0]["round/sample_video"]
    assert isinstance(clip, FakeVideo) and clip.data.dtype.name == "uint8"
    assert clip.data.shape == (3, 3, 16, 24)  # (T, C, H, W) of the tiny config's videos


def fake_tensorboard() -> types.ModuleType:
    """A ``torch.utils.tensorboard`` whose SummaryWriter is :class:`FakeWriter` (its
    instances cleared)."""
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.__spec__ = importlib.machinery.ModuleSpec("torch.utils.tensorboard", None)
    fake.SummaryWriter = FakeWriter  # type: ignore[attr-defined]
    FakeWriter.instances.clear()
    return fake


def test_a_tiny_run_writes_scalars_and_a_video_to_tensorboard(tmp_path, registry, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake_tensorboard())
    data = training_data(
        str(tmp_path / "run"), training={**ONE_ROUND, "rounds": 2, "log_videos_every": 2}
    )
    data["training"]["report_to"] = ["tensorboard"]
    run = train_pipeline(validate_config(data, registry), registry, progress=False)
    (writer,) = FakeWriter.instances
    assert Path(writer.directory) == run / "tensorboard" and writer.closed
    assert [step for _, step in writer.scalars["round/reward/psnr-visible_std"]] == [0, 1]
    assert "round/kl_mean" in writer.scalars and "step/learning_rate" in writer.scalars
    # every 2 rounds: round 0 only, as (N, T, C, H, W) uint8
    assert [(tag, step) for tag, _, step in writer.videos] == [("round/sample_video", 0)]
    assert writer.videos[0][1].shape == (1, 3, 3, 16, 24)
    assert writer.videos[0][1].dtype == torch.uint8
