"""``main`` (each dataset) and ``accumulation`` at paper scale, dry run: real-format data.

Kubric-4D and iPhone are evaluated with DepthCrafter's relative depth aligned to the dataset's
depth; DL3DV with DepthSplat's exported depth, which exists for the source only (BTA carries
render depth through its steps). None of these samples has an orbit motion or a pivot depth:
every accumulating strategy moves by fractions of an arc about the scene's pivot.
"""

from __future__ import annotations

import json
import logging
import math

import pytest

from devis_plugins.paper_suites.assets import TABLE1_METRICS
from tests.paper_scale.conftest import (
    PaperData,
    Training,
    assert_dry_run_table,
    assert_finite,
    run_dry,
)

pytestmark = pytest.mark.paper_scale

MEASURED = ["psnr", "ssim", "psnr-nocc", "ssim-nocc", "temporal-flicker"]
"""Table 1's weight-free metrics."""

UNMEASURED = ["lpips", "motion-smoothness", "aesthetic-quality", "imaging-quality"]
"""Table 1's network metrics: no weights in a dry run here, so NaN cells and a note each."""

LABELS = {"kubric4d": "Kubric-4D", "iphone": "iPhone", "dl3dv": "DL3DV"}

ALIGNED = {"kubric4d": True, "iphone": True, "dl3dv": False}
"""Whether the dataset's depth is DepthCrafter's, aligned to the cameras' units (DepthSplat's
exported depth is in them already)."""


def alignment_fits(records: list[logging.LogRecord]) -> list[str]:
    """The ids of the videos whose estimated depth the pipeline fitted to camera units."""
    return [r.args[0] for r in records if r.getMessage().startswith("depth of ")]


@pytest.mark.parametrize("dataset", list(LABELS))
def test_main_suite_on(
    dataset, suite_registry, paper_data: PaperData, training: Training, tmp_path, caplog
):
    lora = training.run("devis-grpo") / "lora.safetensors"
    overrides = [
        *paper_data.overrides(),
        f"datasets=[{dataset}]",
        "samples=1",
        f"lora={lora}",
        f"lora_backbone={json.dumps(training.backbone)}",
    ]
    with caplog.at_level(logging.INFO, logger="devis_core.pipeline"):
        result = run_dry(suite_registry, "main", overrides, tmp_path)
    assert_dry_run_table(result)
    assert result.columns[2:11] == TABLE1_METRICS
    rows = {row["method"]: row for row in result.rows}
    calls = {"One-step baseline": 1, "ADEVIS-BTA (K=3)": 3, "DEVIS-GRPO (one step)": 1}
    assert list(rows) == list(calls)
    for method, row in rows.items():
        assert row["dataset"] == LABELS[dataset] and row["samples"] == 1
        assert row["generator calls"] == calls[method]
        assert_finite(row, [*MEASURED, "seconds"])
        assert all(math.isnan(row[metric]) for metric in UNMEASURED)
    for metric in UNMEASURED:
        assert any(note.startswith(f"{metric}: not measured") for note in result.notes)

    fits = alignment_fits(caplog.records)
    if ALIGNED[dataset]:
        # each method's source, and BTA's generated videos V_1 and V_2 (its steps 2 and 3)
        assert any(fit.endswith("/step2") for fit in fits), fits
        assert all(fit.split("/")[0].startswith(dataset) for fit in fits)
    else:
        assert fits == []
    table = json.loads((tmp_path / "table.json").read_text())
    assert [row["method"] for row in table["rows"]] == list(calls)


def test_accumulation_suite_on_kubric4d_without_and_with_the_lora(
    suite_registry, paper_data: PaperData, training: Training, tmp_path
):
    warm_start = training.run("devis-grpo") / "warm_start.safetensors"
    overrides = [
        *paper_data.overrides(),
        "samples=1",
        "steps=2",
        f"lora={warm_start}",
        f"lora_backbone={json.dumps(training.backbone)}",
    ]
    result = run_dry(suite_registry, "accumulation", overrides, tmp_path)
    assert_dry_run_table(result)
    assert "1 scenes" in result.title
    rows = {row["strategy"]: row for row in result.rows}
    strategies = ["Baseline (direct)", "RFA", "RVA", "ORA-cc", "ORA-dt", "BTA"]
    assert list(rows) == [f"{s} {half}" for half in ("w/o LoRA", "w LoRA") for s in strategies]
    for name, row in rows.items():
        assert row["samples"] == 1
        assert row["generator calls"] == (1 if name.startswith("Baseline") else 2)
        assert_finite(row, ["psnr", "ssim", "psnr-nocc", "ssim-nocc", "seconds"])
        assert math.isnan(row["lpips"])
    for strategy in strategies:
        assert rows[f"{strategy} w/o LoRA"]["psnr"] != rows[f"{strategy} w LoRA"]["psnr"]
