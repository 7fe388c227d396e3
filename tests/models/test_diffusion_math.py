"""DDIM-with-eta posterior math (trajectorycrafter.diffusion): closed forms and diffusers."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler

from devis_plugins.trajectorycrafter.diffusion import (
    DDIMSchedule,
    ddim_posterior,
    ddim_sigma,
    ddim_step,
    gaussian_log_prob,
    noisy_sample_and_v_target,
)
from devis_plugins.trajectorycrafter.presets import SCHEDULER_CONFIG


def _scheduler(steps: int) -> DDIMScheduler:
    scheduler = DDIMScheduler.from_config(SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    return scheduler


def _schedule(steps: int) -> DDIMSchedule:
    scheduler = _scheduler(steps)
    return DDIMSchedule.from_alphas_cumprod(
        scheduler.alphas_cumprod,
        scheduler.timesteps.tolist(),
        1000,
        float(scheduler.final_alpha_cumprod),
    )


def test_posterior_of_a_one_element_latent_matches_the_closed_form():
    x, v, a, a_prev, eta = 0.7, -0.3, 0.36, 0.64, 0.5
    # by hand: x0 = 0.6*0.7 - 0.8*(-0.3) = 0.66; eps = 0.6*(-0.3) + 0.8*0.7 = 0.38
    # sigma^2 = 0.25 * (0.36/0.64) * (1 - 0.36/0.64) = 0.25 * 0.5625 * 0.4375
    sigma = math.sqrt(0.25 * 0.5625 * 0.4375)
    mean = 0.8 * 0.66 + math.sqrt(1 - 0.64 - sigma**2) * 0.38
    got_mean, got_std = ddim_posterior(torch.tensor([x]), torch.tensor([v]), a, a_prev, eta)
    assert got_mean.item() == pytest.approx(mean, abs=1e-6)
    assert got_std.item() == pytest.approx(sigma, abs=1e-7)
    assert ddim_sigma(a, a_prev, 0.0) == 0.0


def test_first_zero_snr_step_at_eta_one_is_pure_x0_plus_noise():
    # a_t = 0: x0 = -v and sigma^2 = 1 - a_prev, so the eps direction vanishes entirely
    v, a_prev = torch.tensor([0.25, -1.5]), 0.09
    mean, std = ddim_posterior(torch.tensor([3.0, -2.0]), v, 0.0, a_prev, 1.0)
    assert torch.allclose(mean, 0.3 * -v, atol=1e-7)
    assert std.item() == pytest.approx(math.sqrt(0.91), abs=1e-7)


def test_gaussian_log_prob_is_the_element_mean_of_the_normal_density():
    generator = torch.Generator().manual_seed(0)
    value, mean = torch.randn(2, 3, 4, generator=generator), torch.randn(2, 3, 4)
    std = torch.tensor(0.3)
    expected = torch.distributions.Normal(mean, std).log_prob(value).mean()
    assert torch.allclose(gaussian_log_prob(value, mean, std), expected, atol=1e-6)
    with pytest.raises(ValueError, match="std 0"):
        gaussian_log_prob(value, mean, torch.tensor(0.0))


def test_trailing_zero_snr_schedule_ends_on_a_deterministic_step():
    schedule = _schedule(50)
    assert schedule.timesteps[:3] == (999, 979, 959) and schedule.timesteps[-1] == 19
    assert schedule.alphas[0] == 0.0  # zero terminal SNR: pure noise at t = 999
    assert schedule.alphas_prev[-1] == 1.0
    assert schedule.sigma(len(schedule) - 1, eta=1.0) == 0.0
    assert all(schedule.sigma(i, eta=1.0) > 0 for i in range(len(schedule) - 1))
    assert schedule.index_of(torch.tensor(959)) == 2


@pytest.mark.parametrize("eta", [0.0, 0.3, 0.7])
def test_ddim_step_matches_diffusers_ddim_scheduler(eta):
    # (at eta = 1 the first step's sqrt(1 - a_prev - sigma^2) is sqrt(0); diffusers computes it
    # in float32 and gets ~3e-4, which the closed-form test above pins down instead)
    scheduler = _scheduler(10)
    schedule = _schedule(10)
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(1, 2, 3, 4, 5, generator=generator)
    for index, timestep in enumerate(schedule.timesteps):
        v = torch.randn(sample.shape, generator=generator)
        following, mean, std = ddim_step(
            sample,
            v,
            schedule.alphas[index],
            schedule.alphas_prev[index],
            eta,
            torch.Generator().manual_seed(index),
        )
        noise = (following - mean) / std if float(std) > 0 else torch.zeros_like(sample)
        expected = scheduler.step(
            v, timestep, sample, eta=eta, variance_noise=noise, return_dict=False
        )[0]
        assert torch.allclose(following, expected, atol=2e-5, rtol=1e-5), index
        if eta > 0 and index < len(schedule) - 1:
            expected_std = eta * scheduler._get_variance(timestep, timestep - 100) ** 0.5
            assert float(std) == pytest.approx(float(expected_std), rel=1e-5)
        sample = following


def test_v_target_matches_diffusers_velocity_and_inverts_to_x0():
    scheduler = _scheduler(10)
    generator = torch.Generator().manual_seed(2)
    x0 = torch.randn(3, 4, 5, generator=generator)
    noise = torch.randn(3, 4, 5, generator=generator)
    timesteps = torch.tensor([999, 500, 20])
    alphas = scheduler.alphas_cumprod[timesteps].double()
    noisy, target = noisy_sample_and_v_target(x0, noise, alphas)
    assert torch.allclose(noisy, scheduler.add_noise(x0, noise, timesteps), atol=1e-6)
    assert torch.allclose(target, scheduler.get_velocity(x0, noise, timesteps), atol=1e-6)
    a = alphas.float().view(-1, 1, 1)
    assert torch.allclose(a.sqrt() * noisy - (1 - a).sqrt() * target, x0, atol=1e-5)
