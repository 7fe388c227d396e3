"""``devis ablate SUITE``: configure a registered suite, run it, write its tables and plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from devis_core.config import apply_overrides, format_path, to_yaml
from devis_core.devices import resolve_device
from devis_core.engines.tables import write_plots, write_tables
from devis_core.errors import ConfigError
from devis_core.registry import Registry
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
) -> tuple[SuiteResult, Path]:
    """Run suite ``name`` with ``field=value`` overrides of its config; return its table.

    Writes ``table.{md,csv,json}`` and ``plots/<metric>.png`` into ``output``; suites keep
    their finished rows there too, so running again into the same ``output`` resumes.
    """
    component = registry.get("suite", name)
    data = apply_overrides({}, overrides)
    try:
        config = component.config_model.model_validate(data)
    except ValidationError as error:
        problems = [(format_path(list(e["loc"])), e["msg"]) for e in error.errors()]
        raise ConfigError(problems, source=f"suite {name!r} (-o overrides)") from None
    suite = component.factory(config)
    output.mkdir(parents=True, exist_ok=True)
    origin = component.provenance
    record = {
        "suite": name,
        "distribution": origin.distribution,
        "version": origin.version,
        "device": device,
        "seed": seed,
        "config": config.model_dump(mode="json"),
    }
    (output / "suite.yaml").write_text(to_yaml(record))
    context = SuiteContext(
        registry=registry,
        output=output,
        device=resolve_device(device),
        seed=seed,
        progress=progress,
    )
    result = suite.run(context)
    write_tables(result, output)
    write_plots(result, output)
    return result, output
