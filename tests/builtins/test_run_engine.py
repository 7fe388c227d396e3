"""``devis run``: the quickstart pipeline writes every promised file, with sane numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from devis_core.cli import main

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
SMALL = ["-o", "dataset.frames=6", "-o", "dataset.height=32", "-o", "dataset.width=48"]


def test_quickstart_run_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(QUICKSTART), "--quiet", "-o", f"output={out}", *SMALL]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "config.yaml",
        "source.mp4",
        "render.mp4",
        "mask.mp4",
        "generated.mp4",
        "target.mp4",
        "comparison.png",
        "metrics.json",
        "run.json",  # the lock (run.lock) is gone: released when the run ended
    }
    assert json.loads((out / "run.json").read_text())["state"] == "finished"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["generator_calls"] == 3
    assert 5 < metrics["psnr"] < 60 and 5 < metrics["psnr-nocc"] < 60
    assert 0 < metrics["ssim"] < 1 and 0 < metrics["ssim-nocc"] <= 1
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["accumulator"]["kind"] == "bta" and resolved["dataset"]["frames"] == 6
    assert {e["name"] for e in resolved["provenance"]} >= {"bta", "inpaint", "synthetic"}


def test_run_on_a_user_video_without_ground_truth(tmp_path):
    import numpy as np
    import torch

    from devis_core.toolkit.media import write_video

    write_video(tmp_path / "clip.mp4", torch.rand(6, 3, 32, 48), fps=8)
    np.save(tmp_path / "depth.npy", np.full((6, 32, 48), 2.0, dtype=np.float32))
    out = tmp_path / "run"
    code = main(
        [
            "run",
            str(QUICKSTART),
            "--quiet",
            "-o",
            f"output={out}",
            "-o",
            "dataset.kind=video",
            "-o",
            f"dataset.path={tmp_path / 'clip.mp4'}",
            "-o",
            f"dataset.depth={tmp_path / 'depth.npy'}",
            "-o",
            "dataset.frames=6",
            "-o",
            "dataset.phi=30",
        ]
    )
    assert code == 0
    assert not (out / "target.mp4").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert "psnr" not in metrics and metrics["generator_calls"] == 3


def test_run_with_a_sample_index_past_the_dataset_exits_2(tmp_path, capsys):
    code = main(
        ["run", str(QUICKSTART), "--quiet", "-o", f"output={tmp_path}", "-o", "run.sample=5"]
    )
    assert code == 2 and "run.sample=5" in capsys.readouterr().err


@pytest.mark.parametrize("override", ["dataset.kind=video", "accumulator.steps=0"])
def test_run_rejects_bad_config_before_running(tmp_path, capsys, override):
    code = main(
        ["run", str(QUICKSTART), "--quiet", "-o", f"output={tmp_path / 'x'}", "-o", override]
    )
    assert code == 2 and not (tmp_path / "x").exists()
