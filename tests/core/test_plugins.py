"""Plugin discovery through entry points, selection by environment, and failure reports."""

from __future__ import annotations

import pytest

from devis_core.errors import PluginConflictError, UnknownComponentError
from devis_core.plugins import load_registry

DEPTH_PLUGIN = """
from pydantic import BaseModel
import devis_core

class Config(BaseModel):
    value: float = 1.0

class Depth:
    '''Constant depth, for tests.'''
    def __init__(self, config):
        self.config = config

@devis_core.hookimpl
def devis_register_depth_estimators(register):
    register("{name}", Depth, Config)
"""


def _depth_plugin(name: str) -> str:
    return DEPTH_PLUGIN.replace("{name}", name)


def test_entry_point_plugin_is_found_with_its_distribution(make_distribution):
    make_distribution(
        "devis-fake", "1.2.3", {"devis_fake": _depth_plugin("fake-depth")}, {"fake": "devis_fake"}
    )
    registry = load_registry(environ={})
    component = registry.get("depth", "fake-depth")
    assert component.provenance.distribution == "devis-fake"
    assert component.provenance.version == "1.2.3"
    assert component.provenance.plugin == "fake"
    assert component.description == "Constant depth, for tests."


def test_builtins_come_through_the_same_entry_point_path(registry):
    component = registry.get("backbone", "passthrough")
    assert component.provenance.distribution == "devis"
    assert component.provenance.plugin == "passthrough"


def test_allow_list_loads_only_named_distributions(make_distribution):
    make_distribution("devis-fake-a", "1.0", {"fake_a": _depth_plugin("a-depth")}, {"a": "fake_a"})
    make_distribution("devis-fake-b", "1.0", {"fake_b": _depth_plugin("b-depth")}, {"b": "fake_b"})
    registry = load_registry(environ={"DEVIS_LOAD_PLUGINS": "devis_fake_a"})
    assert registry.names("depth") == ["a-depth"]
    assert registry.names("backbone") == []  # the built-ins are the distribution "devis"


def test_empty_allow_list_loads_nothing(make_distribution):
    make_distribution(
        "devis-fake", "1.0", {"devis_fake": _depth_plugin("x-depth")}, {"fake": "devis_fake"}
    )
    registry = load_registry(environ={"DEVIS_LOAD_PLUGINS": ""})
    assert list(registry) == []


def test_block_list_skips_a_distribution_or_a_plugin(make_distribution):
    make_distribution(
        "devis-fake", "1.0", {"devis_fake": _depth_plugin("x-depth")}, {"fake": "devis_fake"}
    )
    assert "x-depth" not in load_registry(environ={"DEVIS_DISABLE_PLUGINS": "Devis.Fake"}).names(
        "depth"
    )
    by_plugin = load_registry(environ={"DEVIS_DISABLE_PLUGINS": "passthrough"})
    assert "passthrough" not in by_plugin.names("backbone")
    assert "x-depth" in by_plugin.names("depth")


def test_plugin_that_raises_on_import_is_reported_and_others_load(make_distribution):
    make_distribution(
        "devis-broken",
        "0.1",
        {"devis_broken": "raise RuntimeError('boom')\n"},
        {"broken": "devis_broken"},
    )
    make_distribution(
        "devis-fine", "0.1", {"devis_fine": _depth_plugin("fine-depth")}, {"fine": "devis_fine"}
    )
    registry = load_registry(environ={})
    assert "fine-depth" in registry.names("depth")
    [failure] = [f for f in registry.failures if f.plugin == "broken"]
    assert failure.distribution == "devis-broken"
    assert "RuntimeError: boom" in failure.error


def test_register_hook_that_raises_rolls_back_that_plugin_only(make_distribution):
    source = (
        _depth_plugin("half-depth")
        + """
@devis_core.hookimpl
def devis_register_metrics(register):
    raise ValueError("metric registration failed")
"""
    )
    make_distribution("devis-half", "0.1", {"devis_half": source}, {"half": "devis_half"})
    registry = load_registry(environ={})
    assert "half-depth" not in registry.names("depth")
    assert "passthrough" in registry.names("backbone")
    [failure] = [f for f in registry.failures if f.plugin == "half"]
    assert "metric registration failed" in failure.error


def test_unknown_hook_is_rejected_with_a_suggestion(make_distribution):
    source = (
        _depth_plugin("typo-depth")
        + """
@devis_core.hookimpl
def devis_register_backbone(register):
    pass
"""
    )
    make_distribution("devis-typo", "0.1", {"devis_typo": source}, {"typo": "devis_typo"})
    registry = load_registry(environ={})
    assert "typo-depth" not in registry.names("depth")
    [failure] = [f for f in registry.failures if f.plugin == "typo"]
    assert "devis_register_backbone'" in failure.error
    assert "did you mean 'devis_register_backbones'" in failure.error


def test_hook_with_wrong_arguments_is_rejected(make_distribution):
    source = """
import devis_core

@devis_core.hookimpl
def devis_register_metrics(register, extra):
    pass
"""
    make_distribution("devis-args", "0.1", {"devis_args": source}, {"args": "devis_args"})
    registry = load_registry(environ={})
    [failure] = [f for f in registry.failures if f.plugin == "args"]
    assert "extra" in failure.error


def test_same_name_in_one_slot_names_both_distributions(make_distribution):
    make_distribution(
        "devis-one", "1.0", {"devis_one": _depth_plugin("twin")}, {"one": "devis_one"}
    )
    make_distribution(
        "devis-two", "2.0", {"devis_two": _depth_plugin("twin")}, {"two": "devis_two"}
    )
    with pytest.raises(PluginConflictError) as error:
        load_registry(environ={})
    assert "devis-one 1.0" in str(error.value) and "devis-two 2.0" in str(error.value)


def test_same_name_in_different_slots_is_fine(make_distribution):
    source = _depth_plugin("psnr")  # "psnr" is also a built-in metric
    make_distribution("devis-dup", "1.0", {"devis_dup": source}, {"dup": "devis_dup"})
    registry = load_registry(environ={})
    assert registry.get("depth", "psnr").provenance.distribution == "devis-dup"
    assert registry.get("metric", "psnr").provenance.distribution == "devis"


def test_unknown_component_lists_names_and_closest_match(registry):
    with pytest.raises(UnknownComponentError) as error:
        registry.get("backbone", "pasthrough")
    message = str(error.value)
    assert "did you mean 'passthrough'" in message
    assert "passthrough" in message.split("Registered backbone components:")[1]


@pytest.mark.parametrize("bad_name", ["Upper", "has space", "-dash", "x_y"])
def test_component_names_are_validated(bad_name):
    from pydantic import BaseModel

    import devis_core

    class Plugin:
        @devis_core.hookimpl
        def devis_register_metrics(self, register):
            register(bad_name, object, BaseModel)

    registry = load_registry(plugins=[("bad", Plugin())], use_entry_points=False)
    [failure] = registry.failures
    assert "lower case" in failure.error


def test_config_models_are_made_strict():
    from pydantic import BaseModel, ValidationError

    import devis_core

    class Loose(BaseModel):
        a: int = 1

    class Plugin:
        @devis_core.hookimpl
        def devis_register_metrics(self, register):
            register("loose", lambda config: config, Loose)

    registry = load_registry(plugins=[("loose", Plugin())], use_entry_points=False)
    with pytest.raises(ValidationError):
        registry.get("metric", "loose").build({"a": 2, "b": 3})
    assert registry.get("metric", "loose").build({"a": 2}).a == 2


def test_registries_do_not_leak_between_loads():
    from tests.plugins import toy_components

    first = load_registry(plugins=[("toys", toy_components)], use_entry_points=False)
    second = load_registry(use_entry_points=False)
    assert first.names("depth") == ["toy-constant"] and second.names("depth") == []


REWARD_PLUGIN = """
from pydantic import BaseModel
import devis_core

class TermConfig(BaseModel):
    pass

class Term:
    '''A reward term declaring its contract as class attributes.'''
    higher_is_better = {direction}
    default_range = {bounds}

    def __init__(self, config):
        raise AssertionError("registration must not build the term")

@devis_core.hookimpl
def devis_register_reward_terms(register):
    register({name}, Term, TermConfig)
"""

BROKEN_REWARDS = {
    "empty name": ('""', "True", "(0.0, 1.0)", "the name '' is not a valid kind"),
    "name with capitals": (
        '"PSNR_visible"',
        "True",
        "(0.0, 1.0)",
        "the name 'PSNR_visible' is not a valid kind",
    ),
    "direction as a word": (
        '"fine"',
        '"up"',
        "(0.0, 1.0)",
        "unknown direction higher_is_better='up'",
    ),
    "direction missing a value": ('"fine"', "None", "(0.0, 1.0)", "higher_is_better=None"),
    "range reversed": ('"fine"', "True", "(1.0, 0.0)", "default_range must have low < high"),
    "range empty": ('"fine"', "False", "(2.0, 2.0)", "default_range must have low < high"),
    "range infinite": ('"fine"', "True", "(0.0, float('inf'))", "default_range must be finite"),
    "range NaN": ('"fine"', "True", "(float('nan'), 1.0)", "default_range must be finite"),
    "range of one number": ('"fine"', "True", "(1.0,)", "must be a pair (low, high)"),
    "range as text": ('"fine"', "True", '"0-1"', "must be a pair (low, high)"),
}


def _reward_plugin(name: str, direction: str, bounds: str) -> str:
    source = REWARD_PLUGIN.replace("{name}", name).replace("{direction}", direction)
    return source.replace("{bounds}", bounds)


@pytest.mark.parametrize("case", list(BROKEN_REWARDS))
def test_a_reward_term_breaking_its_contract_fails_at_registration(make_distribution, case):
    name, direction, bounds, problem = BROKEN_REWARDS[case]
    source = _depth_plugin("kept-depth") + _reward_plugin(name, direction, bounds)
    make_distribution(
        "devis-badreward", "0.3", {"devis_badreward": source}, {"bad": "devis_badreward"}
    )
    registry = load_registry(environ={})
    [failure] = [f for f in registry.failures if f.plugin == "bad"]
    assert failure.distribution == "devis-badreward"
    assert problem in failure.error
    assert "factory devis_badreward.Term" in failure.error  # the module that declared it
    assert "devis_badreward.py:" in failure.error  # the line that registered it
    assert "kept-depth" not in registry.names("depth")  # the plugin is not loaded at all
    assert "psnr-visible" in registry.names("reward")  # the others are


def test_a_well_declared_reward_term_registers_without_being_built(make_distribution):
    source = _reward_plugin('"fine-term"', "False", "(0, 100)")
    make_distribution("devis-goodreward", "1.0", {"devis_good": source}, {"good": "devis_good"})
    registry = load_registry(environ={})
    assert not [f for f in registry.failures if f.plugin == "good"]
    assert registry.get("reward", "fine-term").provenance.distribution == "devis-goodreward"


def test_the_cli_reports_the_broken_reward_with_its_plugin_and_distribution(
    make_distribution, capsys
):
    from devis_core.cli import main

    source = _reward_plugin('"loud-term"', '"higher"', "(0.0, 1.0)")
    make_distribution("devis-loud", "2.0", {"devis_loud": source}, {"loud": "devis_loud"})
    assert main(["plugins"]) == 0
    err = capsys.readouterr().err
    assert "warning: plugin 'loud' from devis-loud was not loaded: " in err
    assert "reward 'loud-term' (factory devis_loud.Term): unknown direction" in err


CONFIG_DEPENDENT_REWARD = """
from pydantic import BaseModel
import devis_core

class Config(BaseModel):
    low: float = 0.0

class Term:
    '''Direction and range depend on the config: only the built term can say.'''
    def __init__(self, config):
        self.higher_is_better = True
        self.default_range = (config.low, 1.0)

    def score(self, batch):
        raise AssertionError("not scored")

@devis_core.hookimpl
def devis_register_reward_terms(register):
    register("late-term", Term, Config)
"""


def test_a_term_declaring_when_built_is_checked_when_built(make_distribution):
    from devis_core.errors import PluginContractError
    from devis_core.rewards import CompositeReward

    make_distribution(
        "devis-late", "0.1", {"devis_late": CONFIG_DEPENDENT_REWARD}, {"late": "devis_late"}
    )
    registry = load_registry(environ={})
    assert "late-term" in registry.names("reward")  # nothing declared to check before building
    assert CompositeReward([{"kind": "late-term"}], registry).terms[0].low == 0.0
    with pytest.raises(PluginContractError) as error:
        CompositeReward([{"kind": "late-term", "low": 1.0}], registry)
    message = str(error.value)
    assert "reward term 'late-term' of plugin 'late' (distribution devis-late 0.1)" in message
    assert "default_range must have low < high, got (1.0, 1.0)" in message
