"""DepthCrafter inference: video in, relative disparity out, converted to DEVIS depth.

The published procedure, re-implemented: frames resized so the long side is a multiple of 64
and at most ``max_res``; per-frame CLIP image embeddings (224x224, antialiased) as the UNet's
context; SVD's VAE latents (the posterior's mode, unscaled) of the noise-augmented video
concatenated to the noisy latents; Euler sampling with SVD-xt's scheduler for a few steps; long
videos in windows of ``window`` frames overlapping by ``overlap``, where each window's overlapping
latents start from the previous window's result (re-noised to the first sigma) and are linearly
blended with it afterwards. The decoded three-channel output is averaged to one channel and
min-max normalised over the whole video: relative disparity, which
:func:`devis_core.toolkit.geometry.disparity_to_depth` turns into depth exactly as
TrajectoryCrafter does.

Precision follows Tencent/DepthCrafter's ``depth_crafter_ppl.py``: the video and the noise
drawn for it are in the pipeline's dtype; a float16 VAE whose config sets ``force_upcast``
(SVD-xt's does) encodes in float32 and is cast back to float16 to decode, so decoding runs in
the weights' dtype.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
    _resize_with_antialiasing,
)
from torch import Tensor
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from devis_core.errors import MissingWeightsError
from devis_core.toolkit.geometry import disparity_to_depth
from devis_core.toolkit.model_directories import load_model_directory
from devis_core.types import ViewSynthesisSample
from devis_plugins.depthcrafter.config import DepthCrafterConfig
from devis_plugins.depthcrafter.model import DepthCrafterUNet

UNET_WHERE = (
    "DepthCrafter's UNet is the Hugging Face repository tencent/DepthCrafter (e.g. "
    "`huggingface-cli download tencent/DepthCrafter --local-dir checkpoints/DepthCrafter`); "
    "set depth.unet_path to that directory."
)
SVD_WHERE = (
    "The VAE, image encoder and scheduler come from Stable Video Diffusion XT, the Hugging Face "
    "repository stabilityai/stable-video-diffusion-img2vid-xt (gated: accept its licence, then "
    "`huggingface-cli download stabilityai/stable-video-diffusion-img2vid-xt --local-dir "
    "checkpoints/stable-video-diffusion-img2vid-xt`); set depth.svd_path to that directory."
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

SVD_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "interpolation_type": "linear",
    "use_karras_sigmas": True,
    "sigma_min": 0.002,
    "sigma_max": 700.0,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "steps_offset": 1,
}
"""SVD-xt's Euler scheduler; used by the tiny preset (the full one reads ``scheduler/``)."""

TINY_UNET: dict[str, Any] = {
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    "block_out_channels": (32, 64),
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 24,
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "num_attention_heads": (2, 4),
}
TINY_VAE: dict[str, Any] = {
    "block_out_channels": (32, 64),
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "layers_per_block": 1,
    "latent_channels": 4,
}
TINY_IMAGE_ENCODER: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 224,
    "patch_size": 32,
    "projection_dim": 32,
}


@dataclass
class DepthCrafterParts:
    unet: DepthCrafterUNet
    vae: AutoencoderKLTemporalDecoder
    image_encoder: CLIPVisionModelWithProjection
    scheduler: EulerDiscreteScheduler
    clip_mean: tuple[float, ...] = CLIP_MEAN
    clip_std: tuple[float, ...] = CLIP_STD


def load_unet(
    directory: str | Path, *, where: str, dtype: torch.dtype = torch.float32
) -> tuple[DepthCrafterUNet, list[str]]:
    """The UNet of ``directory`` (``tencent/DepthCrafter``'s layout) and the checkpoint's tensors
    it does not use, which are skipped (left by a training script, say) as diffusers does."""
    return load_model_directory(
        DepthCrafterUNet, directory, where=where, dtype=dtype, name="DepthCrafter UNet"
    )


def load_parts(
    unet_path: str | None, svd_path: str | None, dtype: torch.dtype
) -> DepthCrafterParts:
    """The published checkpoints from local directories (both paths are required)."""
    if unet_path is None:
        raise MissingWeightsError(f"depth.unet_path is not set. {UNET_WHERE}")
    if svd_path is None:
        raise MissingWeightsError(f"depth.svd_path is not set. {SVD_WHERE}")
    svd = Path(svd_path).expanduser()
    unet, _ = load_unet(unet_path, where=UNET_WHERE, dtype=dtype)  # unused tensors: warned
    vae, _ = load_model_directory(
        AutoencoderKLTemporalDecoder, svd / "vae", where=SVD_WHERE, dtype=dtype
    )
    encoder_dir = svd / "image_encoder"
    if not (encoder_dir / "config.json").is_file():
        raise MissingWeightsError(f"{encoder_dir / 'config.json'} is missing. {SVD_WHERE}")
    try:
        encoder = CLIPVisionModelWithProjection.from_pretrained(
            str(encoder_dir), local_files_only=True
        ).to(dtype)
    except OSError as error:
        raise MissingWeightsError(f"cannot load {encoder_dir}: {error}. {SVD_WHERE}") from None
    scheduler_file = svd / "scheduler" / "scheduler_config.json"
    if not scheduler_file.is_file():
        raise MissingWeightsError(f"{scheduler_file} is missing. {SVD_WHERE}")
    scheduler = EulerDiscreteScheduler.from_config(
        EulerDiscreteScheduler.load_config(str(svd / "scheduler"))
    )
    mean, std = CLIP_MEAN, CLIP_STD
    processor = svd / "feature_extractor" / "preprocessor_config.json"
    if processor.is_file():
        settings = json.loads(processor.read_text())
        mean = tuple(settings.get("image_mean", mean))
        std = tuple(settings.get("image_std", std))
    return DepthCrafterParts(unet, vae, encoder.eval(), scheduler, mean, std)


def tiny_parts(seed: int) -> DepthCrafterParts:
    """The same classes at CPU size, initialised at random from ``seed`` (tests only)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = DepthCrafterUNet(**TINY_UNET).eval()
        vae = AutoencoderKLTemporalDecoder(**TINY_VAE).eval()
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_IMAGE_ENCODER)).eval()
    return DepthCrafterParts(unet, vae, encoder, EulerDiscreteScheduler.from_config(SVD_SCHEDULER))


def processing_size(height: int, width: int, max_res: int, multiple: int = 64) -> tuple[int, int]:
    """DepthCrafter's working size: sides rounded to ``multiple``, long side <= ``max_res``.

    Sides are rounded to the nearest multiple (half to even, at least one multiple); when the
    long side would exceed ``max_res`` the frame is first scaled down to fit, then rounded.
    """

    def rounded(side: float) -> int:
        return max(multiple, round(side / multiple) * multiple)  # Python's round, as published

    new_height, new_width = rounded(height), rounded(width)
    if max(new_height, new_width) > max_res:
        scale = max_res / max(height, width)
        new_height, new_width = rounded(height * scale), rounded(width * scale)
    return new_height, new_width


def window_starts(frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each window; one window when the video fits in one."""
    if frames <= window:
        return [(0, frames)]
    stride = window - overlap
    spans, start = [], 0
    while start < frames - overlap:
        spans.append((start, min(start + window, frames)))
        start += stride
    return spans


def blend_overlap(previous: Tensor, current: Tensor, overlap: int) -> Tensor:
    """Join window latents ``(1, F, ...)``: the overlap fades linearly from previous to current."""
    weights = torch.linspace(0.0, 1.0, overlap, device=current.device, dtype=current.dtype)
    weights = weights.view(1, overlap, *([1] * (current.dim() - 2)))
    joined = current[:, :overlap] * weights + previous[:, -overlap:] * (1.0 - weights)
    return torch.cat([previous[:, :-overlap], joined, current[:, overlap:]], dim=1)


class DepthCrafterRunner:
    """The sampling procedure over one set of parts, on one device."""

    def __init__(
        self,
        parts: DepthCrafterParts,
        *,
        steps: int,
        guidance_scale: float,
        window: int,
        overlap: int,
        max_res: int,
        noise_aug_strength: float,
        decode_chunk_size: int,
        dtype: torch.dtype,
    ):
        self.parts = parts
        self.steps, self.guidance_scale = steps, guidance_scale
        self.window, self.overlap, self.max_res = window, overlap, max_res
        self.noise_aug_strength = noise_aug_strength
        self.decode_chunk_size = decode_chunk_size
        self.dtype = dtype
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> DepthCrafterRunner:
        self.device = torch.device(device)
        for module in (self.parts.unet, self.parts.vae, self.parts.image_encoder):
            module.to(self.device)
        return self

    @torch.no_grad()
    def disparity(self, video: Tensor, generator: torch.Generator) -> Tensor:
        """Relative disparity ``(T, H, W)`` in ``[0, 1]`` of a ``(T, 3, H, W)`` video."""
        frames, _, height, width = video.shape
        size = processing_size(height, width, self.max_res)
        pixels = video.to(self.device, torch.float32)
        if (height, width) != size:
            pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
        pixels = pixels.to(self.dtype) * 2.0 - 1.0
        embeddings = self._clip_embeddings(pixels.float()).unsqueeze(0)  # (1, T, D)
        noise = torch.randn(pixels.shape, generator=generator, dtype=self.dtype).to(self.device)
        latents_video = self._encode(pixels + self.noise_aug_strength * noise).unsqueeze(0)
        added = torch.tensor(
            [[7.0, 127.0, self.noise_aug_strength]], dtype=self.dtype, device=self.device
        )
        latents = self._denoise_windows(latents_video, embeddings, added, generator)
        decoded = self._decode(latents[0])  # (T, 3, h, w) in [-1, 1]
        disparity = (decoded / 2.0 + 0.5).clamp(0.0, 1.0).mean(dim=1)
        if tuple(disparity.shape[-2:]) != (height, width):
            disparity = F.interpolate(
                disparity.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False
            ).squeeze(1)
        # min-max over the whole video (after resizing, so the range is the output's own)
        span = (disparity.max() - disparity.min()).clamp_min(1e-12)
        return (disparity - disparity.min()) / span

    def _clip_embeddings(self, pixels: Tensor) -> Tensor:
        small = _resize_with_antialiasing(pixels, (224, 224))
        small = (small + 1.0) / 2.0
        mean = torch.tensor(self.parts.clip_mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.parts.clip_std, device=self.device).view(1, 3, 1, 1)
        chunks = []
        for start in range(0, small.shape[0], self.decode_chunk_size):
            batch = ((small[start : start + self.decode_chunk_size] - mean) / std).to(self.dtype)
            chunks.append(self.parts.image_encoder(pixel_values=batch).image_embeds)
        return torch.cat(chunks)

    def _encode(self, pixels: Tensor) -> Tensor:
        """The posterior's mode (its mean) per frame, as published: no sampling, no scaling."""
        vae = self.parts.vae
        upcast = vae.dtype == torch.float16 and bool(vae.config.force_upcast)
        chunks = []
        with _vae_in(vae, torch.float32 if upcast else vae.dtype):
            for start in range(0, pixels.shape[0], self.decode_chunk_size):
                batch = pixels[start : start + self.decode_chunk_size].to(vae.dtype)
                chunks.append(vae.encode(batch).latent_dist.mode())
        return torch.cat(chunks)

    def _decode(self, latents: Tensor) -> Tensor:
        """Frames in ``[-1, 1]``, decoded in the VAE weights' dtype (no upcast, as published)."""
        vae = self.parts.vae
        latents = latents / vae.config.scaling_factor
        chunks = []
        for start in range(0, latents.shape[0], self.decode_chunk_size):
            batch = latents[start : start + self.decode_chunk_size].to(vae.dtype)
            chunks.append(vae.decode(batch, num_frames=batch.shape[0]).sample)
        return torch.cat(chunks).float()

    def _denoise_windows(
        self, video_latents: Tensor, embeddings: Tensor, added: Tensor, generator: torch.Generator
    ) -> Tensor:
        frames = video_latents.shape[1]
        spans = window_starts(frames, self.window, self.overlap)
        window = spans[0][1] - spans[0][0]
        overlap = self.overlap if len(spans) > 1 else 0
        scheduler = self.parts.scheduler
        scheduler.set_timesteps(self.steps, device=self.device)
        shape = (1, window, *video_latents.shape[2:])
        initial = torch.randn(shape, generator=generator, dtype=self.dtype).to(self.device)
        initial = initial.float() * float(scheduler.init_noise_sigma)
        result: Tensor | None = None
        for start, end in spans:
            scheduler.set_timesteps(self.steps, device=self.device)
            latents = initial[:, : end - start].clone()
            if overlap:
                initial = torch.cat([initial[:, -overlap:], initial[:, : window - overlap]], dim=1)
            if result is not None:
                sigma0 = float(scheduler.sigmas[0])
                restart = (
                    result[:, -overlap:]
                    + latents[:, :overlap] / float(scheduler.init_noise_sigma) * sigma0
                )
                latents[:, :overlap] = restart
            latents = self._denoise(
                latents, video_latents[:, start:end], embeddings[:, start:end], added, generator
            )
            result = latents if result is None else blend_overlap(result, latents, overlap)
        assert result is not None
        return result

    def _denoise(
        self,
        latents: Tensor,
        video_latents: Tensor,
        embeddings: Tensor,
        added: Tensor,
        generator: torch.Generator,
    ) -> Tensor:
        scheduler = self.parts.scheduler
        for timestep in scheduler.timesteps:
            scaled = scheduler.scale_model_input(latents, timestep)
            model_input = torch.cat([scaled, video_latents], dim=2).to(self.dtype)
            prediction = self.parts.unet(
                model_input, timestep, embeddings.to(self.dtype), added, return_dict=False
            )[0]
            if self.guidance_scale > 1.0:
                unconditional_input = torch.cat([scaled, torch.zeros_like(scaled)], dim=2)
                unconditional = self.parts.unet(
                    unconditional_input.to(self.dtype),
                    timestep,
                    torch.zeros_like(embeddings).to(self.dtype),
                    added,
                    return_dict=False,
                )[0]
                prediction = unconditional + self.guidance_scale * (prediction - unconditional)
            latents = scheduler.step(
                prediction.float(), timestep, latents, generator=generator
            ).prev_sample
        return latents


@contextmanager
def _vae_in(vae: AutoencoderKLTemporalDecoder, dtype: torch.dtype) -> Iterator[None]:
    """The VAE's weights in ``dtype`` for the block, back in their own dtype after it."""
    own = vae.dtype
    vae.to(dtype)
    try:
        yield
    finally:
        vae.to(own)


class DepthCrafter:
    """DepthCrafter video depth (SVD-based), as TrajectoryCrafter converts it."""

    relative_depth = True  # disparity up to scale and shift: the pipeline aligns it

    def __init__(self, config: DepthCrafterConfig):
        if config.overlap >= config.window:
            raise ValueError("depth.overlap must be smaller than depth.window")
        self.config = config
        dtype = _DTYPES[config.dtype or ("float16" if config.preset == "full" else "float32")]
        if config.preset == "full":
            parts = load_parts(config.unet_path, config.svd_path, dtype)
        else:
            parts = tiny_parts(config.seed)
            if dtype != torch.float32:
                for module in (parts.unet, parts.vae, parts.image_encoder):
                    module.to(dtype)
        self.runner = DepthCrafterRunner(
            parts,
            steps=config.steps,
            guidance_scale=config.guidance_scale,
            window=config.window,
            overlap=config.overlap,
            max_res=config.max_res,
            noise_aug_strength=config.noise_aug_strength,
            decode_chunk_size=config.decode_chunk_size,
            dtype=dtype,
        )

    def to(self, device: torch.device | str) -> DepthCrafter:
        self.runner.to(device)
        return self

    def disparity(self, video: torch.Tensor) -> torch.Tensor:
        """DepthCrafter's relative disparity ``(T, H, W)`` in ``[0, 1]`` (1 = nearest)."""
        generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        return self.runner.disparity(video, generator)

    def estimate(
        self, video: torch.Tensor, sample: ViewSynthesisSample | None = None
    ) -> torch.Tensor:
        """Depth ``(T, H, W)`` of any video, on the video's device (``sample`` is unused)."""
        depth = disparity_to_depth(
            self.disparity(video), near=self.config.near, far=self.config.far
        )
        return depth.to(video.device)
