"""Saved results are reused for the key they were computed from, and for no other."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from devis_core.errors import UsageError
from devis_core.toolkit.results import load_result, save_result

KEY = {"config": {"seed": 0, "dataset": {"kind": "synthetic"}}, "samples": 4}


def test_a_saved_result_is_read_back_for_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "rows" / "bta.json"  # missing folders are made
    row = {"variant": "bta", "psnr": 21.5, "lpips": math.nan}
    save_result(path, KEY, {"metrics": ["psnr", "lpips"], "row": row})
    loaded = load_result(path, json.loads(json.dumps(KEY)))
    assert loaded is not None
    assert loaded["metrics"] == ["psnr", "lpips"]
    assert loaded["row"]["psnr"] == 21.5 and math.isnan(loaded["row"]["lpips"])
    assert set(loaded) == {"metrics", "row"}


def test_the_file_is_the_key_then_the_fields_as_indented_json(tmp_path: Path) -> None:
    path = tmp_path / "scores.json"
    save_result(path, KEY, {"scores": {"reward": 0.5}})
    expected = {"key": KEY, "scores": {"reward": 0.5}}
    assert path.read_text() == json.dumps(expected, indent=2) + "\n"


def test_a_result_written_before_the_helper_existed_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"key": KEY, "scores": {"reward": 0.25}}, indent=2) + "\n")
    assert load_result(path, KEY) == {"scores": {"reward": 0.25}}


def test_nothing_saved_is_none(tmp_path: Path) -> None:
    assert load_result(tmp_path / "absent.json", KEY) is None


def test_a_result_of_another_key_is_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "bta.json"
    save_result(path, KEY, {"row": {"psnr": 20.0}})
    assert load_result(path, {**KEY, "samples": 8}) is None


def test_a_result_of_another_key_can_be_refused(tmp_path: Path) -> None:
    path = tmp_path / "scores.json"
    save_result(path, KEY, {"scores": {}})
    with pytest.raises(UsageError, match=r"scores\.json holds results of another held-out set"):
        load_result(path, {**KEY, "samples": 8}, refuse_other="held-out set")
    assert load_result(path, KEY, refuse_other="held-out set") == {"scores": {}}
