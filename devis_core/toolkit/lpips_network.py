"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with its trunk from a local file.

What ships where: the ``lpips`` wheel carries only the *linear* calibration layers
(``lpips/weights/v0.1/{alex,vgg}.pth``). The *trunk* (AlexNet or VGG-16 with ImageNet
weights) comes from torchvision's model zoo, which this project never downloads. So the trunk
is read from, in this order:

1. ``weights_path``: either torchvision's ImageNet checkpoint of the trunk
   (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``; the linear layers then come from
   the wheel), or a whole LPIPS state dict holding trunk *and* linear layers (the format
   ``lpips.LPIPS(pretrained=True, pnet_rand=True, model_path=...)`` reads);
2. torch's hub cache, ``$TORCH_HOME/hub/checkpoints/<torchvision file>``, where torchvision
   left it if the user ever loaded that model with downloads allowed.

Every trunk parameter must be found; a partial file is an error, never a half-random network.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from devis_core.errors import MissingWeightsError, UsageError
from devis_core.lazy import lazy_import, no_grad
from devis_core.toolkit.measures import as_batch
from devis_core.toolkit.weights import load_tensors

if TYPE_CHECKING:
    import torch
    from torch import Tensor
else:
    torch = lazy_import("torch")

LPIPSNet = Literal["alex", "vgg"]

TRUNK_FILES: dict[str, str] = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
"""torchvision's file name of each trunk's ImageNet weights."""

TRUNK_URL = "https://download.pytorch.org/models/{file}"


class LPIPSSettings(BaseModel):
    """Which LPIPS network, and where its ImageNet trunk weights are."""

    net: LPIPSNet = Field("alex", description="LPIPS trunk: alex (the default of LPIPS) or vgg.")
    weights_path: Path | None = Field(
        None,
        description="Trunk weights: torchvision's alexnet-owt-7be5be79.pth / "
        "vgg16-397923af.pth, or a full LPIPS state dict (trunk + linear layers). "
        "Default: torch's hub cache.",
    )


def trunk_file(net: str, weights_path: str | Path | None) -> Path:
    """The trunk weights file, or a :class:`MissingWeightsError` saying how to get it."""
    file = TRUNK_FILES[net]
    how = (
        f"Download {TRUNK_URL.format(file=file)} (torchvision's ImageNet weights of the LPIPS "
        f"'{net}' trunk) and set `weights_path` to it, or place it in torch's hub cache at "
        f"{Path(torch.hub.get_dir()) / 'checkpoints' / file}."
    )
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"LPIPS trunk weights not found at {path}. {how}")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / file
    if cached.is_file():
        return cached
    raise MissingWeightsError(
        f"LPIPS needs the ImageNet weights of its '{net}' trunk ({file}), which the lpips "
        f"package does not ship, and none is configured or cached. {how}"
    )


def load_lpips(net: str = "alex", weights_path: str | Path | None = None) -> torch.nn.Module:
    """An ``lpips.LPIPS`` module in eval mode with every weight loaded from local files."""
    import lpips

    path = trunk_file(net, weights_path)
    with warnings.catch_warnings():  # torchvision's notice about the legacy `pretrained` flag
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    state = load_tensors(path, f"the LPIPS '{net}' trunk weights")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UsageError(f"{path} does not hold a state dict (got {type(state).__name__})")
    if any(key.startswith("features.") for key in state):
        state = _trunk_from_torchvision(model, state)
    expected = {k for k in model.state_dict() if k.startswith("net.")}
    missing = sorted(expected - set(state))
    if missing:
        raise UsageError(
            f"{path} is not a complete '{net}' LPIPS trunk: {len(missing)} trunk parameters "
            f"are missing (first: {missing[0]}). Use torchvision's {TRUNK_FILES[net]} or a full "
            "LPIPS state dict."
        )
    result = model.load_state_dict(state, strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith("classifier.")]
    if unexpected:
        raise UsageError(f"{path} holds parameters LPIPS does not have: {unexpected[:3]}")
    return model.eval().requires_grad_(False)


def _trunk_from_torchvision(model: torch.nn.Module, state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision's ``features.<i>.*`` keys to the LPIPS slices that hold layer ``i``."""
    slice_of: dict[str, str] = {}
    for slice_name, block in model.net.named_children():
        for index, _ in block.named_children():
            slice_of[index] = slice_name
    renamed = {}
    for key, value in state.items():
        if not key.startswith("features."):
            continue  # the classifier head is not part of LPIPS
        index, rest = key.removeprefix("features.").split(".", 1)
        if index in slice_of:
            renamed[f"net.{slice_of[index]}.{index}.{rest}"] = value
    return renamed


class LPIPSDistance:
    """LPIPS per frame between two videos, averaged over frames; runs where the videos are."""

    def __init__(self, settings: LPIPSSettings, frames_per_pass: int = 16):
        self.model = load_lpips(settings.net, settings.weights_path)
        self.frames_per_pass = frames_per_pass

    def to(self, device: torch.device | str) -> LPIPSDistance:
        self.model.to(device)
        return self

    @no_grad
    def __call__(self, prediction: Tensor, target: Tensor) -> Tensor:
        """``(T, 3, H, W)`` or ``(B, T, 3, H, W)`` videos in ``[0, 1]`` -> one value per video."""
        if prediction.shape != target.shape:
            raise ValueError(f"shape mismatch: {tuple(prediction.shape)} vs {tuple(target.shape)}")
        pred, batched = as_batch(prediction)
        true, _ = as_batch(target)
        batch, frames = pred.shape[:2]
        flat_pred = pred.reshape(batch * frames, *pred.shape[2:])
        flat_true = true.reshape(batch * frames, *true.shape[2:])
        self.model.to(pred.device)
        step = self.frames_per_pass
        distances = [
            self.model(a.float(), b.float(), normalize=True)
            for a, b in zip(flat_pred.split(step), flat_true.split(step), strict=True)
        ]
        value = torch.cat(distances).reshape(batch, frames).mean(dim=1).to(prediction.dtype)
        return value if batched else value[0]
