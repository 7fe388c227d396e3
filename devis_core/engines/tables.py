"""Result tables as people read them (markdown) and as programs read them (CSV, JSON)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

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
    """Write ``table.md``, ``table.csv`` and ``table.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / f"table.{kind}" for kind in ("md", "csv", "json")}
    paths["md"].write_text(markdown_table(result))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=result.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result.rows)
    document = {
        "title": result.title,
        "columns": result.columns,
        "rows": [{k: json_safe(v) for k, v in row.items()} for row in result.rows],
        "notes": result.notes,
    }
    paths["json"].write_text(json.dumps(document, indent=2) + "\n")
    return paths


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: a non-finite float becomes null, anything else stays."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
