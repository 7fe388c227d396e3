"""VBench's video-quality dimensions as metrics: flicker, smoothness, aesthetics, imaging.

Defined as VBench (Huang et al. 2024) defines them, on the generated video alone (``target``
and ``mask`` are ignored):

- ``temporal-flicker``: ``(255 - mean |frame[t+1] - frame[t]|) / 255`` on 8-bit levels. Exact.
- ``motion-smoothness``: the AMT-S frame interpolator rebuilds every odd frame from its even
  neighbours; ``(255 - mean |odd - rebuilt|) / 255`` on 8-bit levels. Needs ``amt-s.pth``.
- ``aesthetic-quality``: CLIP ViT-L/14 image embedding, L2-normalised, through the LAION
  aesthetic linear head, divided by 10, averaged over frames. Needs both weight files.
- ``imaging-quality``: MUSIQ (SPAQ) mean opinion score / 100, averaged over frames. Needs the
  checkpoint and the optional ``pyiqa`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

import devis_core
from devis_core.errors import UsageError
from devis_core.lazy import lazy_function, lazy_import, no_grad
from devis_core.toolkit.clip_network import CLIPImageEmbedder
from devis_core.toolkit.measures import as_batch, temporal_flicker
from devis_core.toolkit.musiq_network import MUSIQScorer
from devis_core.toolkit.weights import load_tensors, require_file

if TYPE_CHECKING:
    import torch

    from devis_plugins.vbench.amt import load_amt_s, motion_smoothness
else:  # AMT-S is a network of torch modules: defined when motion smoothness is built
    load_amt_s = lazy_function("devis_plugins.vbench.amt", "load_amt_s")
    motion_smoothness = lazy_function("devis_plugins.vbench.amt", "motion_smoothness")
    torch = lazy_import("torch")

AESTHETIC_HEAD_FILE = "sa_0_4_vit_l_14_linear.pth"
AESTHETIC_HOW_TO_GET = (
    f"Download {AESTHETIC_HEAD_FILE} from the GitHub repository LAION-AI/aesthetic-predictor "
    "(the linear head VBench uses) and set `head_path` to it."
)


class TemporalFlickerConfig(BaseModel):
    """Temporal flicker has no settings."""


class MotionSmoothnessConfig(BaseModel):
    """Where the AMT-S checkpoint is."""

    weights_path: Path | None = Field(None, description="AMT-S checkpoint (amt-s.pth).")
    pairs_per_pass: int = Field(
        1, ge=1, description="Frame pairs per network call: 1 is VBench's, more is faster."
    )


class AestheticQualityConfig(BaseModel):
    """Where the CLIP ViT-L/14 checkpoint and the LAION aesthetic head are."""

    clip_path: Path | None = Field(
        None, description="Local Hugging Face directory of openai/clip-vit-large-patch14."
    )
    head_path: Path | None = Field(
        None, description=f"LAION aesthetic predictor head ({AESTHETIC_HEAD_FILE})."
    )


class ImagingQualityConfig(BaseModel):
    """Where the MUSIQ SPAQ checkpoint is."""

    weights_path: Path | None = Field(
        None, description="MUSIQ SPAQ checkpoint (musiq_spaq_ckpt-358bb6af.pth)."
    )


class TemporalFlicker:
    """VBench temporal flickering: 1 - mean absolute change between consecutive frames / 255."""

    higher_is_better = True

    def __init__(self, config: TemporalFlickerConfig):
        self.config = config

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return temporal_flicker(prediction)


class MotionSmoothness:
    """VBench motion smoothness: how well AMT-S rebuilds the odd frames from the even ones."""

    higher_is_better = True

    def __init__(self, config: MotionSmoothnessConfig):
        self.config = config
        path = require_file(
            config.weights_path,
            "The AMT-S checkpoint (amt-s.pth)",
            lazy_import("devis_plugins.vbench.amt").AMTS_HOW_TO_GET,
            "weights_path",
        )
        self.model = load_amt_s(path)

    def to(self, device: torch.device | str) -> MotionSmoothness:
        self.model.to(device)
        return self

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        videos, batched = as_batch(prediction)
        self.model.to(videos.device)
        value = torch.stack(
            [motion_smoothness(self.model, v, self.config.pairs_per_pass) for v in videos]
        )
        value = value.to(prediction.dtype)
        return value if batched else value[0]


class AestheticQuality:
    """VBench aesthetic quality: LAION aesthetic score of CLIP embeddings / 10, frame mean."""

    higher_is_better = True

    def __init__(self, config: AestheticQualityConfig):
        self.config = config
        head_file = require_file(
            config.head_path, "The LAION aesthetic head", AESTHETIC_HOW_TO_GET, "head_path"
        )
        self.embed = CLIPImageEmbedder(config.clip_path)
        self.head = load_linear_head(head_file, self.embed.dim)

    def to(self, device: torch.device | str) -> AestheticQuality:
        self.embed.to(device)
        self.head.to(device)
        return self

    @no_grad
    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        videos, batched = as_batch(prediction)
        batch, frames = videos.shape[:2]
        embeddings = self.embed(videos.reshape(batch * frames, *videos.shape[2:]))
        self.head.to(embeddings.device)
        scores = self.head(embeddings).reshape(batch, frames) / 10.0
        value = scores.mean(dim=1).to(prediction.dtype)
        return value if batched else value[0]


def load_linear_head(path: Path, features: int) -> torch.nn.Linear:
    """A ``Linear(features, 1)`` from a state dict file (``weight`` and ``bias``)."""
    state = load_tensors(path, "the aesthetic linear head")
    head = torch.nn.Linear(features, 1)
    try:
        head.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise UsageError(
            f"{path} is not a linear head for {features}-dimensional CLIP embeddings: {error}"
        ) from None
    return head.eval().requires_grad_(False)


class ImagingQuality:
    """VBench imaging quality: MUSIQ (SPAQ) mean opinion score / 100, averaged over frames."""

    higher_is_better = True

    def __init__(self, config: ImagingQualityConfig):
        self.config = config
        self.scorer = MUSIQScorer(config.weights_path)

    def to(self, device: torch.device | str) -> ImagingQuality:
        self.scorer.to(device)
        return self

    def compute(
        self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.scorer(prediction)


@devis_core.hookimpl
def devis_register_metrics(register):
    register("temporal-flicker", TemporalFlicker, TemporalFlickerConfig)
    register("motion-smoothness", MotionSmoothness, MotionSmoothnessConfig)
    register("aesthetic-quality", AestheticQuality, AestheticQualityConfig)
    register("imaging-quality", ImagingQuality, ImagingQualityConfig)
