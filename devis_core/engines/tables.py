"""Result tables as people read them (markdown, LaTeX) and as programs read them (CSV, JSON,
the per-sample records).

A row summarised from samples (:func:`~devis_core.engines.evaluate.summarise`) carries, beside
each metric's mean, the keys of :data:`STATISTICS`: ``psnr std``, ``psnr n``, ``psnr ci95 low``,
``psnr ci95 high`` and ``psnr p``. The markdown and LaTeX tables print ``mean ± std``, the
count where fewer samples than the row's have a value, the best value of each metric in bold
(in the metric's direction, among rows that differ in their last label only) and a dagger
where the paired test finds no difference from the reference row; the CSV and JSON carry
every number.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devis_core.engines.statistics import SIGNIFICANCE
from devis_core.toolkit.files import atomic_path, atomic_write_text
from devis_core.toolkit.results import write_records
from devis_core.types import SuiteResult

STATISTICS = ("std", "n", "ci95 low", "ci95 high", "p")
"""What a summarised row holds beside a metric's mean, as ``<metric> <statistic>``."""

SAMPLES = "samples.jsonl"
"""The records behind a table: one per row and sample (and seed), every metric."""


def format_value(value: Any) -> str:
    """Numbers the way papers print them: 2 decimals from 10 up, 4 below, whole numbers as
    they are (counts); NaN as a dash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if math.isnan(value):
        return "-"
    if isinstance(value, int) or (value.is_integer() and abs(value) >= 1):
        return str(int(value))
    return f"{value:.{_decimals(value)}f}"


def _decimals(value: float) -> int:
    return 2 if abs(value) >= 10 else 4


@dataclass
class _Cell:
    text: str
    spread: str | None = None
    count: int | None = None
    best: bool = False
    within_noise: bool = False


def markdown_table(result: SuiteResult) -> str:
    """A GitHub-flavoured markdown table with the result's title and notes."""
    lines = [f"### {result.title}", ""]
    lines.append("| " + " | ".join(_headers(result, " ↑", " ↓", str)) + " |")
    lines.append("|" + "|".join("---" for _ in result.columns) + "|")
    for cells in _cells(result):
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |")
    if result.notes:
        lines.append("")
        lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def _headers(result: SuiteResult, up: str, down: str, text: Callable[[str], str]) -> list[str]:
    """The column names as ``text`` writes them, with ``up`` or ``down`` after each metric
    with a direction."""
    directions = _directions(result)
    marks = {c: up if higher else down for c, higher in directions.items()}
    return [text(c) + marks.get(c, "") for c in result.columns]


def _markdown_cell(cell: _Cell) -> str:
    text = cell.text if cell.spread is None else f"{cell.text} ± {cell.spread}"
    text = f"**{text}**" if cell.best else text
    text += f" (n={cell.count})" if cell.count is not None else ""
    return text + (" †" if cell.within_noise else "")


def latex_table(result: SuiteResult) -> str:
    """A booktabs ``tabular`` as papers print it (title and notes as comments above it)."""
    labels = label_columns(result)
    spec = "".join("l" if c in labels else "r" for c in result.columns)
    lines = [f"% {result.title}", *(f"% {note}" for note in result.notes)]
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    header = _headers(result, r" $\uparrow$", r" $\downarrow$", _latex_text)
    lines.append(" & ".join(header) + r" \\")
    lines.append(r"\midrule")
    previous = None
    for row, cells in zip(result.rows, _cells(result), strict=True):
        group = _group(row, labels)
        if previous is not None and group != previous:
            lines.append(r"\midrule")
        previous = group
        texts = [
            _latex_text(cell.text) if column in labels else _latex_cell(cell)
            for column, cell in zip(result.columns, cells, strict=True)
        ]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _latex_cell(cell: _Cell) -> str:
    if cell.text == "-":
        return "--"
    math_text = cell.text if cell.spread is None else rf"{cell.text} \pm {cell.spread}"
    math_text = rf"\mathbf{{{math_text}}}" if cell.best else math_text
    math_text += r"^{\dagger}" if cell.within_noise else ""
    return f"${math_text}$" + (f" ($n={cell.count}$)" if cell.count is not None else "")


def _latex_text(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    special = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return re.sub(r"([&%$#_{}~^\\])", lambda m: special.get(m[1], "\\" + m[1]), text)


def _cells(result: SuiteResult) -> list[list[_Cell]]:
    """The cells of every row: a label's text, or a value with its spread, count and marks."""
    labels = label_columns(result)
    best = _best(result, labels)
    grid = []
    for index, row in enumerate(result.rows):
        cells = []
        for column in result.columns:
            value = row.get(column, math.nan)
            cell = _Cell(format_value(value), best=(index, column) in best)
            if column not in labels and _finite(value):
                std, count, p = (row.get(f"{column} {s}") for s in ("std", "n", "p"))
                if _finite(std):
                    cell.text = f"{value:.{_decimals(value)}f}"
                    cell.spread = f"{std:.{_decimals(value)}f}"
                samples = row.get("samples")
                if _finite(count) and _finite(samples) and count != samples:
                    cell.count = int(count)
                cell.within_noise = _finite(p) and p >= SIGNIFICANCE
            cells.append(cell)
        grid.append(cells)
    return grid


def _best(result: SuiteResult, labels: list[str]) -> set[tuple[int, str]]:
    """(row, column) of the best value of each metric with a direction, among the rows of one
    group (the same labels but the last: one dataset of several) with at least two values."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, row in enumerate(result.rows):
        groups.setdefault(_group(row, labels), []).append(index)
    best = set()
    for column, higher in _directions(result).items():
        for members in groups.values():
            values = {i: result.rows[i].get(column) for i in members}
            finite = {i: float(v) for i, v in values.items() if _finite(v)}
            if len(finite) < 2:
                continue
            target = max(finite.values()) if higher else min(finite.values())
            best |= {(i, column) for i, value in finite.items() if value == target}
    return best


def _group(row: dict[str, Any], labels: list[str]) -> tuple[Any, ...]:
    return tuple(row.get(c) for c in labels[:-1])


def _directions(result: SuiteResult) -> dict[str, bool]:
    """Which way each displayed column is better, where the result says so."""
    return {c: result.higher_is_better[c] for c in result.columns if c in result.higher_is_better}


def _finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def label_columns(result: SuiteResult) -> list[str]:
    """The columns that name a row (some cell is not a number) rather than measure it; a
    missing cell is a measure not taken."""
    return [
        c for c in result.columns if not all(is_number(r.get(c, math.nan)) for r in result.rows)
    ]


def write_tables(result: SuiteResult, directory: Path) -> dict[str, Path]:
    """Write ``table.md``, ``table.tex``, ``table.csv`` and ``table.json`` into ``directory``,
    and the result's per-sample records, when it has them, as :data:`SAMPLES` (each file
    atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / f"table.{kind}" for kind in ("md", "tex", "csv", "json")}
    atomic_write_text(paths["md"], markdown_table(result))
    atomic_write_text(paths["tex"], latex_table(result))
    with atomic_path(paths["csv"]) as staging, staging.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=all_columns(result), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result.rows)
    document: dict[str, Any] = {
        "title": result.title,
        "columns": result.columns,
        "rows": [{k: json_safe(v) for k, v in row.items()} for row in result.rows],
        "notes": result.notes,
    }
    if _directions(result):
        document["higher_is_better"] = _directions(result)
    atomic_write_text(paths["json"], json.dumps(document, indent=2) + "\n")
    if result.samples:
        paths["samples"] = directory / SAMPLES
        write_records(paths["samples"], result.samples)
    return paths


def all_columns(result: SuiteResult) -> list[str]:
    """Every column with a number (``table.csv``'s): each shown column followed by the
    :data:`STATISTICS` its rows hold (``psnr``, ``psnr std``, ``psnr n``, ...)."""
    columns = []
    for column in result.columns:
        columns.append(column)
        columns += [
            f"{column} {s}" for s in STATISTICS if any(f"{column} {s}" in r for r in result.rows)
        ]
    return columns


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: a non-finite float becomes null, anything else stays."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def slug(text: str) -> str:
    """A file-name-safe form of a row or column name (``SSIM-Nocc std`` -> ``ssim-nocc-std``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unnamed"


def is_number(value: Any) -> bool:
    """An int or float that is not a bool (a cell a bar can show)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
