"""``devis ablate SUITE``: configure a registered suite, run it, write its tables and plots.

The output directory is held for the run (:func:`~devis_core.engines.run_directory.run_directory`);
one holding the same suite's finished rows is resumed, anything else is refused unless
``overwrite`` clears it first. Under ``torchrun`` every process runs the suite, the evaluation
engine shares the samples among them, and the main process alone holds the directory and
writes the files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from devis_core import distributed
from devis_core.config import to_yaml
from devis_core.devices import resolve_device
from devis_core.engines.plots import write_plots
from devis_core.engines.preflight import preflight_suite
from devis_core.engines.reporting import reporting
from devis_core.engines.run_directory import run_directory
from devis_core.engines.tables import write_tables
from devis_core.registry import Registry
from devis_core.toolkit.files import atomic_write_text
from devis_core.training.tracking import check_trackers
from devis_core.types import SuiteContext, SuiteResult


def run_suite(
    registry: Registry,
    name: str,
    *,
    overrides: Sequence[str] = (),
    output: Path,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> tuple[SuiteResult, Path]:
    """Run suite ``name`` with ``field=value`` overrides of its config; return its table.

    Writes ``table.{md,tex,csv,json}``, ``plots/<metric>.png`` and, for a suite whose table
    is measured on samples (a :class:`~devis_core.types.SuiteResult` with ``samples``, as the
    built-in suites' are), ``samples.jsonl`` into ``output``; suites keep their finished rows
    there too, so running again into the same ``output`` resumes. The trackers of the suite's
    ``report_to`` (a key of the built-in suites' configs) get each scored sample and the table.
    """
    world = distributed.world_from_environment()
    component, config = preflight_suite(registry, name, overrides, output)
    report_to = list(getattr(config, "report_to", []))
    check_trackers(report_to, f"report_to of suite {name!r}")
    where = resolve_device(device)
    suite = component.factory(config)
    origin = component.provenance
    record = {
        "suite": name,
        "distribution": origin.distribution,
        "version": origin.version,
        "device": device,
        "seed": seed,
        "config": config.model_dump(mode="json"),
    }
    reusable = _same_suite(name)
    with (
        run_directory(
            output, command="ablate", overwrite=overwrite, reusable=reusable, main=world.is_main
        ),
        distributed.process_group(world, distributed.local_device(where, world)),
        reporting(
            report_to, directory=output, run_name=f"ablate {name}", config=record,
            main=world.is_main,
        ) as reporter,
    ):  # fmt: skip
        if world.is_main:
            atomic_write_text(output / "suite.yaml", to_yaml(record))
        context = SuiteContext(
            registry=registry,
            output=output,
            device=where,  # each process computes on its own (evaluate.score_methods)
            seed=seed,
            progress=progress and world.is_main,
        )
        result = suite.run(context)
        if world.is_main:
            write_tables(result, output)
            write_plots(result, output)
            reporter.table(result)
    return result, output


def _same_suite(name: str) -> Callable[[Path], str | None]:
    """A directory is resumed when it holds a run of the same suite (rows keyed by config)."""

    def check(directory: Path) -> str | None:
        try:
            record = yaml.safe_load((directory / "suite.yaml").read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            return "it holds no suite.yaml of a `devis ablate` run"
        previous = record.get("suite") if isinstance(record, dict) else None
        if previous != name:
            return f"it holds a run of suite {previous!r}, not {name!r}"
        return None

    return check
