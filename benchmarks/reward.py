"""Reward benchmark: the composite reward (offline terms) against a scikit-image frame loop.

A group of videos (16 x 49 frames at 384 x 672 by default, the paper's sampling group) is
scored by ``devis_core.rewards.CompositeReward`` with the offline terms ``psnr-visible``,
``ssim-visible`` and ``no-reference-quality`` (BRISQUE), on the CPU and, when one is there, on CUDA.
The baseline computes the same PSNR and SSIM values the usual way: a Python loop over frames
calling scikit-image's ``peak_signal_noise_ratio`` on the visible pixels and
``structural_similarity(full=True)`` averaged over the eroded visibility mask. The script
checks that both give the same values (to 1e-4) before it reports times.

Run ``python benchmarks/reward.py`` to print the table; ``--write`` also replaces the
"## Reward" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import binary_erosion
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from devis_core.plugins import load_registry
from devis_core.rewards import CompositeReward
from devis_core.types import RewardInputs

SECTION = "## Reward"
TERMS = [
    {"kind": "psnr-visible"},
    {"kind": "ssim-visible"},
    {"kind": "no-reference-quality", "model": "brisque"},
]


def make_group(videos: int, frames: int, height: int, width: int) -> RewardInputs:
    """Smooth textured renders, generated videos that are noisy copies, blob-shaped masks."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(videos * frames, 3, height // 24, width // 24, generator=generator)
    render = F.interpolate(coarse, size=(height, width), mode="bicubic").clamp(0, 1)
    render = render.reshape(videos, frames, 3, height, width)
    noise = torch.randn(render.shape, generator=generator)
    level = torch.linspace(0.01, 0.2, videos).view(videos, 1, 1, 1, 1)
    generated = (render + level * noise).clamp(0, 1)
    field = torch.rand(videos * frames, 1, height // 32, width // 32, generator=generator)
    field = F.interpolate(field, size=(height, width), mode="bilinear")
    mask = (field > 0.3).reshape(videos, frames, height, width)
    ids = [f"video-{i}" for i in range(videos)]
    return RewardInputs(generated, render, render, mask, ids)


def skimage_loop(batch: RewardInputs) -> tuple[np.ndarray, np.ndarray]:
    """Masked PSNR and Kubric-4D masked SSIM per video, one frame at a time, scikit-image."""
    psnrs, ssims = [], []
    for video, render, mask in zip(batch.generated, batch.render, batch.mask, strict=True):
        frame_psnr, frame_ssim = [], []
        for generated_frame, render_frame, visible in zip(video, render, mask, strict=True):
            g = generated_frame.permute(1, 2, 0).numpy()
            r = render_frame.permute(1, 2, 0).numpy()
            m = visible.numpy()
            frame_psnr.append(peak_signal_noise_ratio(r[m], g[m], data_range=1))
            _, ssim_map = structural_similarity(r, g, data_range=1, channel_axis=-1, full=True)
            kept = binary_erosion(m, structure=np.ones((7, 7)))[3:-3, 3:-3]
            frame_ssim.append(ssim_map[3:-3, 3:-3][kept].mean())
        psnrs.append(np.mean(frame_psnr))
        ssims.append(np.mean(frame_ssim))
    return np.array(psnrs), np.array(ssims)


def timed(function, *args, device: str = "cpu"):
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function(*args)
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def run(args: argparse.Namespace) -> tuple[list[dict], dict]:
    registry = load_registry()
    batch = make_group(args.videos, args.frames, args.height, args.width)
    full = CompositeReward(TERMS, registry)
    consistency = CompositeReward(TERMS[:2], registry)
    (reference_psnr, reference_ssim), loop_seconds = timed(skimage_loop, batch)
    result, full_seconds = timed(full, batch)
    _, consistency_seconds = timed(consistency, batch)
    check = {
        "psnr": float(np.abs(result.terms["psnr-visible"].numpy() - reference_psnr).max()),
        "ssim": float(np.abs(result.terms["ssim-visible"].numpy() - reference_ssim).max()),
    }
    if max(check.values()) > 1e-4:
        raise SystemExit(f"torch and scikit-image disagree: {check}")
    rows = [
        {"what": "scikit-image loop: PSNR + SSIM", "device": "cpu", "seconds": loop_seconds},
        {"what": "composite: PSNR + SSIM terms", "device": "cpu", "seconds": consistency_seconds},
        {"what": "composite: PSNR + SSIM + BRISQUE", "device": "cpu", "seconds": full_seconds},
    ]
    if torch.cuda.is_available():
        cuda_batch = RewardInputs(
            batch.generated.cuda(), batch.source.cuda(), batch.render.cuda(), batch.mask.cuda(),
            batch.sample_ids,
        )  # fmt: skip
        full.to("cuda")
        timed(full, cuda_batch, device="cuda")  # warm-up: kernels, allocator
        _, cuda_seconds = timed(full, cuda_batch, device="cuda")
        rows.append(
            {"what": "composite: PSNR + SSIM + BRISQUE", "device": "cuda", "seconds": cuda_seconds}
        )
    for row in rows:
        row["speed-up"] = loop_seconds / row["seconds"]
    return rows, check


def table(rows: list[dict]) -> str:
    lines = [
        "| computation | device | seconds | speed-up over the scikit-image loop |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['what']} | {row['device']} | {row['seconds']:.1f} | {row['speed-up']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=672)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows, check = run(args)
    load = f"{load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    text = table(rows)
    print(text)
    print(f"max |torch - scikit-image|: {check}; load average: {load}")
    if args.write:
        write_results(text, args, check, load)


def write_results(text: str, args: argparse.Namespace, check: dict, load: str) -> None:
    """Replace (or append) the reward section of RESULTS.md."""
    command = (
        f"python benchmarks/reward.py --write --threads {args.threads} --videos {args.videos} "
        f"--frames {args.frames} --height {args.height} --width {args.width}"
    )
    cuda = (
        f"CUDA: {torch.cuda.get_device_name()}."
        if torch.cuda.is_available()
        else "No GPU was available for this run, so there is no CUDA row."
    )
    section = f"""{SECTION}

The composite reward of `devis_core.rewards` with the offline terms (`psnr-visible`,
`ssim-visible`, `no-reference-quality` with `model: brisque`) on one sampling group, against a
per-frame Python loop computing the same PSNR and SSIM values with scikit-image
(`peak_signal_noise_ratio` on the visible pixels, `structural_similarity(full=True)` averaged
over the mask eroded by a 7x7 square), as `benchmarks/reward.py` writes them.

- Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with
  {args.threads} thread(s); scikit-image is single-threaded, so one torch thread compares
  per core (on a shared, loaded machine a second torch thread mostly waits). {cuda}
- Command: `{command}`
- Group: {args.videos} videos of {args.frames} frames at {args.height} x {args.width}.
  Largest difference between the torch terms and scikit-image: PSNR {check["psnr"]:.1e} dB,
  SSIM {check["ssim"]:.1e}.
- One run of each, in one process; the speed-ups are ratios measured in that run. Load
  average (1 min) during the run: {load}; the machine is shared, so absolute times vary
  between runs.
  The composite with BRISQUE does more than the loop (it also scores image quality): its row
  is the "no slower" check; the PSNR + SSIM row compares like with like.

{text}
"""
    from results_md import replace_section  # a sibling module: scripts run from benchmarks/

    print(f"wrote {replace_section(SECTION, section)}")


if __name__ == "__main__":
    main()
