"""LPIPS loading and plumbing. Trunks here are random: the numbers are not real LPIPS values."""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path

import lpips
import pytest
import torch

from devis_core.errors import MissingWeightsError, UsageError
from devis_core.toolkit.lpips_network import load_lpips
from devis_core.types import RewardInputs
from tests.metrics.conftest import smooth_video


def _reference(trunk_file: Path) -> lpips.LPIPS:
    """LPIPS built by the lpips package itself, its trunk copied by hand from the same file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    state = torch.load(trunk_file, weights_only=True)
    layers = dict(model.net.slice1.named_children())
    for block in (model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        layers.update(dict(block.named_children()))
    with torch.no_grad():
        for key, value in state.items():
            if key.startswith("features."):
                index, name = key.removeprefix("features.").split(".")
                getattr(layers[index], name).copy_(value)
    return model


def _per_video(model, prediction, target):
    with torch.no_grad():
        pairs = zip(prediction, target, strict=True)
        return torch.stack([model(p, t, normalize=True).flatten().mean() for p, t in pairs])


def test_lpips_plumbing_with_random_trunk(registry, random_alexnet_trunk):
    metric = registry.build("metric", {"kind": "lpips", "weights_path": str(random_alexnet_trunk)})
    assert metric.higher_is_better is False
    target = smooth_video(0, (2, 3, 3, 32, 32))
    prediction = smooth_video(1, (2, 3, 3, 32, 32))
    values = metric.compute(prediction, target)
    expected = _per_video(_reference(random_alexnet_trunk), prediction, target)
    torch.testing.assert_close(values, expected, atol=1e-6, rtol=1e-5)
    assert float(metric.compute(prediction[0], target[0])) == pytest.approx(float(values[0]))
    assert float(metric.compute(target[0], target[0])) == pytest.approx(0.0, abs=1e-7)


def test_lpips_linear_layers_come_from_the_wheel(random_alexnet_trunk):
    model = load_lpips("alex", random_alexnet_trunk)
    shipped = Path(inspect.getfile(lpips.LPIPS)).parent / "weights" / "v0.1" / "alex.pth"
    for key, value in torch.load(shipped, map_location="cpu", weights_only=True).items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_lpips_reads_a_full_state_dict_with_random_trunk_and_linear_layers(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(3)
        source = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
    path = tmp_path / "lpips_alex_full.pth"
    torch.save(source.state_dict(), path)
    model = load_lpips("alex", path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_lpips_without_weights_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth") as caught:
        load_lpips("alex")
    assert "download.pytorch.org/models/alexnet-owt-7be5be79.pth" in str(caught.value)
    assert "weights_path" in str(caught.value)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        load_lpips("vgg", tmp_path / "nowhere.pth")


def test_lpips_uses_the_torch_hub_cache(tmp_path, monkeypatch, random_alexnet_trunk):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(random_alexnet_trunk.read_bytes())
    model = load_lpips("alex")
    expected = torch.load(random_alexnet_trunk, weights_only=True)["features.0.weight"]
    torch.testing.assert_close(model.net.slice1[0].weight, expected)


def test_lpips_refuses_an_incomplete_trunk(tmp_path, random_alexnet_trunk):
    state = torch.load(random_alexnet_trunk, weights_only=True)
    del state["features.10.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(UsageError, match="1 trunk parameters are missing"):
        load_lpips("alex", path)


def test_lpips_source_reward_compares_with_the_source_video(registry, random_alexnet_trunk):
    term = registry.build(
        "reward", {"kind": "lpips-source", "weights_path": str(random_alexnet_trunk)}
    )
    assert term.higher_is_better is False and term.default_range == (0.0, 1.0)
    source = smooth_video(2, (2, 3, 3, 32, 32))
    generated = smooth_video(3, (2, 3, 3, 32, 32))
    render = torch.zeros_like(source)
    mask = torch.ones(2, 3, 32, 32, dtype=torch.bool)
    scores = term.score(RewardInputs(generated, source, render, mask, ["a", "b"]))
    expected = _per_video(_reference(random_alexnet_trunk), generated, source)
    torch.testing.assert_close(scores, expected, atol=1e-6, rtol=1e-5)
    same = term.score(RewardInputs(source, source, render, mask, ["a", "b"]))
    assert same.abs().max() < 1e-7 and not math.isnan(float(same.sum()))
