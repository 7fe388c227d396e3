"""Aesthetic quality and CLIP diversity with a tiny random CLIP the test builds: plumbing only,
these are not real aesthetic scores or CLIP distances."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms

from devis_core.errors import MissingWeightsError, UsageError
from tests.metrics.conftest import smooth_video

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A CLIP vision tower of two layers and 16-d projections, saved like a Hugging Face repo."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=224,
        patch_size=32,
        projection_dim=16,
    )
    model = CLIPVisionModelWithProjection(config).eval()
    directory = tmp_path_factory.mktemp("tiny-clip")
    model.save_pretrained(directory)
    head = torch.nn.Linear(16, 1)
    head_path = directory / "head.pth"
    torch.save(head.state_dict(), head_path)
    return model, directory, head, head_path


def _vbench_embeddings(model, frames):
    """VBench's clip_transform(224) on 8-bit frames, then the image embedding, L2-normalised."""
    prepare = transforms.Compose(
        [
            transforms.Resize(
                224, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False
            ),
            transforms.CenterCrop(224),
            transforms.Lambda(lambda x: x.float().div(255.0)),
            transforms.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )
    levels = torch.round(frames * 255).to(torch.uint8)
    with torch.no_grad():
        return F.normalize(model(pixel_values=prepare(levels)).image_embeds, dim=-1)


def _eight_bit(video):
    return torch.round(video * 255) / 255


def test_aesthetic_plumbing_with_tiny_random_clip(registry, tiny_clip):
    model, directory, head, head_path = tiny_clip
    metric = registry.build(
        "metric",
        {"kind": "aesthetic-quality", "clip_path": str(directory), "head_path": str(head_path)},
    )
    videos = _eight_bit(smooth_video(0, (2, 3, 3, 40, 72)))
    values = metric.compute(videos, videos)
    with torch.no_grad():
        expected = torch.stack(
            [(head(_vbench_embeddings(model, video)).flatten() / 10).mean() for video in videos]
        )
    torch.testing.assert_close(values, expected, atol=1e-5, rtol=1e-5)
    assert metric.higher_is_better


def test_aesthetic_quality_names_missing_files(registry, tiny_clip, tmp_path):
    _, directory, _, head_path = tiny_clip
    with pytest.raises(MissingWeightsError, match="sa_0_4_vit_l_14_linear.pth"):
        registry.build("metric", {"kind": "aesthetic-quality", "clip_path": str(directory)})
    with pytest.raises(MissingWeightsError, match="openai/clip-vit-large-patch14"):
        registry.build(
            "metric",
            {"kind": "aesthetic-quality", "clip_path": str(tmp_path), "head_path": str(head_path)},
        )
    wrong = tmp_path / "head-768.pth"
    torch.save(torch.nn.Linear(768, 1).state_dict(), wrong)
    with pytest.raises(UsageError, match="not a linear head for 16-dimensional"):
        registry.build(
            "metric",
            {"kind": "aesthetic-quality", "clip_path": str(directory), "head_path": str(wrong)},
        )


def test_clip_diversity_plumbing_with_tiny_random_clip(registry, tiny_clip):
    model, directory, _, _ = tiny_clip
    metric = registry.build("metric", {"kind": "clip-diversity", "clip_path": str(directory)})
    group = _eight_bit(smooth_video(1, (3, 2, 3, 48, 48), noise=0.2))
    values = metric.compute(group, group)
    embeddings = torch.stack([_vbench_embeddings(model, video) for video in group])  # (G, T, D)
    distance = torch.zeros(3, 3)
    for i in range(3):
        for j in range(3):
            distance[i, j] = (1 - (embeddings[i] * embeddings[j]).sum(-1)).mean()
    expected = (distance.sum(1) - distance.diagonal()) / 2
    torch.testing.assert_close(values, expected, atol=1e-5, rtol=1e-4)
    same = metric.compute(group[:1].expand(3, -1, -1, -1, -1), group)
    assert same.abs().max() < 1e-6


def test_diversity_needs_a_group(registry, tiny_clip):
    _, directory, _, _ = tiny_clip
    metric = registry.build("metric", {"kind": "clip-diversity", "clip_path": str(directory)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = metric.compute(smooth_video(2, (2, 3, 32, 32)), None)
    assert math.isnan(float(value)) and any("group" in str(w.message) for w in caught)


def test_lpips_diversity_plumbing_with_random_trunk(registry, random_alexnet_trunk):
    from devis_core.toolkit.lpips_network import load_lpips

    metric = registry.build(
        "metric", {"kind": "lpips-diversity", "weights_path": str(random_alexnet_trunk)}
    )
    group = smooth_video(3, (3, 2, 3, 32, 32), noise=0.2)
    values = metric.compute(group, group)
    model = load_lpips("alex", random_alexnet_trunk)
    with torch.no_grad():
        pair = {
            (i, j): model(group[i], group[j], normalize=True).flatten().mean()
            for i in range(3)
            for j in range(3)
            if i != j
        }
    expected = torch.stack([sum(pair[i, j] for j in range(3) if j != i) / 2 for i in range(3)])
    torch.testing.assert_close(values, expected, atol=1e-6, rtol=1e-5)
