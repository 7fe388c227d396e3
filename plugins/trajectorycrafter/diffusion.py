"""DDIM with ``eta > 0`` as a Gaussian policy: the posterior math of TrajectoryCrafter's sampler.

A DDIM step from ``x_t`` to ``x_prev`` with noise weight ``eta`` draws
``x_prev ~ N(mean, sigma^2 I)``. For a model that predicts ``v`` (v-prediction, as CogVideoX
does), with ``a_t`` and ``a_prev`` the cumulative alphas of the two timesteps:

- ``x0 = sqrt(a_t) x - sqrt(1 - a_t) v`` and ``eps = sqrt(a_t) v + sqrt(1 - a_t) x``;
- ``sigma = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))``;
- ``mean = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps``.

At ``eta = 0`` the step is the deterministic DDIM sampler; at ``eta > 0`` every step has a
log-probability, which is what GRPO's ratio needs. Coefficients are computed in float64 from
the scheduler's alphas and applied to float32 tensors, so a log-probability recomputed later
under the same weights matches the one stored during sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class DDIMSchedule:
    """The timesteps of a sampling run and the cumulative alphas around each step."""

    timesteps: tuple[int, ...]
    alphas: tuple[float, ...]
    """``alpha_bar`` at each step's timestep."""
    alphas_prev: tuple[float, ...]
    """``alpha_bar`` at the timestep the step goes to (the final alpha after the last step)."""

    @classmethod
    def from_alphas_cumprod(
        cls,
        alphas_cumprod: Tensor | Sequence[float],
        timesteps: Sequence[int],
        num_train_timesteps: int,
        final_alpha_cumprod: float = 1.0,
    ) -> DDIMSchedule:
        """The schedule diffusers' DDIM schedulers step through.

        The previous timestep of ``t`` is ``t - num_train_timesteps // len(timesteps)``; below
        zero it is the final alpha (1 with ``set_alpha_to_one``), which makes the last step
        deterministic whatever ``eta``.
        """
        table = [float(a) for a in torch.as_tensor(alphas_cumprod, dtype=torch.float64)]
        stride = num_train_timesteps // len(timesteps)
        steps = [int(t) for t in timesteps]
        previous = [t - stride for t in steps]
        return cls(
            timesteps=tuple(steps),
            alphas=tuple(table[t] for t in steps),
            alphas_prev=tuple(table[p] if p >= 0 else float(final_alpha_cumprod) for p in previous),
        )

    def __len__(self) -> int:
        return len(self.timesteps)

    def index_of(self, timestep: int | Tensor) -> int:
        """The step whose timestep this is (a rollout stores timesteps, not indices)."""
        return self.timesteps.index(int(timestep))

    def sigma(self, index: int, eta: float) -> float:
        """The standard deviation of step ``index`` at noise weight ``eta``."""
        return ddim_sigma(self.alphas[index], self.alphas_prev[index], eta)


def ddim_sigma(alpha: float, alpha_prev: float, eta: float) -> float:
    """``eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))``."""
    if eta == 0.0:
        return 0.0
    variance = (1.0 - alpha_prev) / (1.0 - alpha) * (1.0 - alpha / alpha_prev)
    return eta * math.sqrt(max(variance, 0.0))


def v_to_x0_eps(sample: Tensor, v: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """The clean sample and the noise a v-prediction implies at cumulative alpha ``alpha``."""
    sqrt_alpha, sqrt_one_minus = math.sqrt(alpha), math.sqrt(1.0 - alpha)
    x0 = sqrt_alpha * sample - sqrt_one_minus * v
    eps = sqrt_alpha * v + sqrt_one_minus * sample
    return x0, eps


def ddim_posterior(
    sample: Tensor, v: Tensor, alpha: float, alpha_prev: float, eta: float
) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation (a 0-dim float32 tensor) of one DDIM step, in float32."""
    sample, v = sample.float(), v.float()
    x0, eps = v_to_x0_eps(sample, v, alpha)
    sigma = ddim_sigma(alpha, alpha_prev, eta)
    direction = math.sqrt(max(1.0 - alpha_prev - sigma**2, 0.0))
    mean = math.sqrt(alpha_prev) * x0 + direction * eps
    return mean, torch.tensor(sigma, dtype=torch.float32, device=sample.device)


def gaussian_log_prob(value: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Log-density of ``value`` under ``N(mean, std^2)``, averaged over all elements (float32).

    The element mean (not the sum) keeps the log-ratio of GRPO on the same scale whatever the
    latent size. ``std`` must be positive: a deterministic step has no density.
    """
    std = torch.as_tensor(std, dtype=torch.float32, device=value.device)
    if not bool((std > 0).all()):
        raise ValueError("a step with std 0 (eta = 0, or the last DDIM step) has no log-density")
    diff = value.float() - mean.float()
    log_density = -(diff**2) / (2.0 * std**2) - torch.log(std) - _LOG_SQRT_2PI
    return log_density.mean()


def ddim_step(
    sample: Tensor,
    v: Tensor,
    alpha: float,
    alpha_prev: float,
    eta: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One DDIM step: ``(next_sample, mean, std)``.

    The noise is drawn on the generator's device (a CPU generator gives the same draws on any
    accelerator) and moved to the sample's device. At ``eta = 0`` no noise is drawn and
    ``next_sample`` is ``mean`` itself.
    """
    mean, std = ddim_posterior(sample, v, alpha, alpha_prev, eta)
    if float(std) == 0.0:
        return mean, mean, std
    noise = standard_normal(mean.shape, generator, mean.device)
    return mean + std * noise, mean, std


def standard_normal(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device | str
) -> Tensor:
    """Float32 standard normal noise drawn from ``generator``, then moved to ``device``.

    Drawing on the generator's device (the CPU for DEVIS's generators) makes the same seed give
    the same noise on every accelerator.
    """
    draw_on = generator.device if generator is not None else device
    noise = torch.randn(tuple(shape), generator=generator, device=draw_on, dtype=torch.float32)
    return noise.to(device)


def noisy_sample_and_v_target(x0: Tensor, noise: Tensor, alphas: Tensor) -> tuple[Tensor, Tensor]:
    """Forward diffusion and its v-prediction target, one alpha per batch element.

    ``x_t = sqrt(a) x0 + sqrt(1 - a) noise`` and ``v = sqrt(a) noise - sqrt(1 - a) x0``, the
    quantity a v-prediction model is trained to output (SFT and Diffusion-DPO losses use it).
    """
    shape = (-1,) + (1,) * (x0.dim() - 1)
    alphas = alphas.to(device=x0.device, dtype=torch.float64).reshape(shape)
    sqrt_alpha = alphas.sqrt().float()
    sqrt_one_minus = (1.0 - alphas).sqrt().float()
    x0, noise = x0.float(), noise.float()
    return sqrt_alpha * x0 + sqrt_one_minus * noise, sqrt_alpha * noise - sqrt_one_minus * x0
