"""The paper's tables as suites: seconds-long toy runs, paper-scale refusal, resume, outputs.

Every run here shrinks the suite with ``-o`` overrides (tiny scenes, one sample, a training
budget of one round of one group of two videos) so it takes seconds on a CPU; the defaults
are what docs/reproducing.md runs.
"""

from __future__ import annotations

import json
import math
import statistics
import tomllib
from importlib import resources
from pathlib import Path

import matplotlib.image
import pytest
import torch
import yaml
from scipy import stats

from devis_core.cli import main
from devis_core.config import validate_config
from devis_core.engines import paradigms
from devis_core.engines.ablate import run_suite
from devis_core.errors import UsageError
from devis_core.pipeline import Pipeline
from devis_core.toolkit.results import read_records
from devis_plugins.paper_suites.assets import TABLE1_METRICS, toy_training_config

ROOT = Path(__file__).resolve().parents[2]
PAPER_SUITES = "devis_plugins.paper_suites"
SMALL = ["dataset.frames=6", "dataset.height=32", "dataset.width=48", "samples=1"]
TINY_TRAINING = [
    "held_out=1",
    "train_overrides=[training.rounds=1, training.groups_per_round=1, "
    "algorithm.num_generations=2, "
    "training.per_device_train_batch_size=2]",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(registry, suite, overrides, output):
    result, _ = run_suite(
        registry, suite, overrides=overrides, output=output, device="cpu", progress=False
    )
    return result


def _rows(result, column="method"):
    return {row[column]: row for row in result.rows}


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


def test_main_suite_writes_tables_and_plots_and_reports_skipped_metrics(registry, tmp_path):
    result = _run(registry, "main", SMALL, tmp_path)
    rows = _rows(result)
    assert set(rows) == {"One-step baseline", "ADEVIS-BTA (K=3)"}
    assert result.columns[2:11] == TABLE1_METRICS
    baseline, bta = rows["One-step baseline"], rows["ADEVIS-BTA (K=3)"]
    assert baseline["generator calls"] == 1 and bta["generator calls"] == 3
    for row in (baseline, bta):
        assert 5 < row["psnr"] < 60 and 0 < row["temporal-flicker"] <= 1
        assert all(math.isnan(row[m]) for m in ("lpips", "motion-smoothness", "imaging-quality"))
    assert any(n.startswith("aesthetic-quality: not measured") for n in result.notes)
    assert "weights.aesthetic_head" in " ".join(result.notes)

    table = json.loads((tmp_path / "table.json").read_text())
    assert [r["method"] for r in table["rows"]] == [r["method"] for r in result.rows]
    assert table["rows"][0]["lpips"] is None  # NaN is written as null
    assert (tmp_path / "table.csv").read_text().splitlines()[0].startswith("dataset,method,psnr")
    assert "| synthetic | One-step baseline |" in (tmp_path / "table.md").read_text()
    samples = read_records(tmp_path / "samples.jsonl")
    assert [(r["dataset"], r["method"]) for r in samples] == [
        ("synthetic", "One-step baseline"), ("synthetic", "ADEVIS-BTA (K=3)")
    ]  # fmt: skip
    assert samples[1]["psnr"] == pytest.approx(bta["psnr"])  # one sample: the mean is its value
    assert bta["psnr n"] == 1 and math.isnan(bta["psnr std"])  # no spread from one sample
    assert r"\toprule" in (tmp_path / "table.tex").read_text()
    assert not (tmp_path / "videos").exists()  # save_videos defaults to none
    plots = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"psnr.png", "ssim-nocc.png", "temporal-flicker.png", "seconds.png"} <= plots
    assert not plots & {"lpips.png", "samples.png", "imaging-quality.png"}
    _assert_png(tmp_path / "plots" / "psnr.png")


def test_rerunning_into_the_same_folder_recomputes_only_missing_rows(
    registry, tmp_path, monkeypatch
):
    calls = []
    synthesize = Pipeline.synthesize

    def counted(self, sample, *args, **kwargs):
        calls.append(self.config.accumulator.kind)
        return synthesize(self, sample, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "synthesize", counted)
    overrides = [*SMALL, "samples=2"]
    first = _run(registry, "main", overrides, tmp_path)
    assert sorted(calls) == ["bta", "bta", "direct", "direct"]

    calls.clear()
    records = tmp_path / "rows" / "synthetic" / "metrics.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["method"] != "ADEVIS-BTA (K=3)"]
    assert len(kept) == 2
    records.write_text("".join(kept))
    again = _run(registry, "main", overrides, tmp_path)
    assert calls == ["bta", "bta"]  # the baseline's records were reused
    before, after = _rows(first), _rows(again)
    assert after["One-step baseline"]["seconds"] == before["One-step baseline"]["seconds"]
    assert after["ADEVIS-BTA (K=3)"]["psnr"] == before["ADEVIS-BTA (K=3)"]["psnr"]

    calls.clear()
    _run(registry, "main", [*overrides, "steps=2"], tmp_path)
    assert calls == ["bta", "bta"]  # another K is another config: recomputed, not reused


def _tiny_lora(registry, path: Path) -> Path:
    """A LoRA of the packaged training config's backbone with non-zero weights."""
    backbone = registry.build("backbone", toy_training_config()["backbone"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in backbone.trainable_parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return backbone.save_lora(path)


def test_accumulation_suite_splits_rows_without_and_with_the_lora(registry, tmp_path):
    lora = _tiny_lora(registry, tmp_path / "lora.safetensors")
    overrides = [*SMALL, f"lora={lora}", "strategies=[Baseline (direct), BTA]", "steps=2"]
    result = _run(registry, "accumulation", overrides, tmp_path / "out")
    rows = _rows(result, "strategy")
    assert list(rows) == [
        "Baseline (direct) w/o LoRA",
        "BTA w/o LoRA",
        "Baseline (direct) w LoRA",
        "BTA w LoRA",
    ]
    assert "trajectorycrafter" in result.title
    for strategy in ("Baseline (direct)", "BTA"):
        without, with_lora = rows[f"{strategy} w/o LoRA"], rows[f"{strategy} w LoRA"]
        assert math.isfinite(without["psnr"]) and math.isfinite(with_lora["psnr"])
        assert without["psnr"] != with_lora["psnr"]  # the LoRA is loaded in one half only
    assert rows["BTA w LoRA"]["generator calls"] == 2


@pytest.mark.slow
def test_grpo_vs_vanilla_trains_both_from_one_warm_start_and_resumes(
    registry, tmp_path, monkeypatch
):
    two_scenes = [*TINY_TRAINING, "held_out=2"]
    result = _run(registry, "grpo-vs-vanilla", [*two_scenes, "save_videos=mp4"], tmp_path)
    rows = _rows(result)
    assert list(rows) == ["warm start", "Vanilla-GRPO", "DEVIS-GRPO"]
    samples = read_records(tmp_path / "samples.jsonl")
    assert [(r["method"], r["seed"], r["index"]) for r in samples] == [
        (method, 0, index)
        for method in ("warm start", "DEVIS-GRPO", "Vanilla-GRPO")
        for index in (0, 1)
    ]
    rewards = {m: [r["reward"] for r in samples if r["method"] == m] for m in rows}
    for method, values in rewards.items():
        assert rows[method]["reward"] == pytest.approx(statistics.fmean(values))
        assert rows[method]["reward n"] == 2
    p_value = stats.ttest_rel(rewards["Vanilla-GRPO"], rewards["DEVIS-GRPO"]).pvalue
    assert rows["Vanilla-GRPO"]["reward p"] == pytest.approx(p_value, nan_ok=True)
    assert math.isnan(rows["DEVIS-GRPO"]["reward p"])  # the reference of Table 3
    videos = tmp_path / "videos" / "seed0"
    assert sorted(str(p.relative_to(videos)) for p in videos.glob("*/*.mp4")) == [
        f"{method}/synthetic-1000-000{index}.mp4"
        for method in ("devis-grpo", "vanilla-grpo", "warm-start")
        for index in (0, 1)
    ]
    for method in ("Vanilla-GRPO", "DEVIS-GRPO"):
        assert rows[method]["seconds / iteration"] > 0
        assert 0 < rows[method]["pixel-diversity"] < 1
        assert math.isfinite(rows[method]["reward"]) and math.isnan(rows[method]["lpips"])
    assert math.isnan(rows["warm start"]["seconds / iteration"])
    assert math.isnan(rows["DEVIS-GRPO"]["clip-diversity"])
    assert any(n.startswith("clip-diversity: not measured") for n in result.notes)
    trained = yaml.safe_load((tmp_path / "seed0" / "vanilla-grpo" / "config.yaml").read_text())
    trained.pop("provenance", None)
    vanilla = validate_config(trained, registry)
    assert vanilla.training.sampling == "one-step" and vanilla.training.warm_start.steps == 0
    assert vanilla.backbone.lora.path.endswith("devis-grpo/warm_start.safetensors")
    assert (tmp_path / "plots" / "seconds-iteration.png").is_file()
    _assert_png(tmp_path / "plots" / "pixel-diversity.png")

    trained, scored = [], []
    train, scorer = paradigms.train_pipeline, paradigms._scene_scorer

    def counting_scorer(*args, **kwargs):
        score = scorer(*args, **kwargs)
        return lambda index: scored.append(index) or score(index)

    monkeypatch.setattr(
        paradigms, "train_pipeline", lambda *a, **k: trained.append(1) or train(*a, **k)
    )
    monkeypatch.setattr(paradigms, "_scene_scorer", counting_scorer)
    records = tmp_path / "seed0" / "vanilla-grpo" / "held_out.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    records.write_text("".join(lines[:-1]))  # the last held-out scene's record is lost
    again = _run(registry, "grpo-vs-vanilla", two_scenes, tmp_path)
    assert trained == [] and scored == [len(lines) - 1]  # the LoRA is kept; one scene rescored
    for column in ("reward", "psnr", "seconds / iteration", "pixel-diversity"):
        assert _rows(again)["DEVIS-GRPO"][column] == rows["DEVIS-GRPO"][column]

    with pytest.raises(UsageError, match="another config or held-out setting"):
        _run(registry, "grpo-vs-vanilla", [*TINY_TRAINING, "held_out=3"], tmp_path)


@pytest.mark.slow
def test_paradigms_suite_runs_every_method(registry, tmp_path):
    result = _run(registry, "paradigms", TINY_TRAINING, tmp_path)
    assert [row["method"] for row in result.rows] == [
        "warm start",
        "SFT-all",
        "SFT-best",
        "SFT-weight",
        "DPO",
        "DEVIS-GRPO",
    ]
    assert all(math.isfinite(row["reward"]) and row["psnr"] > 0 for row in result.rows)
    algorithms = {
        yaml.safe_load(path.read_text())["algorithm"]["kind"]
        for path in tmp_path.glob("seed0/*/config.yaml")
    }
    assert algorithms == {"grpo", "sft", "dpo"}


PAPER_MISSING = {
    "main": [
        "Kubric-4D dataset: set -o paper.kubric4d=PATH",
        "iPhone (DyCheck) dataset",
        "DL3DV dataset",
        "DepthSplat depth of DL3DV",
        "TrajectoryCrafter transformer",
        "CogVideoX-Fun base model",
        "DepthCrafter UNet",
        "Stable Video Diffusion XT",
        "the DEVIS-GRPO LoRA: set -o lora=PATH",
        "lpips weights: set -o weights.lpips=PATH",
        "motion-smoothness weights",
        "aesthetic-quality weights: set -o weights.aesthetic_head=PATH",
        "imaging-quality weights: set -o weights.musiq=PATH",
        "an accelerator",
    ],
    "accumulation": [
        "Kubric-4D dataset",
        "TrajectoryCrafter transformer",
        "DepthCrafter UNet",
        "the Kubric-4D fine-tuned LoRA",
        "lpips weights",
        "an accelerator",
    ],
    "grpo-vs-vanilla": [
        "a training config for the full model: set -o training_config=PATH",
        "Kubric-4D dataset",
        "lpips weights",
        "clip-diversity weights: set -o weights.clip=PATH",
        "an accelerator",
    ],
    "paradigms": ["a training config for the full model", "Kubric-4D dataset", "an accelerator"],
}


def test_paper_scale_lists_a_training_config_that_does_not_exist(registry, tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(UsageError) as caught:
        _run(registry, "paradigms", ["scale=paper", f"training_config={missing}"], tmp_path)
    assert f"  - a training config for the full model: {missing} does not exist" in str(
        caught.value
    )
    assert "  - Kubric-4D dataset" in str(caught.value)


@pytest.mark.parametrize("suite", sorted(PAPER_MISSING))
def test_paper_scale_refuses_with_every_missing_thing(registry, tmp_path, suite):
    with pytest.raises(UsageError) as caught:
        _run(registry, suite, ["scale=paper"], tmp_path)
    message = str(caught.value)
    assert f"suite {suite!r} at scale=paper" in message
    for item in PAPER_MISSING[suite]:
        assert f"  - {item}" in message
    assert not (tmp_path / "table.md").exists()


def test_paper_scale_lists_only_what_is_missing_and_exits_2(tmp_path, capsys):
    kubric = tmp_path / "kubric"
    kubric.mkdir()
    config = tmp_path / "train.yaml"
    config.write_text("backbone: {kind: trajectorycrafter, preset: tiny}\n")
    code = main(
        [
            "ablate", "paradigms", "--quiet", "--device", "cpu", "--output", str(tmp_path / "o"),
            "-o", "scale=paper", "-o", f"paper.kubric4d={kubric}",
            "-o", f"training_config={config}", "-o", f"weights.lpips={tmp_path / 'no.pth'}",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "- Kubric-4D" not in err and "training config for the full model" not in err
    assert f"a full-size backbone in {config}" in err
    assert "backbone.transformer_path of the training config: set it in the training" in err
    assert f"lpips weights: {tmp_path / 'no.pth'} does not exist" in err
    assert "an accelerator" in err


def test_the_toy_training_config_ships_inside_the_package(registry):
    packaged = resources.files(PAPER_SUITES).joinpath("presets/grpo-toy.yaml")
    assert packaged.is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "presets/*.yaml" in package_data["package-data"][PAPER_SUITES]
    config = validate_config(toy_training_config(), registry)
    # the paper's claim: from the small-view model, no large-view pairs and no warm start
    assert config.algorithm.kind == "grpo" and config.training.warm_start.steps == 0
    assert config.backbone.kind == "trajectorycrafter" and config.backbone.preset == "toy"
    assert config.backbone.lora is not None and config.backbone.transformer_path is None


def test_the_packaged_training_config_is_the_repository_demo():
    packaged = resources.files(PAPER_SUITES).joinpath("presets/grpo-toy.yaml").read_text()
    assert packaged == (ROOT / "configs" / "grpo-toy.yaml").read_text(), (
        "configs/grpo-toy.yaml and plugins/paper_suites/presets/grpo-toy.yaml must stay "
        "identical: copy one onto the other"
    )
