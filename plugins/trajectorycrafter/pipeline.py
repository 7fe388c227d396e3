"""From (render, mask, reference video, caption) to the transformer's inputs and back to pixels.

What TrajectoryCrafter's pipeline does around the transformer, re-implemented on DEVIS
tensors:

- the render is resized to the model resolution, padded to ``4k + 1`` frames for the causal VAE
  (the last frame repeated) and, where the mask says *hole*, replaced by -1 before encoding
  with the VAE's mode (the *masked render*);
- the VAE encodes 4 frames per chunk (the first chunk also takes the ``T % 4`` leftover frames),
  as TrajectoryCrafter's own copy of the CogVideoX VAE does; diffusers' default is 8, and the
  chunking changes the latents;
- the mask channel is the visibility (1 - hole) resized to the latent grid, frame 0 on its own
  and the other frames together (trilinear), times the VAE scaling factor;
- the reference video's first ``reference_frames`` frames are encoded the same way (mode, see
  ``docs/models.md``) for the reference stream;
- the caption plus the refine prompt, and the negative prompt, are T5-encoded to
  ``max_text_seq_length`` tokens; classifier-free guidance duplicates the inpaint and reference
  latents for both branches (unconditional first).

In pixel space (the tiny preset) there is no VAE: the latent is the video in ``[-1, 1]``, the
scaling factor is 1 and the latent grid is the frame grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from devis_core.types import Conditions
from devis_plugins.trajectorycrafter.diffusion import DDIMSchedule
from devis_plugins.trajectorycrafter.loading import Components

VAE_ENCODE_CHUNK_FRAMES = 4
"""Frames per chunk of the causal VAE's encoder in TrajectoryCrafter's published code."""


@dataclass
class EncodedConditions:
    """The conditions of one generation as the transformer sees them (built once, reused)."""

    prompt_embeds: Tensor
    """``(1, L, D)`` T5 features of caption + refine prompt."""
    negative_embeds: Tensor | None
    """``(1, L, D)`` features of the negative prompt; None without guidance."""
    inpaint: Tensor
    """``(1, F, 1 + C, h, w)``: mask channel and masked-render latents."""
    reference: Tensor | None
    """``(1, F_ref, C, h, w)`` reference latents; None when the model has no reference stream."""
    latent_shape: tuple[int, ...]
    """``(1, F, C, h, w)`` of the latents being denoised."""
    frames: int
    """Frames of the render (the output is cut back to them)."""
    size: tuple[int, int]
    """``(H, W)`` of the render (the output is resized back to it)."""


class TrajectoryCrafterPipeline:
    """The transformer with its text encoder, VAE and scheduler, on one execution device."""

    def __init__(
        self,
        components: Components,
        *,
        resolution: tuple[int, int],
        dtype: torch.dtype,
        guidance_scale: float,
        negative_prompt: str,
        reference_frames: int,
        noise_aug_strength: float,
        noise_aug_seed: int,
        cpu_offload: bool = False,
    ):
        self.transformer = components.transformer
        self.text_encoder = components.text_encoder
        self.tokenizer = components.tokenizer
        self.vae = components.vae
        self.scheduler = components.scheduler
        self.resolution = resolution
        self.dtype = dtype
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.reference_frames = reference_frames
        self.noise_aug_strength = noise_aug_strength
        self.noise_aug_seed = noise_aug_seed
        self.cpu_offload = cpu_offload
        if self.vae is not None:
            # diffusers' CogVideoX VAE chunks by this attribute (plain and tiled encode alike)
            self.vae.num_sample_frames_batch_size = VAE_ENCODE_CHUNK_FRAMES
        self.device = torch.device("cpu")
        self._on_device: torch.nn.Module | None = None
        factor = self.spatial_factor * self.transformer.config.patch_size
        if resolution[0] % factor or resolution[1] % factor:
            raise ValueError(
                f"resolution {resolution} must be a multiple of {factor} (VAE factor "
                f"{self.spatial_factor} x patch size {self.transformer.config.patch_size})"
            )

    # --- geometry of the latent space -------------------------------------------------------

    @property
    def spatial_factor(self) -> int:
        if self.vae is None:
            return 1
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def temporal_factor(self) -> int:
        return 1 if self.vae is None else int(self.vae.config.temporal_compression_ratio)

    @property
    def scaling_factor(self) -> float:
        return 1.0 if self.vae is None else float(self.vae.config.scaling_factor)

    @property
    def latent_channels(self) -> int:
        return 3 if self.vae is None else int(self.vae.config.latent_channels)

    def padded_frames(self, frames: int) -> int:
        """The smallest ``k * temporal_factor + 1 >= frames`` (what the causal VAE takes)."""
        factor = self.temporal_factor
        return ((frames - 1 + factor - 1) // factor) * factor + 1

    def latent_shape(self, frames: int) -> tuple[int, ...]:
        """``(1, F, C, h, w)`` of the latents of a ``frames``-frame video."""
        latent_frames = (self.padded_frames(frames) - 1) // self.temporal_factor + 1
        height, width = (side // self.spatial_factor for side in self.resolution)
        return (1, latent_frames, self.latent_channels, height, width)

    def schedule(self, steps: int) -> DDIMSchedule:
        """The DDIM timesteps and alphas of a ``steps``-step sampler (trailing spacing)."""
        self.scheduler.set_timesteps(steps)
        return DDIMSchedule.from_alphas_cumprod(
            self.scheduler.alphas_cumprod,
            self.scheduler.timesteps.tolist(),
            self.scheduler.config.num_train_timesteps,
            float(self.scheduler.final_alpha_cumprod),
        )

    # --- devices and memory -----------------------------------------------------------------

    def modules(self) -> Iterator[torch.nn.Module]:
        yield from (m for m in (self.text_encoder, self.transformer, self.vae) if m is not None)

    def to(self, device: torch.device | str) -> TrajectoryCrafterPipeline:
        """Run on ``device``; with CPU offload the weights stay on the CPU until used."""
        self.device = torch.device(device)
        self._on_device = None
        if not self.cpu_offload:
            for module in self.modules():
                module.to(self.device)
        return self

    @contextmanager
    def _using(self, module: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """With CPU offload, make ``module`` the one model on the device (others go back)."""
        if self.cpu_offload and self._on_device is not module:
            if self._on_device is not None:
                self._on_device.to("cpu")
            module.to(self.device)
            self._on_device = module
        yield module

    # --- conditions -------------------------------------------------------------------------

    @torch.no_grad()
    def encode_prompt(self, text: str) -> Tensor:
        """``(1, L, D)`` T5 features, padded/truncated to the transformer's text length."""
        tokens = self.tokenizer(
            [text],
            padding="max_length",
            max_length=self.transformer.config.max_text_seq_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        with self._using(self.text_encoder) as encoder:
            features = encoder(tokens.input_ids.to(self.device))[0]
        return features.to(self.dtype)

    def pixels(self, video: Tensor, pad: bool = True) -> Tensor:
        """``(T, 3, H, W)`` in ``[0, 1]`` to ``(T', 3, h, w)`` in ``[-1, 1]`` at the model size."""
        video = video.to(self.device, torch.float32)
        if tuple(video.shape[-2:]) != self.resolution:
            video = F.interpolate(
                video, size=self.resolution, mode="bilinear", antialias=True, align_corners=False
            )
        if pad:
            video = _repeat_last(video, self.padded_frames(video.shape[0]))
        return video * 2.0 - 1.0

    @torch.no_grad()
    def encode_pixels(self, pixels: Tensor) -> Tensor:
        """``(T, 3, h, w)`` in ``[-1, 1]`` to scaled latents ``(1, F, C, h', w')`` (float32)."""
        if self.vae is None:
            return pixels.unsqueeze(0).float()
        with self._using(self.vae) as vae:
            batch = pixels.permute(1, 0, 2, 3).unsqueeze(0).to(self.dtype)
            latents = vae.encode(batch).latent_dist.mode()
        return (latents * self.scaling_factor).permute(0, 2, 1, 3, 4).float()

    def encode_video(self, video: Tensor) -> Tensor:
        """A ``(T, 3, H, W)`` video in ``[0, 1]`` as clean latents ``x0`` (float32)."""
        return self.encode_pixels(self.pixels(video))

    @torch.no_grad()
    def encode_conditions(self, cond: Conditions, caption: str) -> EncodedConditions:
        """Everything the transformer needs besides the noisy latents and the timestep."""
        frames = int(cond.render.shape[0])
        render = self.pixels(cond.render)
        hole = (~cond.mask.to(self.device, torch.bool)).float().unsqueeze(1)
        if tuple(hole.shape[-2:]) != self.resolution:
            hole = F.interpolate(hole, size=self.resolution, mode="nearest")
        hole = _repeat_last(hole, render.shape[0])
        masked = torch.where(hole > 0.5, torch.full_like(render, -1.0), render)
        if self.transformer.config.add_noise_in_inpaint_model and self.noise_aug_strength > 0:
            masked = self._augment(masked)
        masked_latents = self.encode_pixels(masked)
        latent_frames, _, height, width = masked_latents.shape[1:]
        visibility = _resize_mask(1.0 - hole, (latent_frames, height, width))
        mask_latents = (visibility * self.scaling_factor).unsqueeze(0).unsqueeze(2)
        inpaint = torch.cat([mask_latents, masked_latents], dim=2).to(self.dtype)

        reference = None
        if self.transformer.config.is_train_cross:
            leading = cond.reference[: self.reference_frames]
            reference = self.encode_pixels(self.pixels(leading, pad=False)).to(self.dtype)

        prompt_embeds = self.encode_prompt(caption)
        negative = None
        if self.guidance_scale > 1.0:
            negative = self.encode_prompt(self.negative_prompt)
        return EncodedConditions(
            prompt_embeds=prompt_embeds,
            negative_embeds=negative,
            inpaint=inpaint,
            reference=reference,
            latent_shape=tuple(masked_latents.shape),
            frames=frames,
            size=(int(cond.render.shape[-2]), int(cond.render.shape[-1])),
        )

    def _augment(self, masked: Tensor) -> Tensor:
        """CogVideoX-Fun's noise on the masked render (not on holes), from a fixed seed.

        A fixed seed keeps the encoded conditions a function of the conditions alone, so a
        log-probability recomputed later sees the very inputs the rollout saw.
        """
        generator = torch.Generator(device="cpu").manual_seed(self.noise_aug_seed)
        noise = torch.randn(masked.shape, generator=generator).to(masked.device)
        noise = torch.where(masked == -1.0, torch.zeros_like(noise), noise)
        return masked + self.noise_aug_strength * noise

    # --- the transformer --------------------------------------------------------------------

    def predict_v(
        self, latents: Tensor, timestep: int, enc: EncodedConditions, *, guidance: bool = True
    ) -> Tensor:
        """The (guided) v-prediction at ``latents`` ``(1, F, C, h, w)``, in float32.

        With guidance the batch is ``[negative, positive]`` and the result is
        ``v_uncond + scale * (v_text - v_uncond)``; the inpaint and reference latents are the
        same in both halves (guidance is on the text only). Gradients flow when enabled.
        """
        guided = guidance and enc.negative_embeds is not None
        batch = 2 if guided else 1
        model_input = latents.to(self.dtype).expand(batch, *latents.shape[1:])
        text = torch.cat([enc.negative_embeds, enc.prompt_embeds]) if guided else enc.prompt_embeds
        inpaint = enc.inpaint.expand(batch, *enc.inpaint.shape[1:])
        reference = None
        if enc.reference is not None:
            reference = enc.reference.expand(batch, *enc.reference.shape[1:])
        steps = torch.full((batch,), int(timestep), device=self.device, dtype=torch.long)
        with self._using(self.transformer) as transformer:
            v = transformer(
                hidden_states=model_input,
                encoder_hidden_states=text,
                timestep=steps,
                inpaint_latents=inpaint,
                reference_latents=reference,
                return_dict=False,
            )[0].float()
        if not guided:
            return v
        v_uncond, v_text = v.chunk(2)
        return v_uncond + self.guidance_scale * (v_text - v_uncond)

    def predict_v_batch(self, latents: Tensor, timesteps: Tensor, enc: EncodedConditions) -> Tensor:
        """Unguided v-predictions for a batch ``(N, F, C, h, w)`` at one timestep each.

        Training losses (SFT, Diffusion-DPO) use the conditional branch only.
        """
        count = latents.shape[0]
        with self._using(self.transformer) as transformer:
            return transformer(
                hidden_states=latents.to(self.dtype),
                encoder_hidden_states=enc.prompt_embeds.expand(count, -1, -1),
                timestep=timesteps.to(self.device, torch.long),
                inpaint_latents=enc.inpaint.expand(count, *enc.inpaint.shape[1:]),
                reference_latents=None
                if enc.reference is None
                else enc.reference.expand(count, *enc.reference.shape[1:]),
                return_dict=False,
            )[0].float()

    # --- back to pixels ---------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, latents: Tensor, enc: EncodedConditions) -> Tensor:
        """Latents ``(1, F, C, h, w)`` to the ``(T, 3, H, W)`` video in ``[0, 1]`` (float32)."""
        if self.vae is None:
            pixels = latents[0].float()
        else:
            with self._using(self.vae) as vae:
                scaled = (latents / self.scaling_factor).permute(0, 2, 1, 3, 4).to(self.dtype)
                pixels = vae.decode(scaled).sample[0].permute(1, 0, 2, 3).float()
        video = (pixels[: enc.frames] / 2.0 + 0.5).clamp(0.0, 1.0)
        if tuple(video.shape[-2:]) != enc.size:
            video = F.interpolate(
                video, size=enc.size, mode="bilinear", antialias=True, align_corners=False
            ).clamp(0.0, 1.0)
        return video


def _repeat_last(frames: Tensor, count: int) -> Tensor:
    """``frames`` extended to ``count`` frames by repeating the last one."""
    missing = count - frames.shape[0]
    if missing <= 0:
        return frames
    return torch.cat([frames, frames[-1:].expand(missing, *frames.shape[1:])])


def _resize_mask(mask: Tensor, size: tuple[int, int, int]) -> Tensor:
    """``(T, 1, H, W)`` to ``(F, h, w)``: frame 0 alone, the rest to ``F - 1`` frames.

    The causal VAE encodes the first frame into its own latent frame, so the mask follows the
    same split (trilinear, ``align_corners=False``).
    """
    frames, height, width = size
    volume = mask.permute(1, 0, 2, 3).unsqueeze(0)  # (1, 1, T, H, W)
    first = F.interpolate(volume[:, :, :1], size=(1, height, width), mode="trilinear")
    parts = [first]
    if frames > 1:
        rest = volume[:, :, 1:] if volume.shape[2] > 1 else volume
        parts.append(F.interpolate(rest, size=(frames - 1, height, width), mode="trilinear"))
    return torch.cat(parts, dim=2)[0, 0]
