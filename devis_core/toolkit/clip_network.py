"""CLIP image embeddings from a local Hugging Face checkpoint, preprocessed as VBench does.

VBench's aesthetic quality embeds frames with OpenAI's CLIP ViT-L/14 after
``clip_transform(224)``: 8-bit frames resized (shorter side to 224, bicubic, no antialias),
centre-cropped to 224x224, scaled to ``[0, 1]`` and normalised with CLIP's mean and standard
deviation. DEVIS reads the same network in the Hugging Face format (the
``openai/clip-vit-large-patch14`` repository: ``config.json`` plus weights), from a local
directory: ``transformers`` (installed with ``peft``) builds it, nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from devis_core.errors import MissingWeightsError, UsageError
from devis_core.lazy import lazy_import, no_grad
from devis_core.toolkit.measures import to_uint8_levels

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
    from torch import Tensor
else:
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224

CLIP_HOW_TO_GET = (
    "Download the Hugging Face repository openai/clip-vit-large-patch14 (config.json and "
    "model.safetensors are enough), e.g. `huggingface-cli download "
    "openai/clip-vit-large-patch14 --local-dir DIR`, and set `clip_path` to DIR."
)


def clip_preprocess(frames: Tensor) -> Tensor:
    """``(N, 3, H, W)`` in ``[0, 1]`` -> CLIP input ``(N, 3, 224, 224)``, as VBench prepares it."""
    from torchvision.transforms import functional as TF  # torchvision is slow to import

    levels = to_uint8_levels(frames).to(torch.uint8)
    resized = TF.resize(
        levels, CLIP_SIZE, interpolation=TF.InterpolationMode.BICUBIC, antialias=False
    )
    cropped = TF.center_crop(resized, [CLIP_SIZE, CLIP_SIZE])
    scaled = cropped.float() / 255.0
    return TF.normalize(scaled, list(CLIP_MEAN), list(CLIP_STD))


def load_clip_vision(path: str | Path | None) -> torch.nn.Module:
    """``CLIPVisionModelWithProjection`` from a local directory, in eval mode."""
    if path is None:
        raise MissingWeightsError(
            f"CLIP ViT-L/14 weights are needed and `clip_path` is not set. {CLIP_HOW_TO_GET}"
        )
    directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise MissingWeightsError(
            f"no CLIP checkpoint at {directory} (expected {directory / 'config.json'} and the "
            f"weights beside it). {CLIP_HOW_TO_GET}"
        )
    try:
        from transformers import CLIPVisionModelWithProjection
    except ImportError:
        raise UsageError(
            "CLIP embeddings need the `transformers` package: pip install transformers"
        ) from None
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(directory, local_files_only=True)
    except OSError as error:
        raise MissingWeightsError(f"cannot load CLIP from {directory}: {error}") from None
    return model.eval().requires_grad_(False)


class CLIPImageEmbedder:
    """L2-normalised CLIP image embeddings of video frames, on the frames' device."""

    def __init__(self, path: str | Path | None, frames_per_pass: int = 32):
        self.model = load_clip_vision(path)
        self.frames_per_pass = frames_per_pass

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def to(self, device: torch.device | str) -> CLIPImageEmbedder:
        self.model.to(device)
        return self

    @no_grad
    def __call__(self, frames: Tensor) -> Tensor:
        """``(N, 3, H, W)`` frames in ``[0, 1]`` -> ``(N, D)`` unit-length float32 embeddings."""
        self.model.to(frames.device)
        embeddings = []
        for start in range(0, frames.shape[0], self.frames_per_pass):
            pixels = clip_preprocess(frames[start : start + self.frames_per_pass])
            output = self.model(pixel_values=pixels.to(self.model.dtype))
            embeddings.append(output.image_embeds.float())
        return F.normalize(torch.cat(embeddings), dim=-1)
