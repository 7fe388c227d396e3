"""Reward term ``no-reference-quality``: per-frame no-reference image quality, averaged (Eq. 16).

Two models. ``musiq`` is what the paper uses (VBench's imaging quality: MUSIQ trained on SPAQ,
mean opinion score / 100; higher is better): it needs the checkpoint and the optional ``pyiqa``
package. ``brisque`` runs with no download, for CPU runs and tests: BRISQUE with the regressor
that ships inside the ``brisque`` wheel (score about 0 to 100; lower is better). The term
declares the direction and range of the model it runs, so the composite reward treats both
alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, model_validator

import devis_core
from devis_core.lazy import lazy_function, lazy_import
from devis_core.toolkit.measures import as_batch, frame_chunks
from devis_core.toolkit.musiq_network import MUSIQScorer
from devis_core.types import RewardInputs

if TYPE_CHECKING:
    import torch

    from devis_plugins.no_reference_quality.brisque import (
        BrisqueModel,
        brisque_score,
        load_brisque_model,
    )
else:
    brisque_score = lazy_function("devis_plugins.no_reference_quality.brisque", "brisque_score")
    load_brisque_model = lazy_function(
        "devis_plugins.no_reference_quality.brisque", "load_brisque_model"
    )
    torch = lazy_import("torch")


class NoReferenceQualityConfig(BaseModel):
    """Which no-reference quality model, and its weights."""

    model: Literal["musiq", "brisque"] = Field(
        "musiq",
        description="musiq: the paper's (needs weights_path and pyiqa); brisque: offline, "
        "its model ships with the brisque package.",
    )
    weights_path: Path | None = Field(
        None, description="MUSIQ only: the SPAQ checkpoint musiq_spaq_ckpt-358bb6af.pth."
    )
    frames_per_pass: int = Field(8, ge=1, description="MUSIQ only: frames scored at once.")

    @model_validator(mode="after")
    def _weights_for_musiq_only(self) -> NoReferenceQualityConfig:
        if self.model == "brisque" and self.weights_path is not None:
            raise ValueError("weights_path is for model: musiq; brisque needs no weights")
        return self


class NoReferenceQuality:
    """Per-frame no-reference image quality averaged over frames (MUSIQ or BRISQUE)."""

    def __init__(self, config: NoReferenceQualityConfig):
        self.config = config
        if config.model == "musiq":
            self.higher_is_better = True
            self.default_range = (0.0, 1.0)
            self._musiq = MUSIQScorer(config.weights_path, config.frames_per_pass)
        else:
            self.higher_is_better = False
            self.default_range = (0.0, 100.0)
            self._brisque = load_brisque_model()

    def to(self, device: torch.device | str) -> NoReferenceQuality:
        if self.config.model == "musiq":
            self._musiq.to(device)
        else:
            self._brisque = self._brisque.to(device)
        return self

    def score(self, batch: RewardInputs) -> torch.Tensor:
        if self.config.model == "musiq":
            return self._musiq(batch.generated)
        return brisque_video(batch.generated, self._brisque)


def brisque_video(video: torch.Tensor, model: BrisqueModel) -> torch.Tensor:
    """BRISQUE per frame, averaged over frames: one value per video."""
    frames, batched = as_batch(video)
    batch, count = frames.shape[:2]
    flat = frames.reshape(batch * count, *frames.shape[2:])
    model = model.to(flat.device)
    per_frame = flat[0, 0].numel()
    chunks = frame_chunks(batch * count, per_frame, flat.device)
    scores = torch.cat([brisque_score(flat[start:stop], model) for start, stop in chunks])
    value = scores.reshape(batch, count).mean(dim=1).to(video.dtype)
    return value if batched else value[0]


@devis_core.hookimpl
def devis_register_reward_terms(register):
    register("no-reference-quality", NoReferenceQuality, NoReferenceQualityConfig)
