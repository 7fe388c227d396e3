"""``devis_core.toolkit.dataset_files``: file reading with clear errors, camera conversions."""

from __future__ import annotations

import cv2
import imageio
import numpy as np
import pytest
import torch

from devis_core.errors import UsageError
from devis_core.toolkit.dataset_files import (
    read_json,
    read_rgb,
    require,
    require_array,
    require_number,
    resize_clip,
    scale_intrinsics,
    to_intrinsics,
    undistortion_map,
    viewing_angle,
)
from devis_core.toolkit.geometry import pixel_grid


def test_fields_are_named_with_their_file(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text('{"camera": {"K": [[1, 0], [0, 1]], "f": "x", "list": [{"a": 1}]}}')
    data = read_json(path)
    assert require(data, "camera.list.0.a", path) == 1
    with pytest.raises(UsageError, match=r"meta.json: missing field 'camera.list.1'"):
        require(data, "camera.list.1.a", path)
    with pytest.raises(
        UsageError, match=r"meta.json: field 'camera.K' has shape \(2, 2\), expected 3x3"
    ):
        require_array(data, "camera.K", path, (3, 3))
    with pytest.raises(UsageError, match=r"field 'camera.f' is not an array"):
        require_array(data, "camera.f", path)
    with pytest.raises(UsageError, match=r"field 'camera.f' is 'x', expected a number"):
        require_number(data, "camera.f", path)
    path.write_text("[1, 2")
    with pytest.raises(UsageError, match="meta.json is not valid JSON"):
        read_json(path)
    with pytest.raises(UsageError, match="JSON file not found"):
        read_json(tmp_path / "absent.json")


def test_images_of_any_bit_depth_read_as_unit_floats(tmp_path):
    imageio.imwrite(tmp_path / "a.png", np.full((2, 3), 65535, np.uint16))
    imageio.imwrite(tmp_path / "b.png", np.full((2, 3), 51, np.uint8))
    assert (
        read_rgb(tmp_path / "a.png").shape == (2, 3, 3) and read_rgb(tmp_path / "a.png").max() == 1
    )
    assert read_rgb(tmp_path / "b.png") == pytest.approx(np.full((2, 3, 3), 0.2))


def test_scale_intrinsics_keeps_the_image_centre():
    K = torch.tensor([[10.0, 0.0, 3.5], [0.0, 10.0, 1.5], [0.0, 0.0, 1.0]])  # 8x4, centred
    half = scale_intrinsics(K, 0.5, 0.5)
    torch.testing.assert_close(half, torch.tensor([[5.0, 0.0, 1.5], [0.0, 5.0, 0.5], [0, 0, 1.0]]))
    video = torch.rand(2, 3, 4, 8)
    depth = torch.arange(32.0).reshape(1, 4, 8).expand(2, 4, 8)
    (small,), (small_depth,), K_small = resize_clip([video], [depth], K, (2, 4))
    assert small.shape == (2, 3, 2, 4) and set(small_depth.unique().tolist()) <= set(range(32))
    torch.testing.assert_close(K_small, half)


def test_reimaging_with_other_intrinsics_moves_pixels_by_the_homography():
    K_from = torch.tensor(
        [[12.0, 0.0, 9.0], [0.0, 12.0, 7.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    K_to = torch.tensor([[10.0, 0.0, 10.0], [0.0, 10.0, 6.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    # A linear ramp in normalised coordinates is reproduced exactly by bilinear sampling.
    grid = pixel_grid(14, 20, dtype=torch.float64)
    x_from = (grid[..., 0] - 9.0) / 12.0
    video = (0.5 + 0.2 * x_from).expand(1, 3, 14, 20).float()
    depth = torch.full((1, 14, 20), 3.0)
    warped, warped_depth = to_intrinsics(video, depth, K_from, K_to)
    x_to = (grid[..., 0] - 10.0) / 10.0
    y_to = (grid[..., 1] - 6.0) / 10.0
    inside = (x_to * 12 + 9 >= 0) & (x_to * 12 + 9 <= 19) & (y_to * 12 + 7 >= 0)
    inside &= y_to * 12 + 7 <= 13
    expected = (0.5 + 0.2 * x_to).float()
    torch.testing.assert_close(warped[0, 0][inside], expected[inside], atol=1e-5, rtol=0)
    assert set(warped_depth.unique().tolist()) <= {0.0, 3.0} and float(warped_depth[0, 7, 10]) == 3
    same, _ = to_intrinsics(video, None, K_from, K_from)
    assert same is video


def test_undistortion_map_agrees_with_opencv():
    K = np.array([[30.0, 0.0, 15.5], [0.0, 28.0, 11.0], [0.0, 0.0, 1.0]])
    coefficients = (-0.2, 0.05, 0.001, -0.002, 0.01)
    where = undistortion_map(torch.from_numpy(K), coefficients, 24, 32)[0].numpy()
    pixels = pixel_grid(24, 32, dtype=torch.float64).numpy()
    back = cv2.undistortPoints(where.reshape(-1, 1, 2), K, np.array(coefficients), P=K)
    np.testing.assert_allclose(back.reshape(24, 32, 2), pixels, atol=1e-3)


def test_viewing_angle():
    w2c = torch.eye(4).expand(2, 4, 4).clone()
    turn = torch.tensor([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])  # optical axis to world -x
    w2c[1, :3, :3] = turn
    assert viewing_angle(w2c[0], w2c[1]).item() == pytest.approx(90.0)
    assert viewing_angle(w2c, w2c).tolist() == pytest.approx([0.0, 0.0], abs=1e-5)
