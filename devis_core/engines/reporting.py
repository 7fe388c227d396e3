"""What ``devis eval`` and the suites send to the trackers of their ``report_to``.

Each method's scores of each sample, as soon as the main process has them (an event per
method, its x axis the sample index), and the final table with every number
(:class:`~devis_core.training.tracking.TrackedTable`: a wandb Table; TensorBoard scalars per
row, HParams and the markdown text). The trackers are those of the training runs
(:mod:`devis_core.training.tracking`); a command opens them with :func:`reporting` around its
work, and the evaluation engine, however deep a suite calls it, reports to
:func:`active_reporter`. Other processes of a ``torchrun`` job open none: the main process
reports what they scored.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from devis_core.engines.tables import (
    all_columns,
    is_number,
    json_safe,
    label_columns,
    markdown_table,
)
from devis_core.training.tracking import TrackedTable, Tracker, open_trackers
from devis_core.types import SuiteResult

NOT_SCORES = ("method", "key", "sample_id", "index", "seed")
"""Record fields that are not numbers to report."""


class Reporter:
    """Sends an evaluation's results to its trackers (none: it does nothing)."""

    def __init__(self, trackers: Sequence[Tracker] = ()):
        self.trackers = list(trackers)

    def sample(self, group: str, record: dict[str, Any]) -> None:
        """One method's scores of one sample: event ``GROUP/METHOD``, step the sample index."""
        if not self.trackers:
            return
        values = {
            name: float(value)
            for name, value in record.items()
            if name not in NOT_SCORES and is_number(value) and math.isfinite(value)
        }
        for tracker in self.trackers:
            tracker.log(f"{group}/{record['method']}", values, int(record["index"]))

    def table(self, result: SuiteResult) -> None:
        """The result table, every number of ``table.csv`` (NaN as None), under ``table``."""
        if not self.trackers:
            return
        labels = label_columns(result)
        columns = labels + [c for c in all_columns(result) if c not in labels]
        rows = [[json_safe(row.get(column)) for column in columns] for row in result.rows]
        table = TrackedTable(columns, rows, len(labels), markdown_table(result))
        for tracker in self.trackers:
            tracker.table("table", table)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []


_ACTIVE: ContextVar[Reporter | None] = ContextVar("devis_reporter", default=None)


def active_reporter() -> Reporter:
    """The reporter of the command running (one without trackers when none is open)."""
    return _ACTIVE.get() or Reporter()


@contextlib.contextmanager
def reporting(
    names: Sequence[str],
    *,
    directory: Path,
    run_name: str | None,
    config: dict[str, Any],
    main: bool = True,
) -> Iterator[Reporter]:
    """Open the trackers ``names`` (on the main process) for the work inside the block, and
    close them after it. Check them first with
    :func:`~devis_core.training.tracking.check_trackers`, before any work."""
    reporter = Reporter(
        open_trackers(names, directory=directory, run_name=run_name, config=config) if main else ()
    )
    token = _ACTIVE.set(reporter)
    try:
        yield reporter
    finally:
        _ACTIVE.reset(token)
        reporter.close()
