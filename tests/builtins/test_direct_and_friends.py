"""Backbone ``passthrough``, depth ``ground-truth``, accumulator ``direct``, suite ``variants``."""

from __future__ import annotations

import textwrap

import pytest
import torch

from devis_core.errors import UsageError
from devis_core.toolkit.geometry import forward_warp
from devis_core.types import Conditions
from devis_plugins.synthetic import SyntheticConfig, SyntheticDataset


@pytest.fixture(scope="module")
def sample():
    return SyntheticDataset(SyntheticConfig(num_samples=1, frames=4, height=32, width=48))[0]


def test_passthrough_keeps_visible_pixels_and_fills_holes(registry):
    backbone = registry.build("backbone", {"kind": "passthrough", "fill": 0.25})
    render = torch.rand(2, 3, 4, 5)
    mask = torch.rand(2, 4, 5) > 0.5
    video = backbone.generate(Conditions(render, mask, render))
    keep = mask.unsqueeze(1).expand_as(render)
    assert torch.equal(video[keep], render[keep])
    assert torch.all(video[~keep] == 0.25)


def test_ground_truth_depth_serves_the_source_only(registry, sample):
    depth = registry.build("depth", {"kind": "ground-truth"})
    assert depth.estimate(sample.source, sample) is sample.source_depth
    assert depth.estimate(sample.source.clone(), sample) is sample.source_depth
    with pytest.raises(UsageError, match="generated"):
        depth.estimate(sample.target, sample)
    with pytest.raises(UsageError, match="ships depth"):
        depth.estimate(sample.source)


def test_direct_renders_the_whole_motion_in_one_call(registry, sample):
    accumulator = registry.build("accumulator", {"kind": "direct"})
    backbone = registry.build("backbone", {"kind": "passthrough"})
    depth = registry.build("depth", {"kind": "ground-truth"})
    result = accumulator.run(sample, backbone, depth)
    render, mask = forward_warp(
        sample.source,
        sample.source_depth,
        sample.K,
        sample.source_w2c,
        sample.K,
        sample.target_w2c,
    )
    assert result.generator_calls == 1 and result.intermediate == []
    assert torch.equal(result.conditions.render, render) and torch.equal(
        result.conditions.mask, mask
    )
    assert result.conditions.reference is sample.source
    assert torch.equal(result.video, render * mask.unsqueeze(1))
    assert 0.05 < float(mask.float().mean()) < 0.95  # an extreme orbit leaves holes


def test_two_metrics_of_one_kind_are_both_reported(registry, sample):
    from devis_core.config import validate_config
    from devis_core.pipeline import Pipeline

    config = validate_config(
        {
            "device": "cpu",
            "dataset": {
                "kind": "synthetic",
                "num_samples": 1,
                "frames": 4,
                "height": 32,
                "width": 48,
            },
            "depth": {"kind": "ground-truth"},
            "accumulator": {"kind": "direct"},
            "backbone": {"kind": "passthrough"},
            "metrics": ["psnr", "psnr"],
        },
        registry,
    )
    scores = Pipeline(config, registry).score(sample, sample.target)
    assert set(scores) == {"psnr", "psnr#2"} and scores["psnr"] == scores["psnr#2"]


def test_variants_suite_runs_and_tabulates(capsys, tmp_path):
    from devis_core.cli import main

    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        textwrap.dedent("""
        device: cpu
        dataset: {kind: synthetic, num_samples: 1, frames: 4, height: 32, width: 48}
        depth: {kind: ground-truth}
        accumulator: {kind: direct}
        backbone: {kind: passthrough, fill: 0.0}
        metrics: [psnr, psnr-nocc]
    """)
    )
    out = tmp_path / "out"
    code = main(
        [
            "ablate",
            "variants",
            "--quiet",
            "--output",
            str(out),
            "-o",
            f"pipeline={pipeline}",
            "-o",
            "variants={black: [], white: [backbone.fill=1.0]}",
        ]
    )
    assert code == 0
    import json

    table = json.loads((out / "table.json").read_text())
    rows = {row["variant"]: row for row in table["rows"]}
    assert table["columns"] == ["variant", "psnr", "psnr-nocc", "generator calls", "samples"]
    # fill only touches holes: inside the visible mask both variants are identical
    assert rows["black"]["psnr-nocc"] == pytest.approx(rows["white"]["psnr-nocc"])
    assert rows["black"]["psnr"] != pytest.approx(rows["white"]["psnr"])
    assert (out / "table.md").read_text().startswith("### Variants of pipeline.yaml")
    statistics = ["std", "n", "ci95 low", "ci95 high", "p"]
    header = ["variant"]
    for metric in ("psnr", "psnr-nocc"):
        header += [metric, *(f"{metric} {s}" for s in statistics)]
    header += ["generator calls", "samples"]
    assert (out / "table.csv").read_text().splitlines()[0] == ",".join(header)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [(r["variant"], r["psnr"]) for r in samples] == [
        ("black", rows["black"]["psnr"]), ("white", rows["white"]["psnr"])
    ]  # fmt: skip
    assert "suite: variants" in (out / "suite.yaml").read_text()
