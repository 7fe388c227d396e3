"""One run per output directory: the lock and who holds it, stale locks, --overwrite, run.json."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from devis_core.cli import main
from devis_core.engines.run_directory import (
    LOCK_FILE,
    STATE_FILE,
    DirectoryLock,
    run_directory,
)
from devis_core.errors import UsageError
from devis_core.pipeline import Pipeline

CONFIG = {
    "name": "tiny",
    "device": "cpu",
    "dataset": {"kind": "synthetic", "num_samples": 2, "frames": 3, "height": 32, "width": 48},
    "depth": {"kind": "ground-truth"},
    "accumulator": {"kind": "direct"},
    "backbone": {"kind": "passthrough"},
    "metrics": ["psnr"],
}

# A `devis eval` that, once it holds its directory, waits inside its first synthesis until the
# file argv[1] exists: the test decides when the first run ends, so the overlap is certain.
GATED_EVAL = """
import sys, time
from pathlib import Path
from devis_core.cli import main
from devis_core.pipeline import Pipeline

gate, synthesize = Path(sys.argv[1]), Pipeline.synthesize

def gated(self, *args, **kwargs):
    deadline = time.monotonic() + 300
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return synthesize(self, *args, **kwargs)

Pipeline.synthesize = gated
sys.exit(main(["eval", sys.argv[2], "-q"]))
"""


def _config(tmp_path: Path, **changes) -> Path:
    data = {**CONFIG, "output": str(tmp_path / "run"), **changes}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _state(directory: Path) -> dict:
    return json.loads((directory / STATE_FILE).read_text())


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _wait_for(condition, seconds: float = 240.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_two_runs_into_one_directory_at_once_one_is_refused_the_other_finishes(tmp_path):
    config, out, gate = _config(tmp_path), tmp_path / "run", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", GATED_EVAL, str(gate), str(config)],
        env=_environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (out / STATE_FILE).exists() or first.poll() is not None)
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == first.pid and _state(out)["state"] == "running"

        second = subprocess.run(
            [sys.executable, "-m", "devis_core.cli", "eval", str(config), "-q"],
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert second.returncode == 2
        assert "Traceback" not in second.stderr
        assert f"{out} is in use by `devis eval` (pid {first.pid} on {socket.gethostname()}" in (
            second.stderr
        )
        assert _state(out)["pid"] == first.pid  # the refused run wrote nothing

        gate.touch()
        _, errors = first.communicate(timeout=600)
    finally:
        gate.touch()
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, errors
    state = _state(out)
    assert state["state"] == "finished" and state["pid"] == first.pid and state["ended"]
    assert not (out / LOCK_FILE).exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_run_is_refused_while_another_process_holds_the_lock_then_runs(tmp_path, capsys):
    config, out = _config(tmp_path), tmp_path / "run"
    out.mkdir()
    lock = DirectoryLock(out, "train")
    lock.acquire()
    try:
        refused = subprocess.run(
            [sys.executable, "-m", "devis_core.cli", "eval", str(config), "-q"],
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        lock.release()
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"in use by `devis train` (pid {os.getpid()} on {socket.gethostname()}, since " in (
        refused.stderr
    )
    assert not (out / STATE_FILE).exists() and not (out / LOCK_FILE).exists()
    assert main(["eval", str(config), "-q"]) == 0
    assert _state(out)["state"] == "finished"


def test_a_lock_is_exclusive_within_one_process_too(tmp_path):
    first = DirectoryLock(tmp_path, "run")
    first.acquire()
    with pytest.raises(UsageError, match=r"in use by `devis run` \(pid \d+"):
        DirectoryLock(tmp_path, "eval").acquire()
    first.release()
    assert not (tmp_path / LOCK_FILE).exists()
    second = DirectoryLock(tmp_path, "eval")
    second.acquire()  # free again once released
    second.release()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    config, out = _config(tmp_path), tmp_path / "run"
    out.mkdir()
    pid = _dead_pid()
    stale = {"pid": pid, "host": socket.gethostname(), "command": "eval", "started": "earlier"}
    (out / LOCK_FILE).write_text(json.dumps(stale))
    with caplog.at_level(logging.WARNING, logger="devis_core.engines.run_directory"):
        assert main(["eval", str(config), "-q"]) == 0
    assert f"taking over the lock of `devis eval` (pid {pid} on" in caplog.text
    assert _state(out)["state"] == "finished" and _state(out)["pid"] == os.getpid()
    assert not (out / LOCK_FILE).exists()


def test_a_lock_of_a_live_process_or_another_host_is_not_taken_over(tmp_path):
    other = {"pid": 1, "host": "elsewhere", "command": "train", "started": "earlier"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(other))
    with pytest.raises(UsageError, match=f"on elsewhere.*delete {tmp_path / LOCK_FILE}"):
        DirectoryLock(tmp_path, "eval").acquire()
    live = {"pid": os.getpid(), "host": socket.gethostname(), "command": "run", "started": "x"}
    (tmp_path / LOCK_FILE).write_text(json.dumps(live))
    with pytest.raises(UsageError, match=f"pid {os.getpid()}"):
        DirectoryLock(tmp_path, "eval").acquire()
    assert json.loads((tmp_path / LOCK_FILE).read_text()) == live  # left as it was


def test_an_unrelated_directory_is_refused_without_overwrite_and_cleared_with_it(tmp_path, capsys):
    config, out = _config(tmp_path), tmp_path / "run"
    (out / "old").mkdir(parents=True)
    (out / "notes.txt").write_text("someone's files")
    assert main(["eval", str(config), "-q"]) == 2
    error = capsys.readouterr().err
    assert f"{out} is not empty" in error and "pass --overwrite" in error
    assert (out / "notes.txt").exists() and not (out / STATE_FILE).exists()

    assert main(["eval", str(config), "-q", "--overwrite"]) == 0
    assert not (out / "notes.txt").exists() and not (out / "old").exists()
    assert {"config.yaml", "metrics.jsonl", STATE_FILE} <= {p.name for p in out.iterdir()}


def test_an_evaluation_of_another_config_is_refused_and_overwrite_replaces_it(tmp_path, capsys):
    assert main(["eval", str(_config(tmp_path)), "-q"]) == 0
    out = tmp_path / "run"
    assert main(["eval", str(_config(tmp_path, seed=3)), "-q"]) == 2
    assert "differs in: seed" in capsys.readouterr().err
    assert main(["eval", str(_config(tmp_path, seed=3)), "-q", "--overwrite"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 3


def test_run_reuses_its_own_directory_but_not_another_commands(tmp_path, capsys):
    config, out = _config(tmp_path), tmp_path / "run"
    assert main(["run", str(config), "-q"]) == 0
    assert main(["run", str(config), "-q"]) == 0  # the same run again: its files replaced
    assert _state(out)["command"] == "run" and _state(out)["state"] == "finished"
    assert main(["eval", str(config), "-q"]) == 2
    assert "it holds a `devis run` run" in capsys.readouterr().err


def test_a_failed_run_records_failed_with_the_reason_and_releases_the_lock(
    tmp_path, monkeypatch, capsys
):
    config, out = _config(tmp_path), tmp_path / "run"

    def broken(self, *args, **kwargs):
        raise RuntimeError("the generator broke\non two lines")

    monkeypatch.setattr(Pipeline, "synthesize", broken)
    with pytest.raises(RuntimeError):
        main(["eval", str(config), "-q"])
    state = _state(out)
    assert state["state"] == "failed" and state["error"] == "RuntimeError"
    assert state["reason"] == "the generator broke on two lines" and state["ended"]
    assert not (out / LOCK_FILE).exists()
    monkeypatch.undo()
    assert main(["eval", str(config), "-q"]) == 0  # the same config resumes it
    assert _state(out)["state"] == "finished" and _state(out)["reason"] is None


def test_overwrite_never_clears_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "keep.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    with (
        pytest.raises(UsageError, match="holds the current directory"),
        run_directory(tmp_path, command="run", overwrite=True),
    ):
        pass
    assert (tmp_path / "keep.txt").exists() and not (tmp_path / LOCK_FILE).exists()


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    config = _config(tmp_path)
    code = main(["train", str(config), "--resume", str(tmp_path / "run"), "--overwrite"])
    assert code == 2 and "choose one" in capsys.readouterr().err


def test_a_train_run_into_a_non_empty_directory_points_to_resume(tmp_path, capsys):
    config, out = _config(tmp_path), tmp_path / "run"
    out.mkdir()
    (out / "checkpoints").mkdir()
    data = {**CONFIG, "output": str(out), "algorithm": {"kind": "grpo"}}
    data["rewards"] = [{"kind": "psnr-visible"}]
    config.write_text(yaml.safe_dump(data))
    assert main(["train", str(config), "-q"]) == 2
    assert f"--resume {out}" in capsys.readouterr().err


def test_resume_of_a_missing_directory_is_refused_without_creating_it(tmp_path, capsys):
    config, missing = _config(tmp_path), tmp_path / "nowhere"
    assert main(["train", str(config), "--resume", str(missing)]) == 2
    assert f"--resume {missing}: no checkpoint there to resume" in capsys.readouterr().err
    assert not missing.exists()


def test_ablate_resumes_only_a_directory_of_the_same_suite(tmp_path, registry):
    from devis_core.engines.ablate import run_suite

    out = tmp_path / "ablate"
    out.mkdir()
    (out / "suite.yaml").write_text(yaml.safe_dump({"suite": "variants"}))
    with pytest.raises(UsageError, match="holds a run of suite 'variants', not 'main'"):
        run_suite(registry, "main", output=out, device="cpu", progress=False)
    (out / "suite.yaml").unlink()
    (out / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="no suite.yaml of a `devis ablate` run.*--overwrite"):
        run_suite(registry, "main", output=out, device="cpu", progress=False)
    assert (out / "notes.txt").exists() and not (out / STATE_FILE).exists()
