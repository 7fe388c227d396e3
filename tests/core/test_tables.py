"""Result tables and their plots: markdown and booktabs LaTeX with mean ± std, the best value
bold in each metric's direction, daggers within noise; CSV and JSON with every statistic;
samples.jsonl; plots with error bars redrawn by `devis plots` from table.json alone."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import matplotlib.axes
import matplotlib.image
import pytest

from devis_core.cli import main
from devis_core.engines.plots import plot_tables, write_plots
from devis_core.engines.tables import (
    label_columns,
    latex_table,
    markdown_table,
    write_tables,
)
from devis_core.toolkit.results import read_records
from devis_core.types import SuiteResult

ROOT = Path(__file__).resolve().parents[2]
NAN = math.nan


def _table() -> SuiteResult:
    """Two datasets of two methods; psnr up, lpips down; one sample of B/kubric has no lpips."""
    rows = [
        {"dataset": "kubric", "method": "A", "psnr": 20.0, "psnr std": 1.5, "psnr p": NAN,
         "lpips": 0.30, "lpips std": 0.05, "lpips n": 4, "lpips p": NAN, "samples": 4},
        {"dataset": "kubric", "method": "B_1", "psnr": 21.25, "psnr std": 1.0, "psnr p": 0.01,
         "lpips": 0.35, "lpips std": 0.04, "lpips n": 3, "lpips p": 0.4, "samples": 4},
        {"dataset": "iphone", "method": "A", "psnr": 15.0, "psnr std": 2.0, "psnr p": NAN,
         "lpips": 0.50, "lpips std": 0.1, "lpips n": 4, "lpips p": NAN, "samples": 4},
        {"dataset": "iphone", "method": "B_1", "psnr": 14.0, "psnr std": 2.5, "psnr p": 0.2,
         "lpips": 0.45, "lpips std": 0.1, "lpips n": 4, "lpips p": 0.03, "samples": 4},
    ]  # fmt: skip
    return SuiteResult(
        title="Demo & 100% test",
        columns=["dataset", "method", "psnr", "lpips", "samples"],
        rows=rows,
        notes=["a note"],
        samples=[{"dataset": "kubric", "method": "A", "index": 0, "psnr": 19.0}],
        higher_is_better={"psnr": True, "lpips": False},
    )


def test_latex_is_booktabs_with_the_best_bold_in_each_direction_and_group():
    text = latex_table(_table())
    lines = text.splitlines()
    assert lines[0] == r"% Demo & 100% test" and lines[1] == "% a note"
    assert r"\begin{tabular}{llrrr}" in lines
    assert [line for line in lines if line in (r"\toprule", r"\midrule", r"\bottomrule")] == [
        r"\toprule", r"\midrule", r"\midrule", r"\bottomrule"
    ]  # fmt: skip  # header rule, then one between the two datasets
    assert r"dataset & method & psnr $\uparrow$ & lpips $\downarrow$ & samples \\" in lines
    kubric_a, kubric_b, iphone_a, iphone_b = [line for line in lines if " & $" in line]
    # kubric: B has the higher psnr (bold), A the lower lpips (bold); B's name is escaped
    assert kubric_a == r"kubric & A & $20.00 \pm 1.50$ & $\mathbf{0.3000 \pm 0.0500}$ & $4$ \\"
    assert kubric_b == (
        r"kubric & B\_1 & $\mathbf{21.25 \pm 1.00}$ & "
        r"$0.3500 \pm 0.0400^{\dagger}$ ($n=3$) & $4$ \\"
    )
    # iphone: A has the higher psnr; B the lower lpips, significantly (no dagger)
    assert iphone_a.startswith(r"iphone & A & $\mathbf{15.00 \pm 2.00}$ & $0.5000 \pm 0.1000$")
    assert iphone_b.startswith(r"iphone & B\_1 & $14.00 \pm 2.50^{\dagger}$ & $\mathbf{0.4500")


def test_markdown_prints_mean_std_counts_and_marks():
    text = markdown_table(_table())
    assert "| dataset | method | psnr ↑ | lpips ↓ | samples |" in text
    assert "| kubric | B_1 | **21.25 ± 1.00** | 0.3500 ± 0.0400 (n=3) † | 4 |" in text
    assert "| iphone | A | **15.00 ± 2.00** | 0.5000 ± 0.1000 | 4 |" in text


def test_a_plain_result_gets_no_marks_and_nan_is_a_dash():
    rows = [{"variant": "x", "psnr": NAN}, {"variant": "y", "psnr": 3.0}]
    plain = SuiteResult("t", ["variant", "psnr"], rows)
    assert "| x | - |" in markdown_table(plain) and "**" not in markdown_table(plain)
    assert r"x & -- \\" in latex_table(plain)


def test_label_columns_are_text_and_a_missing_cell_is_an_unmeasured_metric():
    rows = [{"dataset": "d", "method": "A", "psnr": 1.0}, {"dataset": "d", "method": 2}]
    assert label_columns(SuiteResult("t", ["dataset", "method", "psnr", "lpips"], rows)) == [
        "dataset", "method"
    ]  # fmt: skip


def test_write_tables_writes_every_statistic_and_the_samples(tmp_path):
    table = _table()
    paths = write_tables(table, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "table.md", "table.tex", "table.csv", "table.json", "samples.jsonl"
    }  # fmt: skip
    assert set(paths) == {"md", "tex", "csv", "json", "samples"}
    with (tmp_path / "table.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header == [
        "dataset", "method", "psnr", "psnr std", "psnr p", "lpips", "lpips std", "lpips n",
        "lpips p", "samples",
    ]  # fmt: skip
    document = json.loads((tmp_path / "table.json").read_text())
    assert document["higher_is_better"] == {"psnr": True, "lpips": False}
    assert document["rows"][0]["psnr p"] is None and document["rows"][1]["lpips n"] == 3
    assert read_records(tmp_path / "samples.jsonl") == table.samples


def _bars(monkeypatch) -> list[dict]:
    calls = []
    bar = matplotlib.axes.Axes.bar

    def recording(self, x, height, *args, **kwargs):
        calls.append({"height": list(height), "yerr": kwargs.get("yerr")})
        return bar(self, x, height, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", recording)
    return calls


def test_plots_have_error_bars_from_the_std_and_say_when_there_is_none(tmp_path, monkeypatch):
    calls = _bars(monkeypatch)
    table = _table()
    table.rows[0]["psnr std"] = NAN  # one row without: no bar for it, the others keep theirs
    for row in table.rows:
        del row["lpips std"]
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "old-column.png").write_bytes(b"stale")
    written = write_plots(table, tmp_path)
    assert sorted(p.name for p in written) == ["lpips.png", "psnr.png"]  # samples: counts
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["lpips.png", "psnr.png"]
    psnr, lpips = calls
    assert psnr["height"] == [20.0, 21.25, 15.0, 14.0]
    assert math.isnan(psnr["yerr"][0]) and psnr["yerr"][1:] == [1.0, 2.0, 2.5]
    assert lpips["yerr"] is None
    image = matplotlib.image.imread(tmp_path / "plots" / "psnr.png")
    assert image.ndim == 3 and image.shape[0] > 100


def test_devis_plots_redraws_every_table_json_under_a_folder(tmp_path, monkeypatch, capsys):
    for name in ("one", "two/nested"):
        write_tables(_table(), tmp_path / name)
    calls = _bars(monkeypatch)
    assert main(["plots", str(tmp_path)]) == 0
    assert "4 plots written" in capsys.readouterr().err
    for name in ("one", "two/nested"):
        assert {p.name for p in (tmp_path / name / "plots").iterdir()} == {
            "psnr.png", "lpips.png"
        }  # fmt: skip
    assert [c["yerr"] for c in calls[:2]] == [[1.5, 1.0, 2.0, 2.5], [0.05, 0.04, 0.1, 0.1]]
    assert main(["plots", str(tmp_path / "one" / "plots")]) == 2
    assert "no table.json under" in capsys.readouterr().err


def test_the_committed_plots_are_those_of_the_committed_tables(tmp_path):
    """docs/results holds exactly the plots `devis plots docs/results` draws from its tables
    (no plot missing, none left from a column the table no longer has), at the same size."""
    results = ROOT / "docs" / "results"
    copy = shutil.copytree(results, tmp_path / "results")
    for plots in list(copy.rglob("plots")):
        shutil.rmtree(plots)
    written = plot_tables([copy])
    assert written, "docs/results has no table.json"
    redrawn = {p.relative_to(copy) for p in written}
    committed = {p.relative_to(results) for p in results.rglob("*.png")}
    assert redrawn == committed, "run `devis plots docs/results` and commit the plots"
    for path in redrawn:
        shape = matplotlib.image.imread(results / path).shape
        assert shape == matplotlib.image.imread(copy / path).shape, path


@pytest.mark.parametrize("bad", ["{}", "not json"])
def test_a_table_json_that_is_not_ours_is_refused_with_its_path(tmp_path, capsys, bad):
    (tmp_path / "table.json").write_text(bad)
    assert main(["plots", str(tmp_path)]) == 2
    assert f"{tmp_path / 'table.json'} is not a table written by DEVIS" in capsys.readouterr().err
