"""Target camera poses: TrajectoryCrafter's orbit parameterisation and motion increments.

A :class:`Motion` ``(theta, phi, r, x, y)`` describes a target camera relative to a source camera
at the identity (OpenCV axes, see :mod:`devis_core.toolkit.geometry.cameras`). The camera
orbits a pivot on the source's optical axis at ``(0, 0, pivot_depth)``:

* ``theta`` (degrees) raises the camera: +theta moves it UP (towards -y), the elevation.
* ``phi`` (degrees) swings it sideways: +phi moves it to the RIGHT (+x), the azimuth about the
  source's vertical axis.
* ``r`` moves it towards the pivot by ``r * pivot_depth``: the orbit radius is
  ``pivot_depth * (1 - r)`` (``r`` is a fraction of the pivot depth, as in TrajectoryCrafter).
* ``x`` and ``y`` pan the camera, orbit included, in the source frame, in scene units (not
  scaled by the pivot depth, as in TrajectoryCrafter): +x moves it RIGHT (+x), +y moves it UP
  (-y). A pan leaves the orientation unchanged.

The camera looks at the (panned) pivot and stays upright: its x axis stays horizontal in the
source frame, i.e. a look-at with up vector -y. In matrices, ``w2c = [R | -R c]`` with
``R = Rx(theta) @ Ry(phi)`` and centre
``c = (x, -y, D) + D (1 - r) (sin(phi) cos(theta), -sin(theta), -cos(phi) cos(theta))``.

Relation to TrajectoryCrafter (``sphere2pose`` + ``get_poses``, whose effective source-to-target
transform is ``T(0, 0, D) Ry(phi) Rx(theta) T(-x, y, -r D - D)``): signs and units are the same,
and the poses are identical when at most one of theta, phi and r is non-zero (any pan). They
differ when motions mix: TrajectoryCrafter rotates as ``Ry(phi) Rx(theta)``, which rolls the
camera when both angles are non-zero, and applies ``r`` as a dolly along the source axis that
also pushes the orbit centre to ``D (1 + r)``, so it no longer looks at the pivot nor keeps
``D (1 - r)`` from it.

Increments (the accumulation of DEVIS, Eq. 7 / Eq. 14 of the paper) compose in PARAMETER space:
after k steps the camera is at the orbit pose of the summed parameters, so accumulating towards a
target reaches it exactly, every intermediate camera still looks at the pivot, and the step
between two cumulative poses is the rigid transform
``relative_pose(w2c_{k-1}, w2c_k) = w2c_k @ inv(w2c_{k-1})``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from typing import TYPE_CHECKING, Literal

from devis_core.lazy import lazy_import
from devis_core.toolkit.geometry.cameras import world_to_camera
from devis_core.toolkit.geometry.depth import known_depth

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


@dataclass(frozen=True)
class Motion:
    """A camera motion ``(theta, phi, r, x, y)`` relative to the source camera (module docs)."""

    theta: float = 0.0
    phi: float = 0.0
    r: float = 0.0
    x: float = 0.0
    y: float = 0.0

    @classmethod
    def zero(cls) -> Motion:
        """No motion: the source camera itself."""
        return cls()

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        """``(theta, phi, r, x, y)``."""
        return astuple(self)

    def __add__(self, other: Motion) -> Motion:
        if not isinstance(other, Motion):
            return NotImplemented
        return Motion(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def __mul__(self, factor: float) -> Motion:
        if not isinstance(factor, numbers.Real):
            return NotImplemented
        return Motion(*(value * factor for value in self.as_tuple()))

    __rmul__ = __mul__


def _rotation_x(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)


def _rotation_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def orbit_pose(
    motion: Motion,
    pivot_depth: float,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """World-to-camera (4, 4) of the camera ``motion`` puts relative to the identity source.

    Computed in float64 and cast, so the zero motion is exactly the identity.
    """
    dtype = torch.float32 if dtype is None else dtype  # a default here would import torch
    theta, phi = math.radians(motion.theta), math.radians(motion.phi)
    radius = pivot_depth * (1.0 - motion.r)
    direction = torch.tensor(
        [
            math.sin(phi) * math.cos(theta),
            -math.sin(theta),
            -math.cos(phi) * math.cos(theta),
        ],
        dtype=torch.float64,
    )
    center = torch.tensor([motion.x, -motion.y, pivot_depth], dtype=torch.float64)
    center = center + radius * direction
    rotation = _rotation_x(theta) @ _rotation_y(phi)
    return world_to_camera(rotation, center).to(dtype=dtype, device=device)


def orbit_trajectory(
    theta: float | Motion,
    phi: float = 0.0,
    r: float = 0.0,
    x: float = 0.0,
    y: float = 0.0,
    n_frames: int = 49,
    pivot_depth: float | None = None,
    *,
    mode: Literal["gradual", "direct"] = "gradual",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Per-frame target w2c (n_frames, 4, 4), TrajectoryCrafter's ``--target_pose`` trajectory.

    ``theta`` may be a :class:`Motion` (then ``phi``..``y`` must stay 0), e.g.
    ``orbit_trajectory(motion, n_frames=49, pivot_depth=d)``. ``mode="gradual"`` interpolates the
    parameters linearly from the zero motion at frame 0 (exactly the identity) to the target at
    the last frame, as TrajectoryCrafter does; ``"direct"`` gives every frame the target pose.
    ``pivot_depth`` is required; see :func:`pivot_depth_from`.
    """
    dtype = torch.float32 if dtype is None else dtype  # a default here would import torch
    if isinstance(theta, Motion):
        if (phi, r, x, y) != (0.0, 0.0, 0.0, 0.0):
            raise ValueError("pass either a Motion or the five parameters, not both")
        motion = theta
    else:
        motion = Motion(theta, phi, r, x, y)
    if pivot_depth is None:
        raise TypeError("orbit_trajectory() needs pivot_depth")
    if n_frames < 1:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    if mode == "gradual":
        fractions = [i / (n_frames - 1) for i in range(n_frames)] if n_frames > 1 else [1.0]
    elif mode == "direct":
        fractions = [1.0] * n_frames
    else:
        raise ValueError(f"mode must be 'gradual' or 'direct', got {mode!r}")
    poses = [orbit_pose(motion * f, pivot_depth, dtype=torch.float64) for f in fractions]
    return torch.stack(poses).to(dtype=dtype, device=device)


def pivot_depth_from(depth: torch.Tensor, cap: float = 5.0) -> float:
    """Orbit pivot depth: the centre pixel (H // 2, W // 2) of frame 0, capped at ``cap``.

    TrajectoryCrafter orbits around what the camera looks at and caps the radius at 5 scene
    units so that far backgrounds (up to 1e4 after :func:`disparity_to_depth`) do not send the
    camera kilometres away.
    """
    height, width = depth.shape[-2:]
    value = float(depth.reshape(-1, height, width)[0, height // 2, width // 2])
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"the centre pixel has no valid depth ({value})")
    return min(value, cap)


def centre_pivot_depth(depth: torch.Tensor, region: float = 0.1) -> float:
    """Pivot depth of a real video: the median valid depth of frame 0's centre region.

    The region is the central ``region`` of the height and of the width (at least one pixel),
    around TrajectoryCrafter's centre pixel; the median ignores a hole or a flying pixel
    there. Without a valid pixel in the region, the median of the whole frame is used; a frame
    without any valid depth is an error. No cap: real cameras are in metric or COLMAP units.
    """
    height, width = depth.shape[-2:]
    frame = depth.reshape(-1, height, width)[0].to(torch.float64)
    rows, cols = max(1, round(height * region)), max(1, round(width * region))
    top, left = (height - rows) // 2, (width - cols) // 2
    for values in (frame[top : top + rows, left : left + cols], frame):
        valid = values[known_depth(values)]
        if valid.numel():
            return float(valid.median())
    raise ValueError("frame 0 has no valid depth to place the pivot at")


def compose_motion(increments: Sequence[Motion]) -> Motion:
    """The motion reached after all ``increments``: their parameter-wise sum, in order."""
    total = Motion.zero()
    for increment in increments:
        total = total + increment
    return total


def cumulative_motions(increments: Sequence[Motion]) -> list[Motion]:
    """Running sums: element k is where the camera is after ``increments[: k + 1]``.

    Summed in the same order as :func:`compose_motion`, so the last one equals it exactly.
    """
    running, total = [], Motion.zero()
    for increment in increments:
        total = total + increment
        running.append(total)
    return running


def shares_of(weights: Sequence[float]) -> list[float]:
    """``weights`` divided by their sum: the fraction of the motion each increment covers.

    Weights must be positive and finite, and there must be at least one.
    """
    if len(weights) == 0:
        raise ValueError("need at least one weight")
    if any(not (w > 0 and math.isfinite(w)) for w in weights):
        raise ValueError(f"weights must be positive and finite, got {list(weights)}")
    total = math.fsum(weights)
    return [w / total for w in weights]


def decompose_motion(delta: Motion, weights: Sequence[float]) -> list[Motion]:
    """Split ``delta`` into ``len(weights)`` increments with shares proportional to ``weights``.

    Weights must be positive. The last increment is ``delta`` minus the sum of the others, so
    rounding is absorbed and :func:`compose_motion` of the result equals ``delta`` up to the last
    bit of each parameter.
    """
    increments = [delta * share for share in shares_of(weights)[:-1]]
    rest = compose_motion(increments)
    last = Motion(*(getattr(delta, f.name) - getattr(rest, f.name) for f in fields(Motion)))
    return [*increments, last]


def random_shares(k_min: int, k_max: int, generator: torch.Generator) -> list[float]:
    """A random accumulation schedule: K ~ U{k_min..k_max} positive, unequal weights.

    The paper randomises, per sample, the number of accumulative steps and the distance moved
    in each step ("not necessarily equal"). The weights are exponential draws, so normalised
    they are Dirichlet(1, ..., 1) shares, all strictly positive and almost surely unequal. All
    randomness comes from ``generator`` (a CPU generator).
    """
    if not 1 <= k_min <= k_max:
        raise ValueError(f"need 1 <= k_min <= k_max, got k_min={k_min}, k_max={k_max}")
    k = int(torch.randint(k_min, k_max + 1, (1,), generator=generator))
    uniform = torch.rand(k, generator=generator, dtype=torch.float64)
    # -log(u) > 0 for u < 1; the clamp keeps u = 0 (probability 2^-53) finite.
    return (-torch.log(uniform.clamp_min(torch.finfo(torch.float64).tiny))).tolist()


def sample_increments(
    delta: Motion, k_min: int, k_max: int, generator: torch.Generator
) -> list[Motion]:
    """:func:`random_shares` of ``delta``: K unequal increments composing to it exactly."""
    return decompose_motion(delta, random_shares(k_min, k_max, generator))
