"""Divergence stops a run within the round (exit code 3) and keeps the last good checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from devis_core.cli import main
from devis_core.config import validate_config
from devis_core.distributed import World
from devis_core.errors import TrainingDivergedError
from devis_core.plugins import load_registry
from devis_core.sections import TrainingSection
from devis_core.training import Trainer
from devis_core.training.checkpoints import resume_checkpoint, verify_checkpoint
from devis_core.training.update import Updater
from tests.training.conftest import training_data


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_learning_rate_1e30_exits_3_within_two_rounds_keeping_a_loadable_checkpoint(
    tmp_path, registry, capsys
):
    # the warm start (its own, sane learning rate) writes round-00000 before RL diverges
    data = training_data(str(tmp_path / "run"), training={"rounds": 3, "learning_rate": 1e30})
    config = tmp_path / "diverge.yaml"
    config.write_text(yaml.safe_dump(data))
    code = main(["train", str(config), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err and "training diverged" in err and "non-finite" in err
    run = tmp_path / "run"
    (stopped,) = [r for r in _records(run) if r["event"] == "diverged"]
    assert stopped["round"] <= 1  # within the first or second round
    assert not any(r["event"] == "round" and r["round"] >= 1 for r in _records(run))
    assert not (run / "lora.safetensors").exists()  # no final LoRA from a diverged state
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text()
    assert f"last good checkpoint {latest} is kept" in err
    verify_checkpoint(latest)
    saved = load_file(str(latest / "lora.safetensors"))
    assert saved and all(bool(torch.isfinite(t).all()) for t in saved.values())
    # it loads: a trainer resuming the run gets exactly those weights and the next round
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=run, progress=False
    )
    chosen, next_round = resume_checkpoint(
        run,
        policy=trainer.policy,
        optimizer=trainer.updater.optimizer,
        scheduler=trainer.updater.scheduler,
    )
    assert chosen == latest and next_round == stopped["round"]
    assert all(bool(torch.isfinite(p).all()) for p in trainer.parameters)


class _NaNForSamples:
    """A reward term's ``score`` that is NaN for the round's samples at ``positions``."""

    def __init__(self, score, positions: set[int]):
        self.score, self.positions, self.seen = score, positions, 0

    def __call__(self, batch):
        scores = self.score(batch).clone()
        for index in range(scores.shape[0]):
            if self.seen + index in self.positions:
                scores[index] = float("nan")
        self.seen += scores.shape[0]
        return scores


def _trainer_with_nan_rewards(path: Path, registry, positions: set[int], **training) -> Trainer:
    """One round of 2 groups x 2 samples after a one-step warm start; the first reward term
    is NaN for the samples at ``positions`` (0..3)."""
    data = training_data(str(path), training={"rounds": 1, **training})
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=None, progress=False
    )
    term = trainer.reward.terms[0].term
    term.score = _NaNForSamples(term.score, positions)
    return trainer


@pytest.mark.parametrize(
    ("positions", "limit"), [({0, 1, 3}, 0.5), ({0, 1, 2, 3}, 1.0), ({2}, 0.2)]
)
def test_too_many_non_finite_rewards_stop_the_round(tmp_path, registry, positions, limit):
    trainer = _trainer_with_nan_rewards(
        tmp_path / "run", registry, positions, max_invalid_reward_fraction=limit
    )
    with (
        pytest.warns(RuntimeWarning, match="psnr-visible"),
        pytest.raises(TrainingDivergedError) as stopped,
    ):
        trainer.run()
    message = str(stopped.value)
    assert f"{len(positions)} of 4 rewards of round 0 are not finite" in message
    assert "round-00000 is kept" in message  # the warm start's checkpoint
    run = trainer.directory
    assert (run / "checkpoints" / "latest").read_text() == "round-00000"
    assert not (run / "checkpoints" / "round-00001").exists()
    assert not (run / "lora.safetensors").exists()


@pytest.mark.parametrize("positions", [{1}, {0, 3}])
def test_a_few_non_finite_rewards_are_skipped_and_counted(tmp_path, registry, positions):
    trainer = _trainer_with_nan_rewards(tmp_path / "run", registry, positions)
    with pytest.warns(RuntimeWarning, match="psnr-visible"):
        trainer.run()
    (record,) = [r for r in _records(trainer.directory) if r["event"] == "round"]
    assert record["rewards_non_finite"] == len(positions)
    assert record["rewards_non_finite_fraction"] == len(positions) / 4
    assert record["reward_mean"] == record["reward_mean"]  # the finite ones: not NaN
    assert (trainer.directory / "lora.safetensors").is_file()


def test_the_fraction_is_a_validated_config_field(registry, tmp_path):
    assert TrainingSection().max_invalid_reward_fraction == 0.5
    assert TrainingSection.model_fields["max_invalid_reward_fraction"].description
    for bad in (-0.1, 1.5):
        data = training_data(str(tmp_path), training={"max_invalid_reward_fraction": bad})
        with pytest.raises(Exception, match="max_invalid_reward_fraction"):
            validate_config(data, registry)


def _updater(parameter: torch.nn.Parameter, learning_rate: float) -> Updater:
    settings = TrainingSection(learning_rate=learning_rate, max_grad_norm=1e9)
    return Updater(
        [parameter],
        settings=settings,
        algorithm=None,  # only a cosine schedule asks the algorithm for its length
        world=World(),
        collective_device=torch.device("cpu"),
    )


def test_a_non_finite_gradient_norm_stops_before_the_step():
    parameter = torch.nn.Parameter(torch.ones(3))
    updater = _updater(parameter, 0.1)
    parameter.grad = torch.tensor([1.0, float("inf"), 0.0])
    with pytest.raises(TrainingDivergedError, match=r"non-finite gradient norm \(inf\) at here"):
        updater.step(updater.optimizer, None, torch.tensor(1.0), 1, where="here")
    assert torch.equal(parameter.detach(), torch.ones(3))  # the optimizer did not step


def test_weights_that_overflow_in_the_step_stop_the_run():
    # a step of 1e37 up from 3.4e38 passes float32's largest value (3.4028e38): inf
    parameter = torch.nn.Parameter(torch.full((3,), 3.4e38))
    updater = _updater(parameter, 1e37)
    parameter.grad = -torch.ones(3)
    with pytest.raises(TrainingDivergedError, match="non-finite weights after the optimizer"):
        updater.step(updater.optimizer, None, torch.tensor(1.0), 1, where="here")
    assert not bool(torch.isfinite(parameter).all())  # what the guard saw


def test_a_learning_rate_beyond_float32_stops_as_divergence():
    parameter = torch.nn.Parameter(torch.ones(3))
    updater = _updater(parameter, 1e39)
    parameter.grad = torch.ones(3)
    with pytest.raises(TrainingDivergedError, match="optimizer step overflowed at here"):
        updater.step(updater.optimizer, None, torch.tensor(1.0), 1, where="here")


def test_a_sane_step_passes_the_guards():
    parameter = torch.nn.Parameter(torch.ones(3))
    updater = _updater(parameter, 0.1)
    parameter.grad = torch.ones(3)
    result = updater.step(updater.optimizer, None, torch.tensor(1.0), 1, where="here")
    assert result["units"] == 1 and result["grad_norm"] == pytest.approx(3**0.5)
    assert bool(torch.isfinite(parameter).all()) and not torch.equal(parameter, torch.ones(3))


def test_a_diverging_warm_start_stops_before_any_checkpoint(tmp_path, registry):
    data = training_data(str(tmp_path / "run"), training={"warm_start": {"steps": 2}})
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=None, progress=False
    )
    real = trainer.policy.v_prediction_error
    trainer.policy.v_prediction_error = lambda *args: real(*args) * float("nan")
    with pytest.raises(TrainingDivergedError) as stopped:
        trainer.run()
    message = str(stopped.value)
    assert "non-finite loss (nan) in warm-start step 0" in message
    assert "no checkpoint had been written yet" in message
    assert not (trainer.directory / "checkpoints").exists()
    assert not (trainer.directory / "warm_start.safetensors").exists()
