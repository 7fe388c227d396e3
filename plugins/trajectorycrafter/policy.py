"""The TrajectoryCrafter backbone and its view as a stochastic policy for RL.

``generate`` is TrajectoryCrafter's sampler (DDIM, eta 0). ``rollout`` samples with
``eta > 0`` and records every step that has a density: the latent before and after, the
Gaussian mean and standard deviation and the log-probability (element mean, float32) under
the DDIM posterior for v-prediction (:mod:`.diffusion`). ``log_prob`` recomputes the
same quantities under the current weights, with the same classifier-free guidance, so that
GRPO's ratio is exactly 1 before the first update. ``v_prediction_error`` is the supervised
loss SFT and Diffusion-DPO need.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

from devis_core.errors import UsageError
from devis_core.types import Conditions, Rollout, RolloutStep
from devis_plugins.trajectorycrafter import lora
from devis_plugins.trajectorycrafter.config import LoraSettings, TrajectoryCrafterConfig
from devis_plugins.trajectorycrafter.diffusion import (
    ddim_posterior,
    ddim_step,
    gaussian_log_prob,
    noisy_sample_and_v_target,
    standard_normal,
)
from devis_plugins.trajectorycrafter.loading import (
    Components,
    build_components,
    save_components,
    shipped_paths,
)
from devis_plugins.trajectorycrafter.pipeline import EncodedConditions, TrajectoryCrafterPipeline
from devis_plugins.trajectorycrafter.presets import preset_for

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TrajectoryCrafterBackbone:
    """TrajectoryCrafter (CogVideoX-5B inpainting + reference stream), also an RL policy."""

    def __init__(self, config: TrajectoryCrafterConfig):
        self.config = config
        preset = preset_for(config.preset, config.pixel_space)
        self.steps = config.steps or preset.steps
        self.eta = config.eta
        dtype = _DTYPES[config.dtype or preset.dtype]
        transformer_path, base_path = config.transformer_path, config.base_path
        if (
            preset.shipped is not None
            and not config.random_init
            and not (transformer_path and base_path)
        ):
            shipped_transformer, shipped_base = shipped_paths(preset)
            transformer_path = transformer_path or shipped_transformer
            base_path = base_path or shipped_base
        components = build_components(
            preset,
            transformer_path=transformer_path,
            base_path=base_path,
            dtype=dtype,
            init_seed=config.init_seed,
            require_weights=config.preset == "full",
        )
        if components.vae is not None:
            if config.vae_tiling:
                components.vae.enable_tiling()
            if config.vae_slicing:
                components.vae.enable_slicing()
        self.pipeline = TrajectoryCrafterPipeline(
            components,
            resolution=tuple(config.resolution or preset.resolution),
            dtype=dtype,
            guidance_scale=(
                preset.guidance_scale if config.guidance_scale is None else config.guidance_scale
            ),
            negative_prompt=config.negative_prompt,
            reference_frames=config.reference_frames,
            noise_aug_strength=config.noise_aug_strength,
            noise_aug_seed=config.init_seed,
            cpu_offload=config.cpu_offload,
        )
        self.transformer = components.transformer
        if config.gradient_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        self.lora_settings: LoraSettings | None = None
        if config.lora is not None:
            settings = _lora_settings(config.lora)
            self.add_lora(settings)
            if settings.path is not None:
                self.load_lora(settings.path)
        self._schedule = self.pipeline.schedule(self.steps)
        self._conditions: _IdentityCache[Conditions, EncodedConditions] = _IdentityCache(16)
        self._videos: _IdentityCache[Tensor, Tensor] = _IdentityCache(4)

    # --- placement --------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    def to(self, device: torch.device | str) -> TrajectoryCrafterBackbone:
        """Run on ``device`` (weights stay on the CPU with ``cpu_offload``)."""
        self.pipeline.to(device)
        self._conditions.clear()
        self._videos.clear()
        return self

    # --- generation -------------------------------------------------------------------------

    def generate(self, cond: Conditions, generator: torch.Generator | None = None) -> Tensor:
        """TrajectoryCrafter's sampler: DDIM with eta 0 from noise drawn with ``generator``."""
        return self.sample(cond, generator, eta=0.0)

    @torch.no_grad()
    def sample(
        self, cond: Conditions, generator: torch.Generator | None = None, *, eta: float = 0.0
    ) -> Tensor:
        """A video sampled with DDIM at any ``eta``, recording nothing (the plain sampler)."""
        latents, _ = self._denoise(cond, generator, eta, record=False)
        return self.pipeline.decode(latents, self._encoded(cond))

    def rollout(self, cond: Conditions, generator: torch.Generator | None = None) -> Rollout:
        """Sample with DDIM at ``eta`` and record every step that has a density.

        With ``eta > 0`` that is every step but the last (whose sigma is 0 because it lands
        on ``alpha_prev = 1``); with ``eta = 0`` no step has a density, the list is empty and
        the video is exactly ``generate``'s. Steps hold float32 tensors on the device;
        ``next_latents`` of a step is the same tensor as ``latents`` of the next one.
        """
        with torch.no_grad():
            latents, steps = self._denoise(cond, generator, self.eta, record=True)
            video = self.pipeline.decode(latents, self._encoded(cond))
        return Rollout(steps=steps, video=video)

    def _denoise(
        self,
        cond: Conditions,
        generator: torch.Generator | None,
        eta: float,
        *,
        record: bool,
    ) -> tuple[Tensor, list[RolloutStep]]:
        enc = self._encoded(cond)
        schedule = self._schedule
        noise = standard_normal(enc.latent_shape, generator, self.device)
        latents = noise * float(self.pipeline.scheduler.init_noise_sigma)
        steps: list[RolloutStep] = []
        for index, timestep in enumerate(schedule.timesteps):
            v = self.pipeline.predict_v(latents, timestep, enc)
            following, mean, std = ddim_step(
                latents,
                v,
                schedule.alphas[index],
                schedule.alphas_prev[index],
                eta,
                generator,
            )
            if record and float(std) > 0.0:
                steps.append(
                    RolloutStep(
                        timestep=torch.tensor(timestep),
                        latents=latents,
                        next_latents=following,
                        mean=mean,
                        std=std,
                        log_prob=gaussian_log_prob(following, mean, std),
                    )
                )
            latents = following
        return latents, steps

    # --- the policy -------------------------------------------------------------------------

    def log_prob(
        self, cond: Conditions, rollout: Rollout, step: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(log_prob, mean, std)`` of ``rollout.steps[step]`` under the current weights.

        Differentiable with respect to the trainable parameters (call it with gradients
        enabled); the mean and log-probability are float32.
        """
        record = rollout.steps[step]
        index = self._schedule.index_of(record.timestep)
        enc = self._encoded(cond)
        latents = record.latents.to(self.device)
        v = self.pipeline.predict_v(latents, int(record.timestep), enc)
        mean, std = ddim_posterior(
            latents, v, self._schedule.alphas[index], self._schedule.alphas_prev[index], self.eta
        )
        return gaussian_log_prob(record.next_latents.to(self.device), mean, std), mean, std

    def trainable_parameters(self) -> Iterator[torch.nn.Parameter]:
        """The LoRA adapter's parameters (configure ``backbone.lora`` to have any)."""
        if self.lora_settings is None:
            raise UsageError(
                "backbone 'trajectorycrafter' has no trainable adapter: set backbone.lora "
                "(e.g. lora: {rank: 64}) to train it"
            )
        yield from lora.lora_parameters(self.transformer)

    def disable_adapter(self) -> AbstractContextManager[None]:
        """Within the context the model is the base model (the reference policy)."""
        if self.lora_settings is None:
            return nullcontext()
        return self._adapter_off()

    @contextmanager
    def _adapter_off(self) -> Iterator[None]:
        self.transformer.disable_adapters()
        try:
            yield
        finally:
            self.transformer.enable_adapters()

    def latent_shape(self, cond: Conditions) -> tuple[int, ...]:
        """``(1, F, C, h, w)``: the shape of the noise ``v_prediction_error`` takes per sample."""
        return self.pipeline.latent_shape(int(cond.render.shape[0]))

    def v_prediction_error(
        self, cond: Conditions, video: Tensor, timesteps: Tensor, noise: Tensor
    ) -> Tensor:
        """Per-sample mean squared error of the v-prediction (differentiable), shape ``(N,)``.

        ``video`` ``(T, 3, H, W)`` in ``[0, 1]`` is encoded to clean latents ``x0``; each of the
        ``N`` ``timesteps`` (integers in ``[0, 1000)``) with its ``noise`` (``(N, F, C, h, w)``,
        see :meth:`latent_shape`) gives ``x_t = sqrt(a) x0 + sqrt(1 - a) noise`` and the target
        ``v = sqrt(a) noise - sqrt(1 - a) x0``; the conditional (unguided) prediction at
        ``x_t`` is compared with it. Diffusion-DPO calls this for the winner and the loser with
        the *same* timesteps and noise, once normally and once under ``disable_adapter``.
        """
        timesteps = torch.as_tensor(timesteps, dtype=torch.long).reshape(-1)
        noise = noise.to(self.device, torch.float32)
        if noise.dim() == len(self.latent_shape(cond)) - 1:
            noise = noise.unsqueeze(0)
        x0 = self._clean_latents(video)
        if noise.shape[1:] != x0.shape[1:] or noise.shape[0] != timesteps.shape[0]:
            raise ValueError(
                f"noise {tuple(noise.shape)} must be (N, *{tuple(x0.shape[1:])}) with N = "
                f"{timesteps.shape[0]} timesteps"
            )
        alphas = self.pipeline.scheduler.alphas_cumprod.to(torch.float64)[timesteps.cpu()]
        noisy, target = noisy_sample_and_v_target(x0.expand_as(noise), noise, alphas)
        prediction = self.pipeline.predict_v_batch(noisy, timesteps, self._encoded(cond))
        return ((prediction - target) ** 2).flatten(1).mean(dim=1)

    def _clean_latents(self, video: Tensor) -> Tensor:
        return self._videos.get_or_compute(video, self.pipeline.encode_video)

    # --- adapters and checkpoints -----------------------------------------------------------

    def add_lora(self, settings: LoraSettings) -> None:
        """Add a fresh LoRA adapter (outputs unchanged until it is trained)."""
        if self.lora_settings is not None:
            raise UsageError("the transformer already has a LoRA adapter")
        lora.add_lora(self.transformer, settings)
        self.lora_settings = settings

    def save_lora(self, path: str | Path) -> Path:
        """Write the adapter to a safetensors file (its settings go in the metadata)."""
        if self.lora_settings is None:
            raise UsageError("there is no LoRA adapter to save: set backbone.lora")
        return lora.save_lora(self.transformer, self.lora_settings, path)

    def load_lora(self, path: str | Path) -> None:
        """Load adapter weights (from :meth:`save_lora`, or a peft adapter) into the adapter."""
        if self.lora_settings is None:
            self.add_lora(lora.read_lora_settings(path))
        else:
            lora.read_lora_settings(path)  # a clear error for a missing or foreign file
        lora.load_lora(self.transformer, path)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the model as ``directory/transformer`` and ``directory/base`` (no adapter).

        Loading it back takes ``transformer_path: directory/transformer`` and
        ``base_path: directory/base``.
        """
        save_components(
            Components(
                transformer=self.transformer,
                text_encoder=self.pipeline.text_encoder,
                tokenizer=self.pipeline.tokenizer,
                vae=self.pipeline.vae,
                scheduler=self.pipeline.scheduler,
            ),
            directory,
        )

    # --- conditions cache -------------------------------------------------------------------

    def _encoded(self, cond: Conditions) -> EncodedConditions:
        caption = (cond.caption or self.config.caption) + self.config.refine_prompt
        return self._conditions.get_or_compute(
            cond, lambda c: self.pipeline.encode_conditions(c, caption)
        )


def _lora_settings(configured: LoraSettings) -> LoraSettings:
    """The adapter to build: the configured one, or the one stored in ``configured.path``.

    A LoRA file records its rank, alpha and target modules; fields also set in the config must
    agree with it (dropout is a training choice and comes from the config).
    """
    if configured.path is None:
        return configured
    stored = lora.read_lora_settings(configured.path)
    conflicts = [
        f"{name}: config {getattr(configured, name)!r}, file {getattr(stored, name)!r}"
        for name in ("rank", "alpha", "target_modules")
        if name in configured.model_fields_set
        and getattr(configured, name) != getattr(stored, name)
    ]
    if conflicts:
        raise UsageError(
            f"backbone.lora disagrees with the LoRA file {configured.path}: " + "; ".join(conflicts)
        )
    return stored.model_copy(update={"dropout": configured.dropout})


K = TypeVar("K")
V = TypeVar("V")


class _IdentityCache(Generic[K, V]):  # noqa: UP046 (Python 3.11 has no PEP 695 syntax)
    """Values computed from objects, kept while the object is alive and the same object.

    Encoding the conditions (VAE + T5) costs more than a denoising step at full size, and
    GRPO asks for the log-probability of many steps of one rollout; keying on identity (with a
    weak reference, so a new object at a recycled address is not mistaken for the old one)
    avoids hashing tensors. A condition object whose tensors are modified in place is not
    detected: build a new ``Conditions`` instead.
    """

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._entries: OrderedDict[int, tuple[weakref.ref[Any], V]] = OrderedDict()

    def get_or_compute(self, key: K, compute: Callable[[K], V]) -> V:
        entry = self._entries.get(id(key))
        if entry is not None and entry[0]() is key:
            self._entries.move_to_end(id(key))
            return entry[1]
        value = compute(key)
        self._entries[id(key)] = (weakref.ref(key), value)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()
