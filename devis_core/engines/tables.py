"""Result tables as people read them (markdown, bar plots) and as programs read them (CSV,
JSON)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

from devis_core.toolkit.files import atomic_path, atomic_write_text
from devis_core.types import SuiteResult


def format_value(value: Any) -> str:
    """Numbers the way papers print them: 2 decimals from 10 up, 4 below, whole numbers as
    they are (counts); NaN as a dash."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if math.isnan(value):
        return "-"
    if isinstance(value, int) or (value.is_integer() and abs(value) >= 1):
        return str(int(value))
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def markdown_table(result: SuiteResult) -> str:
    """A GitHub-flavoured markdown table with the result's title and notes."""
    lines = [f"### {result.title}", ""]
    lines.append("| " + " | ".join(result.columns) + " |")
    lines.append("|" + "|".join("---" for _ in result.columns) + "|")
    for row in result.rows:
        lines.append(
            "| " + " | ".join(format_value(row.get(c, math.nan)) for c in result.columns) + " |"
        )
    if result.notes:
        lines.append("")
        lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def write_tables(result: SuiteResult, directory: Path) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv`` and ``table.json`` into ``directory`` (each atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / f"table.{kind}" for kind in ("md", "csv", "json")}
    atomic_write_text(paths["md"], markdown_table(result))
    with atomic_path(paths["csv"]) as staging, staging.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=result.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result.rows)
    document = {
        "title": result.title,
        "columns": result.columns,
        "rows": [{k: json_safe(v) for k, v in row.items()} for row in result.rows],
        "notes": result.notes,
    }
    atomic_write_text(paths["json"], json.dumps(document, indent=2) + "\n")
    return paths


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: a non-finite float becomes null, anything else stays."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def slug(text: str) -> str:
    """A file-name-safe form of a row or column name (``SSIM-Nocc std`` -> ``ssim-nocc-std``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unnamed"


def is_number(value: Any) -> bool:
    """An int or float that is not a bool (a cell a bar can show)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def write_plots(result: SuiteResult, directory: Path) -> list[Path]:
    """One bar plot per measured column, ``plots/<column>.png``: columns of floats with at
    least one finite value (counts, all ints, and columns never measured get none). Bars are
    labelled by the row's text cells; a ``<column> std`` column gives the error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels_of = [c for c in result.columns if not all(is_number(r.get(c)) for r in result.rows)]
    labels = [" / ".join(str(row.get(c, "")) for c in labels_of) for row in result.rows]
    written = []
    for column in result.columns:
        if column in labels_of or column.endswith(" std"):
            continue
        cells = [row.get(column, math.nan) for row in result.rows]
        values = [float(v) for v in cells]
        if all(isinstance(v, int) for v in cells) or not any(math.isfinite(v) for v in values):
            continue
        errors = None
        if f"{column} std" in result.columns:
            errors = [float(row.get(f"{column} std", math.nan)) for row in result.rows]
        figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(values) + 1.5), 3.6))
        axes.bar(range(len(values)), values, yerr=errors, capsize=3 if errors else 0)
        axes.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
        axes.set_ylabel(column)
        axes.set_title(result.title, fontsize=9)
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        path = directory / "plots" / f"{slug(column)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as staging:
            figure.savefig(staging, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
