"""Procedural solid textures: a deterministic colour for every 3D point, given a seed.

Solid (3D) textures need no surface parametrisation, so one function colours spheres, boxes and
room walls alike. They are evaluated in a surface's local frame, so an object's texture moves and
spins with it, and they depend on nothing but the point: a point has the same albedo from every
camera, which is what makes reprojection checks exact.

The detail is band-limited by construction (sinusoids, a tanh-softened checker and smoothly
interpolated value noise, with no frequency above what ``sample_texture`` draws), so it does not
alias badly at small sizes, yet the highest frequencies still read as strong detail at 384x672.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF
_N_WAVES = 6
_NOISE_OCTAVES = 3
_CHECKER_SHARPNESS = 6.0


@dataclass(frozen=True, eq=False)
class Texture:
    """Parameters of one surface's solid texture; call it on points to get albedo."""

    palette: Tensor
    """(3, 3): base colour, checker colour and wave colour, RGB in [0, 1]."""
    wave_directions: Tensor
    """(K, 3) unit vectors along which the sinusoids vary."""
    wave_frequencies: Tensor
    """(K,) cycles per scene unit."""
    wave_phases: Tensor
    """(K,) radians."""
    checker_size: float
    """Edge of a checker cell, scene units."""
    checker_offset: Tensor
    """(3,) shift of the checker lattice, so walls do not sit on a cell boundary."""
    noise_frequency: float
    """Lattice cells per scene unit of the coarsest value-noise octave."""
    seed: int
    """Hash seed of the value noise."""
    contrast: float = 1.0
    """1 gives the full pattern; 0 gives the flat colour ``palette[0]`` (a no-detail baseline)."""

    def __call__(self, points: Tensor) -> Tensor:
        """Albedo (N, 3) in [0, 1] at ``points`` (N, 3) given in the surface's local frame."""
        device, dtype = points.device, points.dtype
        palette = self.palette.to(device, dtype)

        phases = points @ self.wave_directions.to(device, dtype).T
        phases = 2 * math.pi * self.wave_frequencies.to(device, dtype) * phases
        waves = torch.sin(phases + self.wave_phases.to(device, dtype)).sum(-1)
        waves = 0.5 + 0.5 * torch.tanh(waves / math.sqrt(_N_WAVES / 2))

        cells = torch.sin(
            math.pi * (points + self.checker_offset.to(device, dtype)) / self.checker_size
        )
        checker = 0.5 + 0.5 * torch.tanh(_CHECKER_SHARPNESS * cells.prod(-1))

        noise = fractal_noise(points, self.noise_frequency, self.seed)

        colour = torch.lerp(palette[0], palette[1], checker[:, None])
        colour = torch.lerp(colour, palette[2], 0.6 * waves[:, None])
        colour = colour * (0.55 + 0.45 * noise[:, None])
        return torch.lerp(palette[0].expand_as(colour), colour, self.contrast)


def _hash01(ix: Tensor, iy: Tensor, iz: Tensor, seed: int) -> Tensor:
    """Integer lattice coordinates to uniform values in [0, 1): the same on every device."""
    h = (ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791) ^ seed
    h = h & _MASK32
    for _ in range(2):
        h = ((h ^ (h >> 16)) * 0x45D9F3B) & _MASK32
    h = h ^ (h >> 16)
    return h.to(torch.float32) * (1.0 / 2**32)


def value_noise(points: Tensor, frequency: float, seed: int) -> Tensor:
    """Hashed lattice values, smoothstep-interpolated: continuous noise (N,) in [0, 1]."""
    scaled = points * frequency
    base = torch.floor(scaled)
    frac = scaled - base
    weight = frac * frac * (3 - 2 * frac)
    cell = base.to(torch.int64)
    result = torch.zeros(points.shape[0], device=points.device, dtype=points.dtype)
    for corner in range(8):
        offset = [(corner >> axis) & 1 for axis in range(3)]
        w = torch.ones_like(result)
        for axis in range(3):
            w = w * (weight[:, axis] if offset[axis] else 1 - weight[:, axis])
        value = _hash01(
            cell[:, 0] + offset[0], cell[:, 1] + offset[1], cell[:, 2] + offset[2], seed
        )
        result = result + w * value.to(points.dtype)
    return result


def fractal_noise(points: Tensor, frequency: float, seed: int) -> Tensor:
    """Value noise summed over octaves (each twice the frequency, half the amplitude), in [0, 1]."""
    total = torch.zeros(points.shape[0], device=points.device, dtype=points.dtype)
    norm = 0.0
    for octave in range(_NOISE_OCTAVES):
        amplitude = 0.5**octave
        total = total + amplitude * value_noise(points, frequency * 2**octave, seed + octave)
        norm += amplitude
    return total / norm


def sample_texture(generator: torch.Generator, *, frequency: float) -> Texture:
    """Draw a texture whose detail sits around ``frequency`` cycles per unit (at most 2x it).

    The caller picks ``frequency`` from how far the surface is usually seen, which is what keeps
    the pattern under the pixel Nyquist rate at small render sizes.
    """

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    palette = uniform(0.05, 0.95, 3, 3)
    # The checker colour leans towards the complement of the base, so the checker never fades.
    palette[1] = torch.lerp(1.0 - palette[0], palette[1], 0.4)
    directions = torch.randn(_N_WAVES, 3, generator=generator)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return Texture(
        palette=palette,
        wave_directions=directions,
        wave_frequencies=frequency * uniform(0.3, 2.5, _N_WAVES),
        wave_phases=uniform(0.0, 2 * math.pi, _N_WAVES),
        checker_size=float(uniform(0.6, 1.4) / frequency),
        checker_offset=uniform(0.0, 10.0, 3),
        noise_frequency=float(frequency * uniform(0.5, 1.0)),
        seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)),
    )
