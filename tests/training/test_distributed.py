"""DDP over the LoRA: two gloo processes give the weights of one process on the same batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from tests.training.conftest import training_data

# two optimizer steps (num_iterations 2) after a warm start of one step on two pairs
SECTIONS = {
    "algorithm": {"kind": "grpo", "num_generations": 2, "beta": 0.1, "num_iterations": 2},
    "training": {"warm_start": {"steps": 1, "batch_size": 2}},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train(output: str, per_device: int) -> None:
    from devis_core.config import validate_config
    from devis_core.engines.train import train_pipeline
    from devis_core.plugins import load_registry

    torch.set_num_threads(1)
    registry = load_registry()
    data = training_data(output, **SECTIONS)
    data["training"]["per_device_train_batch_size"] = per_device
    train_pipeline(validate_config(data, registry), registry, progress=False)


def _worker(rank: int, world: int, port: int, output: str) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    _train(output, per_device=2)  # each process: its one group of two samples


def test_two_gloo_processes_match_one_process(tmp_path):
    single = tmp_path / "single"
    _train(str(single), per_device=4)  # both groups, four samples, in one micro-batch
    parallel = tmp_path / "parallel"
    mp.spawn(_worker, args=(2, _free_port(), str(parallel)), nprocs=2, join=True)
    want = load_file(str(Path(single) / "lora.safetensors"))
    got = load_file(str(parallel / "lora.safetensors"))
    start = load_file(str(parallel / "warm_start.safetensors"))
    assert want.keys() == got.keys()
    assert any(not torch.equal(got[k], start[k]) for k in got)  # the round did train
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-6)
    assert not list(parallel.glob("checkpoints/.*.tmp"))  # one writer, nothing half-written
