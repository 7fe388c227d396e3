"""One test per hook: a component registered through it is listed, built and usable.

Each test is named ``test_hook_<hook name>``; ``test_every_hook_has_its_own_test`` checks that
no hook is left without one.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch

from devis_core import hookspecs
from devis_core.plugins import load_registry
from devis_core.types import (
    Accumulator,
    Algorithm,
    Backbone,
    Conditions,
    Dataset,
    DepthEstimator,
    Metric,
    RewardInputs,
    RewardTerm,
    Suite,
    SuiteContext,
    ViewSynthesisSample,
)
from tests.plugins import toy_components

HOOK_NAMES = sorted(
    name
    for name, obj in vars(hookspecs).items()
    if name.startswith("devis_register_") and callable(obj)
)


@pytest.fixture
def toys():
    return load_registry(plugins=[("toys", toy_components)], use_entry_points=False)


def _sample() -> ViewSynthesisSample:
    video = torch.rand(3, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    eye = torch.eye(4).expand(3, 4, 4)
    return ViewSynthesisSample("s0", video, torch.eye(3), eye, eye)


def test_hook_devis_register_backbones(toys):
    backbone = toys.build("backbone", {"kind": "toy-identity"})
    assert isinstance(backbone, Backbone)
    render = torch.rand(2, 3, 4, 5)
    cond = Conditions(render, torch.ones(2, 4, 5, dtype=torch.bool), render)
    assert torch.equal(backbone.generate(cond), render)


def test_hook_devis_register_depth_estimators(toys):
    depth = toys.build("depth", {"kind": "toy-constant", "scale": 3.5})
    assert isinstance(depth, DepthEstimator)
    estimate = depth.estimate(torch.rand(2, 3, 4, 5))
    assert estimate.shape == (2, 4, 5) and torch.all(estimate == 3.5)


def test_hook_devis_register_accumulators(toys):
    accumulator = toys.build("accumulator", {"kind": "toy-source"})
    assert isinstance(accumulator, Accumulator)
    sample = _sample()
    backbone = toys.build("backbone", {"kind": "toy-identity"})
    depth = toys.build("depth", {"kind": "toy-constant"})
    result = accumulator.run(sample, backbone, depth)
    assert result.generator_calls == 1 and torch.equal(result.video, sample.source)


def test_hook_devis_register_reward_terms(toys):
    term = toys.build("reward", {"kind": "toy-mean", "scale": 2.0})
    assert isinstance(term, RewardTerm)
    generated = torch.full((2, 1, 3, 2, 2), 0.25)
    generated[1] = 0.5
    mask = torch.ones(2, 1, 2, 2, dtype=torch.bool)
    scores = term.score(RewardInputs(generated, generated, generated, mask))
    assert torch.allclose(scores, torch.tensor([0.5, 1.0]))


def test_hook_devis_register_algorithms(toys):
    algorithm = toys.build("algorithm", {"kind": "toy-squared", "scale": 0.5})
    assert isinstance(algorithm, Algorithm)
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))

    class Params:
        def trainable_parameters(self):
            yield weight

    loss, stats = algorithm.loss(None, Params())
    loss.backward()
    assert float(loss.detach()) == pytest.approx(2.5) and stats == {"params": 5.0}
    assert torch.allclose(weight.grad, torch.tensor([1.0, 2.0]))


def test_hook_devis_register_datasets(toys):
    dataset = toys.build("dataset", {"kind": "toy-list", "scale": 3})
    assert isinstance(dataset, Dataset)
    assert len(dataset) == 3 and dataset[2] == "item-2"


def test_hook_devis_register_metrics(toys):
    metric = toys.build("metric", {"kind": "toy-max-error"})
    assert isinstance(metric, Metric) and metric.higher_is_better is False
    prediction, target = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    target[0, 1, 1, 0] = 0.25
    assert float(metric.compute(prediction, target)) == pytest.approx(0.5)


def test_hook_devis_register_suites(toys, tmp_path):
    suite = toys.build("suite", {"kind": "toy-count", "scale": 7})
    assert isinstance(suite, Suite)
    result = suite.run(SuiteContext(toys, tmp_path, torch.device("cpu")))
    assert result.rows == [{"variant": "x", "value": 7.0}]


def test_every_hook_has_its_own_test():
    tests_dir = Path(__file__).resolve().parents[1]
    defined = set()
    for path in tests_dir.rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_hook_\w+)\(", path.read_text(), re.MULTILINE))
    missing = [hook for hook in HOOK_NAMES if f"test_hook_{hook}" not in defined]
    assert HOOK_NAMES and not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_every_hook_is_documented():
    undocumented = [
        name for name in HOOK_NAMES if len(inspect.getdoc(getattr(hookspecs, name)) or "") < 80
    ]
    assert not undocumented, f"hooks without a docstring worth reading: {undocumented}"
    from devis_core.docgen import hook_reference

    reference = hook_reference()
    missing = [name for name in HOOK_NAMES if f"hookspecs.{name}\n" not in reference]
    assert not missing, f"hooks missing from the generated reference: {missing}"


def test_every_slot_has_a_hook():
    from devis_core.slots import SLOTS

    assert sorted(slot.hook for slot in SLOTS) == HOOK_NAMES
