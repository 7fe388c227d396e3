"""The bad-input matrix: every input a user can get wrong ends in one message, never a traceback.

Each case runs the ``devis`` CLI in a subprocess, exactly as a user would, and asserts the
documented exit code (2: bad input), that nothing prints a Python traceback, and that the
message names the offending file or config key. Inputs are tiny (a 3-frame 32x48 synthetic
scene, a pass-through generator) so that each case takes a few seconds.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]

TINY: dict[str, Any] = {
    "device": "cpu",
    "output": "out",
    "dataset": {"kind": "synthetic", "num_samples": 1, "frames": 3, "height": 32, "width": 48},
    "depth": {"kind": "ground-truth"},
    "accumulator": {"kind": "direct"},
    "backbone": {"kind": "passthrough"},
}
"""The smallest pipeline that runs: every case breaks one thing of it."""

TINY_TRAINING: dict[str, Any] = {
    **TINY,
    "rewards": [{"kind": "psnr-visible"}],
    "algorithm": {"kind": "grpo", "num_generations": 2},
    "training": {"rounds": 1, "groups_per_round": 1},
}


@dataclass(frozen=True)
class Case:
    """One bad input: ``make`` writes its files into a folder and returns the CLI arguments;
    the error message must contain every string of ``names`` (file names, config keys)."""

    make: Callable[[Path], list[str]]
    names: tuple[str, ...]


def write_config(folder: Path, data: dict[str, Any], name: str = "config.yaml") -> str:
    (folder / name).write_text(yaml.safe_dump(data, sort_keys=False))
    return name


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return json.loads(json.dumps({**base, **changes}, allow_nan=True))


def run_tiny(**changes: Any) -> Callable[[Path], list[str]]:
    return lambda folder: ["run", "-q", write_config(folder, with_changes(TINY, **changes))]


def write_clip(folder: Path, frames: int = 3, height: int = 32, width: int = 48) -> Path:
    """A real mp4 of a smooth gradient (what a user's clip would be, only smaller)."""
    from devis_core.toolkit.media import write_video

    ramp = torch.linspace(0, 1, width).expand(frames, 3, height, width).contiguous()
    return write_video(folder / "clip.mp4", ramp, fps=8)


def video_case(depth: np.ndarray | None, **dataset: Any) -> Callable[[Path], list[str]]:
    """The ``video`` dataset on a real clip with the depth maps ``depth`` (saved as .npy)."""

    def make(folder: Path) -> list[str]:
        write_clip(folder)
        entry = {"kind": "video", "path": "clip.mp4", "frames": 3, "phi": 20.0, **dataset}
        if depth is not None:
            np.save(folder / "depth.npy", depth.astype(np.float32))
            entry["depth"] = "depth.npy"
        return ["run", "-q", write_config(folder, with_changes(TINY, dataset=entry))]

    return make


def constant_depth(value: float = 2.0, frames: int = 3) -> np.ndarray:
    return np.full((frames, 32, 48), value, np.float32)


def centre_nan_depth() -> np.ndarray:
    depth = constant_depth()
    depth[0, 16, 24] = math.nan
    return depth


def garbage_file(name: str, content: bytes = b"this is not what it should be\x00\xff" * 8):
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return make


def truncated_safetensors(folder: Path) -> Path:
    from safetensors.torch import save_file

    path = folder / "truncated.safetensors"
    save_file({"transformer_blocks.0.weight": torch.ones(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:1000])
    return path


def lora_case(write: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    """The tiny TrajectoryCrafter (no weights needed) with its LoRA read from a broken file."""

    def make(folder: Path) -> list[str]:
        file = write(folder)
        backbone = {
            "kind": "trajectorycrafter",
            "preset": "tiny",
            "resolution": [32, 48],
            "steps": 2,
            "lora": {"path": file.name},
        }
        return ["run", "-q", write_config(folder, with_changes(TINY, backbone=backbone))]

    return make


def unwritable_output(folder: Path) -> list[str]:
    """An output directory the user cannot create: below a read-only directory, or (as root,
    whom permissions do not stop) below a regular file."""
    if os.geteuid() == 0:
        (folder / "locked").write_text("a file, not a directory\n")
    else:
        (folder / "locked").mkdir(mode=0o500)
    return ["run", "-q", write_config(folder, with_changes(TINY, output="locked/run"))]


def kubric_case(breaks: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    """A one-scene Kubric-4D release (the loader's test writer) with ``breaks`` applied."""

    def make(folder: Path) -> list[str]:
        from tests.datasets.test_kubric4d import write_scene

        root = folder / "data"
        (root / "scn02900").mkdir(parents=True)
        write_scene(root, "scn02900")
        breaks(root / "scn02900")
        dataset = {
            "kind": "kubric4d",
            "root": "data",
            "count": 1,
            "frames": 3,
            "trajectories": "trajectories.json",
        }
        return ["run", "-q", write_config(folder, with_changes(TINY, dataset=dataset))]

    return make


def each_view(folder: Path, change: Callable[[Path], None]) -> None:
    for path in sorted(folder.glob("*_p0_v*.json")):
        change(path)


def fewer_camera_positions(path: Path) -> None:
    metadata = json.loads(path.read_text())
    metadata["camera"]["positions"] = metadata["camera"]["positions"][:2]
    path.write_text(json.dumps(metadata))


def drop_depth_frame(folder: Path) -> None:
    for depth in folder.glob("frames_p0_v*/depth_00002.tiff"):
        depth.unlink()


def validate(text: str | bytes, *overrides: str) -> Callable[[Path], list[str]]:
    def make(folder: Path) -> list[str]:
        path = folder / "config.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["validate", "config.yaml", *(x for o in overrides for x in ("-o", o))]

    return make


def depth_files(depth: np.ndarray) -> Callable[[Path], list[str]]:
    """The synthetic scene with depth read from ``depth.npy`` (estimator ``files``)."""

    def make(folder: Path) -> list[str]:
        np.save(folder / "depth.npy", depth.astype(np.float32))
        data = with_changes(TINY, depth={"kind": "files", "path": "depth.npy"})
        return ["run", "-q", write_config(folder, data)]

    return make


def with_file(make_file: Callable[[Path], Path], make: Callable[[Path], list[str]]):
    def both(folder: Path) -> list[str]:
        make_file(folder)
        return make(folder)

    return both


CASES: dict[str, Case] = {
    "missing config file": Case(lambda folder: ["validate", "missing.yaml"], ("missing.yaml",)),
    "binary config": Case(validate(bytes(range(256)) * 4), ("config.yaml", "UTF-8")),
    "empty config": Case(validate(""), ("config.yaml", "empty")),
    "comments-only config": Case(validate("# nothing here\n"), ("config.yaml", "empty")),
    "YAML syntax error": Case(validate("seed: [1\n"), ("config.yaml", "line 2")),
    "unknown top-level key": Case(run_tiny(sed=1), ("sed: unknown field",)),
    "unknown component kind": Case(
        run_tiny(backbone={"kind": "pasthrough"}), ("backbone.kind", "pasthrough")
    ),
    "NaN reward weight": Case(
        lambda folder: [
            "train",
            write_config(
                folder,
                with_changes(TINY_TRAINING, rewards=[{"kind": "psnr-visible", "weight": math.nan}]),
            ),
        ],
        ("rewards[0].weight", "not a finite number"),
    ),
    "inf learning rate": Case(
        lambda folder: [
            "train",
            write_config(
                folder,
                with_changes(TINY_TRAINING, training={"rounds": 1, "learning_rate": math.inf}),
            ),
        ],
        ("training.learning_rate", "not a finite number"),
    ),
    "NaN override": Case(
        lambda folder: ["train", write_config(folder, TINY_TRAINING), "-o", "rewards.0.weight=nan"],
        ("rewards[0].weight", "not a finite number"),
    ),
    "inf override": Case(
        lambda folder: [
            "train",
            write_config(folder, TINY_TRAINING),
            "-o",
            "training.max_grad_norm=.inf",
        ],
        ("training.max_grad_norm", "not a finite number"),
    ),
    "corrupt safetensors LoRA": Case(
        lora_case(garbage_file("adapter.safetensors")), ("adapter.safetensors",)
    ),
    "truncated safetensors LoRA": Case(
        lora_case(truncated_safetensors), ("truncated.safetensors", "truncated")
    ),
    "output is an existing file": Case(
        with_file(garbage_file("taken"), run_tiny(output="taken")), ("taken",)
    ),
    "output cannot be created": Case(unwritable_output, ("locked",)),
    "missing video": Case(video_case(None, path="missing.mp4", pivot_depth=2.0), ("missing.mp4",)),
    "unreadable video": Case(
        with_file(garbage_file("noise.mp4"), video_case(None, path="noise.mp4", pivot_depth=2.0)),
        ("noise.mp4",),
    ),
    "depth all NaN": Case(video_case(np.full((3, 32, 48), math.nan)), ("depth.npy", "valid")),
    "depth NaN at the pivot pixel": Case(
        video_case(centre_nan_depth()), ("depth.npy", "pivot_depth")
    ),
    "frames/depth count mismatch": Case(video_case(constant_depth(frames=2)), ("depth.npy",)),
    "depth files: count mismatch": Case(depth_files(constant_depth(frames=2)), ("depth.npy",)),
    "depth files: all invalid": Case(depth_files(constant_depth(0.0)), ("depth.npy", "valid")),
    "target sees none of the source": Case(
        video_case(constant_depth(), x=1000.0), ("'clip'", "sees none")
    ),
    "camera count mismatch": Case(
        kubric_case(lambda scene: each_view(scene, fewer_camera_positions)),
        ("_p0_v", "camera.quaternions/positions"),
    ),
    "camera file is not JSON": Case(
        kubric_case(lambda scene: each_view(scene, lambda p: p.write_text("{not json"))),
        ("_p0_v", "not valid JSON"),
    ),
    "frame without depth": Case(kubric_case(drop_depth_frame), ("depth_00002.tiff",)),
    "eval config with rewards": Case(
        lambda folder: [
            "eval",
            "-q",
            write_config(folder, with_changes(TINY_TRAINING, metrics=["psnr"])),
        ],
        ("does not use `rewards`", "devis train", "`metrics:`"),
    ),
    "run.sample out of range": Case(run_tiny(run={"sample": 5}), ("run.sample",)),
    "missing metric weights": Case(
        run_tiny(metrics=[{"kind": "lpips", "weights_path": "nowhere/alexnet.pth"}]),
        ("nowhere/alexnet.pth",),
    ),
    "corrupt metric weights": Case(
        with_file(
            garbage_file("alexnet.pth"),
            run_tiny(metrics=[{"kind": "lpips", "weights_path": "alexnet.pth"}]),
        ),
        ("alexnet.pth",),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_message_and_exit_2(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    args = case.make(tmp_path)
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "devis_core.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 2, output
    assert "error: " in result.stderr, output
    message = result.stderr[result.stderr.index("error: ") :]
    for expected in case.names:
        assert expected in message, f"{expected!r} not in: {message}"


def test_the_matrix_is_large_enough() -> None:
    assert len(CASES) >= 20


def test_writing_and_reading_a_video_prints_nothing(tmp_path: Path, capfd) -> None:
    from devis_core.toolkit.media import read_video

    path = write_clip(tmp_path, frames=4, height=17, width=23)  # odd: padded, no warning
    video = read_video(path)
    assert video.shape == (4, 3, 18, 24)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_ffmpeg_speaks_only_when_it_fails(tmp_path: Path, capfd) -> None:
    from devis_core.errors import DevisError
    from devis_core.toolkit.media import write_video

    with pytest.raises(DevisError, match=r"ffmpeg could not write .*clip\.nothing.*: .*\S"):
        write_video(tmp_path / "clip.nothing", torch.zeros(2, 3, 8, 8), fps=8)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_an_unreadable_video_is_a_usage_error_that_names_it(tmp_path: Path, capfd) -> None:
    from devis_core.errors import UsageError
    from devis_core.toolkit.media import read_video

    path = garbage_file("noise.mp4")(tmp_path)
    with pytest.raises(UsageError, match="cannot read video .*noise.mp4"):
        read_video(path)
    assert capfd.readouterr().err == ""


def fake_ffmpeg(folder: Path, status: int) -> str:
    """An ffmpeg stand-in that reads the frames, starts its output file (the last argument),
    talks like ffmpeg on both streams and exits with ``status``: what DEVIS shows of a chatty
    encoder."""
    script = folder / "ffmpeg"
    script.write_text(
        '#!/bin/sh\ncat > /dev/null\nfor out; do :; done\n: > "$out"\n'
        "echo 'ffmpeg version 9 Copyright (c) the FFmpeg developers'\n"
        "echo '[libx264 @ 0x1] warning: using cpu capabilities: none!' >&2\n"
        f"echo 'Conversion failed!' >&2\nexit {status}\n"
    )
    script.chmod(0o755)
    return str(script)


def test_a_chatty_ffmpeg_is_silenced_and_quoted_when_it_fails(
    tmp_path: Path, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devis_core.errors import DevisError
    from devis_core.toolkit import media

    monkeypatch.setattr(media, "ffmpeg_executable", lambda: fake_ffmpeg(tmp_path, 0))
    media.write_video(tmp_path / "ok.mp4", torch.zeros(2, 3, 8, 8), fps=8)
    assert capfd.readouterr() == ("", "")
    monkeypatch.setattr(media, "ffmpeg_executable", lambda: fake_ffmpeg(tmp_path, 1))
    with pytest.raises(DevisError, match=r"(?s)bad\.mp4 \(exit code 1\).*Conversion failed!"):
        media.write_video(tmp_path / "bad.mp4", torch.zeros(2, 3, 8, 8), fps=8)
    assert capfd.readouterr() == ("", "")
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["ok.mp4"]  # no half-written file
    assert not list(tmp_path.glob(".*.tmp.mp4"))
