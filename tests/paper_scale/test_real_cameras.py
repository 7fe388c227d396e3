"""``main`` at paper scale, dry run, on DyCheck's real ``paper-windmill`` cameras.

The camera and split files are the published ones (``../shared/real``, skipped when absent);
the frames are synthesised at the stated 2x size (480x360) and downscaled by the loader's
``size`` option to 32x24, so the real poses, intrinsics and static-camera pairing run through
the whole paper-scale path.
"""

from __future__ import annotations

import logging

import pytest

from tests.datasets.test_iphone import needs_real
from tests.fixtures.real_formats import write_windmill
from tests.paper_scale.conftest import (
    FRAMES,
    PaperData,
    assert_dry_run_table,
    assert_finite,
    run_dry,
)

pytestmark = [pytest.mark.paper_scale, needs_real]


def test_main_suite_on_the_real_windmill_cameras(
    suite_registry, paper_data: PaperData, tmp_path, caplog
):
    root = write_windmill(tmp_path / "iphone", frames=FRAMES)
    windmill = {"sequences": ["paper-windmill"], "frames": FRAMES, "size": [32, 24]}
    overrides = [
        *paper_data.overrides({"iphone": windmill}),
        f"paper.iphone={root}",
        "datasets=[iphone]",
        "samples=1",
    ]
    with caplog.at_level(logging.INFO, logger="devis_core.pipeline"):
        result = run_dry(suite_registry, "main", overrides, tmp_path / "out")
    assert_dry_run_table(result)
    rows = {row["method"]: row for row in result.rows}
    assert list(rows) == ["One-step baseline", "ADEVIS-BTA (K=3)"]
    for row in rows.values():
        assert row["dataset"] == "iPhone" and row["samples"] == 1
        assert_finite(row, ["psnr", "ssim", "psnr-nocc", "ssim-nocc", "temporal-flicker"])
    assert rows["ADEVIS-BTA (K=3)"]["generator calls"] == 3
    fitted = {record.args[0] for record in caplog.records if record.msg.startswith("depth of ")}
    source = "iphone-paper-windmill-cam1-t00000"
    assert {source, f"{source}/step1", f"{source}/step2"} <= fitted
