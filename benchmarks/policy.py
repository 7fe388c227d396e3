"""Policy benchmark: what a GRPO rollout costs over plain sampling, and the full model's footprint.

1. Tiny preset on the CPU: a ``rollout`` (DDIM at eta > 0, recording latents, means, stds and
   log-probabilities of every step) against ``sample`` (the same DDIM loop at the same eta,
   recording nothing), same model, conditions and steps. Runs are interleaved and the medians
   compared; the target is a ratio of at most 1.05.
2. When CUDA is available: the full-size TrajectoryCrafter transformer (random weights, bf16) at
   49 frames of 384x672 (13 x 48 x 84 latents, 226 text tokens, 3 reference latent frames):
   seconds per denoising step and peak memory for inference (classifier-free guidance, batch 2)
   and for one GRPO training step (LoRA rank 64 on the attention projections, gradient
   checkpointing, the guided log-probability of one step, backward, AdamW).

``python benchmarks/policy.py`` prints the results; ``--write`` replaces the "## Policy" section
of benchmarks/RESULTS.md (keeping earlier full-size figures when this machine has no GPU).
``--dry-run-full`` runs part 2's code on the CPU with the tiny transformer, to check the script.
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from devis_core.types import Conditions  # noqa: E402
from devis_plugins.trajectorycrafter.config import LoraSettings, TrajectoryCrafterConfig  # noqa: E402
from devis_plugins.trajectorycrafter.diffusion import ddim_posterior, gaussian_log_prob  # noqa: E402
from devis_plugins.trajectorycrafter.lora import add_lora, lora_parameters  # noqa: E402
from devis_plugins.trajectorycrafter.model import CrossTransformer3DModel  # noqa: E402
from devis_plugins.trajectorycrafter.policy import TrajectoryCrafterBackbone  # noqa: E402
from devis_plugins.trajectorycrafter.presets import FULL, TINY  # noqa: E402

SECTION = "## Policy"
FULL_HEADER = "### Full size"


# --------------------------------------------------------------------------------------------
# 1. Tiny preset, CPU: rollout with log-probs vs plain sampling
# --------------------------------------------------------------------------------------------


def _conditions(frames: int, height: int, width: int) -> Conditions:
    generator = torch.Generator().manual_seed(0)
    render = torch.rand(frames, 3, height, width, generator=generator)
    mask = torch.rand(frames, height, width, generator=generator) > 0.4
    reference = torch.rand(frames, 3, height, width, generator=generator)
    return Conditions(render, mask, reference, "a synthetic scene")


def measure_tiny(frames: int, height: int, width: int, repeats: int) -> dict[str, Any]:
    """Fastest seconds of ``sample`` and ``rollout`` (interleaved runs) and their ratio.

    The minimum, not the mean: other load on the machine only ever adds time, so the fastest
    run of each is the closest to its cost.
    """
    backbone = TrajectoryCrafterBackbone(TrajectoryCrafterConfig(preset="tiny", eta=1.0))
    cond = _conditions(frames, height, width)
    backbone.rollout(cond, torch.Generator().manual_seed(0))  # warm-up, encodes the conditions
    plain, rollout = [], []
    for repeat in range(repeats):
        for kind in ("plain", "rollout") if repeat % 2 == 0 else ("rollout", "plain"):
            generator = torch.Generator().manual_seed(repeat)
            start = time.perf_counter()
            if kind == "plain":
                backbone.sample(cond, generator, eta=1.0)
                plain.append(time.perf_counter() - start)
            else:
                backbone.rollout(cond, generator)
                rollout.append(time.perf_counter() - start)
    plain_s, rollout_s = min(plain), min(rollout)
    latent = backbone.pipeline.latent_shape(frames)
    return {
        "frames": frames,
        "size": f"{height}x{width}",
        "model_size": "x".join(map(str, backbone.pipeline.resolution)),
        "latent": "x".join(map(str, latent[1:])),
        "steps": backbone.steps,
        "repeats": repeats,
        "plain_s": plain_s,
        "rollout_s": rollout_s,
        "ratio": rollout_s / plain_s,
        "median_ratio": statistics.median(rollout) / statistics.median(plain),
        "threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------------------------
# 2. Full size on a GPU: inference and one LoRA training step
# --------------------------------------------------------------------------------------------


def _full_inputs(config: dict[str, Any], frames: int, height: int, width: int, device, dtype):
    """Random transformer inputs of a ``frames x height x width`` video (latent space)."""
    spatial = 1 if config["in_channels"] == 7 else 8  # tiny pixel-space dry run vs VAE latents
    temporal = 1 if spatial == 1 else 4
    latent_frames = (frames - 1) // temporal + 1
    h, w = height // spatial, width // spatial
    channels = config["out_channels"]
    ref_frames = (10 - 1) // temporal + 1 if temporal > 1 else 10
    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device, dtype)

    return {
        "latents": randn(1, latent_frames, channels, h, w).float(),
        "text": randn(2, config["max_text_seq_length"], config["text_embed_dim"]),
        "inpaint": randn(1, latent_frames, channels + 1, h, w),
        "reference": randn(1, ref_frames, config["cross_attn_in_channels"], h, w),
    }


def _guided_v(model, inputs, timestep: int):
    latents = inputs["latents"].to(inputs["text"].dtype).expand(2, -1, -1, -1, -1)
    out = model(
        hidden_states=latents,
        encoder_hidden_states=inputs["text"],
        timestep=torch.full((2,), timestep, device=latents.device, dtype=torch.long),
        inpaint_latents=inputs["inpaint"].expand(2, -1, -1, -1, -1),
        reference_latents=inputs["reference"].expand(2, -1, -1, -1, -1),
        return_dict=False,
    )[0].float()
    uncond, text = out.chunk(2)
    return uncond + 6.0 * (text - uncond)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gib(device: torch.device) -> float:
    if device.type != "cuda":
        return float("nan")
    return torch.cuda.max_memory_allocated(device) / 2**30


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure_full(
    device: torch.device,
    config: dict[str, Any],
    frames: int,
    height: int,
    width: int,
    repeats: int,
    dtype: torch.dtype,
) -> dict[str, Any]:
    """Seconds per step and peak memory: guided inference, then one LoRA GRPO training step."""
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = CrossTransformer3DModel(**config).eval()
    finally:
        torch.set_default_dtype(previous)
    inputs = _full_inputs(config, frames, height, width, device, dtype)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_gib": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30,
        "latent": "x".join(map(str, inputs["latents"].shape[1:])),
    }

    _reset_peak(device)
    with torch.no_grad():
        _guided_v(model, inputs, 999)  # warm-up
        _synchronize(device)
        times = []
        for index in range(repeats):
            start = time.perf_counter()
            _guided_v(model, inputs, 999 - 20 * index)
            _synchronize(device)
            times.append(time.perf_counter() - start)
    result["inference_s_per_step"] = statistics.median(times)
    result["inference_peak_gib"] = _peak_gib(device)

    add_lora(model, LoraSettings(rank=64, alpha=64))
    model.enable_gradient_checkpointing()
    model.train()
    optimizer = torch.optim.AdamW(lora_parameters(model), lr=1e-5)
    next_latents = torch.randn_like(inputs["latents"])

    def training_step() -> None:
        v = _guided_v(model, inputs, 979)
        mean, std = ddim_posterior(inputs["latents"], v, 0.05, 0.06, 1.0)
        loss = -gaussian_log_prob(next_latents, mean, std)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    _reset_peak(device)
    training_step()  # warm-up (optimizer state is allocated here)
    _synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        training_step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    result["train_s_per_step"] = statistics.median(times)
    result["train_peak_gib"] = _peak_gib(device)
    result["lora_parameters"] = sum(p.numel() for p in lora_parameters(model))
    return result


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def tiny_table(row: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| conditions | model size | latent (F x C x h x w) | steps | sample (s) | "
            "rollout + log-probs (s) | ratio | ratio of medians |",
            "|---|---|---|---|---|---|---|---|",
            f"| {row['frames']} x {row['size']} | {row['model_size']} | {row['latent']} | "
            f"{row['steps']} | {row['plain_s']:.3f} | {row['rollout_s']:.3f} | "
            f"**{row['ratio']:.3f}** | {row['median_ratio']:.3f} |",
        ]
    )


def full_table(row: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Measured on {row['device']}: {row['parameters'] / 1e9:.2f}B parameters "
            f"({row['weights_gib']:.1f} GiB of weights), latents {row['latent']}, LoRA "
            f"{row['lora_parameters'] / 1e6:.1f}M parameters.",
            "",
            "| | seconds per denoising step | peak memory (GiB) |",
            "|---|---|---|",
            f"| inference, bf16, CFG batch 2 | {row['inference_s_per_step']:.2f} | "
            f"{row['inference_peak_gib']:.1f} |",
            f"| GRPO training step, LoRA r64 + gradient checkpointing | "
            f"{row['train_s_per_step']:.2f} | {row['train_peak_gib']:.1f} |",
        ]
    )


def write_results(tiny: dict[str, Any], full: dict[str, Any] | None) -> None:
    """Replace (or append) the policy section of RESULTS.md."""
    from results_md import current_section, replace_section  # sibling module in benchmarks/

    old = current_section(SECTION)
    if full is not None:
        full_text = full_table(full)
    else:
        previous = re.search(
            rf"^{re.escape(FULL_HEADER)}.*?\n\n(Measured on .*?)(?=^#|\Z)",
            old,
            re.MULTILINE | re.DOTALL,
        )
        full_text = (
            previous.group(1).strip()
            if previous
            else "Not measured: no GPU was lent to the session that wrote this section. Run "
            "`python benchmarks/policy.py --write` on a CUDA machine to fill it in."
        )
    section = f"""{SECTION}

`python benchmarks/policy.py --write` ({platform.machine()}, torch {torch.__version__}).

### Tiny preset, CPU: rollout with log-probabilities vs plain sampling

Same model, conditions, steps and eta (1.0); fastest of {tiny["repeats"]} interleaved runs
each (other load only adds time), {tiny["threads"]} intra-op thread(s). The rollout also
keeps every step's latents, mean and std and computes the float32 log-probability; the
target is a ratio of at most 1.05.

{tiny_table(tiny)}

{FULL_HEADER} (random weights), 49 x 384 x 672

{full_text}
"""
    replace_section(SECTION, section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="tiny: frames of the conditions")
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: stable timings on busy machines)"
    )
    parser.add_argument("--full-repeats", type=int, default=3)
    parser.add_argument("--dry-run-full", action="store_true", help="part 2 on CPU, tiny model")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    tiny = measure_tiny(args.frames, args.height, args.width, args.repeats)
    print(tiny_table(tiny))

    full = None
    if args.dry_run_full:
        row = measure_full(torch.device("cpu"), TINY.transformer, 9, 24, 40, 1, torch.float32)
        print(full_table(row))
    elif torch.cuda.is_available():
        full = measure_full(
            torch.device("cuda"), FULL.transformer, 49, 384, 672, args.full_repeats, torch.bfloat16
        )
        print(full_table(full))
    else:
        print("no CUDA device: full-size figures not measured")
    if args.write:
        write_results(tiny, full)
    return 0


if __name__ == "__main__":
    sys.exit(main())
