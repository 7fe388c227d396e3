"""DepthCrafter against Tencent/DepthCrafter (``depthcrafter/depth_crafter_ppl.py``, ``unet.py``).

Upstream facts checked here:

- ``encode_vae_video`` takes ``latent_dist.mode()`` of every chunk, unscaled;
- ``__call__`` moves a float16 VAE whose config sets ``force_upcast`` to float32 for the encode,
  back to float16 before ``decode_latents``: the decode runs in the weights' dtype (bfloat16 is
  never upcast);
- the UNet class only overrides ``forward``: the checkpoint is diffusers'
  ``UNetSpatioTemporalConditionModel`` state dict (``manifests/depthcrafter_unet.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from safetensors.torch import save_file

from devis_core.errors import MissingWeightsError
from devis_plugins.depthcrafter.estimator import load_unet
from devis_plugins.depthcrafter.model import DepthCrafterUNet

MANIFEST = Path(__file__).parent / "manifests" / "depthcrafter_unet.json"

SAME_LAYOUT_TINY = {
    "block_out_channels": (32, 64, 96, 96),  # channels change where the published ones do
    "num_attention_heads": (1, 2, 3, 3),
    "cross_attention_dim": 8,
    "addition_time_embed_dim": 4,
    "projection_class_embeddings_input_dim": 12,
}
"""The published block structure at CPU size: the same tensor names, smaller shapes."""


def _build(registry, dtype: str):
    config = {"kind": "depthcrafter", "preset": "tiny", "max_res": 64, "steps": 1}
    return registry.build("depth", {**config, "dtype": dtype})


def _record_dtypes(module: torch.nn.Module, seen: list[tuple[torch.dtype, torch.dtype]]):
    """Note (input dtype, weight dtype) of every call of ``module``."""

    def hook(_module, args):
        seen.append((args[0].dtype, next(_module.parameters()).dtype))

    return module.register_forward_pre_hook(hook)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers
@pytest.mark.parametrize(
    ("dtype", "encode_dtype"),
    [("float16", torch.float32), ("bfloat16", torch.bfloat16), ("float32", torch.float32)],
)
def test_vae_encodes_upcast_and_decodes_in_the_weights_dtype(registry, dtype, encode_dtype):
    estimator = _build(registry, dtype)
    vae = estimator.runner.parts.vae
    weights = getattr(torch, dtype)
    encoded: list[tuple[torch.dtype, torch.dtype]] = []
    decoded: list[tuple[torch.dtype, torch.dtype]] = []
    hooks = [_record_dtypes(vae.encoder, encoded), _record_dtypes(vae.decoder, decoded)]
    try:
        disparity = estimator.disparity(torch.rand(2, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    assert encoded and set(encoded) == {(encode_dtype, encode_dtype)}
    assert decoded and set(decoded) == {(weights, weights)}
    assert {p.dtype for p in vae.parameters()} == {weights}  # cast back after encoding
    assert bool(torch.isfinite(disparity).all())


@torch.no_grad()
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers
def test_video_latents_are_the_posterior_mean_of_the_noise_augmented_video(registry):
    estimator = _build(registry, "float32")
    parts = estimator.runner.parts
    unet_inputs: list[torch.Tensor] = []
    hook = parts.unet.register_forward_pre_hook(lambda _m, args: unet_inputs.append(args[0]))
    video = torch.rand(2, 3, 64, 64)  # 64x64: already DepthCrafter's working size
    try:
        estimator.disparity(video)
    finally:
        hook.remove()
    # Upstream, by hand: noise of the video's shape is the generator's first draw, added at
    # strength 0.02 to the video in [-1, 1]; the latents are the first half of the moments.
    generator = torch.Generator().manual_seed(estimator.config.seed)
    noisy = video * 2 - 1 + 0.02 * torch.randn(video.shape, generator=generator)
    mean, log_variance = parts.vae.quant_conv(parts.vae.encoder(noisy)).chunk(2, dim=1)
    conditioning = unet_inputs[0][0, :, 4:]  # channels 4-7 of (1, T, 8, h, w)
    torch.testing.assert_close(conditioning, mean, rtol=1e-5, atol=1e-5)
    assert float((log_variance.exp().sqrt()).min()) > 1e-2  # a sample would differ visibly


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def test_manifest_is_the_unet_at_the_published_config():
    manifest = _manifest()
    with torch.device("meta"):
        ours = DepthCrafterUNet(**manifest["config"])
    layout = {name: list(tensor.shape) for name, tensor in ours.state_dict().items()}
    assert layout == manifest["tensors"]
    assert sum(torch.Size(s).numel() for s in layout.values()) == manifest["parameters"]


def _write_unet(directory: Path, state: dict[str, torch.Tensor], *, pickled: bool = False) -> None:
    directory.mkdir()
    config = {"_class_name": "DiffusersUNetSpatioTemporalConditionModelDepthCrafter"}
    (directory / "config.json").write_text(json.dumps({**config, **SAME_LAYOUT_TINY}))
    if pickled:
        torch.save(state, directory / "diffusion_pytorch_model.bin")
    else:
        save_file(state, str(directory / "diffusion_pytorch_model.safetensors"))


def _published_layout_at_tiny_size() -> dict[str, torch.Tensor]:
    """Random tensors under exactly the manifest's names, at the tiny config's shapes."""
    with torch.device("meta"):
        tiny = UNetSpatioTemporalConditionModel(**SAME_LAYOUT_TINY)
    shapes = {name: tensor.shape for name, tensor in tiny.state_dict().items()}
    assert sorted(shapes) == sorted(_manifest()["tensors"])
    generator = torch.Generator().manual_seed(0)
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def test_loader_takes_the_published_keys_and_reports_unused_ones(tmp_path):
    state = _published_layout_at_tiny_size()
    extra = {"training_step": torch.tensor(3), "ema.decay": torch.tensor(0.999)}
    _write_unet(tmp_path / "unet", {**state, **extra})
    with pytest.warns(UserWarning, match=r"2 tensors the DepthCrafter UNet does not use.*ema"):
        unet, unused = load_unet(tmp_path / "unet", where="(weights)", dtype=torch.float16)
    assert unused == ["ema.decay", "training_step"]
    loaded = unet.state_dict()
    assert sorted(loaded) == sorted(state)
    assert all(torch.equal(loaded[name], state[name].half()) for name in state)
    assert not any(p.is_meta for p in unet.parameters())


def test_loader_reads_pickled_weights_with_weights_only(tmp_path):
    state = _published_layout_at_tiny_size()
    _write_unet(tmp_path / "unet", state, pickled=True)
    unet, unused = load_unet(tmp_path / "unet", where="(weights)")
    assert unused == [] and torch.equal(
        unet.state_dict()["conv_in.weight"], state["conv_in.weight"]
    )
    # weights_only refuses pickles that would build arbitrary objects (and so run code)
    torch.save({**state, "step": Path("x")}, tmp_path / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(
        MissingWeightsError, match=r"(?s)cannot read weights from .*\.bin.*PosixPath.*\(weights\)"
    ):
        load_unet(tmp_path / "unet", where="(weights)")


def test_loader_names_missing_and_misshapen_tensors(tmp_path):
    state = _published_layout_at_tiny_size()
    del state["conv_out.bias"]
    state["conv_in.bias"] = torch.zeros(5)
    _write_unet(tmp_path / "unet", state)
    with pytest.raises(MissingWeightsError, match=r"missing keys \(1\): conv_out.bias") as error:
        load_unet(tmp_path / "unet", where="(weights)")
    assert "conv_in.bias expected (32,) found (5,)" in str(error.value)
