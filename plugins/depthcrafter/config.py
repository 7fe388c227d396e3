"""The YAML fields of ``depth: {kind: depthcrafter, ...}``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DepthCrafterConfig(BaseModel):
    """Settings of the DepthCrafter depth estimator."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["full", "tiny"] = Field(
        "full", description="full: the published weights; tiny: random CPU-size model (tests)."
    )
    unet_path: str | None = Field(
        None, description="DepthCrafter UNet directory (tencent/DepthCrafter). Required for full."
    )
    svd_path: str | None = Field(
        None,
        description="Stable Video Diffusion XT directory with vae/, image_encoder/, "
        "feature_extractor/, scheduler/ (stabilityai/stable-video-diffusion-img2vid-xt).",
    )
    steps: int = Field(5, ge=1, description="Denoising steps.")
    guidance_scale: float = Field(1.0, ge=0.0, description="Guidance on the video (1: none).")
    window: int = Field(110, ge=2, description="Frames per sliding window.")
    overlap: int = Field(25, ge=0, description="Frames shared by consecutive windows.")
    max_res: int = Field(1024, ge=64, description="Longest side the model runs at (pixels).")
    noise_aug_strength: float = Field(
        0.02, ge=0.0, description="Noise added to the video before VAE encoding."
    )
    decode_chunk_size: int = Field(8, ge=1, description="Frames per VAE / CLIP batch.")
    seed: int = Field(42, description="Seed of the sampling noise (DepthCrafter's default).")
    near: float = Field(1e-4, gt=0, description="Depth clip, near (TrajectoryCrafter's).")
    far: float = Field(1e4, gt=0, description="Depth clip, far (TrajectoryCrafter's).")
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="Weights' dtype (preset: float16 full, float32 tiny)."
    )
