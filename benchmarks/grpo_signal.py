"""How much of one round's policy gradient is signal? Cosines between independent rounds.

For each setting, the warm-started tiny TrajectoryCrafter of ``configs/grpo-tiny.yaml`` samples
several rounds on the *same* scenes with independent noise (and, for DEVIS sampling,
independent step counts and increments) and computes the full-batch gradient of the
algorithm's loss on each, without updating (:meth:`Trainer.round_gradient`). If a round's
gradient were mostly signal, two rounds would point the same way (cosine near 1); if it is
mostly sampling noise, their cosine is near 0. For a score-function (REINFORCE/GRPO) estimator
with a scalar reward, the expected cosine is about ``n / (n + d_eff)`` for ``n`` samples and an
effective action dimension ``d_eff``: every denoising step of a 6 x 3 x 16 x 24 pixel video is
a 6,912-dimensional Gaussian action. The supervised loss (SFT) is the positive control: its
gradient is not a score-function estimate and should agree across rounds.

    python benchmarks/grpo_signal.py --lora runs/learning/seed0/devis-grpo/warm_start.safetensors
    python benchmarks/grpo_signal.py --write   # also replace the section in RESULTS.md

Without ``--lora`` the warm start of the config is trained first (about a minute).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from results_md import replace_section

from devis_core.config import apply_overrides, read_yaml, validate_config
from devis_core.distributed import World
from devis_core.engines.train import train_pipeline
from devis_core.plugins import load_registry
from devis_core.training import WARM_START_LORA, Trainer

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "grpo-tiny.yaml"
SETTINGS: dict[str, list[str]] = {
    "DEVIS-GRPO, G = 4": ["algorithm.num_generations=4"],
    "DEVIS-GRPO, G = 16": ["algorithm.num_generations=16"],
    "Vanilla-GRPO, G = 16": ["algorithm.num_generations=16", "training.sampling=one-step"],
    "DEVIS-GRPO, G = 16, same noise in a group": [
        "algorithm.num_generations=16",
        "training.same_noise=true",
    ],
    "DEVIS-GRPO, G = 16, PSNR + SSIM reward only": [
        "algorithm.num_generations=16",
        "rewards=[{kind: psnr-visible, range: [5.0, 30.0]}, {kind: ssim-visible}]",
    ],
    "SFT-best, G = 16 (positive control)": [
        "algorithm.num_generations=16",
        "algorithm={kind: sft, mode: best}",
    ],
}


def warm_start(data: dict, registry, directory: Path) -> Path:
    """Train the config's warm start alone (one round is needed by the schema; it is cheap)."""
    data = apply_overrides(data, [f"output={directory}", "training.rounds=1"])
    train_pipeline(validate_config(data, registry), registry, progress=False)
    return directory / WARM_START_LORA


def measure(data: dict, registry, rounds: int) -> dict[str, float]:
    """Gradients of ``rounds`` independent rounds on the same scenes; their pairwise cosines."""
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=None, progress=False
    )
    groups = trainer.settings.groups_per_round
    scenes = len(trainer.pipeline.dataset)
    # round r samples scenes (r * groups + g) % scenes: a stride that is a multiple of
    # scenes / gcd keeps the scenes and changes every seed derived from the round
    stride = scenes // math.gcd(scenes, groups)
    gradients, stds = [], []
    started = time.perf_counter()
    for index in range(rounds):
        gradient, rewards = trainer.round_gradient(1000 + index * stride)
        gradients.append(gradient)
        stds.append(float(rewards.std()))
    seconds = (time.perf_counter() - started) / rounds
    cosines = [
        float(torch.nn.functional.cosine_similarity(a, b, dim=0))
        for a, b in itertools.combinations(gradients, 2)
    ]
    samples = groups * trainer.algorithm.config.num_generations
    return {
        "samples": samples,
        "reward_std": statistics.fmean(stds),
        "cos_mean": statistics.fmean(cosines),
        "cos_std": statistics.stdev(cosines),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lora", type=Path, help="Warm-started LoRA (default: train one).")
    parser.add_argument("--rounds", type=int, default=4, help="Independent rounds per setting.")
    parser.add_argument("--write", action="store_true", help="Update benchmarks/RESULTS.md.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    registry = load_registry()
    base = read_yaml(CONFIG)
    with tempfile.TemporaryDirectory() as scratch:
        lora = args.lora or warm_start(base, registry, Path(scratch) / "warm")
        base = apply_overrides(
            base,
            [f"backbone.lora.path={lora}", "training.warm_start.steps=0", f"output={scratch}"],
        )
        rows = []
        for name, changes in SETTINGS.items():
            result = measure(apply_overrides(base, changes), registry, args.rounds)
            print(name, result, flush=True)
            rows.append((name, result))
    pairs = args.rounds * (args.rounds - 1) // 2
    lines = [
        "| setting | samples per round | reward std in a round | gradient cosine "
        f"(mean ± std of {pairs} pairs) | s per round |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['samples']} | {r['reward_std']:.4f} | "
            f"{r['cos_mean']:+.3f} ± {r['cos_std']:.3f} | {r['seconds']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.write:
        command = "python benchmarks/grpo_signal.py --write" + (
            f" --lora {args.lora}" if args.lora else ""
        )
        header = [
            "## Policy-gradient signal",
            "",
            f"`{command}` ({args.rounds} rounds per setting, torch 1 thread; machine: "
            f"{platform.machine()}, {os.cpu_count()} cores, load average at the end "
            f"{os.getloadavg()[0]:.1f}). Cosine between the full-batch gradients of independent "
            "rounds on the same scenes, at the warm-started weights.",
            "",
        ]
        replace_section("## Policy-gradient signal", "\n".join(header) + table)


if __name__ == "__main__":
    main()
