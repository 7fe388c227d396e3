"""Built-in configs ship with the package and are found by name (``devis run quickstart``)."""

from __future__ import annotations

from pathlib import Path

from devis_core.builtin_configs import builtin_configs, describe, resolve_config
from devis_core.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_packaged_configs_equal_the_repository_configs():
    repository = {path.stem: path.read_bytes() for path in (ROOT / "configs").glob("*.yaml")}
    packaged = {path.stem: path.read_bytes() for path in (ROOT / "plugins/configs").glob("*.yaml")}
    assert repository, "configs/ holds no config"
    assert packaged.keys() == repository.keys(), "plugins/configs/ must mirror configs/"
    stale = [name for name in repository if packaged[name] != repository[name]]
    assert not stale, f"copy configs/{stale[0]}.yaml to plugins/configs/ (they must stay equal)"


def test_builtin_configs_are_found_through_the_installed_plugins():
    found = builtin_configs()
    assert {"quickstart", "eval-synthetic", "grpo-tiny"} <= found.keys()
    assert found["quickstart"].read_bytes() == (ROOT / "configs/quickstart.yaml").read_bytes()


def test_an_existing_file_wins_over_a_builtin_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text("seed: 1\n")
    assert resolve_config("quickstart") == Path("quickstart")
    assert resolve_config("quickstart.yaml") == builtin_configs()["quickstart"]


def test_describe_is_the_first_comment_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("\n#  What it is for.\n# more\nseed: 0\n")
    assert describe(path) == "What it is for."
    path.write_text("seed: 0\n# later comment\n")
    assert describe(path) == ""


def test_devis_configs_lists_names_and_descriptions(capsys):
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "description"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows.keys() == builtin_configs().keys()
    assert "60-degree orbit" in rows["quickstart"]


def test_validate_finds_a_builtin_config_by_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file named quickstart here
    assert main(["validate", "quickstart"]) == 0
    captured = capsys.readouterr()
    assert "name: quickstart" in captured.out
    assert "valid for: devis run" in captured.err


def test_an_unknown_name_is_exit_2_listing_the_builtins(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "quickstrat"]) == 2
    err = capsys.readouterr().err
    assert "quickstrat" in err and "Traceback" not in err
    assert all(name in err for name in builtin_configs())
