"""Where is the toy TrajectoryCrafter competent? One-step quality per orbit angle, against inpaint.

For each angle bin (10, 30, 45, 60, 75, 90 degrees of azimuth, no elevation) the same held-out
synthetic scenes (dataset seed 2026, disjoint from the pre-training seeds 7919 and 7920) are
reprojected by the whole orbit (accumulator ``direct``, exact depth) and completed by each
generator: the pre-trained ``toy`` preset (TrajectoryCrafter's sampler, DDIM with eta 0) and
the weight-free ``inpaint``. PSNR, SSIM and PSNR-Nocc against the ground-truth views, mean ±
std over scenes, and the paired difference toy - inpaint with its std.

    python benchmarks/toy_angles.py                       # 8 scenes per angle
    python benchmarks/toy_angles.py --scenes 2 --angles 10 75   # a quick look

Records are kept in ``<output>/metrics.jsonl`` (a rerun scores only what is missing); the table
is printed and written to ``<output>/table.md``, the plot to ``<output>/angles.png``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch

from devis_core.config import validate_config
from devis_core.engines.evaluate import RECORDS, score_methods
from devis_core.plugins import load_registry
from devis_core.toolkit.files import atomic_write_text
from devis_core.toolkit.results import RecordLog

ANGLES = [10, 30, 45, 60, 75, 90]
METRICS = ["psnr", "ssim", "psnr-nocc"]
GENERATORS: dict[str, dict[str, Any]] = {
    "toy": {"kind": "trajectorycrafter", "preset": "toy"},
    "inpaint": {"kind": "inpaint"},
}
HELD_OUT_SEED = 2026


def method_config(angle: int, backbone: dict[str, Any], scenes: int) -> dict[str, Any]:
    """One-step generation at ``angle`` degrees of orbit on the held-out scenes."""
    return {
        "device": "cpu",
        "seed": 0,
        "dataset": {
            "kind": "synthetic",
            "num_samples": scenes,
            "seed": HELD_OUT_SEED,
            "frames": 8,
            "height": 32,
            "width": 48,
            "azimuth_range": [angle, angle],
            "elevation_range": [0, 0],
        },
        "depth": {"kind": "carried"},
        "accumulator": {"kind": "direct"},
        "backbone": backbone,
        "metrics": METRICS,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--angles", type=int, nargs="+", default=ANGLES)
    parser.add_argument("--output", type=Path, default=Path("runs/toy-angles"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    registry = load_registry()
    methods = {
        f"{name} {angle}": validate_config(
            method_config(angle, backbone, args.scenes), registry, source="toy_angles"
        )
        for angle in args.angles
        for name, backbone in GENERATORS.items()
    }
    args.output.mkdir(parents=True, exist_ok=True)
    records = score_methods(methods, registry, log=RecordLog(args.output / RECORDS))
    by_method: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_method.setdefault(record["method"], []).append(record)
    text = table(by_method, args.angles, args.scenes)
    print(text)
    atomic_write_text(args.output / "table.md", text)
    plot(by_method, args.angles, args.output / "angles.png")


def table(by_method: dict[str, list[dict[str, Any]]], angles: list[int], scenes: int) -> str:
    """Per angle: each generator's mean ± std, and the paired difference toy - inpaint."""
    header = ["angle"]
    for metric in METRICS:
        header += [f"toy {metric}", f"inpaint {metric}", f"Δ {metric}"]
    lines = [
        f"{scenes} held-out scenes per angle (dataset seed {HELD_OUT_SEED}), mean ± std; "
        "Δ = toy - inpaint, paired by scene",
        "",
        "| " + " | ".join(header) + " |",
        "|---" * len(header) + "|",
    ]
    for angle in angles:
        toy, inpaint = by_method[f"toy {angle}"], by_method[f"inpaint {angle}"]
        cells = [f"{angle}°"]
        for metric in METRICS:
            ours = [r[metric] for r in toy]
            theirs = [r[metric] for r in inpaint]
            deltas = [a - b for a, b in zip(ours, theirs, strict=True)]
            digits = 2 if metric.startswith("psnr") else 3
            for values in (ours, theirs, deltas):
                mean, std = mean_std(values)
                cells.append(f"{mean:+.{digits}f} ± {std:.{digits}f}".lstrip("+"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(by_method: dict[str, list[dict[str, Any]]], angles: list[int], path: Path) -> None:
    """PSNR and SSIM against the orbit angle, one line per generator, std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, metric in zip(axes, ("psnr", "ssim"), strict=True):
        for name, style in (("toy", "o-"), ("inpaint", "s--")):
            stats = [mean_std([r[metric] for r in by_method[f"{name} {a}"]]) for a in angles]
            axis.errorbar(
                angles, [m for m, _ in stats], yerr=[s for _, s in stats], fmt=style,
                capsize=3, label=name,
            )  # fmt: skip
        axis.axvspan(0, 20, color="0.9", zorder=0, label="pre-training orbits")
        axis.set_xlabel("orbit angle (degrees)")
        axis.set_ylabel(metric.upper())
        axis.set_xticks(angles)
        axis.set_xlim(0, 95)
    axes[0].legend(frameon=False)
    figure.suptitle("One-step generation on held-out synthetic scenes (mean ± std)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
