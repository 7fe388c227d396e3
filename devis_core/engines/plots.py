"""Bar plots of result tables, one PNG per measured column, with error bars where the table
has a standard deviation.

``devis ablate`` draws them from the table it has just written; ``devis plots DIR...``
(:func:`plot_tables`) redraws them from the ``table.json`` files under ``DIR``, through the
same function, so plots kept beside a table (``docs/results``) always match it and are
remade without running any suite again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from devis_core.engines.tables import is_number, label_columns, slug
from devis_core.errors import UsageError
from devis_core.toolkit.files import atomic_path
from devis_core.types import SuiteResult

ERROR_BARS = "mean ± sample standard deviation"
NO_ERROR_BARS = "mean; no error bars (no standard deviation in the table)"
TABLE_JSON = "table.json"
"""The file of a table that :func:`plot_tables` reads (``write_tables`` writes it)."""


def write_plots(result: SuiteResult, directory: Path) -> list[Path]:
    """Draw ``directory/plots/<column>.png`` for every measured column and remove the plots
    of columns that are no longer measured.

    Measured columns hold floats with at least one finite value (counts, all ints, and columns
    never measured get no plot). Bars are labelled by the row's label cells; a row's
    ``<column> std`` gives its error bar (the standard deviation over samples or seeds), and a
    plot whose table has none says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels_of = label_columns(result)
    labels = [" / ".join(str(row.get(c, "")) for c in labels_of) for row in result.rows]
    directions = result.higher_is_better
    folder = directory / "plots"
    written = []
    for column in result.columns:
        cells = [row.get(column, math.nan) for row in result.rows]
        if column in labels_of or all(isinstance(v, int) for v in cells):
            continue
        values = [float(v) for v in cells]
        if not any(math.isfinite(v) for v in values):
            continue
        errors = [_number(row.get(f"{column} std")) for row in result.rows]
        has_errors = any(math.isfinite(e) for e in errors)
        figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(values) + 1.5), 3.6))
        axes.bar(
            range(len(values)),
            values,
            yerr=errors if has_errors else None,
            capsize=3 if has_errors else 0,
        )
        axes.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
        direction = {True: " (higher is better)", False: " (lower is better)"}
        axes.set_ylabel(column + direction.get(directions.get(column), ""), fontsize=8)
        note = ERROR_BARS if has_errors else NO_ERROR_BARS
        axes.set_title(f"{result.title}\n{note}", fontsize=8)
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        path = folder / f"{slug(column)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as staging:
            figure.savefig(staging, dpi=100)
        plt.close(figure)
        written.append(path)
    for stale in set(folder.glob("*.png")) - set(written):
        stale.unlink()
    return written


def _number(value: object) -> float:
    return float(value) if is_number(value) else math.nan


def read_table(path: Path) -> SuiteResult:
    """A ``table.json`` as :func:`~devis_core.engines.tables.write_tables` wrote it (nulls as
    NaN); its per-sample records are not read."""
    try:
        document = json.loads(path.read_text())
        rows = [
            {key: math.nan if value is None else value for key, value in row.items()}
            for row in document["rows"]
        ]
        return SuiteResult(
            title=document["title"],
            columns=document["columns"],
            rows=rows,
            notes=document.get("notes", []),
            higher_is_better=document.get("higher_is_better", {}),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"{path} is not a table written by DEVIS: {error!r}") from None


def plot_tables(paths: Sequence[Path]) -> list[Path]:
    """Redraw the plots of every ``table.json`` among ``paths`` (files, or folders searched
    recursively) beside it; returns the plots written."""
    tables = []
    for path in paths:
        path = Path(path)
        tables += [path] if path.is_file() else sorted(path.rglob(TABLE_JSON))
    if not tables:
        raise UsageError(f"no {TABLE_JSON} under {', '.join(str(p) for p in paths)}")
    written = []
    for table in tables:
        written += write_plots(read_table(table), table.parent)
    return written
