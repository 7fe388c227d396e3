"""A seconds-long training config on the synthetic world with the tiny TrajectoryCrafter."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

TINY_TRAINING: dict[str, Any] = {
    "name": "train-test",
    "device": "cpu",
    "seed": 3,
    "dataset": {
        "kind": "synthetic",
        "num_samples": 2,
        "frames": 3,
        "height": 16,
        "width": 24,
        "azimuth_range": [20, 30],
        "elevation_range": [0, 0],
    },
    "depth": {"kind": "carried"},
    "accumulator": {"kind": "bta", "bullet_frames": 1},
    "backbone": {
        "kind": "trajectorycrafter",
        "preset": "tiny",
        "resolution": [16, 24],
        "steps": 3,
        "guidance_scale": 1.0,
        "lora": {"rank": 2, "alpha": 2},
    },
    "rewards": [
        {"kind": "psnr-visible", "range": [0.0, 30.0]},
        {"kind": "ssim-visible", "weight": 0.5},
    ],
    "algorithm": {"kind": "grpo", "num_generations": 2, "beta": 0.1},
    "training": {
        "rounds": 1,
        "groups_per_round": 2,
        "k_min": 1,
        "k_max": 2,
        "learning_rate": 0.05,
        "per_device_train_batch_size": 2,
        "warm_start": {"steps": 1, "batch_size": 1},
    },
}


def training_data(output: str, **sections: Any) -> dict[str, Any]:
    """The tiny config writing to ``output``, with top-level sections updated key by key."""
    data = copy.deepcopy(TINY_TRAINING)
    data["output"] = output
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: intra-op threads only add overhead on a busy 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
