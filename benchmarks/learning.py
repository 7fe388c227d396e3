"""Does DEVIS-GRPO learn? Held-out reward of the warm start, + GRPO and + its baselines.

For each seed: ``devis train configs/grpo-tiny.yaml`` (warm start, then DEVIS-GRPO); then, from
the same warm-started LoRA and with the same sample budget (rounds x groups x G videos), each
baseline: Vanilla-GRPO (K = 1), SFT (all, best, weight) and Diffusion-DPO. Every model is
scored on held-out synthetic scenes (another dataset seed) by one-step generation (the
deterministic sampler, the source reprojected by the whole motion): the composite reward of
the config and PSNR / SSIM / PSNR-Nocc against the ground-truth views
(:func:`devis_core.engines.paradigms.train_methods`, which the ``grpo-vs-vanilla`` and
``paradigms`` suites run too; finished rows are reused). The table gives mean
and standard deviation over seeds; the target is a DEVIS-GRPO gain over the warm start larger
than twice the seed-to-seed standard deviation.

    python benchmarks/learning.py                  # 3 seeds, the config's schedule
    python benchmarks/learning.py --quick          # 1 seed, 2 rounds: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from devis_core.config import apply_overrides, read_yaml
from devis_core.engines.evaluate import finite_mean
from devis_core.engines.paradigms import WARM_START, HeldOut, train_methods
from devis_core.plugins import load_registry

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "grpo-tiny.yaml"
METHODS: dict[str, list[str]] = {
    "+ DEVIS-GRPO": [],
    "+ Vanilla-GRPO": ["training.sampling=one-step"],
    "+ SFT-all": ["algorithm={kind: sft, mode: all}"],
    "+ SFT-best": ["algorithm={kind: sft, mode: best}"],
    "+ SFT-weight": ["algorithm={kind: sft, mode: weight}"],
    "+ DPO": ["algorithm={kind: dpo}"],
}
METRICS = ["psnr", "ssim", "psnr-nocc"]
SCORES = ["reward", *METRICS]
"""Each model's mean over the held-out scenes: the config's composite reward and the metrics."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 rounds, 2 scenes.")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--held-out", type=int, default=8, help="Held-out scenes.")
    parser.add_argument("--output", type=Path, default=Path("runs/learning"))
    parser.add_argument("-o", "--override", action="append", default=[], help="KEY=VALUE")
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
        help="Rows to train (DEVIS-GRPO always runs: it trains the warm start).",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    overrides = list(args.override)
    held_out = args.held_out
    if args.quick:
        overrides += ["training.rounds=2", "training.warm_start.steps=10"]
        held_out = min(held_out, 2)
    registry = load_registry()
    rows: dict[str, list[dict[str, float]]] = {}
    chosen = {m: c for m, c in METHODS.items() if m == "+ DEVIS-GRPO" or m in args.methods}
    for seed in seeds:
        base = apply_overrides(read_yaml(CONFIG), [*overrides, f"seed={seed}"])
        trained = train_methods(
            base, chosen, args.output / f"seed{seed}", registry, HeldOut(held_out, list(METRICS))
        )
        for method, found in trained.items():
            scores = {name: finite_mean([r[name] for r in found.records]) for name in SCORES}
            result = {**scores, **found.times}
            rows.setdefault(method, []).append(result)
            print(json.dumps({"seed": seed, "method": method, **result}), flush=True)
    print(table(rows, seeds, overrides))


def table(rows: dict[str, list[dict[str, float]]], seeds: list[int], overrides) -> str:
    """Mean ± std over seeds; ``reward gain`` pairs each seed's run with its own warm start."""
    columns = ["reward", "reward gain", *METRICS, "train minutes"]
    start = [r["reward"] for r in rows.get(WARM_START, [])]
    for results in rows.values():
        for result, reference in zip(results, start, strict=False):
            result["reward gain"] = result["reward"] - reference
    lines = [
        f"seeds {seeds}, overrides {overrides or 'none'}; mean ± std over seeds",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for method, results in rows.items():
        cells = []
        for column in columns:
            values = [r[column] for r in results if column in r]
            if not values:
                cells.append("-")
                continue
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.4f} ± {std:.4f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
