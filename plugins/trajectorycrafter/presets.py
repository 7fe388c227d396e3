"""The sizes of the same model: the published one, a pre-trained toy and a random tiny one.

``full`` is TrajectoryCrafter as published (CogVideoX-Fun-V1.1-5b-InP plus the reference
stream): 42 layers of 48 heads x 64, 16 latent channels, 49 frames at 384x672, loaded from
local checkpoints. ``toy`` is a 4-layer transformer of width 128 in pixel space with 4x4
patches, pre-trained on small orbits of the synthetic world (``recipes/pretrain_toy.py``) and
shipped with the package: the smallest model that has learned something. ``tiny`` is the same
classes with a 2-layer transformer of width 32 in pixel space (the video itself is the latent,
no VAE) and a 2-layer T5 encoder with byte-level tokens, randomly initialised from a seed
unless a saved tiny model is given: for tests and plumbing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "set_alpha_to_one": True,
    "steps_offset": 0,
    "clip_sample": False,
}
"""CogVideoX-Fun's DDIM schedule; used when no ``scheduler/`` directory is given."""

NEGATIVE_PROMPT = (
    "The video is not of a high quality, it has a low resolution. Watermark present in each "
    "frame. The background is solid. Strange body and strange trajectory. Distortion."
)
REFINE_PROMPT = (
    ". The video is of high quality, and the view is very clear. High quality, masterpiece, "
    "best quality, highres, ultra-detailed, fantastic."
)


@dataclass(frozen=True)
class Preset:
    """Everything a size fixes: the transformer config and the defaults around it."""

    transformer: dict[str, Any]
    resolution: tuple[int, int]
    steps: int
    dtype: str
    pixel_space: bool
    text_encoder: dict[str, Any] = field(default_factory=dict)
    """T5 config of a randomly initialised text encoder (tiny only; full loads T5-XXL)."""
    vae: dict[str, Any] = field(default_factory=dict)
    """AutoencoderKLCogVideoX config of a randomly initialised VAE (tiny, latent space only)."""
    guidance_scale: float = 6.0
    """Classifier-free guidance on the text; the toy model never saw a second caption."""
    shipped: str | None = None
    """Directory, inside this package, of the weights the preset loads when no path is given."""


FULL = Preset(
    transformer={
        "num_attention_heads": 48,
        "attention_head_dim": 64,
        "in_channels": 33,
        "out_channels": 16,
        "time_embed_dim": 512,
        "text_embed_dim": 4096,
        "num_layers": 42,
        "sample_height": 60,
        "sample_width": 90,
        "sample_frames": 49,
        "patch_size": 2,
        "max_text_seq_length": 226,
        "use_rotary_positional_embeddings": True,
        "is_train_cross": True,
        "cross_attn_in_channels": 16,
        "cross_attn_interval": 2,
        "cross_attn_dim_head": 128,
        "cross_attn_num_heads": 16,
    },
    resolution=(384, 672),
    steps=50,
    dtype="bfloat16",
    pixel_space=False,
)

_TINY_COMMON = {
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "time_embed_dim": 32,
    "text_embed_dim": 32,
    "num_layers": 2,
    "patch_size": 2,
    "max_text_seq_length": 32,
    "use_rotary_positional_embeddings": True,
    "is_train_cross": True,
    "cross_attn_interval": 2,
    "cross_attn_dim_head": 16,
    "cross_attn_num_heads": 2,
}

TINY_TEXT_ENCODER: dict[str, Any] = {
    "vocab_size": 384,  # ByT5's byte vocabulary: 3 special tokens, 256 bytes, 125 extra ids
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 32,
    "feed_forward_proj": "gated-gelu",
    "dropout_rate": 0.0,
}

TINY_VAE: dict[str, Any] = {
    "block_out_channels": (8, 8, 8, 8),
    "norm_num_groups": 4,
    "layers_per_block": 1,
    "latent_channels": 4,
}
"""A 4x temporal / 8x spatial CogVideoX VAE small enough for the CPU (``pixel_space: false``)."""

TINY = Preset(
    transformer={
        **_TINY_COMMON,
        "in_channels": 3 + 1 + 3,
        "out_channels": 3,
        "cross_attn_in_channels": 3,
        "sample_height": 24,
        "sample_width": 40,
        "sample_frames": 16,
        "temporal_compression_ratio": 1,
    },
    resolution=(24, 40),
    steps=20,
    dtype="float32",
    pixel_space=True,
    text_encoder=TINY_TEXT_ENCODER,
)

TINY_LATENT = Preset(
    transformer={
        **_TINY_COMMON,
        "in_channels": 4 + 1 + 4,
        "out_channels": 4,
        "cross_attn_in_channels": 4,
        "sample_height": 8,
        "sample_width": 12,
        "sample_frames": 17,
    },
    resolution=(64, 96),
    steps=20,
    dtype="float32",
    pixel_space=False,
    text_encoder=TINY_TEXT_ENCODER,
    vae=TINY_VAE,
)
"""The tiny transformer over a tiny VAE's 4 latent channels (``preset: tiny, pixel_space: false``):
the latent-space code path (VAE, 4x/8x mask resizing) at CPU size."""

TOY = Preset(
    transformer={
        "num_attention_heads": 4,
        "attention_head_dim": 32,
        "time_embed_dim": 128,
        "text_embed_dim": 32,
        "num_layers": 4,
        "patch_size": 4,
        "max_text_seq_length": 32,
        "use_rotary_positional_embeddings": True,
        "is_train_cross": True,
        "cross_attn_interval": 1,
        "cross_attn_dim_head": 32,
        "cross_attn_num_heads": 4,
        "in_channels": 3 + 1 + 3,
        "out_channels": 3,
        "cross_attn_in_channels": 3,
        "sample_height": 32,
        "sample_width": 48,
        "sample_frames": 8,
        "temporal_compression_ratio": 1,
    },
    resolution=(32, 48),
    steps=2,
    dtype="float32",
    pixel_space=True,
    text_encoder=TINY_TEXT_ENCODER,
    guidance_scale=1.0,
    shipped="toy",
)
"""Pre-trained on the synthetic world (orbits of at most 20 degrees); 4x4 patches keep a
training step near a tenth of a second per video on a CPU core. Reference cross-attention
after every block: copying detail from the source is most of what the task asks. Two DDIM
steps: the best PSNR and SSIM of 2 to 10 on the pre-training's validation scenes (more steps
sample detail the model gets wrong; benchmarks/RESULTS.md, "Toy generator")."""

PRESETS = {"full": FULL, "toy": TOY, "tiny": TINY}


def preset_for(name: str, pixel_space: bool | None) -> Preset:
    """The preset ``name``, in latent or pixel space (``None``: the preset's own choice)."""
    preset = PRESETS[name]
    if pixel_space is None or pixel_space == preset.pixel_space:
        return preset
    if name == "tiny":
        return TINY_LATENT
    raise ValueError(
        f"the {name} model works in {'pixel' if preset.pixel_space else 'latent'} space only; "
        "leave pixel_space unset"
    )
