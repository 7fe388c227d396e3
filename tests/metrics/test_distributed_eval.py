"""`devis eval` and `devis ablate` under torchrun: two CPU processes (gloo) share the samples
and write the table, samples.jsonl and videos a single process writes; a resumed run scores
only what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from devis_core.toolkit.media import read_video
from devis_core.toolkit.results import read_records

TIMING = ("seconds",)
"""Fields that measure wall time: the only ones allowed to differ between the runs."""

CONFIG = {
    "name": "tiny",
    "device": "cpu",
    "dataset": {"kind": "synthetic", "num_samples": 4, "frames": 3, "height": 32, "width": 48},
    "depth": {"kind": "carried"},
    "accumulator": {"kind": "direct"},
    "backbone": {"kind": "inpaint"},
    "metrics": ["psnr", "ssim-nocc", "temporal-flicker"],
    "evaluation": {
        "methods": {"direct": [], "bta": ["accumulator={kind: bta}", "accumulator.steps=2"]},
        "save_videos": "lossless",
    },
}


FAKE_WANDB = """
import json, os
from pathlib import Path

OUT = Path(os.environ["FAKE_WANDB_OUT"])


class Table:
    def __init__(self, columns, data):
        self.columns, self.data = columns, data


class Run:
    def define_metric(self, *args, **kwargs):
        pass

    def log(self, data):
        data = {k: v.__dict__ if isinstance(v, Table) else v for k, v in data.items()}
        with (OUT / f"log-{os.getpid()}.jsonl").open("a") as handle:
            handle.write(json.dumps(data) + "\\n")

    def finish(self):
        (OUT / f"finished-{os.getpid()}").touch()


def init(**kwargs):
    (OUT / f"init-{os.getpid()}").touch()
    return Run()
"""
"""A wandb module that records, per process, what it was sent."""


def _devis(args: list[str], processes: int, **environment: str) -> None:
    """``devis ARGS`` in fresh interpreters: one process, or ``processes`` under torchrun."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = [sys.executable, *(launcher if processes > 1 else []), "-m", "devis_core.cli"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **environment}  # as torchrun does
    done = subprocess.run(
        [*command, *args, "-q"], capture_output=True, text=True, env=environment, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _table(directory: Path) -> dict:
    table = json.loads((directory / "table.json").read_text())
    timing = [c for c in table["rows"][0] if c.split(" ")[0] in TIMING]
    table["rows"] = [{k: v for k, v in row.items() if k not in timing} for row in table["rows"]]
    return table


def _assert_same_outputs(single: Path, parallel: Path) -> None:
    assert _table(parallel) == _table(single)
    samples = read_records(single / "samples.jsonl")
    assert _without_timing(read_records(parallel / "samples.jsonl")) == _without_timing(samples)
    assert len(samples) == 8  # 4 samples x 2 methods, none lost or repeated
    for name in ("table.md", "table.tex"):
        if "seconds" not in (single / name).read_text():
            assert (parallel / name).read_text() == (single / name).read_text()


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    """The same evaluation by one process and by two."""
    root = tmp_path_factory.mktemp("eval")
    runs = {}
    for processes, name in ((1, "single"), (2, "parallel")):
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**CONFIG, "output": str(root / name)}))
        _devis(["eval", str(path)], processes)
        runs[name] = root / name
    return root, runs


def test_two_processes_write_the_table_of_one(evaluations):
    _, runs = evaluations
    single, parallel = runs["single"], runs["parallel"]
    _assert_same_outputs(single, parallel)
    records = read_records(parallel / "metrics.jsonl")  # one writer: each record once
    assert sorted((r["method"], r["index"]) for r in records) == sorted(
        (method, index) for method in ("direct", "bta") for index in range(4)
    )
    assert {p.name for p in parallel.iterdir()} == {p.name for p in single.iterdir()}
    assert json.loads((parallel / "run.json").read_text())["state"] == "finished"
    assert not (parallel / "run.lock").exists()


def test_videos_made_by_either_process_are_written_with_the_same_pixels(evaluations):
    _, runs = evaluations
    single, parallel = runs["single"] / "videos", runs["parallel"] / "videos"
    names = sorted(str(p.relative_to(single)) for p in single.rglob("*.mkv"))
    assert len(names) == 8
    assert sorted(str(p.relative_to(parallel)) for p in parallel.rglob("*.mkv")) == names
    for name in names:  # odd indices were made by the second process
        assert torch.equal(read_video(parallel / name), read_video(single / name)), name


def test_a_resumed_run_under_torchrun_scores_only_the_missing_records(evaluations):
    root, runs = evaluations
    parallel = runs["parallel"]
    log = parallel / "metrics.jsonl"
    records = read_records(log)
    dropped = {("bta", 1), ("bta", 2), ("direct", 3)}
    kept = [r for r in records if (r["method"], r["index"]) not in dropped]
    log.write_text("".join(json.dumps(r) + "\n" for r in kept))
    _devis(["eval", str(root / "parallel.yaml")], 2)
    again = read_records(log)
    assert again[: len(kept)] == kept  # reused as they were (their timings too)
    assert sorted((r["method"], r["index"]) for r in again[len(kept) :]) == sorted(dropped)
    _assert_same_outputs(runs["single"], parallel)


def test_only_the_main_process_reports_and_it_reports_every_sample(tmp_path):
    package = tmp_path / "fake" / "wandb"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_WANDB)
    calls = tmp_path / "calls"
    calls.mkdir()
    evaluation = {**CONFIG["evaluation"], "save_videos": "none", "report_to": ["wandb"]}
    path = tmp_path / "eval.yaml"
    config = {**CONFIG, "evaluation": evaluation, "output": str(tmp_path / "run")}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    python_path = os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])
    _devis(["eval", str(path)], 2, PYTHONPATH=python_path, FAKE_WANDB_OUT=str(calls))
    files = sorted(p.name.split("-")[0] for p in calls.iterdir())
    assert files == ["finished", "init", "log"]  # one process opened, used and closed wandb
    (log,) = calls.glob("log-*.jsonl")
    logged = read_records(log)
    samples = sorted(
        (key.split("/")[1], value) for entry in logged for key, value in entry.items()
        if key.endswith("/index")
    )  # fmt: skip
    assert samples == sorted((m, i) for m in ("direct", "bta") for i in range(4))
    (table,) = [entry["table"] for entry in logged if "table" in entry]
    assert [row[0] for row in table["data"]] == ["direct", "bta"]


def test_ablate_under_torchrun_writes_the_table_of_one_process(tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    base = {k: v for k, v in CONFIG.items() if k != "evaluation"}
    pipeline.write_text(yaml.safe_dump({**base, "output": str(tmp_path / "unused")}))
    options = [
        "-o", f"pipeline={pipeline}",
        "-o", "variants={direct: [], bta: [\"accumulator={kind: bta}\", accumulator.steps=2]}",
        "-o", "samples=4", "--device", "cpu",
    ]  # fmt: skip
    for processes, name in ((1, "single"), (2, "parallel")):
        _devis(["ablate", "variants", *options, "--output", str(tmp_path / name)], processes)
    _assert_same_outputs(tmp_path / "single", tmp_path / "parallel")
    rows = read_records(tmp_path / "parallel" / "rows" / "metrics.jsonl")
    assert len(rows) == 8 and len({(r["method"], r["index"]) for r in rows}) == 8
    assert (tmp_path / "parallel" / "plots" / "psnr.png").is_file()


@pytest.mark.slow
def test_a_training_suite_under_torchrun_trains_and_scores_with_both_processes(tmp_path):
    """Each process trains on one group and scores one held-out scene; the models are those of
    one process training both groups in one micro-batch (as tests/training/test_distributed.py
    checks of the trainer), so the held-out scores agree to the trainer's tolerance."""
    budget = "training.rounds=1, training.groups_per_round=2, algorithm.num_generations=2, "
    budget += "training.per_device_train_batch_size="
    for processes, name in ((1, "single"), (2, "parallel")):
        per_device = 4 // processes  # the same micro-batch: both groups' four videos
        options = ["-o", "held_out=2", "-o", f"train_overrides=[{budget}{per_device}]"]
        output = str(tmp_path / name)
        _devis(
            ["ablate", "grpo-vs-vanilla", *options, "--device", "cpu", "--output", output],
            processes,
        )
    single = read_records(tmp_path / "single" / "samples.jsonl")
    parallel = read_records(tmp_path / "parallel" / "samples.jsonl")
    assert [(r["method"], r["index"]) for r in parallel] == [
        (r["method"], r["index"]) for r in single
    ]
    for got, want in zip(parallel, single, strict=True):
        for score in ("reward", "psnr", "ssim-nocc", "pixel-diversity"):
            assert got[score] == pytest.approx(want[score], rel=1e-4), (got["method"], score)
    for method in ("devis-grpo", "vanilla-grpo"):  # one writer: each scene once
        records = read_records(tmp_path / "parallel" / "seed0" / method / "held_out.jsonl")
        assert sorted((r["method"], r["index"]) for r in records) == sorted(
            {(r["method"], r["index"]) for r in records}
        )
    state = json.loads((tmp_path / "parallel" / "seed0" / "vanilla-grpo" / "run.json").read_text())
    assert state["state"] == "finished"
