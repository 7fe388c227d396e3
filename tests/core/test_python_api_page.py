"""docs/python.md runs as written: its code blocks, in order, in one namespace."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "python.md"


@pytest.mark.slow
def test_python_page_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 4
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out
    assert "one step" in printed and "BTA, K=3" in printed
    run = tmp_path / "runs" / "grpo-notebook"
    assert (run / "lora.safetensors").is_file() and (run / "metrics.jsonl").is_file()
    assert namespace["result"].generator_calls == 3
