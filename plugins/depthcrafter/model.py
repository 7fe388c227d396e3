"""DepthCrafter's UNet: Stable Video Diffusion's spatio-temporal UNet with per-frame context.

DepthCrafter keeps SVD's UNet (8 input channels: 4 noisy + 4 video latents; 4 output) and its
weights layout, and changes one thing in the forward pass: the cross-attention context is one
CLIP image embedding *per frame* (SVD repeats one image embedding for every frame). The spatial
cross-attention of frame ``i`` sees embedding ``i``; the temporal layers, which take their
context from the first frame of each video, see frame 0's.
"""

from __future__ import annotations

import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.unets.unet_spatio_temporal_condition import (
    UNetSpatioTemporalConditionOutput,
)
from torch import Tensor


class DepthCrafterUNet(UNetSpatioTemporalConditionModel):
    """``UNetSpatioTemporalConditionModel`` whose context is ``(B, F, D)``: one token per frame."""

    def forward(  # type: ignore[override]
        self,
        sample: Tensor,
        timestep: Tensor | float,
        encoder_hidden_states: Tensor,
        added_time_ids: Tensor,
        return_dict: bool = True,
    ) -> UNetSpatioTemporalConditionOutput | tuple[Tensor]:
        """Denoise ``sample`` ``(B, F, 8, h, w)`` with per-frame context ``(B, F, D)``.

        ``added_time_ids`` ``(B, 3)`` are SVD's (fps, motion bucket, noise augmentation).
        """
        batch, frames = sample.shape[:2]
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch)
        emb = self.time_embedding(self.time_proj(timesteps).to(self.conv_in.weight.dtype))
        added = self.add_time_proj(added_time_ids.flatten()).reshape(batch, -1).to(emb.dtype)
        emb = (emb + self.add_embedding(added)).repeat_interleave(frames, dim=0)
        context = encoder_hidden_states.flatten(0, 1).unsqueeze(1)  # (B*F, 1, D)

        hidden = self.conv_in(sample.flatten(0, 1).to(self.conv_in.weight.dtype))
        indicator = torch.zeros(batch, frames, dtype=hidden.dtype, device=hidden.device)
        skips = (hidden,)
        for block in self.down_blocks:
            extra = {"encoder_hidden_states": context} if _has_cross(block) else {}
            hidden, residuals = block(
                hidden_states=hidden, temb=emb, image_only_indicator=indicator, **extra
            )
            skips += residuals
        hidden = self.mid_block(
            hidden_states=hidden,
            temb=emb,
            encoder_hidden_states=context,
            image_only_indicator=indicator,
        )
        for block in self.up_blocks:
            residuals, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
            extra = {"encoder_hidden_states": context} if _has_cross(block) else {}
            hidden = block(
                hidden_states=hidden,
                temb=emb,
                res_hidden_states_tuple=residuals,
                image_only_indicator=indicator,
                **extra,
            )
        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        hidden = hidden.reshape(batch, frames, *hidden.shape[1:])
        if not return_dict:
            return (hidden,)
        return UNetSpatioTemporalConditionOutput(sample=hidden)


def _has_cross(block: torch.nn.Module) -> bool:
    return bool(getattr(block, "has_cross_attention", False))
