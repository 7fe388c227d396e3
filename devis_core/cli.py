"""The ``devis`` command line.

Exit codes: 0 success, 2 bad input (a config, an argument, a missing file the user named, an
output path that cannot be written), 3 training diverged, 1 any other failure. An error DEVIS
expects never prints a Python traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from devis_core import __version__
from devis_core.builtin_configs import builtin_configs, describe, resolve_config
from devis_core.config import PipelineBase, dump_config, load_config, pipeline_model, to_yaml
from devis_core.errors import DevisError, UsageError
from devis_core.plugins import load_registry
from devis_core.registry import Registry
from devis_core.slots import SLOTS, get_slot

CONFIG_SLOTS = [slot.name for slot in SLOTS if slot.config_key]

override_option = click.option(
    "-o",
    "--override",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set one config value, e.g. -o accumulator.steps=3 (repeatable).",
)
config_argument = click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
overwrite_option = click.option(
    "--overwrite",
    is_flag=True,
    help="Clear the output directory first when it holds files that are not a run this "
    "command resumes (docs/cli.md, 'Run directories').",
)


def _silence_library_bars(context: click.Context, parameter: click.Parameter, quiet: bool) -> bool:
    """With --quiet, the model libraries' bars go too (transformers' "Loading weights", hub
    downloads): huggingface_hub, transformers and diffusers read this variable."""
    if quiet:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    return quiet


quiet_option = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    callback=_silence_library_bars,
    help="No progress bars (the model libraries' loading bars included).",
)


def _registry() -> Registry:
    registry = load_registry()
    for failure in registry.failures:
        click.echo(
            f"warning: plugin {failure.plugin!r} from {failure.distribution} was not loaded: "
            f"{failure.error}",
            err=True,
        )
    return registry


def _load(config: Path, overrides: Sequence[str]) -> tuple[Registry, PipelineBase]:
    registry = _registry()
    return registry, load_config(resolve_config(config), registry, overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="devis")
def cli() -> None:
    """DEVIS: camera-controlled video generation at extreme viewpoints.

    Pipelines are YAML files naming registered components; `devis plugins` lists them.
    CONFIG is a file, or the name of a built-in config (`devis configs` lists them).
    """


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json: bool) -> None:
    """List every registered component: slot, name, distribution, version, description."""
    registry = _registry()
    rows = [
        {
            "slot": c.slot,
            "name": c.name,
            "distribution": c.provenance.distribution,
            "version": c.provenance.version,
            "description": c.description,
        }
        for c in registry
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = ["slot", "name", "distribution", "version", "description"]
    widths = {h: max([len(h)] + [len(str(r[h])) for r in rows]) for h in headers[:-1]}
    click.echo("  ".join(h.ljust(widths.get(h, 0)) for h in headers).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[h]).ljust(widths.get(h, 0)) for h in headers).rstrip())


@cli.command()
def configs() -> None:
    """List the built-in configs: `devis run NAME` (or train, eval, validate) runs one."""
    found = builtin_configs()
    width = max([len("name")] + [len(name) for name in found])
    click.echo(f"{'name'.ljust(width)}  description")
    for name, path in found.items():
        click.echo(f"{name.ljust(width)}  {describe(path)}".rstrip())


@cli.command()
@click.option(
    "--slot",
    type=click.Choice(CONFIG_SLOTS),
    help="Only the schema of one slot's entries (e.g. accumulator).",
)
def schema(slot: str | None) -> None:
    """Print the JSON Schema of pipeline configs, built from the installed plugins."""
    registry = _registry()
    model = pipeline_model(registry)
    document = model.model_json_schema()
    if slot is not None:
        key = get_slot(slot).config_key
        entry = {**document["properties"][key], "title": f"{key} entry"}
        document = {"$defs": _referenced(entry, document.get("$defs", {})), **entry}
    click.echo(json.dumps(document, indent=2))


def _referenced(node: object, definitions: dict[str, object]) -> dict[str, object]:
    """The schema definitions ``node`` refers to, directly or through other definitions."""
    found: dict[str, object] = {}
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name not in found:
                    found[name] = definitions[name]
                    pending.append(definitions[name])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


@cli.command()
@config_argument
@override_option
@click.option(
    "--for",
    "commands",
    multiple=True,
    type=click.Choice(["run", "train", "eval"]),
    help="Run the checks of this command (repeatable). Default: every command whose sections "
    "the config has (run: dataset, depth, accumulator, backbone; eval: and metrics, without "
    "rewards, which eval refuses; train: and algorithm or rewards).",
)
def validate(config: Path, overrides: tuple[str, ...], commands: tuple[str, ...]) -> None:
    """Check a pipeline config as the commands do before they start; print it resolved.

    The checks are those `devis run`, `train` and `eval` run before any work (sections
    present, files the config names, run.sample, the output path); no weights are loaded.
    """
    from devis_core.engines.preflight import applicable_commands, preflight

    registry, pipeline = _load(config, overrides)
    checked = list(dict.fromkeys(commands)) or applicable_commands(pipeline)
    for command in checked:
        preflight(pipeline, registry, command)  # type: ignore[arg-type]
    click.echo(to_yaml(dump_config(pipeline, registry)), nl=False)
    if checked:
        click.echo(f"valid for: {', '.join(f'devis {c}' for c in checked)}", err=True)
    else:
        click.echo("valid; no command's sections are all present (devis validate --for)", err=True)


@cli.command()
@config_argument
@override_option
@overwrite_option
@quiet_option
def run(config: Path, overrides: tuple[str, ...], overwrite: bool, quiet: bool) -> None:
    """Synthesise the target-view video of a pipeline (ADEVIS) into its run directory."""
    from devis_core.engines.run import run_pipeline

    registry, pipeline = _load(config, overrides)
    directory = run_pipeline(pipeline, registry, progress=not quiet, overwrite=overwrite)
    click.echo(f"written to {directory}", err=True)


@cli.command()
@config_argument
@override_option
@click.option(
    "--resume",
    type=click.Path(file_okay=False, path_type=Path),
    help="Continue the run in this directory from its last checkpoint.",
)
@overwrite_option
@quiet_option
def train(
    config: Path, overrides: tuple[str, ...], resume: Path | None, overwrite: bool, quiet: bool
) -> None:
    """Train a backbone with an algorithm (GRPO, DPO, SFT) from a pipeline config."""
    from devis_core.engines.train import train_pipeline

    registry, pipeline = _load(config, overrides)
    directory = train_pipeline(
        pipeline, registry, resume=resume, progress=not quiet, overwrite=overwrite
    )
    click.echo(f"written to {directory}", err=True)


@cli.command(name="eval")
@config_argument
@override_option
@overwrite_option
@quiet_option
def evaluate(config: Path, overrides: tuple[str, ...], overwrite: bool, quiet: bool) -> None:
    """Score a backbone and accumulator over a dataset with the configured metrics.

    Under torchrun (one process per device) the processes share the samples; the table is
    the one a single process writes (docs/cli.md, 'Evaluating on several devices').
    """
    from devis_core.engines.evaluate import evaluate_pipeline

    registry, pipeline = _load(config, overrides)
    directory = evaluate_pipeline(pipeline, registry, progress=not quiet, overwrite=overwrite)
    if _main_process():
        click.echo(f"written to {directory}", err=True)


@cli.command()
@click.argument("suite")
@override_option
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the tables (default: runs/ablate-SUITE).",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda[:N], npu[:N], auto.")
@click.option("--seed", default=0, show_default=True, type=int)
@overwrite_option
@quiet_option
def ablate(
    suite: str,
    overrides: tuple[str, ...],
    output: Path | None,
    device: str,
    seed: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Run an ablation suite and write its table (markdown, LaTeX, CSV, JSON), the per-sample
    records behind it (samples.jsonl) and bar plots.

    Running it again into the same --output reuses the rows already finished there. Under
    torchrun the processes share each evaluation's samples.
    """
    from devis_core.engines.ablate import run_suite

    registry = _registry()
    result, directory = run_suite(
        registry,
        suite,
        overrides=overrides,
        output=output or Path("runs") / f"ablate-{suite}",
        device=device,
        seed=seed,
        progress=not quiet,
        overwrite=overwrite,
    )
    from devis_core.engines.tables import markdown_table

    if _main_process():
        click.echo(markdown_table(result))
        click.echo(f"\nwritten to {directory}", err=True)


def _main_process() -> bool:
    """Whether this process prints results (the main one of a torchrun job)."""
    from devis_core.distributed import world_from_environment

    return world_from_environment().is_main


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def plots(paths: tuple[Path, ...]) -> None:
    """Redraw the bar plots of every table.json under PATHS (files or folders) beside it.

    The plots (plots/<column>.png, error bars from the table's std) are drawn from the table
    alone, so no suite runs again: `devis plots docs/results` remakes the committed ones.
    """
    from devis_core.engines.plots import plot_tables

    written = plot_tables(paths)
    folders = sorted({str(path.parent.parent) for path in written})
    click.echo(f"{len(written)} plots written beside the tables of {', '.join(folders)}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``devis`` script; returns the exit code."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="devis", standalone_mode=False
        )
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except DevisError as error:
        click.echo(f"error: {error}", err=True)
        return error.exit_code
    except (PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError) as error:
        click.echo(f"error: {_path_error(error)}", err=True)
        return UsageError.exit_code
    return 0


def _path_error(error: OSError) -> str:
    """An OS error about a path the user chose, as one line that names the path."""
    where = error.filename if error.filename is not None else "a path"
    return f"{where}: {error.strerror or error} (choose another path or fix its permissions)"


if __name__ == "__main__":
    sys.exit(main())
