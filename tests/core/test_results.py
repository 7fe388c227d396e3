"""The one results scheme: JSONL record logs that survive crashes, keyed by a config digest."""

from __future__ import annotations

import json
import math

import numpy as np

from devis_core.toolkit.results import RecordLog, append_record, config_key, read_records


def test_records_round_trip_in_order_with_nan_and_numpy_scalars(tmp_path):
    path = tmp_path / "logs" / "metrics.jsonl"
    log = RecordLog(path)
    log.append({"index": 0, "psnr": 21.5})
    log.append({"index": 1, "psnr": math.nan, "ssim": np.float32(0.25)})
    again = read_records(path)
    assert [r["index"] for r in again] == [0, 1]
    assert again[0]["psnr"] == 21.5 and math.isnan(again[1]["psnr"])
    assert again[1]["ssim"] == 0.25
    assert RecordLog(path).records == log.records[:1] + [again[1]]


def test_a_line_cut_short_by_a_crash_is_dropped_and_appends_continue_cleanly(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_record(path, {"index": 0})
    with path.open("a") as handle:
        handle.write('{"index": 1, "ps')  # the process died while writing
    log = RecordLog(path)
    assert log.records == [{"index": 0}]
    log.append({"index": 2})
    assert path.read_text().splitlines() == ['{"index": 0}', '{"index": 2}']


def test_an_in_memory_log_writes_nothing(tmp_path):
    log = RecordLog()
    log.append({"index": 0})
    assert log.records == [{"index": 0}] and list(tmp_path.iterdir()) == []


def test_config_key_depends_on_content_not_on_key_order():
    a = {"seed": 0, "backbone": {"kind": "inpaint", "radius": 3.0}}
    b = json.loads('{"backbone": {"radius": 3.0, "kind": "inpaint"}, "seed": 0}')
    assert config_key(a) == config_key(b)
    assert config_key(a) != config_key({**a, "seed": 1})
    assert len(config_key(a)) == 16 and int(config_key(a), 16) >= 0
