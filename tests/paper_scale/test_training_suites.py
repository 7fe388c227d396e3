"""``grpo-vs-vanilla`` and ``paradigms`` at paper scale, dry run: real-format Kubric-4D.

The training config is the user's (here the tiny one moved onto Kubric-4D); the suite puts the
paper's schedule on it, then the seconds-long budget of ``TRAINING_BUDGET``. DEVIS-GRPO draws
its groups by accumulation on real samples (increments as fractions of an arc) and every
method is scored on a held-out Kubric-4D trajectory.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from devis_core.engines.paradigms import HELD_OUT_RECORDS, WARM_START
from devis_core.toolkit.results import read_records
from devis_core.training import FINAL_LORA, METRICS, WARM_START_LORA
from devis_plugins.paper_suites.assets import DRY_RUN_BACKBONE
from tests.paper_scale.conftest import (
    TRAINING_BUDGET,
    PaperData,
    Training,
    assert_dry_run_table,
    assert_finite,
    run_dry,
)

pytestmark = pytest.mark.paper_scale

SCORES = ["reward", "psnr", "ssim", "psnr-nocc", "ssim-nocc"]


def trained_config(run: Path) -> dict:
    """The resolved config a finished run trained with (its ``config.yaml``)."""
    return yaml.safe_load((run / "config.yaml").read_text())


def held_out_records(run: Path, method: str) -> list[dict]:
    """The held-out scenes a row of ``run`` was scored on."""
    return [r for r in read_records(run / HELD_OUT_RECORDS) if r["method"] == method]


def assert_trained_one_round(run: Path) -> dict:
    """The run logged one round of finite rewards and wrote a non-empty LoRA; returns its
    round record."""
    rounds = [r for r in read_records(run / METRICS) if r.get("event") == "round"]
    assert len(rounds) == 1 and rounds[0]["round"] == 0
    assert math.isfinite(rounds[0]["reward_mean"]) and rounds[0]["rewards_non_finite"] == 0
    assert load_file(run / FINAL_LORA), f"{run / FINAL_LORA} holds no tensor"
    return rounds[0]


def epochs(run: Path) -> list[int]:
    """The epoch of each optimizer step of a GRPO run's round."""
    return [r["epoch"] for r in read_records(run / METRICS) if r.get("event") == "step"]


def test_grpo_vs_vanilla_trains_on_kubric4d_and_scores_held_out(training: Training):
    result = training.result
    assert_dry_run_table(result)
    rows = {row["method"]: row for row in result.rows}
    assert list(rows) == ["warm start", "Vanilla-GRPO", "DEVIS-GRPO"]
    for row in rows.values():
        assert_finite(row, [*SCORES, "pixel-diversity"])
        assert math.isnan(row["lpips"]) and math.isnan(row["clip-diversity"])
    for method in ("Vanilla-GRPO", "DEVIS-GRPO"):
        assert rows[method]["seconds / iteration"] > 0 and rows[method]["train minutes"] > 0
    assert "1 rounds x 1 groups x 2 samples = 2 videos" in result.notes[0]
    assert "Scored on 1 held-out scenes" in result.notes[1]

    devis = training.run("devis-grpo")
    record = assert_trained_one_round(devis)
    assert 2 <= record["accumulation_steps_mean"] <= 3  # K_i drawn in [k_min, k_max]
    assert load_file(devis / WARM_START_LORA)
    warm = [r for r in read_records(devis / METRICS) if r.get("event") == "warm_start_done"]
    assert len(warm) == 1
    vanilla = assert_trained_one_round(training.run("vanilla-grpo"))
    assert vanilla["accumulation_steps_mean"] == 1  # one-step generation only
    for method in ("devis-grpo", "vanilla-grpo"):
        assert epochs(training.run(method)) == list(range(10))  # the paper's 10 epochs

    config = trained_config(devis)
    assert config["dataset"]["kind"] == "kubric4d" and config["device"] == "cpu"
    assert config["backbone"] | DRY_RUN_BACKBONE == config["backbone"]
    assert config["depth"] == {"kind": "carried"}
    assert config["depth_alignment"] == {"mode": "scale"}
    for method in ("DEVIS-GRPO", WARM_START):  # one held-out Kubric-4D scene per row
        scenes = held_out_records(devis, method)
        assert len(scenes) == 1 and scenes[0]["sample_id"].startswith("kubric4d")


def test_paradigms_trains_every_method_on_kubric4d(
    suite_registry, paper_data: PaperData, training_config: Path, tmp_path
):
    overrides = [*paper_data.overrides(), f"training_config={training_config}", *TRAINING_BUDGET]
    result = run_dry(suite_registry, "paradigms", overrides, tmp_path)
    assert_dry_run_table(result)
    rows = {row["method"]: row for row in result.rows}
    assert list(rows) == ["warm start", "SFT-all", "SFT-best", "SFT-weight", "DPO", "DEVIS-GRPO"]
    for method, row in rows.items():
        assert_finite(row, SCORES)
        if method != "warm start":
            assert row["train minutes"] > 0
    kinds = {}
    for run in sorted(tmp_path.glob("seed0/*/")):
        assert_trained_one_round(run)
        algorithm = trained_config(run)["algorithm"]
        kinds[run.name] = (algorithm["kind"], algorithm.get("mode"))
    assert kinds == {
        "devis-grpo": ("grpo", None),
        "sft-all": ("sft", "all"),
        "sft-best": ("sft", "best"),
        "sft-weight": ("sft", "weight"),
        "dpo": ("dpo", None),
    }
