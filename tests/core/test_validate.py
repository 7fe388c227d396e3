"""`devis validate` runs the checks `run`, `train` and `eval` run before they start: a config a
command rejects is rejected by `validate --for` it with the same message, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from devis_core.cli import main
from devis_core.registry import Registry

BASE = {
    "name": "tiny",
    "device": "cpu",
    "dataset": {"kind": "synthetic", "num_samples": 2, "frames": 3, "height": 32, "width": 48},
    "depth": {"kind": "ground-truth"},
    "accumulator": {"kind": "direct"},
    "backbone": {"kind": "passthrough"},
    "metrics": ["psnr"],
}
TRAINING = {"algorithm": {"kind": "grpo"}, "rewards": [{"kind": "psnr-visible"}]}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"output": str(tmp_path / "run"), **data}, sort_keys=False))
    return path


def _missing_file(tmp_path: Path) -> dict:
    return {"depth": {"kind": "files", "path": str(tmp_path / "depth.npy")}}


def _output_is_a_file(tmp_path: Path) -> dict:
    (tmp_path / "taken").write_text("a file")
    return {"output": str(tmp_path / "taken")}


def _output_under_a_file(tmp_path: Path) -> dict:
    (tmp_path / "taken").write_text("a file")
    return {"output": str(tmp_path / "taken" / "run")}


CASES = {
    "train without rewards": (
        "train",
        lambda tmp: {**TRAINING, "rewards": []},
        "devis train needs at least one entry in `rewards`",
    ),
    "train without algorithm": (
        "train",
        lambda tmp: {"rewards": TRAINING["rewards"]},
        "devis train needs an `algorithm` section",
    ),
    "train one-step with same noise": (
        "train",
        lambda tmp: {**TRAINING, "training": {"sampling": "one-step", "same_noise": True}},
        "sampling: one-step with same_noise gives identical videos per group",
    ),
    "eval without metrics": ("eval", lambda tmp: {"metrics": []}, "entry in `metrics`"),
    "eval with rewards": (
        "eval",
        lambda tmp: {"rewards": TRAINING["rewards"]},
        "devis eval does not use `rewards` (the config lists psnr-visible): reward terms score "
        "the samples of devis train",
    ),
    "eval with a method that adds rewards": (
        "eval",
        lambda tmp: {"evaluation": {"methods": {"scored": ["rewards=[psnr-visible]"]}}},
        "devis eval does not use `rewards` (evaluation.methods['scored'] lists psnr-visible)",
    ),
    "eval with a broken method": (
        "eval",
        lambda tmp: {"evaluation": {"methods": {"bad": ["backbone.nonsense=1"]}}},
        "evaluation.methods['bad']",
    ),
    "run.sample past the dataset": (
        "run",
        lambda tmp: {"run": {"sample": 5}},
        "run.sample=5 is out of range: the dataset has 2 samples (indices 0 to 1)",
    ),
    "run without a backbone": (
        "run",
        lambda tmp: {"backbone": None},
        "devis run needs a `backbone` section",
    ),
    "a required file is missing": ("run", _missing_file, "depth.path: "),
    "output is an existing file": ("run", _output_is_a_file, "is an existing file"),
    "output under an existing file": ("eval", _output_under_a_file, "is a file)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_rejects_what_the_command_rejects_with_the_same_message(tmp_path, capsys, case):
    command, changes, expected = CASES[case]
    data = {**BASE, **changes(tmp_path)}
    data = {k: v for k, v in data.items() if v is not None}
    config = _write(tmp_path, data)

    assert main(["validate", str(config), "--for", command]) == 2
    validated = capsys.readouterr()
    assert main([command, str(config), "-q"]) == 2
    ran = capsys.readouterr()

    assert expected in validated.err
    assert validated.err == ran.err and validated.err.startswith("error: ")
    assert "Traceback" not in ran.err and ran.out == ""
    assert not (tmp_path / "run").exists()  # rejected before any work


def test_a_valid_config_passes_for_every_command_it_has_sections_for(tmp_path, capsys):
    config = _write(tmp_path, {**BASE, **TRAINING})
    assert main(["validate", str(config)]) == 0
    out, err = capsys.readouterr()
    assert yaml.safe_load(out)["dataset"]["num_samples"] == 2
    assert "valid for: devis run, devis train\n" in err  # eval refuses rewards: not applicable
    assert not (tmp_path / "run").exists()


def test_eval_names_the_way_out_of_a_rewards_section(tmp_path, capsys):
    config = _write(tmp_path, {**BASE, **TRAINING})
    assert main(["validate", str(config), "--for", "eval"]) == 2
    message = capsys.readouterr().err
    assert "Remove the `rewards` section, or list what to score under `metrics:`" in message
    assert "registered metrics: " in message and "psnr-nocc" in message
    assert main(["validate", str(config), "--for", "run", "--for", "train"]) == 0


def test_the_default_checks_every_command_whose_sections_are_present(tmp_path, capsys):
    config = _write(tmp_path, {**BASE, "algorithm": {"kind": "grpo"}})  # train, no rewards
    assert main(["validate", str(config)]) == 2
    assert "devis train needs at least one entry in `rewards`" in capsys.readouterr().err
    assert main(["validate", str(config), "--for", "run", "--for", "eval"]) == 0
    assert "valid for: devis run, devis eval\n" in capsys.readouterr().err


def test_validate_builds_no_model(tmp_path, capsys, monkeypatch):
    built: list[str] = []
    build = Registry.build

    def recorded(self, slot, entry):
        built.append(slot)
        return build(self, slot, entry)

    monkeypatch.setattr(Registry, "build", recorded)
    config = _write(tmp_path, {**BASE, **TRAINING})
    assert main(["validate", str(config), "--for", "run", "--for", "train"]) == 0
    assert set(built) == {"dataset"}  # for run.sample; no backbone, depth, reward or metric
