"""report_to of `devis eval` and the suites: each method's scores of each sample and the final
table reach the trackers (fake tracker modules: no network, no install); a tracker that is
not installed stops the command before any work, naming the extra."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import yaml

from devis_core.cli import main
from devis_core.config import validate_config
from devis_core.errors import ConfigError
from devis_core.toolkit.results import read_records
from tests.training.test_tracking import FakeTable, FakeWriter, fake_tensorboard, fake_wandb

CONFIG = {
    "name": "tracked",
    "device": "cpu",
    "dataset": {"kind": "synthetic", "num_samples": 2, "frames": 3, "height": 32, "width": 48},
    "depth": {"kind": "ground-truth"},
    "accumulator": {"kind": "direct"},
    "backbone": {"kind": "passthrough"},
    "metrics": ["psnr", "ssim-nocc"],
    "evaluation": {"methods": {"grey": ["backbone.fill=0.5"], "black": []}},
}


def _eval(tmp_path, report_to):
    run = tmp_path / "run"
    data = {**CONFIG, "output": str(run)}
    data["evaluation"] = {**CONFIG["evaluation"], "report_to": report_to}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return main(["eval", str(path), "-q"]), run


def _csv_rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _close(value, text):
    """A tracker's cell against table.csv's text (empty for NaN)."""
    if text in ("", "nan"):
        return value is None
    if isinstance(value, str):
        return value == text
    return value == pytest.approx(float(text))


def test_eval_sends_each_record_and_the_table_to_wandb(tmp_path, monkeypatch):
    fake = fake_wandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    code, run = _eval(tmp_path, ["wandb"])
    assert code == 0
    (kwargs,) = fake.init_kwargs
    assert kwargs["name"] == "tracked" and kwargs["dir"] == str(run)
    assert kwargs["config"]["evaluation"]["report_to"] == ["wandb"]
    (wandb_run,) = fake.runs
    assert wandb_run.finished
    records = read_records(run / "metrics.jsonl")
    samples = [entry for entry in wandb_run.logged if "table" not in entry]
    assert len(samples) == len(records) == 4
    for record in records:
        event = f"evaluation/{record['method']}"
        (entry,) = [e for e in samples if e.get(f"{event}/index") == record["index"]]
        assert entry[f"{event}/psnr"] == pytest.approx(record["psnr"])
        assert entry[f"{event}/ssim-nocc"] == pytest.approx(record["ssim-nocc"])
        assert entry[f"{event}/generator_calls"] == 1
    assert ("evaluation/grey/*", {"step_metric": "evaluation/grey/index"}) in wandb_run.metrics

    (logged,) = [entry for entry in wandb_run.logged if "table" in entry]
    table = logged["table"]
    assert isinstance(table, FakeTable)
    rows = _csv_rows(run / "table.csv")  # every number of table.csv, in its order
    assert table.columns == list(rows[0])
    assert "psnr ci95 low" in table.columns and "psnr p" in table.columns
    for cells, row in zip(table.data, rows, strict=True):
        for column, value in zip(table.columns, cells, strict=True):
            assert _close(value, row[column]), (column, value, row[column])


def test_eval_sends_scalars_hparams_and_the_markdown_table_to_tensorboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake_tensorboard())
    code, run = _eval(tmp_path, ["tensorboard"])
    assert code == 0
    (writer,) = FakeWriter.instances
    assert writer.directory == str(run / "tensorboard") and writer.closed
    records = read_records(run / "metrics.jsonl")
    for method in ("grey", "black"):
        want = [(r["psnr"], r["index"]) for r in records if r["method"] == method]
        assert writer.scalars[f"evaluation/{method}/psnr"] == want  # metrics.jsonl's numbers
    table = json.loads((run / "table.json").read_text())
    for row in table["rows"]:
        assert writer.scalars[f"table/{row['method']}/psnr"] == [(pytest.approx(row["psnr"]), 0)]
        assert writer.scalars[f"table/{row['method']}/psnr std"] == [
            (pytest.approx(row["psnr std"]), 0)
        ]
    assert [(h, run_name) for h, _, run_name in writer.hparams] == [
        ({"method": "grey"}, "grey"),
        ({"method": "black"}, "black"),
    ]
    assert writer.hparams[0][1]["table/psnr"] == pytest.approx(table["rows"][0]["psnr"])
    assert writer.texts == [("table", (run / "table.md").read_text(), 0)]


def test_a_suite_reports_its_samples_and_table(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake_tensorboard())
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({k: v for k, v in CONFIG.items() if k != "evaluation"}))
    output = tmp_path / "suite"
    code = main([
        "ablate", "variants", "-o", f"pipeline={pipeline}", "-o", "report_to=[tensorboard]",
        "-o", "variants={grey: [backbone.fill=0.5], black: []}", "--device", "cpu",
        "--output", str(output), "-q",
    ])  # fmt: skip
    assert code == 0
    (writer,) = FakeWriter.instances
    assert writer.directory == str(output / "tensorboard") and writer.closed
    samples = read_records(output / "samples.jsonl")
    events = {tag.rsplit("/", 2)[0] for tag in writer.scalars if tag.endswith("/grey/psnr")}
    (event,) = events - {"table"}  # the per-sample event, named after the suite's source
    for variant in ("grey", "black"):
        want = [(r["psnr"], r["index"]) for r in samples if r["variant"] == variant]
        assert writer.scalars[f"{event}/{variant}/psnr"] == want  # the numbers metrics.jsonl keeps
    table = json.loads((output / "table.json").read_text())
    for row in table["rows"]:
        assert writer.scalars[f"table/{row['variant']}/psnr"] == [(pytest.approx(row["psnr"]), 0)]
    assert writer.texts == [("table", (output / "table.md").read_text(), 0)]


@pytest.mark.parametrize(
    "tracker,module", [("wandb", "wandb"), ("tensorboard", "torch.utils.tensorboard")]
)
def test_a_missing_tracker_stops_eval_and_suites_naming_the_extra(
    tmp_path, monkeypatch, capsys, tracker, module
):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    code, run = _eval(tmp_path, [tracker])
    error = capsys.readouterr().err
    assert code == 2 and f"pip install 'devis[{tracker}]'" in error
    assert "evaluation.report_to" in error
    assert not run.exists()  # stopped before any work

    output = tmp_path / "suite"
    code = main(["ablate", "variants", "-o", "pipeline=x.yaml", "-o", f"report_to=[{tracker}]",
                 "--output", str(output), "-q"])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2 and f"pip install 'devis[{tracker}]'" in error
    assert "report_to of suite 'variants'" in error and not output.exists()


def test_report_to_defaults_to_none_and_rejects_unknown_trackers(registry):
    config = validate_config({**CONFIG, "output": "x"}, registry)
    assert config.evaluation.report_to == []
    bad = {**CONFIG, "evaluation": {"report_to": ["mlflow"]}}
    with pytest.raises(ConfigError, match="report_to"):
        validate_config(bad, registry)
    suite = registry.get("suite", "accumulation")
    assert suite.config_model().report_to == []
    assert "report_to" in suite.config_model.model_json_schema()["properties"]
