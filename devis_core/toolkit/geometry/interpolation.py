"""Moving a camera part of the way between two poses, along an arc about the scene's pivot.

Used where a target camera is not an orbit of TrajectoryCrafter's parameters (real datasets
give a source and a target camera): the accumulation of DEVIS splits the relative pose into
fractions, and the camera after a fraction turns about the pivot (:func:`arc_pose`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from devis_core.lazy import lazy_import
from devis_core.toolkit.geometry.cameras import camera_center, world_to_camera

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


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


def arc_pose(
    w2c_from: torch.Tensor, w2c_to: torch.Tensor, pivot: torch.Tensor, fraction: float
) -> torch.Tensor:
    """World-to-camera ``(..., 4, 4)`` a ``fraction`` of the way along an arc about ``pivot``.

    The camera turns rigidly about the pivot (world points ``(..., 3)``): its orientation by
    the fraction of the relative rotation (the geodesic on SO(3)), its offset from the pivot by
    the same rotation, and its distance to the pivot is interpolated linearly. What an orbit
    does not explain (a pan, a target that does not look at the pivot) is added linearly, so
    fraction 0 is the first pose and 1 the second exactly. A pure orbit stays on its sphere,
    where the chord between the camera centres would cut inside it.
    """
    if fraction == 0.0:
        return w2c_from.clone()
    if fraction == 1.0:
        return w2c_to.clone()
    rot_from = w2c_from[..., :3, :3].to(torch.float64)
    rot_to = w2c_to[..., :3, :3].to(torch.float64)
    full_turn = rot_to.transpose(-1, -2) @ rot_from  # takes the from-camera's axes to the to's
    turn = rotation_exp(fraction * rotation_log(full_turn))
    pivot = pivot.to(torch.float64)
    offset_from = camera_center(w2c_from).to(torch.float64) - pivot
    offset_to = camera_center(w2c_to).to(torch.float64) - pivot
    radius_from = offset_from.norm(dim=-1, keepdim=True)
    radius_to = offset_to.norm(dim=-1, keepdim=True)
    if bool((radius_from <= 0).any()):
        raise ValueError("the first camera sits on the pivot: there is no arc to follow")
    unit_from = offset_from / radius_from
    unexplained = offset_to - radius_to * (full_turn @ unit_from.unsqueeze(-1)).squeeze(-1)
    radius = (1.0 - fraction) * radius_from + fraction * radius_to
    swung = radius * (turn @ unit_from.unsqueeze(-1)).squeeze(-1)
    center = pivot + swung + fraction * unexplained
    rotation = rot_from @ turn.transpose(-1, -2)
    return world_to_camera(rotation, center).to(w2c_from.dtype)
