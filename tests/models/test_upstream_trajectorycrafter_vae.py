"""The VAE encodes conditions the way TrajectoryCrafter's published code does.

Upstream (``models/autoencoder_magvit.py``, ``AutoencoderKLCogVideoX.encode``) runs the causal
3D encoder over 4-frame chunks, the first chunk also taking the ``T % 4`` leftover frames, with
each causal convolution carrying its last input frames from one chunk to the next; the
pipeline (``models/pipeline_trajectorycrafter.py``) takes the posterior's mode for the masked
render. Chunking changes the latents (group norms and the temporal downsampling see one chunk
at a time), so diffusers' default of 8 frames per chunk is not the published model's input.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tests.models.conftest import make_conditions, tiny_backbone

UPSTREAM_CHUNK = 4
SIZE = (16, 32)


def chunk_bounds(frames: int, chunk: int = UPSTREAM_CHUNK) -> list[tuple[int, int]]:
    """``[start, end)`` of upstream's chunks: the first one absorbs ``frames % chunk``."""
    leftover = frames % chunk
    bounds = [(0, chunk + leftover)]
    bounds += [
        (chunk * i + leftover, chunk * (i + 1) + leftover) for i in range(1, frames // chunk)
    ]
    return bounds


@torch.no_grad()
def upstream_encode(vae, pixels: Tensor) -> Tensor:
    """``(T, 3, H, W)`` in ``[-1, 1]`` to ``(1, F, C, h, w)`` scaled latents, upstream's way."""
    video = pixels.permute(1, 0, 2, 3).unsqueeze(0)
    carried = None
    moments = []
    for start, end in chunk_bounds(video.shape[2]):
        chunk, carried = vae.encoder(video[:, :, start:end], conv_cache=carried)
        if vae.quant_conv is not None:
            chunk = vae.quant_conv(chunk)
        moments.append(chunk)
    stacked = torch.cat(moments, dim=2)
    mean = stacked[:, : stacked.shape[1] // 2]  # the mode of the diagonal Gaussian posterior
    return (mean * vae.config.scaling_factor).permute(0, 2, 1, 3, 4)


@pytest.fixture(scope="module")
def pipeline():
    return tiny_backbone(pixel_space=False, resolution=SIZE, guidance_scale=1.0).pipeline


def test_chunk_bounds_are_upstreams():
    assert chunk_bounds(13) == [(0, 5), (5, 9), (9, 13)]
    assert chunk_bounds(10) == [(0, 6), (6, 10)]
    assert chunk_bounds(4) == [(0, 4)]


@pytest.mark.parametrize("frames", [5, 13])
def test_encode_video_uses_upstreams_four_frame_chunks(pipeline, frames):
    video = torch.rand(frames, 3, *SIZE, generator=torch.Generator().manual_seed(frames))
    expected = upstream_encode(pipeline.vae, video * 2.0 - 1.0)
    assert torch.allclose(pipeline.encode_video(video), expected, atol=1e-5)


def test_masked_render_and_reference_latents_match_upstream(pipeline):
    cond = make_conditions(frames=13, size=SIZE)
    encoded = pipeline.encode_conditions(cond, "a toy")
    hole = ~cond.mask.unsqueeze(1).expand(-1, 3, -1, -1)
    masked = torch.where(hole, torch.full_like(cond.render, -1.0), cond.render * 2.0 - 1.0)
    assert torch.allclose(
        encoded.inpaint[:, :, 1:], upstream_encode(pipeline.vae, masked), atol=1e-5
    )
    # 10 frames: chunks 6 + 4. Upstream samples this posterior without a seed; DEVIS takes its
    # mode (a documented difference), so the mode is what both sides compare here.
    leading = cond.reference[: pipeline.reference_frames] * 2.0 - 1.0
    assert torch.allclose(encoded.reference, upstream_encode(pipeline.vae, leading), atol=1e-5)


def test_the_chunk_size_matters_for_this_vae(pipeline):
    """Guards the test above: 8-frame chunks (diffusers' default) give other latents here."""
    pixels = torch.rand(13, 3, *SIZE, generator=torch.Generator().manual_seed(0)) * 2.0 - 1.0
    four = upstream_encode(pipeline.vae, pixels)
    with torch.no_grad():
        whole, _ = pipeline.vae.encoder(pixels.permute(1, 0, 2, 3).unsqueeze(0))
    eight = (whole[:, : whole.shape[1] // 2] * pipeline.vae.config.scaling_factor).permute(
        0, 2, 1, 3, 4
    )  # 13 frames fit one 8-frame chunk (8 + 13 % 8)
    assert (four - eight).norm() > 0.05 * four.norm()
