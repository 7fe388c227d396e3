"""DepthSplat's crop geometry (cvg/depthsplat, ``src/dataset/shims/crop_shim.py``).

DepthSplat scales a frame to cover its ``image_shape`` (factor ``max(h / H, w / W)``, sides
rounded) and centre-crops it, starting at row ``(h_scaled - h) // 2``. DL3DV's 960p frames
(``ori_image_shape`` 540x960) run at ``image_shape`` 512x960 (its README's DL3DV command): no
scaling, rows 14 to 525. The maps here are labelled with the frame row (or column) each of their
pixels was predicted for, so a placement off by one pixel fails.
"""

from __future__ import annotations

import numpy as np
import torch

from devis_core.types import ViewSynthesisSample


def _sample(height: int, width: int, sample_id: str = "scene-1") -> ViewSynthesisSample:
    source = torch.zeros(1, 3, height, width)
    eye = torch.eye(4).expand(1, 4, 4)
    return ViewSynthesisSample(sample_id, source, torch.eye(3), eye, eye)


def _read_back(registry, tmp_path, depth: np.ndarray, sample: ViewSynthesisSample):
    np.savez(tmp_path / f"{sample.sample_id}.npz", depth=depth.astype(np.float32))
    estimator = registry.build("depth", {"kind": "depthsplat", "root": str(tmp_path)})
    return estimator.estimate(sample.source, sample)


def test_dl3dv_512_row_crop_lands_on_rows_14_to_525(registry, tmp_path):
    crop_rows = np.arange(14, 14 + 512, dtype=np.float32)  # frame row of each predicted row
    depth = np.broadcast_to(crop_rows[None, :, None], (1, 512, 960))
    got = _read_back(registry, tmp_path, depth, _sample(540, 960))
    assert got.shape == (1, 540, 960)
    expected = torch.zeros(540)
    expected[14:526] = torch.arange(14, 526, dtype=torch.float32)
    assert torch.equal(got[0, :, 0], expected)
    assert torch.equal(got[0], expected[:, None].expand(540, 960))


def test_crop_of_columns_lands_on_the_centre_columns(registry, tmp_path):
    # A 8x12 frame run at 8x8: no scaling, columns (12 - 8) // 2 = 2 to 9.
    depth = np.broadcast_to(np.arange(2, 10, dtype=np.float32)[None, None, :], (1, 8, 8))
    got = _read_back(registry, tmp_path, depth, _sample(8, 12))
    expected = torch.tensor([0, 0, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0], dtype=torch.float32)
    assert torch.equal(got[0], expected.expand(8, 12))


def test_scaled_crop_maps_each_frame_pixel_to_the_crop_pixel_under_its_centre(registry, tmp_path):
    # A 180x320 frame run at 512x960: scaled by max(512/180, 960/320) = 3 to 540x960, rows 14 to
    # 525 kept. Frame row r covers scaled rows 3r to 3r + 2; its centre lies in row 3r + 1.
    scaled_rows = np.arange(14, 14 + 512, dtype=np.float32)  # scaled-frame row of each crop row
    depth = np.broadcast_to(scaled_rows[None, :, None], (1, 512, 960))
    got = _read_back(registry, tmp_path, depth, _sample(180, 320))
    expected = torch.tensor([3.0 * r + 1 if 14 <= 3 * r + 1 <= 525 else 0.0 for r in range(180)])
    assert torch.equal(got[0, :, 0], expected)
    assert float(got[0, 4, 0]) == 0.0 and float(got[0, 5, 0]) == 16.0
    assert float(got[0, 174, 0]) == 523.0 and float(got[0, 175, 0]) == 0.0
