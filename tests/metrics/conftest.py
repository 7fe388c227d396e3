"""Fixtures for the metric tests: small videos and weight files the tests write themselves.

No file here holds real trained weights: networks get random parameters, so every value
computed with them tests plumbing (loading, preprocessing, averaging), never quality.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F


def smooth_video(seed: int, shape=(4, 3, 32, 48), noise: float = 0.05) -> torch.Tensor:
    """A video of smooth random images plus a little noise, in ``[0, 1]``."""
    generator = torch.Generator().manual_seed(seed)
    frames, channels, height, width = shape[-4:]
    batch = shape[:-4]
    coarse = torch.rand(*batch, frames, channels, 4, 6, generator=generator)
    flat = coarse.reshape(-1, channels, 4, 6)
    smooth = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    smooth = smooth.reshape(*batch, frames, channels, height, width)
    return (smooth + noise * torch.randn(smooth.shape, generator=generator)).clamp(0, 1)


@pytest.fixture(scope="session")
def random_alexnet_trunk(tmp_path_factory) -> Path:
    """torchvision's AlexNet checkpoint layout (``features.*``), random weights, no classifier
    tensors of real size (one small one, which LPIPS must ignore)."""
    from torchvision.models import alexnet

    torch.manual_seed(0)
    state = {
        k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features")
    }
    state["classifier.1.bias"] = torch.zeros(8)
    path = tmp_path_factory.mktemp("lpips") / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    return path
