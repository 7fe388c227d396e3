"""CrossTransformer3DModel: CogVideoX underneath, the reference stream on top, stable layout."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from devis_plugins.trajectorycrafter.loading import load_model
from devis_plugins.trajectorycrafter.model import (
    CrossTransformer3DModel,
    ReferenceCrossAttention,
    count_parameters,
)
from devis_plugins.trajectorycrafter.presets import FULL, TINY

SMALL = {**TINY.transformer, "num_layers": 3, "sample_height": 8, "sample_width": 12}


def _model(**overrides) -> CrossTransformer3DModel:
    torch.manual_seed(0)
    return CrossTransformer3DModel(**{**SMALL, **overrides}).eval()


def _inputs(seed: int = 0, frames: int = 3):
    generator = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": torch.randn(2, frames, 3, 8, 12, generator=generator),
        "encoder_hidden_states": torch.randn(2, 32, 32, generator=generator),
        "timestep": torch.tensor([999, 250]),
        "inpaint_latents": torch.randn(2, frames, 4, 8, 12, generator=generator),
        "reference_latents": torch.randn(2, 2, 3, 8, 12, generator=generator),
    }


@torch.no_grad()
def test_without_reference_stream_it_is_diffusers_cogvideox():
    ours = _model(is_train_cross=False)
    reference = CogVideoXTransformer3DModel(
        **{k: SMALL[k] for k in ("num_attention_heads", "attention_head_dim", "in_channels")},
        out_channels=3,
        time_embed_dim=32,
        text_embed_dim=32,
        num_layers=3,
        sample_height=8,
        sample_width=12,
        max_text_seq_length=32,
        use_rotary_positional_embeddings=True,
    ).eval()
    reference.load_state_dict(ours.state_dict())  # same parameter names, strict
    inputs = _inputs()
    rotary = ours.rotary_embedding(3, 4, 6, torch.device("cpu"))
    expected = reference(
        torch.cat([inputs["hidden_states"], inputs["inpaint_latents"]], dim=2),
        inputs["encoder_hidden_states"],
        inputs["timestep"],
        image_rotary_emb=rotary,
    ).sample
    inputs.pop("reference_latents")
    assert torch.equal(ours(**inputs).sample, expected)


@torch.no_grad()
def test_reference_stream_has_no_effect_when_its_output_projection_is_zero():
    with_cross = _model()
    without = _model(is_train_cross=False)
    without.load_state_dict(with_cross.state_dict(), strict=False)
    inputs = _inputs()
    changed = with_cross(**inputs).sample
    for attention in with_cross.perceiver_cross_attention:
        attention.to_out.weight.zero_()
    plain = without(**{k: v for k, v in inputs.items() if k != "reference_latents"}).sample
    assert not torch.allclose(changed, plain, atol=1e-4)  # the stream matters when it is on
    assert torch.equal(with_cross(**inputs).sample, plain)
    inputs["reference_latents"] = torch.randn_like(inputs["reference_latents"])
    assert torch.equal(with_cross(**inputs).sample, plain)


@torch.no_grad()
def test_reference_cross_attention_is_softmax_attention_of_video_on_reference_tokens():
    torch.manual_seed(1)
    attention = ReferenceCrossAttention(dim=8, heads=2, head_dim=4).double()
    reference, video = torch.randn(1, 5, 8).double(), torch.randn(1, 7, 8).double()
    r, x = attention.norm1(reference), attention.norm2(video)
    q = attention.to_q(x).view(1, 7, 2, 4)
    k, v = (t.view(1, 5, 2, 4) for t in attention.to_kv(r).chunk(2, dim=-1))
    weights = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(4)
    out = torch.einsum("bhqk,bkhd->bqhd", weights.softmax(-1), v).reshape(1, 7, 8)
    assert torch.allclose(attention(reference, video), attention.to_out(out), atol=1e-5)
    # reference tokens are keys/values only: permuting them changes nothing
    assert torch.allclose(
        attention(reference[:, [4, 2, 0, 1, 3]], video), attention(reference, video), atol=1e-5
    )


def test_full_size_architecture_on_the_meta_device():
    with torch.device("meta"):
        model = CrossTransformer3DModel(**FULL.transformer)
    total = sum(p.numel() for p in model.parameters())
    assert total == count_parameters(dict(model.config)) == 6_099_432_000
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["patch_embed.proj.weight"] == (3072, 33, 2, 2)
    assert shapes["patch_embed.text_proj.weight"] == (3072, 4096)
    assert shapes["transformer_blocks.41.attn1.to_q.weight"] == (3072, 3072)
    assert shapes["ref_patch_embed.proj.weight"] == (3072, 16, 2, 2)
    assert shapes["perceiver_cross_attention.20.to_q.weight"] == (2048, 3072)
    assert shapes["perceiver_cross_attention.20.to_kv.weight"] == (4096, 3072)
    assert shapes["perceiver_cross_attention.20.to_out.weight"] == (3072, 2048)
    assert "perceiver_cross_attention.21.to_q.weight" not in shapes  # 42 layers / interval 2
    assert "perceiver_cross_attention.0.to_kv.bias" not in shapes  # bias-free, no gate
    assert shapes["proj_out.weight"] == (2 * 2 * 16, 3072)


def test_parameter_closed_form_matches_small_models():
    for overrides in ({}, {"is_train_cross": False}, {"num_layers": 5, "cross_attn_interval": 3}):
        model = _model(**overrides)
        assert sum(p.numel() for p in model.parameters()) == count_parameters(dict(model.config))


@torch.no_grad()
def test_save_pretrained_round_trip_gives_identical_outputs(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "diffusers")
    loaded = CrossTransformer3DModel.from_pretrained(tmp_path / "diffusers").eval()
    ours = load_model(
        CrossTransformer3DModel, tmp_path / "diffusers", where="", dtype=torch.float32
    )
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    sharded = load_model(
        CrossTransformer3DModel, tmp_path / "sharded", where="", dtype=torch.float32
    )
    expected = model(**_inputs()).sample
    for other in (loaded, ours, sharded):
        assert torch.equal(other(**_inputs()).sample, expected)


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = _inputs()
    grads = []
    for checkpointing in (False, True):
        model = _model()
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.gradient_checkpointing and callable(model._gradient_checkpointing_func)
        model.train()
        model(**inputs).sample.square().mean().backward()
        grads.append(model.perceiver_cross_attention[0].to_kv.weight.grad.clone())
        grads.append(model.transformer_blocks[0].attn1.to_q.weight.grad.clone())
    assert torch.allclose(grads[0], grads[2], atol=1e-6)
    assert torch.allclose(grads[1], grads[3], atol=1e-6)
    assert grads[0].abs().sum() > 0


def test_missing_reference_latents_is_an_error():
    inputs = _inputs()
    inputs.pop("reference_latents")
    with pytest.raises(ValueError, match="reference_latents"):
        _model()(**inputs)
