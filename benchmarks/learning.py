"""Does DEVIS-GRPO learn? The pre-trained toy model trained on 60-90 degree orbits by six methods.

For each seed, ``configs/grpo-toy.yaml`` (the toy TrajectoryCrafter pre-trained on orbits of
at most 20 degrees; no warm start, no large-view pairs) is trained by DEVIS-GRPO,
Vanilla-GRPO (K = 1), SFT (all, best, weight) and Diffusion-DPO, each from the same fresh LoRA
and with the same sample budget (rounds x groups x G videos;
:func:`devis_core.engines.paradigms.train_methods`, which the ``grpo-vs-vanilla`` and
``paradigms`` suites run too). Every round's LoRA is kept (``training.save_total_limit:
null``) and scored by one-step generation (the deterministic sampler, the source reprojected
by the whole motion) on held-out scenes: the config's composite reward and PSNR / SSIM /
PSNR-Nocc against the ground-truth views. The final LoRAs make the table (mean ± std over
seeds, training wall time per method), every round's the learning curves (mean and a band of
one standard deviation over seeds). Scores are records beside each run and are reused, so
seeds can run in parallel processes (``--seeds 0``, ``--seeds 1``, ...) and a last call with
every seed only reads them and writes the table and the plot.

Held-out scenes: ``--split evaluation`` (dataset seed 1000, the reported numbers) or
``--split validation`` (seed 500), on which settings are chosen: never on the evaluation ones.

    python benchmarks/learning.py                  # 3 seeds, evaluation scenes
    python benchmarks/learning.py --quick          # 1 seed, 2 rounds, 2 scenes: checks it runs
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch

from devis_core.config import apply_overrides, read_yaml
from devis_core.engines.evaluate import finite_mean
from devis_core.engines.paradigms import (
    WARM_START,
    HeldOut,
    method_configs,
    score_held_out,
    starting_lora,
    train_methods,
)
from devis_core.engines.tables import slug
from devis_core.plugins import load_registry
from devis_core.registry import Registry
from devis_core.toolkit.files import atomic_path, atomic_write_text
from devis_core.toolkit.results import RecordLog
from devis_core.training.checkpoints import FINAL_LORA, checkpoints, round_of

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "grpo-toy.yaml"
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
SPLITS = {"evaluation": 1000, "validation": 500}
"""Dataset seed of the held-out scenes of each split (training draws the config's seed 0)."""
CURVE_RECORDS = "curve.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 rounds, 2 scenes.")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--held-out", type=int, default=8, help="Held-out scenes.")
    parser.add_argument("--split", choices=list(SPLITS), default="evaluation")
    parser.add_argument("--output", type=Path, default=Path("runs/learning"))
    parser.add_argument("-o", "--override", action="append", default=[], help="KEY=VALUE")
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
        help="Rows to train (DEVIS-GRPO always runs: it saves the starting LoRA).",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    overrides = ["training.save_total_limit=null", *args.override]
    held_out_scenes = min(args.held_out, 2) if args.quick else args.held_out
    if args.quick:
        overrides.append("training.rounds=2")
    registry = load_registry()
    chosen = {m: c for m, c in METHODS.items() if m == "+ DEVIS-GRPO" or m in args.methods}
    rows: dict[str, list[dict[str, float]]] = {}
    curves: dict[str, list[list[dict[str, float]]]] = {}
    for seed in seeds:
        base = apply_overrides(read_yaml(CONFIG), [*overrides, f"seed={seed}"])
        held_out = HeldOut(
            held_out_scenes,
            list(METRICS),
            dataset={**base["dataset"], "seed": SPLITS[args.split], "num_samples": held_out_scenes},
        )
        directory = args.output / args.split / f"seed{seed}"
        trained = train_methods(base, chosen, directory, registry, held_out)
        for method, found in trained.items():
            result = {**mean_scores(found.records), **found.times}
            rows.setdefault(method, []).append(result)
            print(json.dumps({"seed": seed, "method": method, **result}), flush=True)
        start = starting_lora(directory, chosen)
        for method, data in method_configs(base, chosen, directory).items():
            curve = learning_curve(data, directory / slug(method), start, registry, held_out)
            curves.setdefault(method, []).append(curve)
    text = table(rows, seeds, args.split, overrides)
    print(text)
    (args.output / args.split).mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output / args.split / "table.md", text + "\n")
    plot_curves(curves, args.output / args.split / "curves.png", args.split)


def mean_scores(records: list[dict[str, Any]]) -> dict[str, float]:
    """A model's mean of each score over the held-out scenes."""
    return {name: finite_mean([r[name] for r in records]) for name in SCORES}


def learning_curve(
    data: dict[str, Any], run: Path, start: Path, registry: Registry, held_out: HeldOut
) -> list[dict[str, float]]:
    """Held-out scores after each round of ``run`` (its checkpoints' LoRAs), from the LoRA
    ``start`` it began with (round 0); records kept in ``run/curve.jsonl``."""
    log = RecordLog(run / CURVE_RECORDS)
    loras = {0: start} | {round_of(c): c / FINAL_LORA for c in checkpoints(run)}
    curve = []
    for rounds, lora in sorted(loras.items()):
        records = score_held_out(data, lora, registry, held_out, log=log, method=f"round {rounds}")
        curve.append({"round": rounds, **mean_scores(records)})
    return curve


def table(
    rows: dict[str, list[dict[str, float]]], seeds: list[int], split: str, overrides: list[str]
) -> str:
    """Mean ± std over seeds; ``reward gain`` pairs each seed's run with its own start."""
    columns = ["reward", "reward gain", *METRICS, "train minutes"]
    start = [r["reward"] for r in rows.get(WARM_START, [])]
    for results in rows.values():
        for result, reference in zip(results, start, strict=False):
            result["reward gain"] = result["reward"] - reference
    lines = [
        f"held-out split {split} (dataset seed {SPLITS[split]}), seeds {seeds}, "
        f"overrides {overrides}; mean ± std over seeds; `{WARM_START}`: the pre-trained model "
        "with the fresh LoRA every method starts from",
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


def plot_curves(curves: dict[str, list[list[dict[str, float]]]], path: Path, split: str) -> None:
    """Held-out reward and PSNR per round of each method: mean over seeds, ±1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, score in zip(axes, ("reward", "psnr"), strict=True):
        for method, runs in curves.items():
            rounds = sorted({point["round"] for run in runs for point in run})
            by_round = {
                r: [p[score] for run in runs for p in run if p["round"] == r] for r in rounds
            }
            mean = [statistics.fmean(by_round[r]) for r in rounds]
            std = [statistics.stdev(by_round[r]) if len(by_round[r]) > 1 else 0.0 for r in rounds]
            (line,) = axis.plot(rounds, mean, label=method.removeprefix("+ "))
            low = [m - s for m, s in zip(mean, std, strict=True)]
            high = [m + s for m, s in zip(mean, std, strict=True)]
            axis.fill_between(rounds, low, high, color=line.get_color(), alpha=0.15)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("round")
        axis.set_ylabel(f"held-out {score}")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"One-step generation on held-out 60-90° orbits ({split}), mean ± std")
    figure.tight_layout()
    with atomic_path(path) as staging:
        figure.savefig(staging, dpi=120, format="png")
    plt.close(figure)


if __name__ == "__main__":
    main()
