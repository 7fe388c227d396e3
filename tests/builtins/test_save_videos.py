"""``save_videos``: lossless files round-trip pixels exactly, mp4 files decode to every frame,
and eval, the suites and ``devis run`` keep each video where the docs say; the suite's
samples.jsonl, table.tex and statistics are those of its samples."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
import yaml
from scipy import stats

from devis_core.cli import main
from devis_core.pipeline import Pipeline
from devis_core.toolkit.media import read_video, write_video
from devis_core.toolkit.results import read_records
from devis_plugins.paper_suites.assets import TOY_DATASET

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"frames": 6, "height": 32, "width": 48}
SMALL_OPTIONS = [x for k, v in SMALL.items() for x in ("-o", f"dataset.{k}={v}")]


def _video(frames: int = 5, height: int = 33, width: int = 47) -> torch.Tensor:
    """Noise with values outside [0, 1] too (clamped when written)."""
    generator = torch.Generator().manual_seed(7)
    return torch.rand(frames, 3, height, width, generator=generator) * 1.2 - 0.1


def _as_bytes(video: torch.Tensor) -> torch.Tensor:
    return torch.round(video.clamp(0, 1) * 255).to(torch.uint8)


def test_a_lossless_video_reads_back_equal_to_its_8_bit_pixels(tmp_path):
    video = _video()
    path = write_video(tmp_path / "v.mkv", video, fps=8, lossless=True)
    back = read_video(path)
    assert back.shape == video.shape  # odd sizes kept: no padding
    assert torch.equal(_as_bytes(back), _as_bytes(video))


def test_an_mp4_decodes_to_every_frame_but_not_exactly(tmp_path):
    y, x = torch.meshgrid(torch.linspace(0, 1, 33), torch.linspace(0, 1, 47), indexing="ij")
    video = torch.stack([torch.stack([x, y, (x + y) / 2 * (1 - t / 10)]) for t in range(5)])
    back = read_video(write_video(tmp_path / "v.mp4", video, fps=8))
    assert back.shape == (5, 3, 34, 48)  # H.264 needs even sizes: one edge row/column added
    cropped = _as_bytes(back[..., :33, :47])
    assert not torch.equal(cropped, _as_bytes(video))  # lossy, which is why lossless exists
    assert (cropped.float() - _as_bytes(video).float()).abs().mean() < 4  # the same picture


def _eval_config(tmp_path: Path, save_videos: str) -> Path:
    config = {
        "device": "cpu",
        "output": str(tmp_path / "run"),
        "dataset": {"kind": "synthetic", "num_samples": 2, "frames": 3, "height": 32, "width": 48},
        "depth": {"kind": "ground-truth"},
        "accumulator": {"kind": "direct"},
        "backbone": {"kind": "passthrough"},
        "metrics": ["psnr"],
        "evaluation": {
            "methods": {"grey (0.5)": ["backbone.fill=0.5"], "black": []},
            "save_videos": save_videos,
        },
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_eval_keeps_each_video_and_remakes_only_a_missing_one(tmp_path, monkeypatch):
    config = _eval_config(tmp_path, "mp4")
    assert main(["eval", str(config), "-q"]) == 0
    videos = tmp_path / "run" / "videos"
    expected = {
        f"{method}/synthetic-0-000{i}.mp4" for method in ("grey-0-5", "black") for i in (0, 1)
    }
    assert {str(p.relative_to(videos)) for p in videos.rglob("*.mp4")} == expected
    assert read_video(videos / "black" / "synthetic-0-0001.mp4").shape == (3, 3, 32, 48)

    calls = []
    synthesize = Pipeline.synthesize
    monkeypatch.setattr(
        Pipeline, "synthesize", lambda self, s, *a, **k: calls.append(s.sample_id) or
        synthesize(self, s, *a, **k),
    )  # fmt: skip
    (videos / "grey-0-5" / "synthetic-0-0001.mp4").unlink()
    assert main(["eval", str(config), "-q"]) == 0
    assert calls == ["synthetic-0-0001"]  # that method's sample only; its record is rewritten
    assert (videos / "grey-0-5" / "synthetic-0-0001.mp4").is_file()
    samples = read_records(tmp_path / "run" / "samples.jsonl")
    assert [(r["method"], r["index"]) for r in samples] == [
        ("grey (0.5)", 0), ("grey (0.5)", 1), ("black", 0), ("black", 1)
    ]  # fmt: skip


def test_accumulation_suite_with_lossless_videos_writes_samples_table_tex_and_videos(
    tmp_path, registry
):
    """The issue's check: `devis ablate accumulation -o save_videos=lossless`, shrunk."""
    out = tmp_path / "suite"
    code = main(
        [
            "ablate", "accumulation", "--quiet", "--device", "cpu", "--output", str(out),
            *SMALL_OPTIONS,
            "-o", "samples=3", "-o", "strategies=[Baseline (direct), RVA]",
            "-o", "save_videos=lossless",
        ]
    )  # fmt: skip
    assert code == 0
    samples = read_records(out / "samples.jsonl")
    assert [(r["strategy"], r["index"]) for r in samples] == [
        (strategy, i) for strategy in ("Baseline (direct)", "RVA") for i in range(3)
    ]
    assert all({"psnr", "ssim", "psnr-nocc", "ssim-nocc"} <= set(r) for r in samples)

    table = json.loads((out / "table.json").read_text())
    rows = {row["strategy"]: row for row in table["rows"]}
    base = [r["psnr"] for r in samples if r["strategy"] == "Baseline (direct)"]
    rva = [r["psnr"] for r in samples if r["strategy"] == "RVA"]
    assert rows["RVA"]["psnr"] == pytest.approx(statistics.fmean(rva))
    assert rows["RVA"]["psnr std"] == pytest.approx(statistics.stdev(rva))
    assert rows["RVA"]["psnr n"] == 3 and rows["RVA"]["samples"] == 3
    low, high = stats.t.interval(0.95, 2, loc=statistics.fmean(rva), scale=stats.sem(rva))
    assert (rows["RVA"]["psnr ci95 low"], rows["RVA"]["psnr ci95 high"]) == pytest.approx(
        (low, high)
    )
    assert rows["RVA"]["psnr p"] == pytest.approx(stats.ttest_rel(rva, base).pvalue)
    assert table["higher_is_better"]["psnr"] is True

    tex = (out / "table.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert f"{statistics.fmean(rva):.2f} \\pm {statistics.stdev(rva):.2f}" in tex
    assert "± " in (out / "table.md").read_text()

    videos = sorted(p.relative_to(out / "videos") for p in (out / "videos").rglob("*"))
    methods = ("baseline-direct", "rva")
    assert [str(p) for p in videos if p.suffix] == [
        f"{method}/synthetic-0-000{i}.mkv" for method in methods for i in range(3)
    ]
    # the file is the scored video: its PSNR, recomputed, is the record's (to 8-bit rounding)
    dataset = registry.build("dataset", {**TOY_DATASET, **SMALL, "num_samples": 3})
    psnr = registry.build("metric", {"kind": "psnr"})
    video = read_video(out / "videos" / "rva" / "synthetic-0-0001.mkv")
    recomputed = float(psnr.compute(video, dataset[1].target).mean())
    assert recomputed == pytest.approx(rva[1], abs=0.01)


def _run_quickstart(tmp_path: Path, save_videos: str) -> Path:
    out = tmp_path / save_videos
    argv = ["run", str(ROOT / "configs" / "quickstart.yaml"), "--quiet", *SMALL_OPTIONS]
    assert main([*argv, "-o", f"output={out}", "-o", f"run.save_videos={save_videos}"]) == 0
    return out


def test_run_writes_lossless_videos_or_none(tmp_path):
    lossless = _run_quickstart(tmp_path, "lossless")
    names = {p.name for p in lossless.iterdir()}
    assert {"source.mkv", "render.mkv", "mask.mkv", "generated.mkv", "target.mkv"} <= names
    assert not any(name.endswith(".mp4") for name in names)
    assert read_video(lossless / "generated.mkv").shape == (6, 3, 32, 48)
    mask = read_video(lossless / "mask.mkv")
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}  # exact black and white

    nothing = _run_quickstart(tmp_path, "none")
    assert not [p for p in nothing.iterdir() if p.suffix in (".mp4", ".mkv")]
    metrics = json.loads((nothing / "metrics.json").read_text())
    assert math.isfinite(metrics["psnr"]) and (nothing / "comparison.png").is_file()
