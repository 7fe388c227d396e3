"""A backbone that cannot be trained is refused naming the configured backbone (its section and
kind), what it lacks and what would train: never another component of the config."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from pydantic import BaseModel

import devis_core
from devis_core.config import validate_config
from devis_core.distributed import World
from devis_core.errors import UsageError
from devis_core.plugins import load_registry
from devis_core.training import Trainer
from tests.training.conftest import training_data

POLICY_METHODS = (
    "rollout",
    "log_prob",
    "trainable_parameters",
    "disable_adapter",
    "latent_shape",
    "v_prediction_error",
)
"""The methods of devis_core.types.Policy, as docs/training.md lists what training calls."""


class NoSettings(BaseModel):
    """No fields."""


class PolicyWithoutSaving:
    """Every Policy method, but no save_lora / load_lora: a run could not checkpoint it."""

    def __init__(self, config: NoSettings):
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def generate(self, cond, generator=None):
        return cond.render

    def rollout(self, cond, generator=None):
        raise AssertionError("not called by the check")

    def log_prob(self, cond, rollout, step):
        raise AssertionError("not called by the check")

    def trainable_parameters(self):
        yield self.weight

    def disable_adapter(self):
        return nullcontext()

    def latent_shape(self, cond):
        return (1,)

    def v_prediction_error(self, cond, video, timesteps, noise):
        raise AssertionError("not called by the check")


class PolicyWithoutAdapter(PolicyWithoutSaving):
    """A complete policy whose adapter is not configured: nothing to train."""

    def trainable_parameters(self):
        yield from ()

    def save_lora(self, path):
        raise AssertionError("not called by the check")

    def load_lora(self, path):
        raise AssertionError("not called by the check")


class Backbones:
    @devis_core.hookimpl
    def devis_register_backbones(self, register):
        register("half-policy", PolicyWithoutSaving, NoSettings)
        register("no-adapter", PolicyWithoutAdapter, NoSettings)


@pytest.fixture(scope="module")
def registry():
    return load_registry(plugins=[("test-backbones", Backbones())])


def _refusal(tmp_path, registry, backbone: str) -> str:
    data = training_data(str(tmp_path / "run"))
    data["backbone"] = {"kind": backbone}
    config = validate_config(data, registry)
    with pytest.raises(UsageError) as error:
        Trainer(config, registry, world=World(), resume=None, progress=False)
    return str(error.value)


@pytest.mark.parametrize("kind", ["passthrough", "inpaint"])
def test_a_generator_only_backbone_is_named_with_what_it_lacks(tmp_path, registry, kind):
    message = _refusal(tmp_path, registry, kind)
    assert message.startswith(f"backbone {kind!r} (the `backbone` section) cannot be trained")
    lacks = message.split(f"{kind!r} has no ")[1].split(".")[0]
    assert lacks.split(", ") == [*POLICY_METHODS, "save_lora", "load_lora"]
    assert "grpo" not in message  # the algorithm is not what cannot be trained
    assert f"{kind!r} stays usable by devis run and devis eval" in message


def test_a_policy_that_cannot_save_its_adapter_is_told_exactly_that(tmp_path, registry):
    message = _refusal(tmp_path, registry, "half-policy")
    assert "backbone 'half-policy' (the `backbone` section) cannot be trained" in message
    assert "'half-policy' has no save_lora, load_lora." in message


def test_a_policy_without_trainable_parameters_is_refused_by_name(tmp_path, registry):
    message = _refusal(tmp_path, registry, "no-adapter")
    assert message.startswith(
        "backbone 'no-adapter' (the `backbone` section) has no trainable parameters"
    )
    assert "configure the adapter in the `backbone` entry" in message
