"""The trainer end to end on the tiny model: the loop, the logs, the guards and resuming."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from devis_core.config import validate_config
from devis_core.distributed import World
from devis_core.engines.train import train_pipeline
from devis_core.errors import TrainingDivergedError, UsageError
from devis_core.plugins import load_registry
from devis_core.training import Trainer
from tests.plugins import toy_components
from tests.training.conftest import training_data


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _records(run: Path, event: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_short_run_logs_finite_losses_and_reward_statistics(tmp_path, registry):
    config = validate_config(training_data(str(tmp_path / "run")), registry)
    run = train_pipeline(config, registry, progress=False)
    assert (run / "config.yaml").is_file() and (run / "reward_curve.png").stat().st_size > 0
    warm = _records(run, "warm_start")
    assert len(warm) == 1 and warm[0]["loss"] > 0 and (run / "warm_start.safetensors").is_file()
    steps = _records(run, "step")
    assert steps and all(torch.isfinite(torch.tensor(s["loss"])) for s in steps)
    assert all(s["grad_norm"] >= 0 and "ratio_mean" in s and "kl" in s for s in steps)
    (round_record,) = _records(run, "round")
    for name in ("reward", "reward/psnr-visible", "reward/ssim-visible", "advantage"):
        assert round_record[f"{name}_mean"] == round_record[f"{name}_mean"]  # not NaN
        assert f"{name}_std" in round_record
    assert 1 <= round_record["accumulation_steps_mean"] <= 2
    assert round_record["seconds_sampling"] > 0 and round_record["optimizer_steps"] == len(steps)
    final = _weights(run / "lora.safetensors")
    start = _weights(run / "warm_start.safetensors")
    assert any(not torch.equal(final[k], start[k]) for k in final)  # the round changed them


def test_groups_with_equal_rewards_train_nothing(tmp_path, registry):
    # with one-step sampling and a reward range nobody reaches, every reward is 0
    data = training_data(
        str(tmp_path / "flat"),
        rewards=[{"kind": "psnr-visible", "range": [500.0, 600.0]}],
        training={"sampling": "one-step", "warm_start": {"steps": 0}},
    )
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=None, progress=False
    )
    before = [p.detach().clone() for p in trainer.parameters]
    trainer.run()
    (record,) = _records(trainer.directory, "round")
    assert record["groups_equal_rewards"] == 2 and record["optimizer_steps"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.parameters, strict=True))
    # no warm start: the starting adapter is saved all the same, for baselines to start from
    start = _weights(trainer.directory / "warm_start.safetensors")
    final = _weights(trainer.directory / "lora.safetensors")
    assert start.keys() == final.keys() and all(torch.equal(start[k], final[k]) for k in start)


def test_non_finite_loss_stops_naming_the_round_and_keeps_the_checkpoint(tmp_path, registry):
    data = training_data(str(tmp_path / "run"), training={"warm_start": {"steps": 0}})
    run = train_pipeline(validate_config(data, registry), registry, progress=False)
    saved = _weights(run / "checkpoints" / "round-00001" / "lora.safetensors")
    data["training"]["rounds"] = 2
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=run, progress=False
    )
    real = trainer.policy.log_prob

    def poisoned(cond, rollout, step):
        log_prob, mean, std = real(cond, rollout, step)
        return log_prob * float("nan"), mean, std

    trainer.policy.log_prob = poisoned
    with pytest.raises(TrainingDivergedError) as stopped:
        trainer.run()
    assert "non-finite loss (nan) in round 1, epoch 0, step 0, groups [0, 1]" in str(stopped.value)
    assert f"last good checkpoint {run / 'checkpoints' / 'round-00001'} is kept" in str(
        stopped.value
    )
    assert (run / "checkpoints" / "latest").read_text() == "round-00001"
    kept = _weights(run / "checkpoints" / "round-00001" / "lora.safetensors")
    assert all(torch.equal(saved[k], kept[k]) for k in saved)


def test_fresh_run_refuses_a_directory_with_a_checkpoint(tmp_path, registry):
    data = training_data(str(tmp_path / "run"), training={"warm_start": {"steps": 0}})
    train_pipeline(validate_config(data, registry), registry, progress=False)
    with pytest.raises(UsageError, match="--resume"):
        train_pipeline(validate_config(data, registry), registry, progress=False)
    data["algorithm"]["beta"] = 0.5
    with pytest.raises(UsageError, match="algorithm"):
        train_pipeline(
            validate_config(data, registry), registry, resume=Path(data["output"]), progress=False
        )


def test_an_algorithm_outside_the_contract_is_refused_by_name(tmp_path):
    registry = load_registry(plugins=[("toys", toy_components)])
    data = training_data(str(tmp_path / "run"))
    data["algorithm"] = {"kind": "toy-squared"}  # a loss and nothing else
    with pytest.raises(UsageError, match="'toy-squared' does not subclass .*TrainingAlgorithm"):
        Trainer(
            validate_config(data, registry), registry, world=World(), resume=None, progress=False
        )


def _devis(*args: str) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "devis_core.cli", "train", *args, "--quiet"]
    return subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, registry):
    rounds = {"rounds": 3, "warm_start": {"steps": 0}}
    reference = training_data(str(tmp_path / "reference"), training=rounds)
    expected = train_pipeline(validate_config(reference, registry), registry, progress=False)

    data = training_data(str(tmp_path / "killed"), training=rounds)
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump(data))
    run = Path(data["output"])
    process = _devis(str(config))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        # kill -9 in the middle of round 2 (index 1), after its first optimizer step
        if (run / "metrics.jsonl").exists() and any(r["round"] == 1 for r in _records(run, "step")):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert process.wait() == -signal.SIGKILL, process.stderr.read()
    assert (run / "checkpoints" / "latest").read_text() == "round-00001"
    resumed = _devis(str(config), "--resume", str(run))
    assert resumed.wait(timeout=180) == 0, resumed.stderr.read()
    want, got = _weights(expected / "lora.safetensors"), _weights(run / "lora.safetensors")
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-7)
    assert [r["round"] for r in _records(run, "round")] == [0, 1, 2]


def test_round_gradient_is_the_loss_gradient_and_leaves_the_weights(tmp_path, registry):
    config = validate_config(training_data(str(tmp_path / "run")), registry)
    trainer = Trainer(config, registry, world=World(), resume=None, progress=False)
    before = [p.detach().clone() for p in trainer.parameters]
    gradient, rewards = trainer.round_gradient(0)
    size = sum(p.numel() for p in trainer.parameters)
    assert gradient.shape == (size,) and bool(torch.isfinite(gradient).all())
    assert float(gradient.abs().sum()) > 0  # GRPO with unequal rewards has a gradient
    assert rewards.shape == (2 * 2,)  # groups_per_round x num_generations
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.parameters, strict=True))
    assert all(p.grad is None for p in trainer.parameters)
    again, _ = trainer.round_gradient(0)  # same round, same seeds: the same samples
    torch.testing.assert_close(again, gradient)


def test_a_config_without_algorithm_is_refused_naming_the_installed_ones(tmp_path, registry):
    data = training_data(str(tmp_path / "run"))
    del data["algorithm"]
    config = validate_config(data, registry)
    with pytest.raises(UsageError, match=r"algorithm.*registered: dpo, grpo, sft"):
        Trainer(config, registry, world=World(), resume=None, progress=False)


def test_resume_refuses_another_config_naming_its_sections_but_allows_more_rounds(tmp_path):
    from devis_core.training.trainer import _check_same_config

    saved = {"seed": 0, "name": "a", "training": {"rounds": 2, "k_max": 3}, "backbone": {"k": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    more_rounds = {**saved, "name": "b", "training": {"rounds": 5, "k_max": 3}}
    _check_same_config(tmp_path / "config.yaml", more_rounds)  # rounds and name may change
    changed = {**saved, "seed": 1, "training": {"rounds": 2, "k_max": 2}}
    with pytest.raises(UsageError, match=r"\(sections: seed, training\)"):
        _check_same_config(tmp_path / "config.yaml", changed)
