"""Description of a synthetic dynamic scene, and a seeded sampler of such scenes.

World frame = the source camera's frame at time 0 (OpenCV axes: x right, y down, z forward), so
the ground is the plane ``y = floor_y > 0``. Moving objects cluster in front of the camera; the
whole scene is enclosed in a textured room (an axis-aligned box seen from inside, whose bottom
face is the floor and whose far face is the backdrop), so that every ray from a camera inside the
room hits something and depth is always known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from .textures import Texture, sample_texture

ROOM_FACES: tuple[str, ...] = (
    "wall_left",
    "wall_right",
    "ceiling",
    "floor",
    "wall_back",
    "backdrop",
)
"""Room faces in surface-id order: id = 2 * axis + (1 if on the high side of the axis)."""
NO_HIT_ID = -1
FLOOR_ID = ROOM_FACES.index("floor")
BACKDROP_ID = ROOM_FACES.index("backdrop")
FIRST_OBJECT_ID = len(ROOM_FACES)
"""Surface id of ``scene.objects[0]``; object k has id ``FIRST_OBJECT_ID + k``."""

ROOM_CENTER_Z = 4.0
"""Depth of the room's centre: the middle of the object cluster, where orbits pivot."""


class Pose(NamedTuple):
    """Where an object is at one time: local-to-world rotation, then translation."""

    center: Tensor
    """(3,) world position of the object's local origin (its centre)."""
    rotation: Tensor
    """(3, 3) local-to-world rotation: ``world = rotation @ local + center``."""


@dataclass(frozen=True, eq=False)
class SceneObject:
    """A moving, spinning, textured sphere or box (axis-aligned in its local frame).

    The centre follows ``center0 + velocity * t + wobble_amplitude * (sin(w t + phase) -
    sin(phase))`` and the object turns about the vertical axis at ``yaw_rate``; ``t`` is in frames.
    """

    kind: Literal["sphere", "box"]
    half_extents: tuple[float, float, float]
    """Box half-sizes along local x, y, z; a sphere has all three equal to its radius."""
    center0: tuple[float, float, float]
    velocity: tuple[float, float, float]
    """Scene units per frame."""
    wobble_amplitude: tuple[float, float, float]
    wobble_phase: tuple[float, float, float]
    wobble_frequency: float
    """Radians per frame."""
    yaw0: float
    yaw_rate: float
    """Radians per frame, about the vertical (y) axis."""
    texture: Texture

    def center(self, t: float) -> tuple[float, float, float]:
        """World position of the centre at time ``t`` (frames)."""
        return tuple(
            c + v * t + a * (math.sin(self.wobble_frequency * t + p) - math.sin(p))
            for c, v, a, p in zip(
                self.center0, self.velocity, self.wobble_amplitude, self.wobble_phase, strict=True
            )
        )

    def pose(self, t: float, device: torch.device | str | None = None) -> Pose:
        """Pose at time ``t`` (frames), as float32 tensors on ``device``."""
        yaw = self.yaw0 + self.yaw_rate * t
        cos, sin = math.cos(yaw), math.sin(yaw)
        rotation = [[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]]
        return Pose(
            torch.tensor(self.center(t), dtype=torch.float32, device=device),
            torch.tensor(rotation, dtype=torch.float32, device=device),
        )


@dataclass(frozen=True, eq=False)
class Room:
    """The enclosing box, seen from inside; its faces are textured in world coordinates."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    """Its ``y`` is the floor height (y points down)."""
    textures: tuple[Texture, ...]
    """One per face, in ``ROOM_FACES`` order."""

    @property
    def floor_y(self) -> float:
        """Height of the ground plane (positive: below the source camera)."""
        return self.high[1]


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything the renderer needs: objects, room and a fixed, view-independent lighting."""

    objects: tuple[SceneObject, ...]
    room: Room
    light_direction: tuple[float, float, float] = (-0.31, -0.78, -0.54)
    """Direction towards the directional light (above, behind-left of the source camera);
    the renderer normalises it."""
    ambient: float = 0.35
    """Fraction of the albedo seen by surfaces facing away from the light."""

    def at(self, t: float, device: torch.device | str | None = None) -> tuple[Pose, ...]:
        """Poses of all objects at time ``t`` (frames)."""
        return tuple(obj.pose(t, device) for obj in self.objects)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _sample_object(
    generator: torch.Generator, *, on_axis: bool, floor_y: float, max_speed: float
) -> SceneObject:
    """One object; ``on_axis`` puts it across the source camera's optical axis at t = 0."""

    def uniform(low: float, high: float) -> float:
        return _uniform(generator, low, high)

    kind: Literal["sphere", "box"] = "sphere" if uniform(0, 1) < 0.5 else "box"
    low_size = 0.45 if on_axis else 0.25
    if kind == "sphere":
        radius = uniform(low_size, 0.65)
        half = (radius, radius, radius)
    else:
        half = (uniform(low_size, 0.6), uniform(low_size, 0.6), uniform(low_size, 0.6))

    phase = (uniform(0, 2 * math.pi), uniform(0, 2 * math.pi), uniform(0, 2 * math.pi))
    amp_y = uniform(0.0, 0.05 if on_axis else 0.15)
    amplitude = (uniform(0.0, 0.3), amp_y, uniform(0.0, 0.3))
    # y(t) <= y0 + amp_y * (1 - sin(phase_y)) for all t, so this keeps the object above the floor.
    lowest_allowed = floor_y - half[1] - amp_y * (1 - math.sin(phase[1]))
    if on_axis:
        # |y0| < half[1] (as floor_y >= 0.5), x0 = 0: the optical axis crosses the object.
        center0 = (0.0, min(uniform(-0.2, 0.2), lowest_allowed), uniform(3.2, 4.5))
    else:
        y0 = lowest_allowed - uniform(0.0, 1.0)
        center0 = (uniform(-1.5, 1.5), y0, uniform(2.5, 5.5))

    heading, speed = uniform(0, 2 * math.pi), uniform(0, max_speed)
    return SceneObject(
        kind=kind,
        half_extents=half,
        center0=center0,
        velocity=(speed * math.cos(heading), 0.0, speed * math.sin(heading)),
        wobble_amplitude=amplitude,
        wobble_phase=phase,
        wobble_frequency=uniform(2 * math.pi / 80, 2 * math.pi / 25),
        yaw0=uniform(0, 2 * math.pi),
        yaw_rate=uniform(-0.06, 0.06),
        texture=sample_texture(generator, frequency=6.0),
    )


def sample_scene(
    generator: torch.Generator,
    *,
    n_objects: int = 4,
    floor_y: float = 1.0,
    room_half_size: float = 10.0,
    max_speed: float = 0.02,
) -> Scene:
    """Draw a random scene; the same generator state always gives the same scene.

    Objects: centres at x in [-1.5, 1.5], z in [2.5, 5.5], resting on or hovering up to 1 unit
    above the floor, drifting at up to ``max_speed`` units per frame plus a smooth wobble, and
    spinning about the vertical. Object 0 is on the optical axis at t = 0 (x = 0, z in
    [3.2, 4.5]), so the centre pixel of the source camera's frame 0 sees an object at a moderate
    depth. The room spans x in [-R, R], y in [floor_y - R, floor_y], z in [4 - R, 4 + R].
    """
    if n_objects < 1:
        raise ValueError(f"n_objects must be >= 1 (object 0 anchors the view), got {n_objects}")
    if floor_y < 0.5:
        raise ValueError(
            f"floor_y must be >= 0.5 (the camera stands above the floor), got {floor_y}"
        )
    if room_half_size < 6.0:
        raise ValueError(
            f"room_half_size must be >= 6 to hold the object cluster, got {room_half_size}"
        )

    objects = tuple(
        _sample_object(generator, on_axis=k == 0, floor_y=floor_y, max_speed=max_speed)
        for k in range(n_objects)
    )
    # Lower frequencies on the room: its faces are seen from farther away than the objects.
    face_frequency = {"floor": 3.0}
    room = Room(
        low=(-room_half_size, floor_y - room_half_size, ROOM_CENTER_Z - room_half_size),
        high=(room_half_size, floor_y, ROOM_CENTER_Z + room_half_size),
        textures=tuple(
            sample_texture(generator, frequency=face_frequency.get(face, 1.5))
            for face in ROOM_FACES
        ),
    )
    return Scene(objects=objects, room=room)
