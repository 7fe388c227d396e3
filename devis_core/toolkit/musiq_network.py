"""MUSIQ (Ke et al. 2021) image quality through ``pyiqa``, as VBench's imaging quality runs it.

VBench builds ``pyiqa.archs.musiq_arch.MUSIQ`` from the SPAQ checkpoint
(``musiq_spaq_ckpt-358bb6af.pth``), feeds it each frame separately after its ``longer``
preprocessing (8-bit frames whose longer side exceeds 512 are resized, bilinear without
antialiasing, to ``int(512 / longer * side)``; then divided by 255) and reports the mean
opinion score divided by 100, averaged over frames. ``pyiqa`` is an optional dependency
(``pip install 'devis[musiq]'``; its licence is non-commercial), imported only here.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from devis_core.errors import UsageError
from devis_core.lazy import lazy_import, no_grad
from devis_core.toolkit.measures import as_batch, to_uint8_levels
from devis_core.toolkit.weights import load_tensors, require_file

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy_import("torch")

MUSIQ_FILE = "musiq_spaq_ckpt-358bb6af.pth"
MUSIQ_HOW_TO_GET = (
    f"Download {MUSIQ_FILE} from the v0.1-weights release of chaofengc/IQA-PyTorch on GitHub "
    "(the file VBench uses for imaging quality) and set `weights_path` to it."
)
MAX_SIDE = 512


def load_musiq(weights_path: str | Path | None) -> torch.nn.Module:
    """pyiqa's MUSIQ with the SPAQ weights of ``weights_path`` (every parameter required)."""
    path = require_file(
        weights_path, f"The MUSIQ SPAQ checkpoint ({MUSIQ_FILE})", MUSIQ_HOW_TO_GET, "weights_path"
    )
    try:
        from pyiqa.archs.musiq_arch import MUSIQ
    except ImportError:
        raise UsageError(
            "MUSIQ runs through the optional `pyiqa` package: pip install 'devis[musiq]' "
            "(or pip install pyiqa; note its non-commercial licence)"
        ) from None
    model = MUSIQ(pretrained=False)
    state = load_tensors(path, "the MUSIQ checkpoint", MUSIQ_HOW_TO_GET)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, pickle.UnpicklingError) as error:
        raise UsageError(f"{path} is not a MUSIQ (single-score) checkpoint: {error}") from None
    return model.eval().requires_grad_(False)


def vbench_musiq_input(frames: Tensor) -> Tensor:
    """VBench's ``longer`` preprocessing of ``(N, 3, H, W)`` frames in ``[0, 1]``."""
    from torchvision.transforms import functional as TF  # torchvision is slow to import

    levels = to_uint8_levels(frames).to(torch.uint8)
    height, width = frames.shape[-2:]
    if max(height, width) > MAX_SIDE:
        scale = MAX_SIDE / max(height, width)
        size = [int(scale * height), int(scale * width)]
        levels = TF.resize(
            levels, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=False
        )
    return levels.float() / 255.0


class MUSIQScorer:
    """MUSIQ mean opinion score / 100 per frame, averaged over frames (higher is better)."""

    def __init__(self, weights_path: str | Path | None, frames_per_pass: int = 8):
        self.model = load_musiq(weights_path)
        self.frames_per_pass = frames_per_pass

    def to(self, device: torch.device | str) -> MUSIQScorer:
        self.model.to(device)
        return self

    @no_grad
    def __call__(self, video: Tensor) -> Tensor:
        """``(T, 3, H, W)`` or ``(B, T, 3, H, W)`` -> one value per video."""
        frames, batched = as_batch(video)
        batch, count = frames.shape[:2]
        flat = frames.reshape(batch * count, *frames.shape[2:])
        self.model.to(flat.device)
        step = self.frames_per_pass
        scores = [
            self.model(vbench_musiq_input(flat[i : i + step].float())).reshape(-1)
            for i in range(0, batch * count, step)
        ]
        value = (torch.cat(scores).reshape(batch, count) / 100.0).mean(dim=1)
        return value.to(video.dtype) if batched else value[0].to(video.dtype)
