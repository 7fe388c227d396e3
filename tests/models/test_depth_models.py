"""Depth estimators ``depthcrafter`` (tiny, random weights) and ``depthsplat`` (exported maps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from devis_core.errors import MissingWeightsError, UsageError
from devis_core.types import ViewSynthesisSample
from devis_plugins.depthcrafter.estimator import (
    TINY_UNET,
    DepthCrafterUNet,
    blend_overlap,
    processing_size,
    window_starts,
)
from devis_plugins.depthsplat import convert_view_maps


def test_processing_size_rounds_to_64_and_caps_the_long_side():
    assert processing_size(384, 672, 1024) == (384, 640)  # 10.5 rounds half to even: 10
    assert processing_size(480, 854, 1024) == (512, 832)
    assert processing_size(1080, 1920, 1024) == (576, 1024)  # scaled by 1024/1920 first
    assert processing_size(20, 30, 1024) == (64, 64)  # never below one multiple


def test_windows_of_110_frames_overlapping_by_25():
    assert window_starts(49, 110, 25) == [(0, 49)]
    assert window_starts(120, 110, 25) == [(0, 110), (85, 120)]
    assert window_starts(300, 110, 25) == [(0, 110), (85, 195), (170, 280), (255, 300)]


def test_overlap_is_blended_linearly_from_the_previous_window():
    previous = torch.zeros(1, 5, 1)
    current = torch.ones(1, 4, 1)
    joined = blend_overlap(previous, current, overlap=3)
    assert joined.flatten().tolist() == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]


@torch.no_grad()
def test_unet_with_one_context_per_frame_reduces_to_svd_with_a_shared_one():
    torch.manual_seed(0)
    ours = DepthCrafterUNet(**TINY_UNET).eval()
    svd = UNetSpatioTemporalConditionModel(**TINY_UNET).eval()
    svd.load_state_dict(ours.state_dict())
    sample = torch.randn(1, 3, 8, 16, 16)
    context = torch.randn(1, 1, 32)
    added = torch.tensor([[7.0, 127.0, 0.02]])
    shared = ours(sample, torch.tensor(1.5), context.expand(1, 3, 32), added).sample
    assert torch.equal(shared, svd(sample, torch.tensor(1.5), context, added).sample)
    per_frame = torch.randn(1, 3, 32)
    assert not torch.allclose(ours(sample, torch.tensor(1.5), per_frame, added).sample, shared)


def _tiny_depthcrafter(registry, **fields):
    config = {"kind": "depthcrafter", "preset": "tiny", "max_res": 64, "steps": 2, **fields}
    return registry.build("depth", config)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers
def test_tiny_depthcrafter_gives_depth_in_the_conventions(registry):
    estimator = _tiny_depthcrafter(registry, window=4, overlap=1)
    video = torch.rand(6, 3, 24, 40)  # two windows: (0, 4), (3, 6)
    disparity = estimator.disparity(video)
    assert disparity.shape == (6, 24, 40)
    assert float(disparity.min()) == 0.0 and float(disparity.max()) == pytest.approx(1.0)
    depth = estimator.estimate(video)
    assert depth.shape == (6, 24, 40) and bool((depth > 0).all())
    nearest = disparity == disparity.max()
    assert torch.allclose(depth[nearest], torch.tensor(10000.0 / 3900.0))
    assert torch.equal(estimator.estimate(video), depth)  # seeded: the same video, same depth


def test_depthcrafter_full_preset_names_the_missing_checkpoints(registry, tmp_path):
    with pytest.raises(MissingWeightsError, match="tencent/DepthCrafter"):
        registry.build("depth", {"kind": "depthcrafter"})
    with pytest.raises(MissingWeightsError, match="stable-video-diffusion-img2vid-xt"):
        registry.build("depth", {"kind": "depthcrafter", "unet_path": str(tmp_path)})
    torch.manual_seed(0)
    DepthCrafterUNet(**TINY_UNET).save_pretrained(tmp_path / "unet")
    with pytest.raises(MissingWeightsError, match=r"vae does not exist.*stabilityai"):
        unet, svd = str(tmp_path / "unet"), str(tmp_path)
        registry.build("depth", {"kind": "depthcrafter", "unet_path": unet, "svd_path": svd})


def _sample(frames: int = 3, sample_id: str = "scene-1") -> ViewSynthesisSample:
    source = torch.rand(frames, 3, 8, 12)
    eye = torch.eye(4).expand(frames, 4, 4)
    return ViewSynthesisSample(sample_id, source, torch.eye(3), eye, eye)


def test_depthsplat_reads_exported_maps(registry, tmp_path):
    sample = _sample()
    depth = np.random.default_rng(0).uniform(1, 5, size=(3, 4, 6)).astype(np.float32)
    depth[0, 0, 0] = np.nan
    np.savez(tmp_path / "scene-1.npz", depth=depth)
    estimator = registry.build("depth", {"kind": "depthsplat", "root": str(tmp_path), "scale": 2})
    got = estimator.estimate(sample.source, sample)
    assert got.shape == (3, 8, 12)
    assert float(got[0, 0, 0]) == 0.0  # unknown stays unknown
    assert torch.equal(got[1, ::2, ::2], torch.from_numpy(depth[1]) * 2)  # nearest upsampling
    with pytest.raises(UsageError, match="generated"):
        estimator.estimate(sample.source + 0.1, sample)
    with pytest.raises(UsageError, match="needs the sample"):
        estimator.estimate(sample.source)
    other = _sample(sample_id="other")
    with pytest.raises(UsageError, match="no DepthSplat depth for sample 'other'"):
        estimator.estimate(other.source, other)
    longer = _sample(frames=4)
    with pytest.raises(UsageError, match="holds 3 depth maps but sample 'scene-1' has 4 frames"):
        estimator.estimate(longer.source, longer)


def test_depthsplat_per_view_maps_are_ordered_by_frame_index(registry, tmp_path):
    views = tmp_path / "out" / "scene-1"
    views.mkdir(parents=True)
    for index in (10, 2, 5):
        np.save(views / f"{index:06d}.npy", np.full((1, 8, 12), float(index), np.float32))
    np.save(views / "000002_reference.npy", np.zeros((8, 12), np.float32))  # not a view map
    sample = _sample()
    estimator = registry.build("depth", {"kind": "depthsplat", "root": str(tmp_path / "out")})
    got = estimator.estimate(sample.source, sample)
    assert got[:, 0, 0].tolist() == [2.0, 5.0, 10.0]
    converted = convert_view_maps(views, tmp_path / "devis" / "scene-1.npz")
    with np.load(converted) as data:
        assert data["depth"][:, 0, 0].tolist() == [2.0, 5.0, 10.0]


def test_docs_export_script_converts_a_depthsplat_output_tree(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "docs" / "scripts" / "export_depthsplat_depth.py"
    spec = importlib.util.spec_from_file_location("export_depthsplat_depth", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for scene in ("aaa", "bbb"):
        depth_dir = tmp_path / "ds" / "images" / scene / "depth"
        depth_dir.mkdir(parents=True)
        for index in (0, 1):
            np.save(depth_dir / f"{index:06d}.npy", np.full((4, 6), index + 1.0, np.float32))
    (tmp_path / "ids.json").write_text(json.dumps({"aaa": "sample-0"}))
    args = ["--depthsplat-output", str(tmp_path / "ds"), "--root", str(tmp_path / "root")]
    assert module.main([*args, "--ids", str(tmp_path / "ids.json"), "--scale", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["bbb.npz", "sample-0.npz"]
    with np.load(tmp_path / "root" / "sample-0.npz") as data:
        assert data["depth"].shape == (2, 4, 6) and data["depth"][:, 0, 0].tolist() == [2.0, 4.0]
