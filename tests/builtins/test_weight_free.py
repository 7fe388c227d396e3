"""Weight-free pieces: ``inpaint`` backbone, ``carried`` and ``files`` depth, ``video`` data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from devis_core.errors import UsageError
from devis_core.toolkit.geometry.depth import fill_from_nearest
from devis_core.toolkit.media import read_video, write_video
from devis_core.types import Conditions
from devis_plugins.inpaint import fill_from_nearest_frame


def test_temporal_fill_takes_the_nearest_frame_where_the_pixel_was_seen():
    video = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 3, 1, 4).clone()
    mask = torch.zeros(5, 1, 4, dtype=torch.bool)
    mask[1, 0, 0] = mask[4, 0, 0] = True  # pixel 0 seen at frames 1 and 4
    mask[3, 0, 1] = True  # pixel 1 seen at frame 3 only
    filled, known = fill_from_nearest_frame(video, mask)
    assert filled[:, 0, 0, 0].tolist() == [1, 1, 1, 4, 4]  # frame 2: tie -> earlier
    assert filled[:, 0, 0, 1].tolist() == [3, 3, 3, 3, 3]
    assert known[:, 0, :2].all() and not known[:, 0, 2:].any()


def test_inpaint_keeps_visible_pixels_and_fills_every_hole(registry):
    backbone = registry.build("backbone", {"kind": "inpaint", "temporal": False})
    render = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 24, 32, dtype=torch.bool)
    mask[:, 8:16, 10:20] = False
    render[~mask.unsqueeze(1).expand_as(render)] = 0
    video = backbone.generate(Conditions(render, mask, render))
    keep = mask.unsqueeze(1).expand_as(render)
    assert torch.equal(video[keep], render[keep])
    hole = video[~keep]
    # OpenCV fills from the surroundings: values near the surrounding mean, not the black input
    assert float(hole.mean()) == pytest.approx(float(render[keep].mean()), abs=0.1)
    assert torch.equal(video, backbone.generate(Conditions(render, mask, render)))


def test_inpaint_without_holes_returns_the_render(registry):
    backbone = registry.build("backbone", {"kind": "inpaint", "method": "ns"})
    render = torch.rand(2, 3, 8, 8)
    video = backbone.generate(Conditions(render, torch.ones(2, 8, 8, dtype=torch.bool), render))
    assert torch.equal(video, render) and video is not render


def test_fill_from_nearest_copies_the_closest_known_depth():
    depth = torch.zeros(1, 3, 5)
    depth[0, :, 0], depth[0, :, 4] = 2.0, 7.0
    filled = fill_from_nearest(depth)
    assert filled[0, 1].tolist() == [2.0, 2.0, 2.0, 7.0, 7.0] or filled[0, 1].tolist() == [
        2.0,
        2.0,
        7.0,
        7.0,
        7.0,
    ]
    assert filled[0, 1, 1] == 2.0 and filled[0, 1, 3] == 7.0
    with pytest.raises(UsageError, match="no pixel"):
        fill_from_nearest(torch.zeros(1, 2, 2))


def test_carried_depth_serves_dataset_and_generated_videos(registry):
    from devis_plugins.synthetic import SyntheticConfig, SyntheticDataset

    sample = SyntheticDataset(SyntheticConfig(num_samples=1, frames=2, height=16, width=24))[0]
    depth = registry.build("depth", {"kind": "carried"})
    assert torch.equal(depth.estimate(sample.source, sample), sample.source_depth)
    render_depth = sample.source_depth.clone()
    render_depth[:, :4] = 0
    generated = dataclasses.replace(sample, source_depth=None, render_depth=render_depth)
    estimate = depth.estimate(sample.source, generated)
    assert torch.equal(estimate[:, 4:], sample.source_depth[:, 4:])
    assert bool((estimate > 0).all())
    with pytest.raises(UsageError, match="nothing to carry"):
        depth.estimate(sample.source)


def test_depth_files_in_every_format(registry, tmp_path):
    import imageio.v2 as imageio

    depth = np.random.default_rng(0).uniform(1, 5, (3, 4, 6)).astype(np.float32)
    np.save(tmp_path / "d.npy", depth)
    np.savez(tmp_path / "d.npz", depth=depth, other=depth)
    folder = tmp_path / "png"
    folder.mkdir()
    for i, frame in enumerate(depth):
        imageio.imwrite(folder / f"{i:03d}.png", np.round(frame * 1000).astype(np.uint16))
    video = torch.rand(3, 3, 4, 6)
    for path, scale, tolerance in [("d.npy", 1.0, 0), ("d.npz", 1.0, 0), ("png", 0.001, 6e-4)]:
        estimator = registry.build(
            "depth", {"kind": "files", "path": tmp_path / path, "scale": scale}
        )
        np.testing.assert_allclose(estimator.estimate(video).numpy(), depth, atol=tolerance)


def test_depth_files_refuse_mismatched_frames(registry, tmp_path):
    np.save(tmp_path / "d.npy", np.ones((2, 4, 6), dtype=np.float32))
    estimator = registry.build("depth", {"kind": "files", "path": tmp_path / "d.npy"})
    with pytest.raises(UsageError, match="has 2 depth maps; the video has 3 frames"):
        estimator.estimate(torch.rand(3, 3, 4, 6))
    with pytest.raises(UsageError, match=r"\(4, 6\) \(H, W\)"):
        estimator.estimate(torch.rand(2, 3, 5, 6))
    missing = registry.build("depth", {"kind": "files", "path": tmp_path / "nope.npy"})
    with pytest.raises(UsageError, match="not found"):
        missing.estimate(torch.rand(2, 3, 4, 6))


def test_video_round_trip_through_mp4(tmp_path):
    video = torch.rand(4, 3, 16, 24, generator=torch.Generator().manual_seed(0)) * 0.2 + 0.4
    write_video(tmp_path / "v.mp4", video, fps=8)
    back = read_video(tmp_path / "v.mp4")
    assert back.shape == video.shape
    assert float((back - video).abs().mean()) < 0.05  # lossy codec, but the same picture


def test_video_dataset_loads_a_clip_with_depth(registry, tmp_path):
    write_video(tmp_path / "clip.mp4", torch.rand(6, 3, 16, 24), fps=8)
    np.save(tmp_path / "depth.npy", np.full((6, 16, 24), 3.0, dtype=np.float32))
    dataset = registry.build(
        "dataset",
        {
            "kind": "video",
            "path": tmp_path / "clip.mp4",
            "depth": tmp_path / "depth.npy",
            "frames": 3,
            "stride": 2,
            "phi": 45,
        },
    )
    sample = dataset[0]
    assert len(dataset) == 1 and sample.source.shape == (3, 3, 16, 24)
    assert sample.pivot_depth == 3.0 and sample.motion.phi == 45
    assert sample.target_w2c.shape == (3, 4, 4) and sample.target is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"frames": 10}, "has 6 frames; 10 frames at stride 1 need 10"),
        ({"depth": "short.npy"}, "the frames need"),
        ({"path": "broken.mp4"}, "cannot read video"),
        ({"path": "missing.mp4"}, "video not found"),
    ],
)
def test_video_dataset_errors_are_clear(registry, tmp_path, fields, message):
    write_video(tmp_path / "clip.mp4", torch.rand(6, 3, 16, 24), fps=8)
    np.save(tmp_path / "depth.npy", np.ones((6, 16, 24), dtype=np.float32))
    np.save(tmp_path / "short.npy", np.ones((2, 16, 24), dtype=np.float32))
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    entry = {
        "kind": "video",
        "path": tmp_path / "clip.mp4",
        "depth": tmp_path / "depth.npy",
        "frames": 4,
    }
    entry.update({k: tmp_path / v if k in ("path", "depth") else v for k, v in fields.items()})
    with pytest.raises(UsageError, match=message):
        registry.build("dataset", entry)[0]


def test_video_dataset_needs_depth_or_a_pivot(registry, tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="pivot_depth"):
        registry.build("dataset", {"kind": "video", "path": tmp_path / "clip.mp4"})
