"""Moving a camera part of the way between two poses, along the shortest rigid path.

Used where a target camera is not an orbit (real datasets give arbitrary target poses): the
camera centre moves on a straight line and the orientation turns about one fixed axis
(the geodesic on SO(3)), both at the same fraction, so fraction 0 is the first pose and 1 the
second exactly.
"""

from __future__ import annotations

import math

import torch

from devis_core.geometry.cameras import camera_center, world_to_camera


def rotation_log(rotation: torch.Tensor) -> torch.Tensor:
    """Axis-angle vector ``(..., 3)`` of rotation matrices ``(..., 3, 3)`` (angle in [0, pi])."""
    rotation = rotation.to(torch.float64)
    trace = rotation.diagonal(dim1=-2, dim2=-1).sum(-1)
    angle = torch.acos(((trace - 1) / 2).clamp(-1.0, 1.0))
    skew = torch.stack(
        [
            rotation[..., 2, 1] - rotation[..., 1, 2],
            rotation[..., 0, 2] - rotation[..., 2, 0],
            rotation[..., 1, 0] - rotation[..., 0, 1],
        ],
        dim=-1,
    )
    sin = torch.sin(angle)
    small = angle < 1e-6
    scale = torch.where(small, torch.full_like(angle, 0.5), angle / (2 * sin.clamp_min(1e-12)))
    vector = skew * scale.unsqueeze(-1)
    near_pi = angle > math.pi - 1e-4
    if bool(near_pi.any()):  # sin ~ 0: read the axis from the symmetric part instead
        symmetric = (rotation + torch.eye(3, dtype=rotation.dtype, device=rotation.device)) / 2
        column = symmetric.diagonal(dim1=-2, dim2=-1).argmax(-1)
        axis = torch.gather(symmetric, -1, column[..., None, None].expand(*column.shape, 3, 1))
        axis = axis.squeeze(-1)
        axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        vector = torch.where(near_pi.unsqueeze(-1), axis * angle.unsqueeze(-1), vector)
    return vector


def rotation_exp(vector: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of axis-angle vectors ``(..., 3)``."""
    vector = vector.to(torch.float64)
    zero = torch.zeros_like(vector[..., 0])
    x, y, z = vector.unbind(-1)
    skew = torch.stack(
        [
            torch.stack([zero, -z, y], -1),
            torch.stack([z, zero, -x], -1),
            torch.stack([-y, x, zero], -1),
        ],
        dim=-2,
    )
    return torch.linalg.matrix_exp(skew)


def interpolate_pose(w2c_from: torch.Tensor, w2c_to: torch.Tensor, fraction: float) -> torch.Tensor:
    """World-to-camera ``(..., 4, 4)`` a ``fraction`` of the way from one pose to the other."""
    rot_from = w2c_from[..., :3, :3].to(torch.float64)
    rot_to = w2c_to[..., :3, :3].to(torch.float64)
    turn = rotation_exp(fraction * rotation_log(rot_to @ rot_from.transpose(-1, -2)))
    rotation = turn @ rot_from
    center_from = camera_center(w2c_from).to(torch.float64)
    center = center_from + fraction * (camera_center(w2c_to).to(torch.float64) - center_from)
    return world_to_camera(rotation, center).to(w2c_from.dtype)
