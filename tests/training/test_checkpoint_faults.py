"""Checkpoints against faults: two kept, verified on load, state without pickles."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from devis_core.cli import main
from devis_core.config import validate_config
from devis_core.distributed import World
from devis_core.engines.train import train_pipeline
from devis_core.errors import UsageError
from devis_core.plugins import load_registry
from devis_core.training import Trainer
from devis_core.training.state_files import (
    ChecksumError,
    read_state,
    verify_manifest,
    write_manifest,
    write_state,
)
from tests.training.conftest import training_data

ROUNDS = {"rounds": 3, "warm_start": {"steps": 0}}


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, registry) -> tuple[Path, dict]:
    """A finished 3-round run of the tiny config (shared: tests work on copies)."""
    data = training_data(str(tmp_path_factory.mktemp("trained") / "run"), training=ROUNDS)
    return train_pipeline(validate_config(data, registry), registry, progress=False), data


def _copy(trained: tuple[Path, dict], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the trained run and a config file for it."""
    run, data = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**data, "output": str(copy)}))
    return copy, config


def _rounds(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["round"] for r in map(json.loads, lines) if r["event"] == "round"]


@pytest.mark.parametrize(("limit", "kept"), [(3, [2, 3, 4]), (None, [1, 2, 3, 4])])
def test_save_total_limit_keeps_more_checkpoints(tmp_path, registry, limit, kept):
    training = {**ROUNDS, "rounds": 4, "save_total_limit": limit}
    data = training_data(str(tmp_path / "run"), training=training)
    run = train_pipeline(validate_config(data, registry), registry, progress=False)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["latest", *(f"round-{r:05d}" for r in kept)]
    loras = [
        load_file(str(run / "checkpoints" / f"round-{r:05d}" / "lora.safetensors")) for r in kept
    ]
    for earlier, later in zip(loras, loras[1:], strict=False):
        assert any(not torch.equal(earlier[k], later[k]) for k in earlier)  # a round apart


def test_save_total_limit_below_two_is_refused(registry):
    data = training_data("unused", training={**ROUNDS, "save_total_limit": 1})
    with pytest.raises(
        UsageError, match="save_total_limit: Input should be greater than or equal to 2"
    ):
        validate_config(data, registry)


def test_the_last_two_checkpoints_are_kept_each_with_a_manifest(trained):
    run, _ = trained
    root = run / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "round-00002", "round-00003"]
    assert (root / "latest").read_text() == "round-00003"
    for checkpoint in ("round-00002", "round-00003"):
        files = sorted(p.name for p in (root / checkpoint).iterdir())
        assert files == ["lora.safetensors", "manifest.json", "state.json", "state.safetensors"]
        manifest = json.loads((root / checkpoint / "manifest.json").read_text())
        lora = root / checkpoint / "lora.safetensors"
        assert manifest["files"]["lora.safetensors"]["size"] == lora.stat().st_size
        assert len(manifest["files"]["state.safetensors"]["sha256"]) == 64
    # the final LoRA is the latest checkpoint's, and the two kept ones differ (a round apart)
    final = load_file(str(run / "lora.safetensors"))
    latest = load_file(str(root / "round-00003" / "lora.safetensors"))
    previous = load_file(str(root / "round-00002" / "lora.safetensors"))
    assert all(torch.equal(final[k], latest[k]) for k in final)
    assert any(not torch.equal(previous[k], latest[k]) for k in previous)


@pytest.mark.parametrize("damaged", ["state.safetensors", "lora.safetensors", "state.json"])
def test_a_truncated_latest_resumes_from_the_previous_with_a_warning(
    trained, tmp_path, registry, damaged
):
    run, config = _copy(trained, tmp_path)
    root = run / "checkpoints"
    # from the untouched run: load_file maps the file, so truncating it would change these
    expected = load_file(str(trained[0] / "checkpoints" / "round-00003" / "lora.safetensors"))
    file = root / "round-00003" / damaged
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    data = yaml.safe_load(config.read_text())
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=run, progress=False
    )
    with pytest.warns(RuntimeWarning) as caught:
        trainer.run()
    (warning,) = [w for w in caught if "damaged" in str(w.message)]
    text = str(warning.message)
    assert str(root / "round-00003") in text and str(root / "round-00002") in text
    assert damaged in text
    # round 2 (index) was trained again from the previous checkpoint: the same weights as
    # before the damage, since every draw of a round is seeded
    assert _rounds(run) == [0, 1, 2]
    rewritten = load_file(str(root / "round-00003" / "lora.safetensors"))
    for key, value in expected.items():
        torch.testing.assert_close(rewritten[key], value, rtol=1e-5, atol=1e-7)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "round-00002", "round-00003"]


def test_neither_checkpoint_verifying_is_a_usage_error_naming_both(trained, tmp_path, capsys):
    run, config = _copy(trained, tmp_path)
    root = run / "checkpoints"
    latest = root / "round-00003" / "state.safetensors"
    latest.write_bytes(latest.read_bytes()[:100])
    previous = root / "round-00002" / "lora.safetensors"
    corrupted = bytearray(previous.read_bytes())
    corrupted[-1] ^= 0xFF  # same size, another checksum
    previous.write_bytes(bytes(corrupted))
    code = main(["train", str(config), "--resume", str(run), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "neither checkpoint verifies" in err
    assert str(root / "round-00003") in err and str(root / "round-00002") in err
    assert "SHA-256" in err  # the previous one: same size, different bytes


class _Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_pickled_state_is_refused_without_unpickling(trained, tmp_path, capsys):
    run, config = _copy(trained, tmp_path)
    latest = run / "checkpoints" / "round-00003"
    for name in ("state.safetensors", "state.json", "manifest.json"):
        (latest / name).unlink()
    marker = tmp_path / "pwned"
    (latest / "state.pt").write_bytes(pickle.dumps({"optimizer": _Payload(marker)}))
    code = main(["train", str(config), "--resume", str(run), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and str(latest / "state.pt") in err and "unpickl" in err
    assert not marker.exists()
    # the file really is dangerous: unpickling it would have created the marker
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.exists()


def test_state_round_trips_through_safetensors_and_json(tmp_path):
    parameter = torch.nn.Parameter(torch.randn(4, 3))
    optimizer = torch.optim.AdamW([parameter], lr=0.01)
    parameter.sum().backward()
    optimizer.step()
    random.seed(5)
    np.random.seed(5)
    state = {
        "optimizer": optimizer.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        },
        "next_round": 7,
    }
    write_state(tmp_path, state)
    assert b"pickle" not in (tmp_path / "state.json").read_bytes()
    back = read_state(tmp_path)
    assert back["next_round"] == 7 and back["rng"]["python"] == state["rng"]["python"]
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    kind, key, *rest = back["rng"]["numpy"]
    assert kind == "MT19937" and key.dtype == np.uint32
    assert (
        np.array_equal(key, state["rng"]["numpy"][1]) and tuple(rest) == state["rng"]["numpy"][2:]
    )
    assert list(back["optimizer"]["state"]) == [0]  # int keys stay ints
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    restored = torch.optim.AdamW([torch.nn.Parameter(parameter.detach().clone())], lr=0.01)
    restored.load_state_dict(back["optimizer"])
    for name in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(
            restored.state_dict()["state"][0][name], optimizer.state[parameter][name]
        )


def test_the_manifest_notices_truncation_alteration_and_absence(tmp_path):
    (tmp_path / "a.bin").write_bytes(os.urandom(64))
    write_manifest(tmp_path)
    verify_manifest(tmp_path, ("a.bin",))
    with pytest.raises(ChecksumError, match="does not list b.bin"):
        verify_manifest(tmp_path, ("b.bin",))
    data = (tmp_path / "a.bin").read_bytes()
    (tmp_path / "a.bin").write_bytes(data[:10])
    with pytest.raises(ChecksumError, match="has 10 bytes, the manifest 64"):
        verify_manifest(tmp_path, ())
    (tmp_path / "a.bin").write_bytes(bytes([data[0] ^ 1]) + data[1:])
    with pytest.raises(ChecksumError, match="SHA-256"):
        verify_manifest(tmp_path, ())
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ChecksumError, match="missing"):
        verify_manifest(tmp_path, ())


def test_load_checkpoint_refuses_a_damaged_checkpoint(trained, tmp_path, registry):
    from devis_core.training.checkpoints import load_checkpoint

    run, config = _copy(trained, tmp_path)
    checkpoint = run / "checkpoints" / "round-00003"
    (checkpoint / "state.json").write_text("{}")
    trainer = Trainer(
        validate_config(yaml.safe_load(config.read_text()), registry),
        registry,
        world=World(),
        resume=run,
        progress=False,
    )
    with pytest.raises(UsageError, match=r"round-00003 is damaged: .*state.json"):
        load_checkpoint(
            checkpoint,
            policy=trainer.policy,
            optimizer=trainer.updater.optimizer,
            scheduler=trainer.updater.scheduler,
        )
