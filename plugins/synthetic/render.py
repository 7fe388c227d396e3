"""Analytic ray caster for synthetic dynamic scenes: colour, exact planar depth and surface ids.

Every surface is intersected in closed form (ray-sphere, slab-method ray-box in the box's local
frame, and the room as a box seen from inside), so depth is exact rather than estimated: it is the
ground truth that geometry code and reprojection tests are checked against. Shading is Lambertian
under a fixed directional light plus ambient, hence view-independent: a 3D point has the same
colour from every camera.
"""

from __future__ import annotations

import math
from typing import Literal, overload

import torch
from torch import Tensor

from devis_core.toolkit.geometry import intrinsics_from_fov

from .scene import FIRST_OBJECT_ID, NO_HIT_ID, Pose, Scene

_T_MIN = 1e-4
"""Hits closer than this ray parameter are ignored (a ray must not hit its own origin)."""
_JITTER_2X2 = ((-0.25, -0.25), (0.25, -0.25), (-0.25, 0.25), (0.25, 0.25))


def default_intrinsics(height: int, width: int, fov_x_deg: float = 60.0) -> Tensor:
    """Pinhole K (3, 3) with square pixels and the principal point at the image centre."""
    return intrinsics_from_fov(height, width, fov_x_deg)


def _first_positive(t_near: Tensor, t_far: Tensor) -> Tensor:
    """Nearest hit along the ray of an interval [t_near, t_far] of a convex solid; inf if none.

    When the origin is inside the solid (t_near behind it), the hit is the way out, t_far.
    """
    t = torch.where(t_near > _T_MIN, t_near, t_far)
    hit = (t_near <= t_far) & (t_far > _T_MIN)
    return torch.where(hit, t, torch.full_like(t, math.inf))


def _intersect_box(origin: Tensor, directions: Tensor, pose: Pose, half: Tensor) -> Tensor:
    """Slab method in the box's local frame: ray parameter of the nearest hit, inf if none."""
    origin_local = (origin - pose.center) @ pose.rotation
    dirs_local = directions @ pose.rotation
    dirs_local = torch.where(dirs_local == 0, torch.full_like(dirs_local, 1e-30), dirs_local)
    t_low = (-half - origin_local) / dirs_local
    t_high = (half - origin_local) / dirs_local
    t_near = torch.minimum(t_low, t_high).amax(-1)
    t_far = torch.maximum(t_low, t_high).amin(-1)
    return _first_positive(t_near, t_far)


def _intersect_sphere(origin: Tensor, directions: Tensor, center: Tensor, radius: float) -> Tensor:
    """Ray parameter of the nearest hit, inf if none.

    Solved around the point of closest approach, which avoids the cancellation of the textbook
    quadratic formula in float32.
    """
    offset = origin - center
    dd = (directions * directions).sum(-1)
    t_mid = -(offset * directions).sum(-1) / dd
    closest = offset + t_mid[:, None] * directions
    half_chord_sq = (radius * radius - (closest * closest).sum(-1)) / dd
    half_chord = half_chord_sq.clamp(min=0).sqrt()
    t = _first_positive(t_mid - half_chord, t_mid + half_chord)
    return torch.where(half_chord_sq >= 0, t, torch.full_like(t, math.inf))


def _box_face(local_points: Tensor, half: Tensor) -> tuple[Tensor, Tensor]:
    """Axis (N,) and side (N,; 1 on the high side) of the box face each surface point lies on."""
    axis = (local_points.abs() / half).argmax(-1)
    side = (local_points.gather(-1, axis[:, None])[:, 0] > 0).long()
    return axis, side


def _hit_points(origin: Tensor, directions: Tensor, t: Tensor) -> Tensor:
    """World points ``origin + t * directions`` (N, 3); the origin itself where t is inf."""
    return origin + torch.nan_to_num(t, posinf=0.0)[:, None] * directions


def _room_frame(scene: Scene, device: torch.device) -> tuple[Pose, Tensor]:
    """The room as a box: pose (centre, identity rotation) and half-sizes."""
    low = torch.tensor(scene.room.low, dtype=torch.float32, device=device)
    high = torch.tensor(scene.room.high, dtype=torch.float32, device=device)
    return Pose((low + high) / 2, torch.eye(3, device=device)), (high - low) / 2


def nearest_hits(
    scene: Scene, origin: Tensor, directions: Tensor, time: float
) -> tuple[Tensor, Tensor]:
    """Ray parameter (N,) and surface id (N,) of the nearest hit of each ray at ``time`` (frames).

    Rays are ``origin + t * directions`` with origin (3,) or (N, 3) and directions (N, 3), in world
    coordinates. Misses (only possible from a camera outside the room) get t = inf and
    ``NO_HIT_ID``. Room faces have ids 0..5 (``ROOM_FACES`` order), objects ``FIRST_OBJECT_ID + k``.
    """
    device = directions.device
    room_pose, room_half = _room_frame(scene, device)
    t_best = _intersect_box(origin, directions, room_pose, room_half)
    points = _hit_points(origin, directions, t_best)
    axis, side = _box_face(points - room_pose.center, room_half)
    ids = torch.where(torch.isfinite(t_best), 2 * axis + side, NO_HIT_ID)

    for k, (obj, pose) in enumerate(zip(scene.objects, scene.at(time, device), strict=True)):
        if obj.kind == "sphere":
            t = _intersect_sphere(origin, directions, pose.center, obj.half_extents[0])
        else:
            half = torch.tensor(obj.half_extents, dtype=torch.float32, device=device)
            t = _intersect_box(origin, directions, pose, half)
        closer = t < t_best
        t_best = torch.where(closer, t, t_best)
        ids = torch.where(closer, FIRST_OBJECT_ID + k, ids)
    return t_best, ids


def shade(scene: Scene, points: Tensor, ids: Tensor, time: float) -> Tensor:
    """Colour (N, 3) in [0, 1] of surface points (N, 3) with their surface ids, at ``time``.

    Albedo is the surface's solid texture in its local frame; shading is Lambertian with the
    scene's directional light and ambient term. Points with ``NO_HIT_ID`` are black.
    """
    device = points.device
    light = torch.tensor(scene.light_direction, dtype=torch.float32, device=device)
    light = light / light.norm()
    poses = scene.at(time, device)
    rgb = torch.zeros_like(points)
    for surface in torch.unique(ids).tolist():
        if surface == NO_HIT_ID:
            continue
        mask = ids == surface
        world = points[mask]
        if surface < FIRST_OBJECT_ID:
            texture = scene.room.textures[surface]
            local = world
            normal = torch.zeros(3, device=device)
            normal[surface // 2] = -1.0 if surface % 2 else 1.0  # faces point into the room
            normal = normal.expand_as(world)
        else:
            obj = scene.objects[surface - FIRST_OBJECT_ID]
            pose = poses[surface - FIRST_OBJECT_ID]
            texture = obj.texture
            local = (world - pose.center) @ pose.rotation
            half = torch.tensor(obj.half_extents, dtype=torch.float32, device=device)
            if obj.kind == "sphere":
                normal_local = local / half[0]
            else:
                axis, side = _box_face(local, half)
                normal_local = (
                    torch.nn.functional.one_hot(axis, 3).float() * (2.0 * side - 1)[:, None]
                )
            normal = normal_local @ pose.rotation.T
        lambert = (normal @ light).clamp(min=0.0)
        rgb[mask] = texture(local) * (scene.ambient + (1.0 - scene.ambient) * lambert)[:, None]
    return rgb.clamp(0.0, 1.0)


def trace(
    scene: Scene, origin: Tensor, directions: Tensor, time: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Colour (N, 3), ray parameter (N,) and surface id (N,) of the nearest hit of each ray.

    Arguments as in :func:`nearest_hits`; the entry point for casting arbitrary rays (e.g. towards
    a given 3D point) rather than a whole image.
    """
    t, ids = nearest_hits(scene, origin, directions, time)
    return shade(scene, _hit_points(origin, directions, t), ids, time), t, ids


@overload
def render(
    scene: Scene,
    K: Tensor,
    w2c: Tensor,
    times: Tensor,
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    samples_per_pixel: int = 1,
    return_ids: Literal[False] = False,
) -> tuple[Tensor, Tensor]: ...


@overload
def render(
    scene: Scene,
    K: Tensor,
    w2c: Tensor,
    times: Tensor,
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    samples_per_pixel: int = 1,
    return_ids: Literal[True],
) -> tuple[Tensor, Tensor, Tensor]: ...


def render(
    scene: Scene,
    K: Tensor,
    w2c: Tensor,
    times: Tensor,
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    samples_per_pixel: int = 1,
    return_ids: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """Render frames of ``scene``: rgb (T, 3, H, W) in [0, 1] and planar depth (T, H, W).

    ``K`` is (3, 3) or (T, 3, 3) pixel intrinsics, ``w2c`` (4, 4) or (T, 4, 4) world-to-camera
    (OpenCV axes), ``times`` (T,) frame times. The ray of pixel (u, v) goes through
    K^-1 [u, v, 1]; depth is the camera-space z of its hit, 0 where nothing is hit (only possible
    from a camera outside the room). ``samples_per_pixel=4`` averages colour over a fixed 2x2
    jitter (anti-aliasing for large sizes); depth and ids always come from the pixel centre.
    ``return_ids=True`` also returns the surface id (T, H, W) int64 of every pixel (see
    :func:`nearest_hits`). Frames are rendered one at a time to bound memory.
    """
    if samples_per_pixel not in (1, 4):
        raise ValueError(f"samples_per_pixel must be 1 or 4, got {samples_per_pixel}")
    device = torch.device(device) if device is not None else w2c.device
    times = torch.as_tensor(times).reshape(-1)
    n_frames = times.shape[0]
    K = K.to(device, torch.float32).expand(n_frames, 3, 3)
    w2c = w2c.to(device, torch.float32).expand(n_frames, 4, 4)

    rows, cols = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    cols, rows = cols.reshape(-1), rows.reshape(-1)
    rgb = torch.empty(n_frames, 3, height, width, device=device)
    depth = torch.empty(n_frames, height, width, device=device)
    ids = torch.empty(n_frames, height, width, device=device, dtype=torch.int64)
    for i, time in enumerate(times.tolist()):
        k_inv = torch.linalg.inv(K[i])
        c2w = torch.linalg.inv(w2c[i])
        origin, cam_to_world = c2w[:3, 3], c2w[:3, :3]

        def camera_rays(du: float, dv: float, k_inv: Tensor = k_inv) -> Tensor:
            """Camera-space directions K^-1 [u + du, v + dv, 1] of all pixels (z = 1)."""
            pixels = torch.stack([cols + du, rows + dv, torch.ones_like(cols)], dim=-1)
            return pixels @ k_inv.T

        centre_rays = camera_rays(0.0, 0.0)
        centre_world = centre_rays @ cam_to_world.T
        t, frame_ids = nearest_hits(scene, origin, centre_world, time)
        if samples_per_pixel == 1:
            colour = shade(scene, _hit_points(origin, centre_world, t), frame_ids, time)
        else:
            samples = [
                trace(scene, origin, camera_rays(du, dv) @ cam_to_world.T, time)[0]
                for du, dv in _JITTER_2X2
            ]
            colour = torch.stack(samples).mean(0)

        z = t * centre_rays[:, 2]
        rgb[i] = colour.T.reshape(3, height, width)
        depth[i] = torch.where(torch.isfinite(z), z, torch.zeros_like(z)).reshape(height, width)
        ids[i] = frame_ids.reshape(height, width)
    if return_ids:
        return rgb, depth, ids
    return rgb, depth
