"""The YAML fields of ``backbone: {kind: trajectorycrafter, ...}``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from devis_plugins.trajectorycrafter.presets import NEGATIVE_PROMPT, REFINE_PROMPT


class LoraSettings(BaseModel):
    """A LoRA adapter on the transformer (peft): the trainable part of the RL policy."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(64, ge=1, description="LoRA rank r.")
    alpha: float = Field(64.0, gt=0, description="LoRA alpha; the update is scaled by alpha/r.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"],
        description="Module name suffixes that get an adapter (peft's target_modules). The "
        "default covers every attention projection: to_q/k/v/out.0 of the blocks' "
        "self-attention and to_q of the reference cross-attention.",
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout.")
    path: str | None = Field(
        None,
        description="A LoRA safetensors file (written by save_lora), or a peft adapter "
        "(PeftModel.save_pretrained's directory or weights file), to load at start.",
    )


class TrajectoryCrafterConfig(BaseModel):
    """Settings of the TrajectoryCrafter backbone (fields left null take the preset's value)."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["full", "toy", "tiny"] = Field(
        "full",
        description="full: the published 5B model from local checkpoints; toy: a small model "
        "pre-trained on the synthetic world, shipped with the package (8 frames of 32x48 or "
        "multiples); tiny: the same classes at CPU size with random weights unless "
        "transformer_path/base_path are given.",
    )
    transformer_path: str | None = Field(
        None,
        description="Directory of the transformer: config.json + diffusion_pytorch_model"
        "*.safetensors (the TrajectoryCrafter/TrajectoryCrafter repository). Required for full; "
        "toy: the shipped weights when unset.",
    )
    base_path: str | None = Field(
        None,
        description="Directory of the base model with vae/, text_encoder/, tokenizer/, "
        "scheduler/ (alibaba-pai/CogVideoX-Fun-V1.1-5b-InP). Required for full; toy: the "
        "shipped text encoder, tokenizer and scheduler when unset.",
    )
    random_init: bool = Field(
        False,
        description="toy: ignore the shipped weights and start from the seeded random "
        "initialisation (what recipes/pretrain_toy.py pre-trains).",
    )
    caption: str = Field(
        "", description="Caption used when the conditions carry none (no captioner is run)."
    )
    refine_prompt: str = Field(
        REFINE_PROMPT, description="Appended to every caption, as TrajectoryCrafter does."
    )
    negative_prompt: str = Field(NEGATIVE_PROMPT, description="The unconditional branch's text.")
    steps: int | None = Field(
        None, ge=2, description="DDIM steps (preset: 50 full, 2 toy, 20 tiny)."
    )
    guidance_scale: float | None = Field(
        None,
        ge=0.0,
        description="Classifier-free guidance on the text, 1 or less: none (preset: 6 full and "
        "tiny, 1 toy).",
    )
    eta: float = Field(
        1.0,
        ge=0.0,
        description="DDIM eta of rollouts (the RL policy's noise). generate() always samples "
        "with eta 0, TrajectoryCrafter's deterministic sampler.",
    )
    reference_frames: int = Field(
        10, ge=1, description="Leading frames of the reference video the reference stream sees."
    )
    resolution: tuple[int, int] | None = Field(
        None,
        description="(height, width) the model runs at; the render is resized to it and the "
        "video back to the render's size (preset: 384x672 full, 32x48 toy, 24x40 tiny, "
        "64x96 tiny with a VAE). Must be a multiple of the VAE factor times the patch size.",
    )
    pixel_space: bool | None = Field(
        None,
        description="Tiny only: true (default) diffuses the video itself, false uses a tiny "
        "VAE (4x temporal, 8x spatial) to exercise the latent code path.",
    )
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None,
        description="Weights and activations (preset: bfloat16 full, float32 toy and tiny). "
        "Latents, DDIM arithmetic and log-probabilities stay float32.",
    )
    cpu_offload: bool = Field(
        False,
        description="Keep the text encoder, transformer and VAE on the CPU and move each to "
        "the device only while it runs (diffusers' model CPU offload).",
    )
    vae_tiling: bool = Field(False, description="Encode/decode the VAE in spatial tiles.")
    vae_slicing: bool = Field(False, description="Decode the VAE one batch element at a time.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute block activations in the backward pass (training)."
    )
    lora: LoraSettings | None = Field(
        None, description="A LoRA adapter to train (needed for RL); null: no adapter."
    )
    noise_aug_strength: float = Field(
        0.0563,
        ge=0.0,
        description="Noise added to the masked render before encoding when the transformer's "
        "config sets add_noise_in_inpaint_model (drawn from a fixed seed, see the docs).",
    )
    init_seed: int = Field(
        0, description="Seed of the random initialisation of tiny components without weights."
    )
