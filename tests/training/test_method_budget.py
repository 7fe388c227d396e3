"""Every method of a paradigm comparison trains on the same sample budget (G and epochs)."""

from __future__ import annotations

from pathlib import Path

from devis_core.config import validate_config
from devis_core.engines.paradigms import method_config
from tests.training.conftest import training_data


def _algorithm(registry, changes):
    base = training_data("unused", algorithm={"kind": "grpo", "num_generations": 3,
                                              "num_iterations": 2})  # fmt: skip
    data = method_config(base, changes, Path("out"))
    return validate_config(data, registry).algorithm


def test_a_replaced_algorithm_keeps_the_group_size_and_epochs(registry):
    for changes in (["algorithm={kind: sft, mode: all}"], ["algorithm={kind: dpo}"]):
        algorithm = _algorithm(registry, changes)
        assert (algorithm.num_generations, algorithm.num_iterations) == (3, 2)  # not 16 and 1


def test_a_method_may_still_set_its_own_budget(registry):
    algorithm = _algorithm(registry, ["algorithm={kind: sft, mode: best, num_generations: 5}"])
    assert (algorithm.kind, algorithm.num_generations, algorithm.num_iterations) == ("sft", 5, 2)
    assert _algorithm(registry, ["training.sampling=one-step"]).num_generations == 3
