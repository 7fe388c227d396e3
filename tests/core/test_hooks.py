"""One test per hook, on the components the built-in plugins register through it.

Each test is named ``test_hook_<hook name>``; ``test_every_hook_has_its_own_test`` checks that
no hook is left without one. Every built-in component a hook registers must satisfy its slot's
protocol, and the weight-free ones are checked against what the hook's contract promises,
from first principles (a completion keeps what the render shows, K = 1 is the one-step render,
hand-computed PSNR and advantages). The plugin machinery itself (loading, clashes, broken
plugins) is tested with fixture plugins in ``test_plugins.py``.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from devis_core import hookspecs
from devis_core.slots import get_slot
from devis_core.toolkit.geometry import forward_warp, orbit_trajectory
from devis_core.training import TrainingAlgorithm
from devis_core.types import (
    Accumulator,
    Backbone,
    Conditions,
    Dataset,
    DepthEstimator,
    Metric,
    RewardInputs,
    RewardTerm,
    Suite,
    SuiteContext,
)

HOOK_NAMES = sorted(
    name
    for name, obj in vars(hookspecs).items()
    if name.startswith("devis_register_") and callable(obj)
)
SCENE = {"kind": "synthetic", "num_samples": 2, "frames": 3, "height": 24, "width": 32}


def _built_in(registry, slot: str) -> list[str]:
    """The names the ``devis`` distribution registers in ``slot``."""
    components = registry.components[slot]
    return [name for name, c in components.items() if c.provenance.distribution == "devis"]


@pytest.fixture(scope="module")
def sample():
    from devis_core.plugins import load_registry

    return load_registry(environ={}).build("dataset", SCENE)[0]


def _one_step(sample):
    """The source splatted to the target cameras with its exact depth."""
    return forward_warp(
        sample.source, sample.source_depth, sample.K, sample.source_w2c, sample.K,
        sample.target_w2c,
    )  # fmt: skip


def test_hook_devis_register_backbones(registry, sample):
    assert {"inpaint", "passthrough", "trajectorycrafter"} <= set(_built_in(registry, "backbone"))
    render, mask = _one_step(sample)
    cond = Conditions(render, mask, sample.source)
    for name in ("inpaint", "passthrough"):  # the weight-free completions
        backbone = registry.build("backbone", {"kind": name})
        assert isinstance(backbone, Backbone)
        video = backbone.generate(cond)
        assert video.shape == render.shape and 0 <= float(video.min()) <= float(video.max()) <= 1
        keep = mask.unsqueeze(1).expand_as(render)
        assert torch.equal(video[keep], render[keep]), f"{name} changed what the render shows"


def test_hook_devis_register_depth_estimators(registry, sample, tmp_path):
    assert {"carried", "depthcrafter", "depthsplat", "files", "ground-truth"} <= set(
        _built_in(registry, "depth")
    )
    np.save(tmp_path / "depth.npy", sample.source_depth.numpy())
    estimators = {
        "carried": {"kind": "carried"},
        "ground-truth": {"kind": "ground-truth"},
        "files": {"kind": "files", "path": str(tmp_path / "depth.npy")},
    }
    for name, entry in estimators.items():
        depth = registry.build("depth", entry)
        assert isinstance(depth, DepthEstimator)
        torch.testing.assert_close(
            depth.estimate(sample.source, sample), sample.source_depth, msg=name
        )


def test_hook_devis_register_accumulators(registry, sample):
    names = _built_in(registry, "accumulator")
    assert {"direct", "rfa", "rva", "ora-dt", "ora-cc", "bta"} <= set(names)
    render, mask = _one_step(sample)
    backbone = registry.build("backbone", {"kind": "passthrough"})
    depth = registry.build("depth", {"kind": "carried"})
    for name in names:
        entry = {"kind": name} if name == "direct" else {"kind": name, "steps": 1}
        accumulator = registry.build("accumulator", entry)
        assert isinstance(accumulator, Accumulator)
        result = accumulator.run(sample, backbone, depth)
        # one step of any strategy is the one-step generation (BTA adds its prefix first)
        frames = sample.num_frames
        assert result.generator_calls == 1 and result.video.shape == sample.source.shape
        torch.testing.assert_close(result.conditions.render[-frames:], render, msg=name)
        assert torch.equal(result.conditions.mask[-frames:], mask), name


def test_hook_devis_register_reward_terms(registry, sample):
    assert {"psnr-visible", "ssim-visible", "lpips-source", "no-reference-quality"} <= set(
        _built_in(registry, "reward")
    )
    render, mask = _one_step(sample)
    render = render.clamp(0.1, 0.9)
    off = (render + 0.1 * mask.unsqueeze(1)).unsqueeze(0)  # 0.1 brighter where visible
    batch = RewardInputs(
        torch.cat([render.unsqueeze(0), off]),
        sample.source.unsqueeze(0).repeat(2, 1, 1, 1, 1),
        render.unsqueeze(0).repeat(2, 1, 1, 1, 1),
        mask.unsqueeze(0).repeat(2, 1, 1, 1),
    )
    psnr = registry.build("reward", {"kind": "psnr-visible"})
    assert isinstance(psnr, RewardTerm) and psnr.higher_is_better
    scores = psnr.score(batch)
    assert float(scores[1]) == pytest.approx(20.0, abs=1e-3)  # 10 log10(1 / 0.1^2)
    assert float(scores[0]) > 20.0
    ssim = registry.build("reward", {"kind": "ssim-visible"})
    assert float(ssim.score(batch)[0]) == pytest.approx(1.0, abs=1e-6)


def test_hook_devis_register_algorithms(registry):
    assert {"grpo", "dpo", "sft"} <= set(_built_in(registry, "algorithm"))
    rewards = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    grpo = registry.build("algorithm", {"kind": "grpo", "std_eps": 1e-12})
    assert all(
        isinstance(registry.build("algorithm", {"kind": name}), TrainingAlgorithm)
        for name in ("grpo", "dpo", "sft")
    )
    # (R - mean) / std per group; a group of equal rewards has nothing to learn
    expected = torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    torch.testing.assert_close(grpo.advantages(rewards, groups), expected)
    dpo = registry.build("algorithm", {"kind": "dpo"})
    torch.testing.assert_close(dpo.advantages(rewards, groups), expected)  # best +1, worst -1
    sft = registry.build("algorithm", {"kind": "sft", "mode": "best"})
    assert sft.advantages(rewards, groups).tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_hook_devis_register_datasets(registry):
    assert {"synthetic", "kubric4d", "iphone", "dl3dv", "video"} <= set(
        _built_in(registry, "dataset")
    )
    dataset = registry.build("dataset", SCENE)
    assert isinstance(dataset, Dataset) and len(dataset) == 2
    sample = dataset[1]
    assert sample.source.shape == (3, 3, 24, 32) and sample.source_depth.shape == (3, 24, 32)
    assert sample.target.shape == sample.source.shape
    # the target cameras are the orbit of the sample's motion about its pivot
    orbit = orbit_trajectory(
        sample.motion, n_frames=3, pivot_depth=sample.pivot_depth, mode=sample.trajectory
    )
    torch.testing.assert_close(sample.target_w2c, orbit @ sample.source_w2c, atol=1e-6, rtol=0)


def test_hook_devis_register_metrics(registry):
    names = _built_in(registry, "metric")
    assert {"psnr", "ssim", "lpips", "psnr-nocc", "ssim-nocc", "temporal-flicker"} <= set(names)
    target = torch.full((2, 3, 8, 8), 0.5)
    prediction = target + 0.1
    psnr = registry.build("metric", {"kind": "psnr"})
    assert isinstance(psnr, Metric) and psnr.higher_is_better
    assert float(psnr.compute(prediction, target).mean()) == pytest.approx(20.0, abs=1e-4)
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[:, :4] = True
    prediction[:, :, 4:] = 0.0  # wrong only outside the mask
    nocc = registry.build("metric", {"kind": "psnr-nocc"}).compute(prediction, target, mask)
    assert float(nocc.mean()) == pytest.approx(20.0, abs=1e-4)
    flicker = registry.build("metric", {"kind": "temporal-flicker"})
    assert float(flicker.compute(target, target).mean()) == pytest.approx(1.0)


def test_hook_devis_register_suites(registry, tmp_path):
    names = _built_in(registry, "suite")
    assert {"main", "accumulation", "grpo-vs-vanilla", "paradigms", "variants"} <= set(names)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        "dataset: {kind: synthetic, num_samples: 1, frames: 3, height: 24, width: 32}\n"
        "depth: {kind: ground-truth}\nbackbone: {kind: passthrough}\n"
        "accumulator: {kind: direct}\nmetrics: [psnr]\n"
    )
    suite = registry.build(
        "suite",
        {"kind": "variants", "pipeline": str(pipeline), "samples": 1,
         "variants": {"one step": [], "K=2": ["accumulator={kind: rfa, steps: 2}"]}},
    )  # fmt: skip
    assert isinstance(suite, Suite)
    result = suite.run(
        SuiteContext(registry, tmp_path / "out", torch.device("cpu"), progress=False)
    )
    rows = {row["variant"]: row for row in result.rows}
    assert set(rows) == {"one step", "K=2"}
    assert rows["one step"]["generator calls"] == 1 and rows["K=2"]["generator calls"] == 2
    assert all(math.isfinite(row["psnr"]) for row in rows.values())


def test_every_hook_has_its_own_test():
    tests_dir = Path(__file__).resolve().parents[1]
    defined = set()
    for path in tests_dir.rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_hook_\w+)\(", path.read_text(), re.MULTILINE))
    missing = [hook for hook in HOOK_NAMES if f"test_hook_{hook}" not in defined]
    assert HOOK_NAMES and not missing, f"hooks without a test_hook_<name> test: {missing}"


def test_every_built_in_is_registered_through_its_slots_hook(registry):
    for hook in HOOK_NAMES:
        slot = next(s for s in _slots() if s.hook == hook)
        assert _built_in(registry, slot.name), f"no built-in registers through {hook}"


def _slots():
    from devis_core.slots import SLOTS

    return SLOTS


def test_every_hook_is_documented():
    undocumented = [
        name for name in HOOK_NAMES if len(inspect.getdoc(getattr(hookspecs, name)) or "") < 80
    ]
    assert not undocumented, f"hooks without a docstring worth reading: {undocumented}"
    from devis_core.docgen import hook_reference

    reference = hook_reference()
    missing = [name for name in HOOK_NAMES if f"hookspecs.{name}(register)" not in reference]
    assert not missing, f"hooks missing from the generated reference: {missing}"


def test_every_slot_has_a_hook():
    assert sorted(slot.hook for slot in _slots()) == HOOK_NAMES
    assert get_slot("backbone").hook == "devis_register_backbones"
