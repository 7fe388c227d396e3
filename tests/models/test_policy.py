"""The TrajectoryCrafter backbone as a stochastic policy: rollouts, log-probs, LoRA, losses."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from devis_core.errors import MissingWeightsError, UsageError
from devis_core.types import Backbone, Policy, TrainingBatch
from devis_plugins.grpo import GRPO, GRPOConfig
from devis_plugins.trajectorycrafter.presets import SCHEDULER_CONFIG
from tests.models.conftest import (
    TINY_STEPS,
    make_conditions,
    perturb_lora,
    tiny_backbone,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def policy():
    backbone = tiny_backbone(lora={"rank": 4, "alpha": 8})
    perturb_lora(backbone)
    return backbone


def test_it_is_a_backbone_and_a_policy(policy, conditions):
    assert isinstance(policy, Backbone) and isinstance(policy, Policy)
    video = policy.generate(conditions, _gen())
    assert video.shape == conditions.render.shape and video.dtype == torch.float32
    assert float(video.min()) >= 0.0 and float(video.max()) <= 1.0


def test_rollout_records_every_step_but_the_deterministic_last_one(policy, conditions):
    rollout = policy.rollout(conditions, _gen())
    assert len(rollout.steps) == TINY_STEPS - 1
    assert [int(s.timestep) for s in rollout.steps] == [999, 749, 499]
    for step, following in zip(rollout.steps, rollout.steps[1:], strict=False):
        assert step.next_latents is following.latents
    schedule = policy._schedule
    for index, step in enumerate(rollout.steps):
        assert float(step.std) == pytest.approx(schedule.sigma(index, 1.0), rel=1e-6)
        assert step.mean.dtype == torch.float32 and step.log_prob.dim() == 0
    assert rollout.video.shape == conditions.render.shape


def test_stored_log_probs_equal_recomputation_under_unchanged_weights(policy, conditions):
    rollout = policy.rollout(conditions, _gen(3))
    for index, step in enumerate(rollout.steps):
        log_prob, mean, std = policy.log_prob(conditions, rollout, index)
        assert abs(float(log_prob.detach()) - float(step.log_prob)) < 1e-5
        assert torch.allclose(mean, step.mean, atol=1e-5) and float(std) == float(step.std)


def test_log_probs_do_not_depend_on_the_conditions_cache(policy):
    cond = make_conditions(seed=4)
    rollout = policy.rollout(cond, _gen(4))
    policy._conditions.clear()
    fresh = make_conditions(seed=4)  # equal content, a different object: encoded anew
    recomputed = policy.log_prob(fresh, rollout, 1)[0].detach()
    assert abs(float(recomputed) - float(rollout.steps[1].log_prob)) < 1e-5


def test_eta_zero_rollout_is_the_deterministic_sampler_exactly(conditions):
    backbone = tiny_backbone(eta=0.0)
    rollout = backbone.rollout(conditions, _gen(5))
    assert rollout.steps == []
    assert torch.equal(rollout.video, backbone.generate(conditions, _gen(5)))


@torch.no_grad()
def test_generate_matches_a_loop_over_diffusers_ddim_scheduler(conditions):
    backbone = tiny_backbone()
    pipeline = backbone.pipeline
    enc = pipeline.encode_conditions(conditions, conditions.caption + backbone.config.refine_prompt)
    scheduler = DDIMScheduler.from_config(SCHEDULER_CONFIG)
    scheduler.set_timesteps(TINY_STEPS)
    latents = torch.randn(enc.latent_shape, generator=_gen(6))
    for timestep in scheduler.timesteps:
        v = pipeline.predict_v(latents, int(timestep), enc)
        latents = scheduler.step(v, timestep, latents, eta=0.0, return_dict=False)[0]
    expected = pipeline.decode(latents, enc)
    assert torch.allclose(backbone.generate(conditions, _gen(6)), expected, atol=1e-5)


def test_classifier_free_guidance_combines_the_two_text_branches(conditions):
    backbone = tiny_backbone()
    enc = backbone._encoded(conditions)
    latents = torch.randn(enc.latent_shape, generator=_gen(7))
    with torch.no_grad():
        guided = backbone.pipeline.predict_v(latents, 499, enc)
        text = backbone.pipeline.predict_v(latents, 499, enc, guidance=False)
        negative = backbone.pipeline.predict_v(
            latents,
            499,
            type(enc)(**{**enc.__dict__, "prompt_embeds": enc.negative_embeds}),
            guidance=False,
        )
    assert torch.allclose(guided, negative + 6.0 * (text - negative), atol=1e-5)
    assert not torch.allclose(text, negative, atol=1e-4)


def test_log_prob_gradients_reach_only_the_adapter(policy, conditions):
    rollout = policy.rollout(conditions, _gen(8))
    log_prob, _, _ = policy.log_prob(conditions, rollout, 0)
    log_prob.backward()
    trainable = list(policy.trainable_parameters())
    assert trainable and all(p.grad is not None for p in trainable)
    assert any(float(p.grad.abs().sum()) > 0 for p in trainable)
    frozen = [p for p in policy.transformer.parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)
    assert {id(p) for p in trainable} == {
        id(p) for n, p in policy.transformer.named_parameters() if ".lora_" in n
    }
    for p in trainable:
        p.grad = None


def test_disable_adapter_gives_the_base_model_exactly(conditions):
    base = tiny_backbone()
    adapted = tiny_backbone(lora={"rank": 4})
    perturb_lora(adapted)
    base_video = base.generate(conditions, _gen(9))
    assert not torch.equal(adapted.generate(conditions, _gen(9)), base_video)
    with adapted.disable_adapter():
        off = adapted.generate(conditions, _gen(9))
    assert torch.equal(off, base_video)
    assert not torch.equal(adapted.generate(conditions, _gen(9)), off)  # back on afterwards


def test_grpo_on_fresh_rollouts_has_ratio_one_and_a_kl_gradient(policy):
    conditions = [make_conditions(seed=s) for s in (10, 11)]
    rollouts = [policy.rollout(c, _gen(s)) for s, c in zip((10, 11), conditions, strict=True)]
    batch = TrainingBatch(
        conditions=conditions,
        rollouts=rollouts,
        rewards=torch.tensor([1.0, 0.0]),
        advantages=torch.tensor([1.0, -1.0]),
        group_ids=torch.tensor([0, 0]),
        steps=[[0, 2], [1]],
    )
    loss, stats = GRPO(GRPOConfig(beta=0.1)).loss(batch, policy)
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-5) and stats["kl"] > 0
    loss.backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in policy.trainable_parameters())
    for p in policy.trainable_parameters():
        p.grad = None


def test_lora_save_load_round_trip(tmp_path, policy, conditions):
    path = policy.save_lora(tmp_path / "adapter.safetensors")
    reloaded = tiny_backbone(lora={"path": str(path)})
    assert reloaded.lora_settings.rank == 4 and reloaded.lora_settings.alpha == 8
    for mine, theirs in zip(
        policy.trainable_parameters(), reloaded.trainable_parameters(), strict=True
    ):
        assert torch.equal(mine, theirs)
    expected = policy.generate(conditions, _gen(12))
    assert torch.equal(reloaded.generate(conditions, _gen(12)), expected)
    with pytest.raises(UsageError, match="rank: config 8, file 4"):
        tiny_backbone(lora={"path": str(path), "rank": 8})
    other = tiny_backbone(lora={"rank": 4, "target_modules": ["to_q"]})
    with pytest.raises(MissingWeightsError, match=r"unexpected keys \(\d+\): .*attn1\.to_k"):
        other.load_lora(path)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        tiny_backbone(lora={"path": str(tmp_path / "none.safetensors")})


def test_without_an_adapter_there_is_nothing_to_train(conditions):
    backbone = tiny_backbone()
    with pytest.raises(UsageError, match="backbone.lora"):
        list(backbone.trainable_parameters())
    with backbone.disable_adapter():  # the base model is its own reference
        assert backbone.generate(conditions, _gen()).shape == conditions.render.shape


def test_v_prediction_error_is_the_mse_to_the_velocity(policy, conditions):
    video = torch.rand(conditions.render.shape, generator=_gen(13))
    shape = policy.latent_shape(conditions)
    noise = torch.randn(2, *shape[1:], generator=_gen(14))
    timesteps = torch.tensor([900, 100])
    error = policy.v_prediction_error(conditions, video, timesteps, noise)
    assert error.shape == (2,) and error.requires_grad
    # by hand in pixel space: x0 = 2 video - 1, the latent shape is the video's
    scheduler = DDIMScheduler.from_config(SCHEDULER_CONFIG)
    x0 = (video * 2 - 1).unsqueeze(0).expand(2, -1, -1, -1, -1)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    target = scheduler.get_velocity(x0, noise, timesteps)
    with torch.no_grad():
        prediction = policy.pipeline.predict_v_batch(noisy, timesteps, policy._encoded(conditions))
    expected = ((prediction - target) ** 2).flatten(1).mean(1)
    assert torch.allclose(error.detach(), expected, atol=1e-5)
    with policy.disable_adapter():
        reference = policy.v_prediction_error(conditions, video, timesteps, noise)
    assert not torch.allclose(reference, error.detach())
    error.sum().backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in policy.trainable_parameters())
    for p in policy.trainable_parameters():
        p.grad = None
    with pytest.raises(ValueError, match="noise"):
        policy.v_prediction_error(conditions, video, torch.tensor([5]), noise)


def test_conditions_follow_trajectorycrafter_conventions(conditions):
    backbone = tiny_backbone()
    enc = backbone._encoded(conditions)
    mask_channel, masked = enc.inpaint[0, :, 0], enc.inpaint[0, :, 1:]
    visible = conditions.mask.float()
    assert torch.equal(mask_channel, visible)  # pixel space: 1 - hole, scaling factor 1
    holes = ~conditions.mask.unsqueeze(1).expand_as(masked)
    assert torch.all(masked[holes] == -1.0)
    assert torch.allclose(masked[~holes], (conditions.render * 2 - 1)[~holes], atol=1e-6)
    assert enc.reference.shape[1] == conditions.reference.shape[0]  # all 5 < 10 frames
    assert torch.allclose(enc.reference[0], conditions.reference * 2 - 1, atol=1e-6)
    assert enc.negative_embeds is not None and enc.prompt_embeds.shape == (1, 32, 32)


def test_saved_tiny_model_loads_with_the_plugin_loader(tmp_path, conditions):
    original = tiny_backbone(init_seed=1)
    original.save_pretrained(tmp_path / "tiny")
    loaded = tiny_backbone(
        init_seed=2,  # nothing may come from the seed: every weight is read from disk
        transformer_path=str(tmp_path / "tiny" / "transformer"),
        base_path=str(tmp_path / "tiny" / "base"),
    )
    expected = original.generate(conditions, _gen(15))
    assert torch.equal(loaded.generate(conditions, _gen(15)), expected)
    assert not torch.equal(tiny_backbone(init_seed=2).generate(conditions, _gen(15)), expected)


def test_latent_space_path_with_a_vae(tmp_path):
    backbone = tiny_backbone(
        pixel_space=False, resolution=(32, 48), steps=2, vae_tiling=True, vae_slicing=True
    )
    assert backbone.pipeline.vae.use_tiling and backbone.pipeline.vae.use_slicing
    conditions = make_conditions(frames=6, size=(24, 40))
    enc = backbone._encoded(conditions)
    # 6 frames padded to 9 = 4k + 1 -> 3 latent frames of 4 x 6 (8x spatial)
    assert enc.latent_shape == (1, 3, 4, 4, 6) and enc.inpaint.shape == (1, 3, 5, 4, 6)
    scaling = backbone.pipeline.scaling_factor
    # the right half is a hole in every frame: visibility 1 left, 0 right, times the scaling
    assert torch.allclose(enc.inpaint[0, :, 0, :, :3], torch.full((3, 4, 3), scaling))
    assert torch.allclose(enc.inpaint[0, :, 0, :, 3:], torch.zeros(3, 4, 3))
    video = backbone.generate(conditions, _gen(16))
    assert video.shape == conditions.render.shape
    backbone.save_pretrained(tmp_path / "latent")
    assert (tmp_path / "latent" / "base" / "vae" / "config.json").is_file()


def test_cpu_offload_keeps_one_model_on_the_device_and_changes_nothing(conditions):
    offloaded = tiny_backbone(cpu_offload=True).to("cpu")
    video = offloaded.generate(conditions, _gen(17))
    assert torch.equal(video, tiny_backbone().generate(conditions, _gen(17)))
    assert offloaded.pipeline._on_device is offloaded.pipeline.transformer  # the last one used
