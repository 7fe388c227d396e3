"""TrajectoryCrafter's diffusion transformer: CogVideoX-5B with a reference cross-attention stream.

``CrossTransformer3DModel`` is the CogVideoX DiT of CogVideoX-Fun-V1.1-5b-InP (text and video
tokens in joint self-attention, adaptive layer norm from the timestep, 3D rotary embeddings on
video tokens) whose input is the noisy latents concatenated with the inpaint latents (a mask
channel and the VAE-encoded masked render), plus TrajectoryCrafter's *reference stream*: the
reference video's latents are patch-embedded by their own convolution and, after every block
whose index is a multiple of ``cross_attn_interval``, the video tokens receive a residual
cross-attention to them. The reference tokens never go through the blocks and get no
positional, time or text embedding; text tokens do not query them.

Parameter names follow the published checkpoint so that its ``config.json`` and safetensors
load unchanged (``docs/models.md`` lists the layout):

- ``patch_embed.proj`` (video + inpaint patches), ``patch_embed.text_proj`` (T5 features);
- ``time_embedding.linear_1/2``; ``transformer_blocks.{i}.*`` (diffusers' ``CogVideoXBlock``);
- ``norm_final``, ``norm_out.linear``, ``norm_out.norm``, ``proj_out``;
- ``ref_patch_embed.proj``: the reference stream's 2x2 patch convolution;
- ``perceiver_cross_attention.{j}.norm1`` (reference tokens), ``.norm2`` (video tokens),
  ``.to_q``, ``.to_kv`` (fused keys and values), ``.to_out``: cross-attention ``j`` runs after
  block ``j * cross_attn_interval``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.embeddings import (
    CogVideoXPatchEmbed,
    TimestepEmbedding,
    Timesteps,
    get_3d_rotary_pos_embed,
)
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNorm
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from torch import Tensor, nn


class ReferencePatchEmbed(nn.Module):
    """Reference latents ``(B, F, C, h, w)`` to tokens ``(B, F * h/p * w/p, dim)``."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size, bias=True)

    def forward(self, latents: Tensor) -> Tensor:
        batch, frames, channels, height, width = latents.shape
        tokens = self.proj(latents.reshape(batch * frames, channels, height, width))
        tokens = tokens.flatten(2).transpose(1, 2)  # (B*F, h*w/p^2, dim), row-major patches
        return tokens.reshape(batch, -1, tokens.shape[-1])


class ReferenceCrossAttention(nn.Module):
    """Video tokens query the reference tokens; returns the residual update (no gate).

    LayerNorm on both streams, queries from the video tokens, keys and values from one fused
    bias-free projection of the reference tokens, softmax in float32, a bias-free output
    projection back to the model width.
    """

    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, reference: Tensor, video: Tensor) -> Tensor:
        reference = self.norm1(reference)
        video = self.norm2(video)
        query = self._split_heads(self.to_q(video))
        key, value = (self._split_heads(t) for t in self.to_kv(reference).chunk(2, dim=-1))
        # float32 throughout the attention: the softmax (and its normaliser) never runs in bf16
        out = F.scaled_dot_product_attention(query.float(), key.float(), value.float())
        out = out.to(video.dtype).transpose(1, 2).flatten(2)
        return self.to_out(out)

    def _split_heads(self, tokens: Tensor) -> Tensor:
        batch, length, _ = tokens.shape
        return tokens.view(batch, length, self.heads, self.head_dim).transpose(1, 2)


class CrossTransformer3DModel(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """TrajectoryCrafter's transformer (the defaults are the published 42-layer model).

    Config fields keep the names of the published ``config.json``. Only the rotary-embedding
    (CogVideoX-5B) variant is implemented; ``is_train_cross: false`` drops the reference stream
    and leaves the CogVideoX-Fun inpainting transformer.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["CogVideoXBlock", "ReferenceCrossAttention"]

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 48,
        attention_head_dim: int = 64,
        in_channels: int = 33,
        out_channels: int = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        text_embed_dim: int = 4096,
        num_layers: int = 42,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = True,
        add_noise_in_inpaint_model: bool = False,
        is_train_cross: bool = True,
        cross_attn_in_channels: int = 16,
        cross_attn_interval: int = 2,
        cross_attn_dim_head: int = 128,
        cross_attn_num_heads: int = 16,
    ):
        super().__init__()
        if not use_rotary_positional_embeddings:
            raise ValueError(
                "CrossTransformer3DModel implements the rotary-embedding (CogVideoX-5B) variant "
                "only; use_rotary_positional_embeddings must be true"
            )
        inner_dim = num_attention_heads * attention_head_dim
        self.patch_embed = CogVideoXPatchEmbed(
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dim=inner_dim,
            text_embed_dim=text_embed_dim,
            bias=True,
            use_positional_embeddings=False,
            use_learned_positional_embeddings=False,
        )
        self.embedding_dropout = nn.Dropout(dropout)
        self.time_proj = Timesteps(inner_dim, flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(inner_dim, time_embed_dim, timestep_activation_fn)
        self.transformer_blocks = nn.ModuleList(
            CogVideoXBlock(
                dim=inner_dim,
                num_attention_heads=num_attention_heads,
                attention_head_dim=attention_head_dim,
                time_embed_dim=time_embed_dim,
                dropout=dropout,
                activation_fn=activation_fn,
                attention_bias=attention_bias,
                norm_elementwise_affine=norm_elementwise_affine,
                norm_eps=norm_eps,
            )
            for _ in range(num_layers)
        )
        self.norm_final = nn.LayerNorm(inner_dim, norm_eps, norm_elementwise_affine)
        self.norm_out = AdaLayerNorm(
            embedding_dim=time_embed_dim,
            output_dim=2 * inner_dim,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
            chunk_dim=1,
        )
        self.proj_out = nn.Linear(inner_dim, patch_size * patch_size * out_channels)
        if is_train_cross:
            self.ref_patch_embed = ReferencePatchEmbed(
                patch_size, cross_attn_in_channels, inner_dim
            )
            self.perceiver_cross_attention = nn.ModuleList(
                ReferenceCrossAttention(inner_dim, cross_attn_num_heads, cross_attn_dim_head)
                for _ in range(0, num_layers, cross_attn_interval)
            )
        self.gradient_checkpointing = False
        self._rotary_cache: dict[tuple[Any, ...], tuple[Tensor, Tensor]] = {}

    def rotary_embedding(
        self, frames: int, grid_height: int, grid_width: int, device: torch.device
    ) -> tuple[Tensor, Tensor]:
        """CogVideoX's 3D rotary embedding (cos, sin) for a ``frames x grid`` token layout.

        The grid is placed, centred and scaled to fit, in the grid of the training resolution
        (``sample_height x sample_width`` latents), as the CogVideoX-Fun pipeline does.
        """
        key = (frames, grid_height, grid_width, str(device))
        if key not in self._rotary_cache:
            p = self.config.patch_size
            crops = _fit_grid(
                (grid_height, grid_width),
                (self.config.sample_height // p, self.config.sample_width // p),
            )
            cos, sin = get_3d_rotary_pos_embed(
                embed_dim=self.config.attention_head_dim,
                crops_coords=crops,
                grid_size=(grid_height, grid_width),
                temporal_size=frames,
                use_real=True,
                device=device,
            )
            self._rotary_cache[key] = (cos, sin)
        return self._rotary_cache[key]

    def forward(
        self,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor,
        timestep: Tensor,
        inpaint_latents: Tensor,
        reference_latents: Tensor | None = None,
        image_rotary_emb: tuple[Tensor, Tensor] | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[Tensor]:
        """Predict ``v`` for noisy latents ``(B, F, C, h, w)``.

        ``encoder_hidden_states`` are the T5 features ``(B, L, text_embed_dim)``;
        ``inpaint_latents`` ``(B, F, 1 + C, h, w)`` are the mask channel and the masked
        render's latents; ``reference_latents`` ``(B, F_ref, C_ref, h, w)`` feed the reference
        stream (required when the model has one).
        """
        batch, frames, _, height, width = hidden_states.shape
        p = self.config.patch_size
        time_features = self.time_proj(timestep).to(dtype=hidden_states.dtype)
        emb = self.time_embedding(time_features)

        tokens = self.patch_embed(
            encoder_hidden_states, torch.cat([hidden_states, inpaint_latents], dim=2)
        )
        tokens = self.embedding_dropout(tokens)
        text_length = encoder_hidden_states.shape[1]
        text, video = tokens[:, :text_length], tokens[:, text_length:]
        if image_rotary_emb is None:
            image_rotary_emb = self.rotary_embedding(
                frames, height // p, width // p, hidden_states.device
            )

        reference = None
        if self.config.is_train_cross:
            if reference_latents is None:
                raise ValueError("this model has a reference stream: pass reference_latents")
            reference = self.ref_patch_embed(reference_latents.to(hidden_states.dtype))

        checkpointing = torch.is_grad_enabled() and self.gradient_checkpointing
        for index, block in enumerate(self.transformer_blocks):
            if checkpointing:
                video, text = self._gradient_checkpointing_func(
                    block, video, text, emb, image_rotary_emb
                )
            else:
                video, text = block(video, text, emb, image_rotary_emb)
            if reference is not None and index % self.config.cross_attn_interval == 0:
                attention = self.perceiver_cross_attention[index // self.config.cross_attn_interval]
                if checkpointing:
                    update = self._gradient_checkpointing_func(attention, reference, video)
                else:
                    update = attention(reference, video)
                video = video + update

        video = self.norm_final(video)
        video = self.norm_out(video, temb=emb)
        video = self.proj_out(video)
        output = video.reshape(batch, frames, height // p, width // p, -1, p, p)
        output = output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def _fit_grid(
    grid: tuple[int, int], base: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left and bottom-right of ``grid`` resized to fit, centred, in ``base`` (h, w)."""
    height, width = grid
    base_height, base_width = base
    if height / width > base_height / base_width:
        new_height, new_width = base_height, int(round(base_height / height * width))
    else:
        new_height, new_width = int(round(base_width / width * height)), base_width
    top = int(round((base_height - new_height) / 2.0))
    left = int(round((base_width - new_width) / 2.0))
    return (top, left), (top + new_height, left + new_width)


def count_parameters(config: dict[str, Any]) -> int:
    """Parameters of a ``CrossTransformer3DModel`` config, from the layer shapes alone.

    An independent closed form (used to check the full-size model built on the meta device):
    patch embeddings, time MLP, per block two LayerNormZero modulations, the self-attention with
    q/k norms and the GELU MLP, the output head, and the reference stream.
    """
    d = config["num_attention_heads"] * config["attention_head_dim"]
    head_dim, t = config["attention_head_dim"], config["time_embed_dim"]
    p, layers = config["patch_size"], config["num_layers"]
    total = config["in_channels"] * p * p * d + d  # patch_embed.proj
    total += config["text_embed_dim"] * d + d  # patch_embed.text_proj
    total += d * t + t + t * t + t  # time_embedding
    per_block = 2 * (t * 6 * d + 6 * d + 2 * d)  # norm1, norm2: linear + LayerNorm affine
    per_block += 4 * (d * d + d) + 2 * 2 * head_dim  # to_q/k/v/out (bias) + norm_q/k
    per_block += d * 4 * d + 4 * d + 4 * d * d + d  # feed-forward
    total += layers * per_block
    total += 2 * d  # norm_final
    total += t * 2 * d + 2 * d + 2 * d  # norm_out: linear + LayerNorm affine
    total += d * p * p * config["out_channels"] + p * p * config["out_channels"]  # proj_out
    if config["is_train_cross"]:
        inner = config["cross_attn_num_heads"] * config["cross_attn_dim_head"]
        total += config["cross_attn_in_channels"] * p * p * d + d  # ref_patch_embed
        per_cross = 2 * 2 * d + d * inner + d * 2 * inner + inner * d
        total += math.ceil(layers / config["cross_attn_interval"]) * per_cross
    return total
