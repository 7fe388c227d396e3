"""AMT-S frame interpolation (Li et al. 2023) and VBench's motion smoothness built on it.

AMT ("All-pairs Multi-field Transforms") predicts the frame half-way between two frames from
bidirectional all-pairs correlations and several flow fields per pixel. VBench's motion
smoothness interpolates the even frames of a video with AMT-S and compares the result with
the odd frames it left out. This module re-implements the AMT-S network (parameter names
match the official ``amt-s.pth``, whose ``state_dict`` entry it loads strictly) and the VBench
procedure; it was checked against the AMT code vendored in VBench with shared random weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from devis_core.errors import UsageError
from devis_core.toolkit.measures import to_uint8_levels
from devis_core.toolkit.weights import load_tensors

AMTS_HOW_TO_GET = (
    "Download amt-s.pth from the AMT release on Hugging Face (repository lalala125/AMT, the "
    "checkpoint VBench's motion smoothness uses) and set `weights_path` to it."
)
PAD_MULTIPLE = 16


def _resize(x: Tensor, scale: float) -> Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def _conv_prelu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, pad: int = 1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, pad), nn.PReLU(c_out))


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample ``image`` at ``pixel + flow`` (bilinear, border values), AMT's backward warp."""
    batch, _, height, width = flow.shape
    xs = torch.linspace(-1.0, 1.0, width, device=flow.device, dtype=image.dtype)
    ys = torch.linspace(-1.0, 1.0, height, device=flow.device, dtype=image.dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)
    scale = torch.tensor([(width - 1) / 2, (height - 1) / 2], device=flow.device)
    offsets = flow.permute(0, 2, 3, 1) / scale.to(image.dtype)
    return F.grid_sample(
        image, grid + offsets, mode="bilinear", padding_mode="border", align_corners=True
    )


class _Bottleneck(nn.Module):
    """RAFT's bottleneck residual block with (parameter-free) instance normalisation."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out // 4, 1)
        self.conv2 = nn.Conv2d(c_out // 4, c_out // 4, 3, stride, 1)
        self.conv3 = nn.Conv2d(c_out // 4, c_out, 1)
        self.norm1 = nn.InstanceNorm2d(c_out // 4)
        self.norm2 = nn.InstanceNorm2d(c_out // 4)
        self.norm3 = nn.InstanceNorm2d(c_out)
        self.downsample = (
            None
            if stride == 1
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), nn.InstanceNorm2d(c_out))
        )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class _FeatureEncoder(nn.Module):
    """RAFT's small encoder: 1/8-resolution features for the correlation volume."""

    def __init__(self, out_dim: int = 84):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, 2, 3)
        self.norm1 = nn.InstanceNorm2d(32)
        self.layer1 = nn.Sequential(_Bottleneck(32, 32, 1), _Bottleneck(32, 32, 1))
        self.layer2 = nn.Sequential(_Bottleneck(32, 64, 2), _Bottleneck(64, 64, 1))
        self.layer3 = nn.Sequential(_Bottleneck(64, 96, 2), _Bottleneck(96, 96, 1))
        self.conv2 = nn.Conv2d(96, out_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class _ResBlock(nn.Module):
    """IFRNet's residual block that refines the last ``side`` channels separately."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.side = side
        self.conv1 = _conv_prelu(channels, channels)
        self.conv2 = _conv_prelu(side, side)
        self.conv3 = _conv_prelu(channels, channels)
        self.conv4 = _conv_prelu(side, side)
        self.conv5 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.prelu = nn.PReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.conv3(torch.cat([out[:, : -self.side], self.conv2(out[:, -self.side :])], 1))
        out = self.conv5(torch.cat([out[:, : -self.side], self.conv4(out[:, -self.side :])], 1))
        return self.prelu(x + out)


class _Pyramid(nn.Module):
    """IFRNet's context encoder: features at 1/2, 1/4, 1/8 and 1/16 resolution."""

    def __init__(self, channels: list[int]):
        super().__init__()
        previous = 3
        for level, width in enumerate(channels, 1):
            block = nn.Sequential(_conv_prelu(previous, width, 3, 2, 1), _conv_prelu(width, width))
            self.register_module(f"pyramid{level}", block)
            previous = width
        self.levels = len(channels)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for level in range(1, self.levels + 1):
            x = getattr(self, f"pyramid{level}")(x)
            features.append(x)
        return features


class _InitDecoder(nn.Module):
    def __init__(self, c_in: int, c_out: int, side: int):
        super().__init__()
        self.convblock = nn.Sequential(
            _conv_prelu(c_in * 2 + 1, c_in * 2),
            _ResBlock(c_in * 2, side),
            nn.ConvTranspose2d(c_in * 2, c_out + 4, 4, 2, 1),
        )

    def forward(self, f0: Tensor, f1: Tensor, embt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        time = embt.repeat(1, 1, *f0.shape[2:])
        out = self.convblock(torch.cat([f0, f1, time], 1))
        return out[:, 0:2], out[:, 2:4], out[:, 4:]


class _IntermediateDecoder(nn.Module):
    def __init__(self, c_in: int, c_out: int, side: int):
        super().__init__()
        self.convblock = nn.Sequential(
            _conv_prelu(c_in * 3 + 4, c_in * 3),
            _ResBlock(c_in * 3, side),
            nn.ConvTranspose2d(c_in * 3, c_out + 4, 4, 2, 1),
        )

    def forward(self, ft: Tensor, f0: Tensor, f1: Tensor, flow0: Tensor, flow1: Tensor):
        out = self.convblock(torch.cat([ft, warp(f0, flow0), warp(f1, flow1), flow0, flow1], 1))
        new0 = out[:, 0:2] + 2.0 * _resize(flow0, 2.0)
        new1 = out[:, 2:4] + 2.0 * _resize(flow1, 2.0)
        return new0, new1, out[:, 4:]


class _MultiFlowDecoder(nn.Module):
    def __init__(self, c_in: int, side: int, flows: int):
        super().__init__()
        self.flows = flows
        self.convblock = nn.Sequential(
            _conv_prelu(c_in * 3 + 4, c_in * 3),
            _ResBlock(c_in * 3, side),
            nn.ConvTranspose2d(c_in * 3, 8 * flows, 4, 2, 1),
        )

    def forward(self, ft: Tensor, f0: Tensor, f1: Tensor, flow0: Tensor, flow1: Tensor):
        n = self.flows
        out = self.convblock(torch.cat([ft, warp(f0, flow0), warp(f1, flow1), flow0, flow1], 1))
        d0, d1, mask, residual = torch.split(out, [2 * n, 2 * n, n, 3 * n], 1)
        new0 = d0 + 2.0 * _resize(flow0, 2.0).repeat(1, n, 1, 1)
        new1 = d1 + 2.0 * _resize(flow1, 2.0).repeat(1, n, 1, 1)
        return new0, new1, torch.sigmoid(mask), residual


class _UpdateBlock(nn.Module):
    """RAFT's small update block: residual feature and flow updates from correlations."""

    def __init__(self, cdim: int, scale: int | None, levels: int = 4, radius: int = 3):
        super().__init__()
        hidden, flow_dim, corr_dim, fc_dim = 76, 20, 64, 68
        planes = levels * (2 * radius + 1) ** 2
        self.scale = scale
        self.convc1 = nn.Conv2d(2 * planes, corr_dim, 1)
        self.convf1 = nn.Conv2d(4, flow_dim * 2, 7, padding=3)
        self.convf2 = nn.Conv2d(flow_dim * 2, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)

        def head(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, hidden, 3, padding=1),
                nn.LeakyReLU(0.1),
                nn.Conv2d(hidden, c_out, 3, padding=1),
            )

        self.gru = head(fc_dim + 4 + cdim, hidden)
        self.feat_head = head(hidden, cdim)
        self.flow_head = head(hidden, 4)

    def forward(self, net: Tensor, flow: Tensor, corr: Tensor) -> tuple[Tensor, Tensor]:
        if self.scale is not None:
            net = _resize(net, 1 / self.scale)
        cor = F.leaky_relu(self.convc1(corr), 0.1)
        flo = F.leaky_relu(self.convf2(F.leaky_relu(self.convf1(flow), 0.1)), 0.1)
        inp = F.leaky_relu(self.conv(torch.cat([cor, flo], 1)), 0.1)
        out = self.gru(torch.cat([inp, flow, net], 1))
        delta_net, delta_flow = self.feat_head(out), self.flow_head(out)
        if self.scale is not None:
            delta_net = _resize(delta_net, self.scale)
            delta_flow = self.scale * _resize(delta_flow, self.scale)
        return delta_net, delta_flow


class _BidirectionalCorrelation:
    """All-pairs correlation pyramid of two feature maps, looked up in both directions."""

    def __init__(self, fmap0: Tensor, fmap1: Tensor, levels: int, radius: int):
        batch, dim, height, width = fmap0.shape
        corr = fmap0.flatten(2).transpose(1, 2) @ fmap1.flatten(2) / float(dim) ** 0.5
        corr = corr.reshape(batch, height, width, 1, height, width)
        forward = corr.reshape(batch * height * width, 1, height, width)
        backward = corr.permute(0, 4, 5, 3, 1, 2).reshape(batch * height * width, 1, height, width)
        self.levels, self.radius = levels, radius
        self.pyramids: tuple[list[Tensor], list[Tensor]] = ([forward], [backward])
        for _ in range(levels - 1):
            for pyramid in self.pyramids:
                pyramid.append(F.avg_pool2d(pyramid[-1], 2, stride=2))

    def __call__(self, coords0: Tensor, coords1: Tensor) -> tuple[Tensor, Tensor]:
        r = self.radius
        batch, _, height, width = coords0.shape
        steps = torch.linspace(-r, r, 2 * r + 1, device=coords0.device)
        delta = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1)
        delta = delta.view(1, 2 * r + 1, 2 * r + 1, 2)
        results = []
        for coords, pyramid in zip((coords0, coords1), self.pyramids, strict=True):
            centres = coords.permute(0, 2, 3, 1).reshape(batch * height * width, 1, 1, 2)
            looked_up = []
            for level, volume in enumerate(pyramid):
                points = centres / 2**level + delta
                size = torch.tensor(volume.shape[-1:-3:-1], device=points.device) - 1
                grid = 2 * points / size - 1
                sampled = F.grid_sample(volume, grid, align_corners=True)
                looked_up.append(sampled.view(batch, height, width, -1))
            results.append(torch.cat(looked_up, dim=-1).permute(0, 3, 1, 2).contiguous().float())
        return results[0], results[1]


class AMTS(nn.Module):
    """The AMT-S network: ``forward(img0, img1, embt)`` -> the frame at time ``embt``."""

    def __init__(self, radius: int = 3, levels: int = 4, flows: int = 3):
        super().__init__()
        channels, side = [20, 32, 44, 56], 20
        self.radius, self.levels, self.flows = radius, levels, flows
        self.feat_encoder = _FeatureEncoder(84)
        self.encoder = _Pyramid(channels)
        self.decoder4 = _InitDecoder(channels[3], channels[2], side)
        self.decoder3 = _IntermediateDecoder(channels[2], channels[1], side)
        self.decoder2 = _IntermediateDecoder(channels[1], channels[0], side)
        self.decoder1 = _MultiFlowDecoder(channels[0], side, flows)
        self.update4 = _UpdateBlock(44, None, levels, radius)
        self.update3 = _UpdateBlock(32, 2, levels, radius)
        self.update2 = _UpdateBlock(20, 4, levels, radius)
        self.comb_block = nn.Sequential(
            nn.Conv2d(3 * flows, 6 * flows, 3, 1, 1),
            nn.PReLU(6 * flows),
            nn.Conv2d(6 * flows, 3, 3, 1, 1),
        )

    def forward(self, img0: Tensor, img1: Tensor, embt: Tensor) -> Tensor:
        """Frames ``(B, 3, H, W)`` in ``[0, 1]`` with ``H, W`` multiples of 16."""
        mean = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True)
        mean = mean.mean(3, keepdim=True)  # reduced in AMT's order, for identical rounding
        img0, img1 = img0 - mean, img1 - mean
        batch, _, height, width = img0.shape
        ys, xs = torch.meshgrid(
            torch.arange(height // 8, device=img0.device),
            torch.arange(width // 8, device=img0.device),
            indexing="ij",
        )
        coord = torch.stack([xs, ys]).float()[None].repeat(batch, 1, 1, 1)
        features = self.feat_encoder(torch.cat([img0, img1]))
        correlation = _BidirectionalCorrelation(
            *features.chunk(2), levels=self.levels, radius=self.radius
        )
        f0 = self.encoder(img0)
        f1 = self.encoder(img1)

        def refine(update, ft, flow0, flow1, downsample):
            if downsample != 1:
                flow0 = _resize(flow0, 1 / downsample) / downsample
                flow1 = _resize(flow1, 1 / downsample) / downsample
            corr = torch.cat(correlation(coord + flow1 / embt, coord + flow0 / (1 - embt)), dim=1)
            return update(ft, torch.cat([flow0, flow1], 1), corr)

        flow0, flow1, ft = self.decoder4(f0[3], f1[3], embt)
        delta_ft, delta_flow = refine(self.update4, ft, flow0, flow1, 1)
        flow0, flow1, ft = flow0 + delta_flow[:, :2], flow1 + delta_flow[:, 2:], ft + delta_ft
        for decoder, update, level, downsample in (
            (self.decoder3, self.update3, 2, 2),
            (self.decoder2, self.update2, 1, 4),
        ):
            flow0, flow1, ft = decoder(ft, f0[level], f1[level], flow0, flow1)
            delta_ft, delta_flow = refine(update, ft, flow0, flow1, downsample)
            flow0, flow1 = flow0 + delta_flow[:, :2], flow1 + delta_flow[:, 2:]
            ft = ft + delta_ft
        flow0, flow1, mask, residual = self.decoder1(ft, f0[0], f1[0], flow0, flow1)
        return self._combine(img0, img1, flow0, flow1, mask, residual, mean).clamp(0, 1)

    def _combine(self, img0, img1, flow0, flow1, mask, residual, mean) -> Tensor:
        n = self.flows
        batch, _, height, width = flow0.shape
        flow0 = flow0.reshape(batch * n, 2, height, width)
        flow1 = flow1.reshape(batch * n, 2, height, width)
        mask = mask.reshape(batch * n, 1, height, width)
        residual = residual.reshape(batch * n, 3, height, width)
        img0 = img0.repeat_interleave(n, dim=0)
        img1 = img1.repeat_interleave(n, dim=0)
        mean = mean.repeat_interleave(n, dim=0)
        warped = mask * warp(img0, flow0) + (1 - mask) * warp(img1, flow1) + mean + residual
        warped = warped.reshape(batch, n, 3, height, width)
        return warped.mean(1) + self.comb_block(warped.reshape(batch, n * 3, height, width))


def load_amt_s(path: str | Path) -> AMTS:
    """AMT-S with the weights of ``amt-s.pth`` (its ``state_dict`` entry), every one required."""
    checkpoint = load_tensors(path, "the AMT-S checkpoint", AMTS_HOW_TO_GET)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise UsageError(f"{path} is not an AMT checkpoint (no state dict in it)")
    model = AMTS()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise UsageError(f"{path} is not an AMT-S checkpoint: {error}") from None
    return model.eval().requires_grad_(False)


@torch.no_grad()
def interpolate_middle(model: AMTS, first: Tensor, second: Tensor) -> Tensor:
    """The frames half-way between ``first`` and ``second`` ``(N, 3, H, W)``, any size.

    Frames are padded (replicating borders, centred) to multiples of 16 as VBench does and
    the result is cropped back.
    """
    height, width = first.shape[-2:]
    pad_h = -height % PAD_MULTIPLE
    pad_w = -width % PAD_MULTIPLE
    pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    first = F.pad(first, pads, mode="replicate")
    second = F.pad(second, pads, mode="replicate")
    embt = torch.full((first.shape[0], 1, 1, 1), 0.5, device=first.device)
    middle = model(first, second, embt)
    return middle[..., pads[2] : pads[2] + height, pads[0] : pads[0] + width]


def motion_smoothness(model: AMTS, video: Tensor, pairs_per_pass: int = 1) -> Tensor:
    """VBench's motion smoothness of one ``(T, 3, H, W)`` video in ``[0, 1]`` (0-d tensor).

    The 8-bit even frames ``0, 2, 4, ...`` are interpolated pairwise; each result, truncated to
    8 bits as VBench converts it, is compared with the odd frame between them:
    ``(255 - mean |odd - interpolated|) / 255``. A video needs at least three frames.
    One pair per network call is VBench's own way and reproduces it bit for bit; several
    (``pairs_per_pass``) run faster on a GPU and differ by float rounding only.
    """
    if video.shape[0] < 3:
        raise ValueError("motion smoothness needs at least three frames (two even, one odd)")
    levels = to_uint8_levels(video)
    even = (levels[0::2] / 255.0).float()
    odd = levels[1::2]
    pairs = even.shape[0] - 1
    middles = [
        interpolate_middle(model, first, second)
        for first, second in zip(
            even[:-1].split(pairs_per_pass), even[1:].split(pairs_per_pass), strict=True
        )
    ]
    predicted = torch.floor((torch.cat(middles) * 255.0).double().clamp(0, 255))
    difference = (odd[:pairs] - predicted).abs().mean()
    return (255.0 - difference) / 255.0
