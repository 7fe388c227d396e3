"""Geometry: cameras, forward warping, orbit trajectories and motion increments, depth and
its alignment to the cameras' units.

Conventions: OpenCV camera axes (x right, y down, z forward), world-to-camera 4x4 extrinsics,
3x3 pixel intrinsics, pixel centres at integer coordinates, videos (T, 3, H, W) in [0, 1] and
depth (T, H, W) planar in scene units with 0 or non-finite meaning unknown. See the modules'
docstrings for the details and for how each piece relates to TrajectoryCrafter.
"""

from devis_core.toolkit.geometry.alignment import AlignmentMode, DepthFit, fit_depth, sparse_depth
from devis_core.toolkit.geometry.cameras import (
    camera_center,
    intrinsics_from_fov,
    invert_rigid,
    lift,
    make_intrinsics,
    pixel_grid,
    project,
    relative_pose,
    transform_points,
    world_to_camera,
)
from devis_core.toolkit.geometry.depth import disparity_to_depth
from devis_core.toolkit.geometry.trajectory import (
    Motion,
    centre_pivot_depth,
    compose_motion,
    cumulative_motions,
    decompose_motion,
    orbit_pose,
    orbit_trajectory,
    pivot_depth_from,
    random_shares,
    sample_increments,
)
from devis_core.toolkit.geometry.warp import forward_warp

__all__ = [
    "AlignmentMode",
    "DepthFit",
    "Motion",
    "camera_center",
    "centre_pivot_depth",
    "compose_motion",
    "cumulative_motions",
    "decompose_motion",
    "intrinsics_from_fov",
    "disparity_to_depth",
    "fit_depth",
    "forward_warp",
    "invert_rigid",
    "lift",
    "make_intrinsics",
    "orbit_pose",
    "orbit_trajectory",
    "pivot_depth_from",
    "pixel_grid",
    "project",
    "random_shares",
    "relative_pose",
    "sample_increments",
    "sparse_depth",
    "transform_points",
    "world_to_camera",
]
