"""`devis eval`: the table of mean and standard deviation per method, per-sample records,
resumption, and the refusal to mix two configs in one run directory."""

from __future__ import annotations

import json
import statistics

import pytest
import yaml

from devis_core.cli import main
from devis_core.config import load_config
from devis_core.engines import evaluate
from devis_core.errors import UsageError
from devis_core.pipeline import Pipeline
from devis_core.toolkit.results import read_records
from devis_plugins.synthetic import SyntheticDataset

CONFIG = {
    "name": "tiny",
    "device": "cpu",
    "dataset": {"kind": "synthetic", "num_samples": 3, "frames": 3, "height": 32, "width": 48},
    "depth": {"kind": "ground-truth"},
    "accumulator": {"kind": "direct"},
    "backbone": {"kind": "passthrough"},
    "metrics": ["psnr", "ssim-nocc", "temporal-flicker"],
    "evaluation": {
        "methods": {"grey": ["backbone.fill=0.5"], "black": []},
        "max_samples": 2,
    },
}


def _write(tmp_path, **changes):
    data = {**CONFIG, "output": str(tmp_path / "run"), **changes}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _records(tmp_path):
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_eval_writes_records_and_a_mean_std_table(tmp_path, capsys):
    assert main(["eval", str(_write(tmp_path)), "-q"]) == 0
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml", "metrics.jsonl", "samples.jsonl", "table.md", "table.tex", "table.csv",
        "table.json",
    }  # fmt: skip
    assert not (run / "videos").exists()  # evaluation.save_videos defaults to none
    records = _records(tmp_path)
    assert [(r["method"], r["index"]) for r in records] == [
        ("grey", 0), ("black", 0), ("grey", 1), ("black", 1)
    ]  # fmt: skip
    table = json.loads((run / "table.json").read_text())
    assert [row["method"] for row in table["rows"]] == ["grey", "black"]
    assert "ssim-nocc" in table["columns"] and "samples" in table["columns"]
    for row in table["rows"]:
        values = [r["psnr"] for r in records if r["method"] == row["method"]]
        assert row["psnr"] == pytest.approx(statistics.fmean(values))
        assert row["psnr std"] == pytest.approx(statistics.stdev(values))
        assert row["samples"] == 2
    assert "| grey |" in capsys.readouterr().out
    assert yaml.safe_load((run / "config.yaml").read_text())["provenance"]


def test_eval_resumes_without_rescoring(tmp_path, monkeypatch):
    path = _write(tmp_path)
    assert main(["eval", str(path), "-q"]) == 0
    first = _records(tmp_path)
    calls, loads = [], []
    synthesize, get_sample = Pipeline.synthesize, SyntheticDataset.__getitem__

    def counting(self, sample, *args, **kwargs):
        calls.append(sample.sample_id)
        return synthesize(self, sample, *args, **kwargs)

    def loading(self, index):
        loads.append(index)
        return get_sample(self, index)

    monkeypatch.setattr(Pipeline, "synthesize", counting)
    monkeypatch.setattr(SyntheticDataset, "__getitem__", loading)
    assert main(["eval", str(path), "-q"]) == 0
    assert calls == [] and loads == [] and _records(tmp_path) == first
    assert main(["eval", str(path), "-q", "-o", "evaluation.max_samples=3"]) == 0
    assert calls == ["synthetic-0-0002", "synthetic-0-0002"]  # only the new sample, per method
    assert loads == [2]  # loaded once for both methods: they share the dataset
    assert len(_records(tmp_path)) == 6


def test_a_record_cut_short_by_a_crash_is_dropped_and_redone(tmp_path):
    path = _write(tmp_path)
    assert main(["eval", str(path), "-q"]) == 0
    records_file = tmp_path / "run" / "metrics.jsonl"
    text = records_file.read_text()
    records_file.write_text(text[: text.rindex("\n", 0, -1) + 1] + '{"method": "bla')
    assert read_records(records_file)[-1]["index"] == 1
    assert main(["eval", str(path), "-q"]) == 0
    assert len(_records(tmp_path)) == 4


def test_eval_refuses_to_mix_configs_in_one_directory(tmp_path, registry):
    assert main(["eval", str(_write(tmp_path)), "-q"]) == 0
    changed = load_config(_write(tmp_path, seed=7), registry)
    with pytest.raises(UsageError, match="differs in: seed"):
        evaluate.evaluate_pipeline(changed, registry, progress=False)


def test_methods_share_the_components_their_configs_share(tmp_path, monkeypatch, registry):
    built = []
    build = type(registry).build

    def counting(self, slot, entry):
        built.append(slot)
        return build(self, slot, entry)

    monkeypatch.setattr(type(registry), "build", counting)
    evaluate.evaluate_pipeline(load_config(_write(tmp_path), registry), registry, progress=False)
    # grey and black differ in the backbone only: one dataset, depth, accumulator, 3 metrics
    assert sorted(built) == sorted(
        ["dataset", "depth", "accumulator", "backbone", "backbone", *["metric"] * 3]
    )


def test_a_changed_method_is_rescored_and_the_others_reused(tmp_path, monkeypatch):
    assert main(["eval", str(_write(tmp_path)), "-q"]) == 0
    calls = []
    synthesize = Pipeline.synthesize

    def counting(self, sample, *args, **kwargs):
        calls.append(self.config.backbone.fill)
        return synthesize(self, sample, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "synthesize", counting)
    methods = {"grey": ["backbone.fill=0.25"], "black": []}
    changed = _write(tmp_path, evaluation={**CONFIG["evaluation"], "methods": methods})
    assert main(["eval", str(changed), "-q"]) == 0
    assert calls == [0.25, 0.25]  # grey's config changed: its two samples again; black reused
    table = json.loads((tmp_path / "run" / "table.json").read_text())
    grey = [r for r in _records(tmp_path) if r["method"] == "grey"][-2:]
    assert table["rows"][0]["psnr"] == pytest.approx(statistics.fmean(r["psnr"] for r in grey))
