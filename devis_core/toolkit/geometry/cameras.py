"""Pinhole camera helpers: rigid transforms, lifting pixels with depth, projecting points.

Conventions shared by the whole geometry module:

* Camera axes are OpenCV's: x right, y down, z forward. Depth is planar depth, the point's z in
  the camera frame.
* Extrinsics are world-to-camera 4x4 matrices (``w2c``): ``X_cam = R @ X_world + t``.
* Intrinsics are 3x3 pixel matrices ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
* Pixel ``(u, v)`` is (column, row) and **pixel centres sit at integer coordinates**: pixel ``i``
  covers ``[i - 0.5, i + 0.5]``. This is what TrajectoryCrafter's warper assumes (its pixel grid
  is ``arange(W)`` fed straight through ``K^-1``), so a principal point at ``(W / 2, H / 2)``,
  TrajectoryCrafter's choice, is half a pixel right of and below the image's geometric centre.

Every function broadcasts over leading batch dimensions and runs on the inputs' device.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from devis_core.lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


def make_intrinsics(
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The 3x3 pixel matrix of a skew-free pinhole camera."""
    dtype = torch.float32 if dtype is None else dtype  # a default here would import torch
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def intrinsics_from_fov(
    height: int, width: int, fov_x_deg: float, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Square-pixel pinhole K with a horizontal field of view, principal point at the centre.

    Pixel centres sit at integer coordinates, so the centre is ``((W - 1) / 2, (H - 1) / 2)``.
    """
    dtype = torch.float32 if dtype is None else dtype  # a default here would import torch
    focal = width / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))
    return make_intrinsics(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, dtype=dtype)


def invert_rigid(transform: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid 4x4 transforms (..., 4, 4), in closed form ``[R^T, -R^T t]``.

    Exact for orthonormal rotations and better conditioned than a general matrix inverse, so
    ``invert_rigid(w2c)`` is the camera-to-world matrix and vice versa.
    """
    rotation_t = transform[..., :3, :3].transpose(-1, -2)
    translation = transform[..., :3, 3:]
    inverse = torch.zeros_like(transform)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3:] = -(rotation_t @ translation)
    inverse[..., 3, 3] = 1.0
    return inverse


def relative_pose(w2c_from: torch.Tensor, w2c_to: torch.Tensor) -> torch.Tensor:
    """Transform taking points from camera ``from``'s frame into camera ``to``'s frame.

    ``w2c_to @ inv(w2c_from)``: composing it with ``w2c_from`` gives ``w2c_to``.
    """
    return w2c_to @ invert_rigid(w2c_from)


def world_to_camera(rotation: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """``(..., 4, 4)`` matrix ``[R | -R c]`` of a camera with rotation ``R`` at world centre ``c``.

    The inverse of :func:`camera_center`; computed in the dtype of ``rotation``.
    """
    pose = torch.zeros(*rotation.shape[:-2], 4, 4, dtype=rotation.dtype, device=rotation.device)
    pose[..., :3, :3] = rotation
    pose[..., :3, 3] = -(rotation @ center.to(rotation.dtype).unsqueeze(-1)).squeeze(-1)
    pose[..., 3, 3] = 1.0
    return pose


def camera_center(w2c: torch.Tensor) -> torch.Tensor:
    """World position (..., 3) of the camera of each w2c matrix (..., 4, 4): ``-R^T t``."""
    rotation = w2c[..., :3, :3]
    return -(rotation.transpose(-1, -2) @ w2c[..., :3, 3:]).squeeze(-1)


def transform_points(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply 4x4 transforms (B..., 4, 4) to points (B..., N..., 3).

    ``transform`` is (4, 4) or has the points' batch dimensions; the point dimensions between
    the batch and the coordinate are arbitrary (e.g. (T, H, W, 3) points, (T, 4, 4) transforms).
    """
    extra = points.dim() - transform.dim() + 1
    shape = (*transform.shape[:-2], *(1,) * extra)
    rotation = transform[..., :3, :3].reshape(*shape, 3, 3)
    translation = transform[..., :3, 3].reshape(*shape, 3)
    return (rotation @ points.unsqueeze(-1)).squeeze(-1) + translation


def pixel_grid(
    height: int,
    width: int,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(H, W, 2) pixel-centre coordinates ``(u, v)``: ``grid[v, u] == (u, v)``."""
    dtype = torch.float32 if dtype is None else dtype  # a default here would import torch
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device),
        torch.arange(width, dtype=dtype, device=device),
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)


def lift(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Camera-frame 3D points (B..., H, W, 3) of every pixel of a depth map (B..., H, W).

    ``X = depth * K^-1 [u, v, 1]``; intrinsics are (3, 3) or (B..., 3, 3).
    """
    height, width = depth.shape[-2:]
    grid = pixel_grid(height, width, dtype=depth.dtype, device=depth.device)
    homogeneous = torch.cat([grid, torch.ones_like(grid[..., :1])], dim=-1)  # (H, W, 3)
    k_inv = torch.linalg.inv(intrinsics.to(depth.dtype))
    rays = (k_inv[..., None, None, :, :] @ homogeneous.unsqueeze(-1)).squeeze(-1)
    return rays * depth.unsqueeze(-1)


def project(points: torch.Tensor, intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (B..., N..., 2) and depth z (B..., N...) of camera-frame points.

    Points are (B..., N..., 3); intrinsics are (3, 3) or (B..., 3, 3), like the transforms of
    :func:`transform_points`. Points with z <= 0 get meaningless coordinates: check ``z > 0``.
    """
    extra = points.dim() - intrinsics.dim() + 1
    matrix = intrinsics.to(points.dtype).reshape(*intrinsics.shape[:-2], *(1,) * extra, 3, 3)
    pixels = (matrix @ points.unsqueeze(-1)).squeeze(-1)
    z = pixels[..., 2]
    return pixels[..., :2] / z.unsqueeze(-1), z
