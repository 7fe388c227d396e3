"""The ``devis`` command: output formats, exit codes, and no tracebacks for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from devis_core.cli import cli, main

COMMANDS = ["plugins", "configs", "schema", "validate", "run", "train", "eval", "ablate", "plots"]


def _run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        textwrap.dedent("""
        seed: 7
        depth: {kind: ground-truth}
        backbone: {kind: passthrough, fill: 0.5}
        metrics: [psnr]
    """)
    )
    return path


def test_plugins_json_has_exactly_the_documented_keys(capsys):
    code, out, _ = _run(capsys, "plugins", "--json")
    rows = json.loads(out)
    assert code == 0 and rows
    assert all(
        set(row) == {"slot", "name", "distribution", "version", "description"} for row in rows
    )
    assert {"slot": "backbone", "name": "passthrough"}.items() <= next(
        r for r in rows if r["name"] == "passthrough"
    ).items()


def test_plugins_table_lists_builtins(capsys):
    code, out, _ = _run(capsys, "plugins")
    assert code == 0
    assert out.splitlines()[0].split() == ["slot", "name", "distribution", "version", "description"]
    assert any(line.split()[:3] == ["metric", "psnr", "devis"] for line in out.splitlines())


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    code, out, _ = _run(capsys, command, "--help")
    assert code == 0 and "Usage: devis " + command in out


def test_validate_prints_the_resolved_config(capsys, config_file):
    code, out, err = _run(capsys, "validate", str(config_file), "-o", "backbone.fill=0.25")
    resolved = yaml.safe_load(out)
    assert code == 0, err
    assert resolved["backbone"] == {"fill": 0.25, "kind": "passthrough"}
    assert resolved["seed"] == 7 and resolved["device"] == "auto"
    [depth] = [entry for entry in resolved["provenance"] if entry["slot"] == "depth"]
    assert depth["name"] == "ground-truth" and depth["distribution"] == "devis"


@pytest.mark.parametrize(
    ("content", "overrides", "expected"),
    [
        ("backbone: {kind: passthrough, fil: 1}\n", [], "backbone.fil: unknown field"),
        ("backbone: {kind: pasthrough}\n", [], "did you mean 'passthrough'"),
        ("metrics: [psnr, nope]\n", [], "metrics[1].kind: unknown metric 'nope'"),
        ("seed: [1\n", [], "not valid YAML"),
        ("seed: 1\n", ["seed"], "expected KEY=VALUE"),
        ("seed: 1\n", ["seed=abc"], "seed: Input should be a valid integer"),
        ("backbone: {kind: passthrough}\n", ["backbone.fill=2"], "backbone.fill: Input should be"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(capsys, tmp_path, content, overrides, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    args = ["validate", str(path)] + [x for o in overrides for x in ("-o", o)]
    code, out, err = _run(capsys, *args)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err and out == ""


def test_missing_config_file_exits_2(capsys, tmp_path):
    code, _, err = _run(capsys, "validate", str(tmp_path / "missing.yaml"))
    assert code == 2 and "not found" in err


def test_unknown_command_and_option_exit_2(capsys):
    assert _run(capsys, "nonsense")[0] == 2
    assert _run(capsys, "plugins", "--jsn")[0] == 2


def test_schema_for_one_slot_lists_its_kinds(capsys):
    code, out, _ = _run(capsys, "schema", "--slot", "backbone")
    schema = json.loads(out)
    assert code == 0 and "passthrough" in json.dumps(schema)
    assert "psnr-nocc" not in json.dumps(schema)


def test_full_schema_validates_a_real_config(capsys, config_file):
    import jsonschema

    _, out, _ = _run(capsys, "schema")
    schema = json.loads(out)
    document = yaml.safe_load(config_file.read_text())
    document["metrics"] = [{"kind": "psnr"}]
    jsonschema.validate(document, schema)
    document["backbone"]["fil"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_ablate_unknown_suite_exits_2(capsys):
    code, _, err = _run(capsys, "ablate", "variant")
    assert code == 2 and "did you mean 'variants'" in err


def test_ablate_bad_suite_field_exits_2_with_path(capsys):
    code, _, err = _run(capsys, "ablate", "variants", "-o", "samples=0")
    assert code == 2 and "samples" in err and "greater than or equal to 1" in err


def test_installed_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "devis_core.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and json.loads(result.stdout)


def test_click_group_lists_all_commands():
    assert sorted(cli.commands) == sorted(COMMANDS)
