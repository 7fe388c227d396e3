"""The scene sampler: reproducible, objects inside the room and above the floor."""

from __future__ import annotations

import math

import pytest
import torch

from devis_plugins.synthetic.scene import ROOM_CENTER_Z, sample_scene
from devis_plugins.synthetic.textures import sample_texture


def test_same_generator_state_gives_the_same_scene():
    a = sample_scene(torch.Generator().manual_seed(3))
    b = sample_scene(torch.Generator().manual_seed(3))
    for obj_a, obj_b in zip(a.objects, b.objects, strict=True):
        assert obj_a.kind == obj_b.kind and obj_a.center0 == obj_b.center0
        assert torch.equal(obj_a.texture.palette, obj_b.texture.palette)
    c = sample_scene(torch.Generator().manual_seed(4))
    assert [o.center0 for o in a.objects] != [o.center0 for o in c.objects]


@pytest.mark.parametrize("seed", range(20))
def test_objects_stay_above_the_floor_and_inside_the_room(seed):
    scene = sample_scene(torch.Generator().manual_seed(seed), n_objects=6)
    low, high = scene.room.low, scene.room.high
    for obj in scene.objects:
        for t in torch.linspace(0, 200, 401).tolist():
            x, y, z = obj.center(t)
            reach = max(obj.half_extents) * math.sqrt(2)  # a box turning about y
            assert y + obj.half_extents[1] <= scene.room.floor_y + 1e-9
            assert low[0] < x - reach and x + reach < high[0]
            assert low[2] < z - reach and z + reach < high[2]
            assert low[1] < y - obj.half_extents[1]
    first = scene.objects[0]
    assert first.center0[0] == 0.0 and abs(first.center0[1]) < first.half_extents[1]
    assert abs(first.center0[2] - ROOM_CENTER_Z) < 1.0


def test_both_object_kinds_are_sampled():
    kinds = {
        obj.kind
        for seed in range(5)
        for obj in sample_scene(torch.Generator().manual_seed(seed)).objects
    }
    assert kinds == {"sphere", "box"}


def test_texture_is_a_deterministic_function_of_point_and_seed():
    texture = sample_texture(torch.Generator().manual_seed(0), frequency=5.0)
    points = torch.rand(1000, 3, generator=torch.Generator().manual_seed(1)) * 4 - 2
    colour = texture(points)
    assert colour.shape == (1000, 3) and colour.min() >= 0 and colour.max() <= 1
    assert torch.equal(colour, texture(points))
    # Order of evaluation does not matter: each point's colour depends on that point only.
    assert torch.equal(colour.flip(0), texture(points.flip(0)))
    other = sample_texture(torch.Generator().manual_seed(9), frequency=5.0)
    assert (colour - other(points)).abs().mean() > 0.05


def test_texture_is_continuous():
    """Band-limited: moving a point by 1e-4 units changes its colour by far less than 1e-2."""
    texture = sample_texture(torch.Generator().manual_seed(2), frequency=6.0)
    points = torch.rand(5000, 3, generator=torch.Generator().manual_seed(3)) * 10 - 5
    step = torch.randn(5000, 3, generator=torch.Generator().manual_seed(4))
    step = 1e-4 * step / step.norm(dim=-1, keepdim=True)
    assert (texture(points) - texture(points + step)).abs().max() < 1e-2


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="n_objects"):
        sample_scene(torch.Generator(), n_objects=0)
    with pytest.raises(ValueError, match="floor_y"):
        sample_scene(torch.Generator(), floor_y=0.2)
