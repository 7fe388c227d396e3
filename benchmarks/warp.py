"""Forward-warp benchmark: TrajectoryCrafter-style reference vs ``devis_core.toolkit.geometry``.

``reference_forward_warp`` re-implements TrajectoryCrafter's ``Warper.forward_warp`` the way it is
written there (one frame per call, per-pixel homogeneous 4x4 matmuls on (b, h, w, 4, 4) x
(b, h, w, 4, 1) tensors, four ``index_put_(accumulate=True)`` splats per canvas into an
(H + 2) x (W + 2) padded canvas with out-of-range positions clamped into the border, border
cropped, weighted sum / summed weight, mask = weight > 0). It is the ground truth the fast
warper is tested against (tests/geometry/test_warp_reference.py) and timed against here, with
each of its backends: "torch" (any device) and, when numba is installed, "numba" (CPU).

Run ``python benchmarks/warp.py`` to print the table; ``--write`` also replaces the
"## Forward warp" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

SECTION = "## Forward warp"


# --------------------------------------------------------------------------------------------
# Reference: TrajectoryCrafter's warper, written the straightforward way it is written there.
# --------------------------------------------------------------------------------------------


def _reference_single(
    frame: torch.Tensor,
    depth: torch.Tensor,
    w2c_src: torch.Tensor,
    w2c_tgt: torch.Tensor,
    k_src: torch.Tensor,
    k_tgt: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp a batch (b, c, h, w) with depth (b, 1, h, w); returns (b, c, h, w), (b, 1, h, w)."""
    b, c, h, w = frame.shape
    dtype, device = frame.dtype, frame.device

    # compute_transformed_points: per-pixel homogeneous transformation.
    transformation = torch.bmm(w2c_tgt, torch.linalg.inv(w2c_src))  # (b, 4, 4)
    x2d = torch.arange(w, dtype=dtype, device=device)[None].repeat(h, 1)
    y2d = torch.arange(h, dtype=dtype, device=device)[:, None].repeat(1, w)
    ones_2d = torch.ones(h, w, dtype=dtype, device=device)
    ones_4d = ones_2d[None, :, :, None, None].repeat(b, 1, 1, 1, 1)  # (b, h, w, 1, 1)
    pos_homo = torch.stack([x2d, y2d, ones_2d], dim=2)[None, :, :, :, None]  # (1, h, w, 3, 1)
    k_src_inv_4d = torch.linalg.inv(k_src)[:, None, None]  # (b, 1, 1, 3, 3)
    k_tgt_4d = k_tgt[:, None, None]
    depth_4d = depth[:, 0][:, :, :, None, None]  # (b, h, w, 1, 1)
    trans_4d = transformation[:, None, None]  # (b, 1, 1, 4, 4)
    unnormalized = torch.matmul(k_src_inv_4d, pos_homo)  # (b, h, w, 3, 1)
    points = depth_4d * unnormalized
    points_homo = torch.cat([points, ones_4d], dim=3)  # (b, h, w, 4, 1)
    trans_points = torch.matmul(trans_4d, points_homo)[:, :, :, :3]  # (b, h, w, 3, 1)
    trans_pixels = torch.matmul(k_tgt_4d, trans_points)  # (b, h, w, 3, 1)
    coords = trans_pixels[:, :, :, :2, 0] / trans_pixels[:, :, :, 2:3, 0]  # (b, h, w, 2)
    trans_depth = trans_pixels[:, :, :, 2, 0]  # (b, h, w)
    grid = torch.stack([x2d, y2d], dim=0)[None].repeat(b, 1, 1, 1)  # (b, 2, h, w)
    flow = coords.permute(0, 3, 1, 2) - grid

    # bilinear_splatting.
    pos = flow + grid
    pos_offset = pos + 1
    pos_floor = torch.floor(pos_offset).long()
    pos_ceil = torch.ceil(pos_offset).long()
    pos_offset = torch.stack(
        [pos_offset[:, 0].clamp(0, w + 1), pos_offset[:, 1].clamp(0, h + 1)], dim=1
    )
    pos_floor = torch.stack([pos_floor[:, 0].clamp(0, w + 1), pos_floor[:, 1].clamp(0, h + 1)], 1)
    pos_ceil = torch.stack([pos_ceil[:, 0].clamp(0, w + 1), pos_ceil[:, 1].clamp(0, h + 1)], 1)
    prox_nw = (1 - (pos_offset[:, 1:2] - pos_floor[:, 1:2])) * (
        1 - (pos_offset[:, 0:1] - pos_floor[:, 0:1])
    )
    prox_sw = (1 - (pos_ceil[:, 1:2] - pos_offset[:, 1:2])) * (
        1 - (pos_offset[:, 0:1] - pos_floor[:, 0:1])
    )
    prox_ne = (1 - (pos_offset[:, 1:2] - pos_floor[:, 1:2])) * (
        1 - (pos_ceil[:, 0:1] - pos_offset[:, 0:1])
    )
    prox_se = (1 - (pos_ceil[:, 1:2] - pos_offset[:, 1:2])) * (
        1 - (pos_ceil[:, 0:1] - pos_offset[:, 0:1])
    )
    sat_depth = trans_depth.clamp(0, 1000)
    log_depth = torch.log(1 + sat_depth)
    depth_weights = torch.exp(log_depth / log_depth.max() * 50).unsqueeze(1)  # (b, 1, h, w)
    weights = [
        torch.moveaxis(prox / depth_weights, [0, 1, 2, 3], [0, 3, 1, 2])
        for prox in (prox_nw, prox_sw, prox_ne, prox_se)
    ]  # each (b, h, w, 1)
    rows = (pos_floor[:, 1], pos_ceil[:, 1], pos_floor[:, 1], pos_ceil[:, 1])
    cols = (pos_floor[:, 0], pos_floor[:, 0], pos_ceil[:, 0], pos_ceil[:, 0])

    canvas = torch.zeros(b, h + 2, w + 2, c, dtype=dtype, device=device)
    canvas_weights = torch.zeros(b, h + 2, w + 2, 1, dtype=dtype, device=device)
    frame_cl = torch.moveaxis(frame, [0, 1, 2, 3], [0, 3, 1, 2])  # (b, h, w, c)
    batch = torch.arange(b, device=device)[:, None, None]
    for weight, row, col in zip(weights, rows, cols, strict=True):
        canvas.index_put_((batch, row, col), frame_cl * weight, accumulate=True)
    for weight, row, col in zip(weights, rows, cols, strict=True):
        canvas_weights.index_put_((batch, row, col), weight, accumulate=True)
    canvas = torch.moveaxis(canvas, [0, 1, 2, 3], [0, 2, 3, 1])[:, :, 1:-1, 1:-1]
    canvas_weights = torch.moveaxis(canvas_weights, [0, 1, 2, 3], [0, 2, 3, 1])[:, :, 1:-1, 1:-1]
    mask = canvas_weights > 0
    warped = torch.where(mask, canvas / canvas_weights, torch.zeros((), dtype=dtype))
    return warped.clamp(0, 1), mask


def _reference_clean(warped: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TrajectoryCrafter's ``clean_points``: dilate the holes once with a 5x5 kernel (OpenCV)."""
    holes = (~mask[0, 0]).cpu().numpy().astype(np.uint8)
    dilated = cv2.dilate(holes, np.ones((5, 5), np.uint8), iterations=1)
    keep = torch.from_numpy(dilated == 0).to(mask.device)[None, None]
    return warped * keep, keep


def reference_forward_warp(
    frames: torch.Tensor,
    depth: torch.Tensor,
    K_src: torch.Tensor,
    w2c_src: torch.Tensor,
    K_tgt: torch.Tensor,
    w2c_tgt: torch.Tensor,
    *,
    clean: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TrajectoryCrafter's warp of a video (T, 3, H, W), one frame per call as its demo does.

    Same arguments and outputs as :func:`devis_core.toolkit.geometry.forward_warp`. Faithful to the
    original also where the original is wrong: points behind the target camera are splatted
    (their depth weight is clamped to that of z = 0), and invalid depth poisons the frame.
    """
    n = frames.shape[0]

    def per_frame(matrix: torch.Tensor, size: int) -> torch.Tensor:
        return matrix.to(frames.dtype).expand(n, size, size)

    ks, kt = per_frame(K_src, 3), per_frame(K_tgt, 3)
    ws, wt = per_frame(w2c_src, 4), per_frame(w2c_tgt, 4)
    warped, masks = [], []
    for i in range(n):
        frame_warped, frame_mask = _reference_single(
            frames[i : i + 1],
            depth[i : i + 1, None].to(frames.dtype),
            ws[i : i + 1],
            wt[i : i + 1],
            ks[i : i + 1],
            kt[i : i + 1],
        )
        if clean:
            frame_warped, frame_mask = _reference_clean(frame_warped, frame_mask)
        warped.append(frame_warped)
        masks.append(frame_mask[:, 0])
    return torch.cat(warped), torch.cat(masks)


# --------------------------------------------------------------------------------------------
# Benchmark.
# --------------------------------------------------------------------------------------------


def make_inputs(
    n_frames: int, height: int, width: int, *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """A textured video, smooth depth in 2..6 plus noise, TrajectoryCrafter intrinsics, orbit.

    Intrinsics are TrajectoryCrafter's (f = 500, principal point (512, 288) at 1024 x 576)
    scaled to the size; the target is a gradual orbit reaching theta = 15, phi = 40 degrees
    around the centre pixel's depth.
    """
    from devis_core.toolkit.geometry import make_intrinsics, orbit_trajectory, pivot_depth_from

    gen = torch.Generator().manual_seed(seed)
    frames = torch.empty(n_frames, 3, height, width, dtype=dtype)
    depth = torch.empty(n_frames, height, width, dtype=dtype)
    for i in range(n_frames):  # frame by frame, to keep the temporaries small
        coarse = torch.rand(1, 3, height // 16 + 1, width // 16 + 1, generator=gen)
        texture = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        texture.mul_(0.8).add_(torch.rand(1, 3, height, width, generator=gen), alpha=0.2)
        frames[i] = texture[0].clamp_(0, 1)
        coarse = torch.rand(1, 1, height // 32 + 1, width // 32 + 1, generator=gen)
        smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
        smooth = smooth[0, 0].clamp_(0, 1).mul_(4.0).add_(2.0)
        depth[i] = smooth.add_(torch.rand(height, width, generator=gen), alpha=0.02)
    scale = width / 1024
    K = make_intrinsics(500 * scale, 500 * scale, 512 * scale, 288 * scale, dtype=torch.float64)
    w2c_tgt = orbit_trajectory(
        15.0, 40.0, 0.0, 0.0, 0.0, n_frames, pivot_depth_from(depth), dtype=torch.float64
    )
    return {
        "frames": frames,
        "depth": depth,
        "K_src": K,
        "w2c_src": torch.eye(4, dtype=torch.float64),
        "K_tgt": K,
        "w2c_tgt": w2c_tgt,
    }


def behind_target(inputs: dict[str, torch.Tensor]) -> int:
    """How many source points land behind the target camera (where the reference is wrong)."""
    from devis_core.toolkit.geometry import lift, relative_pose, transform_points

    rel = relative_pose(inputs["w2c_src"], inputs["w2c_tgt"])
    behind = 0
    for depth, to_target in zip(inputs["depth"].double(), rel, strict=True):
        points = lift(depth, inputs["K_src"])
        behind += int((transform_points(to_target, points)[..., 2] <= 0).sum())
    return behind


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    common = mask[:, None].expand_as(a)
    mse = float(((a.double() - b.double())[common] ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _peak_rss_gib(n_frames: int, height: int, width: int, backend: str) -> tuple[float, float]:
    """Peak RSS (GiB) of a fresh process that builds the inputs and warps them once.

    Returns (peak after building the inputs, peak after the warp). Read from ``VmHWM`` rather
    than ``getrusage``: Linux carries ``ru_maxrss`` over ``exec`` from the forked parent.
    """
    code = (
        "import re, torch, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import warp as bench\n"
        "from devis_core.toolkit.geometry import forward_warp\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read()\n"
        "    print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
        "torch.set_num_threads(2)\n"
        f"inputs = bench.make_inputs({n_frames}, {height}, {width})\n"
        "peak()\n"
        f"forward_warp(**inputs, backend={backend!r})\n"
        "peak()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    before, after = (int(value) / 2**20 for value in out.stdout.split()[-2:])
    return before, after


def _numba_first_call_s() -> list[tuple[float, float]]:
    """One-off seconds of the first numba warp in a fresh process, for float32 then float64.

    The process times a first and a second call on a tiny video in each dtype; the difference
    is the one-off cost (the first float32 call also imports numba). It runs twice on an empty
    cache directory: the first run compiles (and writes the cache), the second loads it.
    """
    code = (
        "import time, torch\n"
        "from devis_core.toolkit.geometry import forward_warp\n"
        "for dtype in (torch.float32, torch.float64):\n"
        "    args = (torch.rand(1, 3, 8, 8, dtype=dtype), torch.ones(1, 8, 8), torch.eye(3),\n"
        "            torch.eye(4), torch.eye(3), torch.eye(4))\n"
        "    times = []\n"
        "    for _ in range(2):\n"
        "        start = time.perf_counter()\n"
        "        forward_warp(*args, backend='numba')\n"
        "        times.append(time.perf_counter() - start)\n"
        "    print(times[0] - times[1])\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        runs = [
            subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
            ).stdout.split()[-2:]
            for _ in range(2)
        ]
    return [(float(compiled), float(cached)) for compiled, cached in zip(*runs, strict=True)]


def _machine() -> str:
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        info = cpuinfo.read_text()
        names = re.findall(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
        model = names[0] if names else model
        family = re.search(r"^cpu family\s*:\s*(\d+)$", info, re.MULTILINE)
        number = re.search(r"^model\s*:\s*(\d+)$", info, re.MULTILINE)
        if family and number:  # "AMD EPYC" alone does not say which generation
            model += f" (family {family.group(1)}, model {number.group(1)})"
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores available, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def benchmark(sizes, devices, threads: list[int], ref_frames: int, repeats: int) -> list[dict]:
    """Time and check the reference and each backend for every size, device and thread count."""
    from devis_core.toolkit.geometry import forward_warp

    has_numba = importlib.util.find_spec("numba") is not None
    rows = []
    for n_frames, height, width in sizes:
        inputs64 = make_inputs(n_frames, height, width, dtype=torch.float64)
        inputs32 = {**inputs64, "frames": inputs64["frames"].float()}
        inputs32["depth"] = inputs64["depth"].float()
        behind = behind_target(inputs64)
        runs = [(d, t) for d in devices for t in (threads if d == "cpu" else threads[:1])]
        agreement, reference64 = {}, {}
        for device, n_threads in runs:
            torch.set_num_threads(n_threads)
            backends = ["torch"] + (["numba"] if device == "cpu" and has_numba else [])

            def on(inputs, device=device):
                return {k: v.to(device) for k, v in inputs.items()}

            dev32 = on(inputs32)
            # The reference's cost per frame depends on where the points land, i.e. on the
            # pose, so it is timed on every k-th frame of the trajectory and scaled up.
            step = max(1, math.ceil(n_frames / ref_frames))
            ref_in = {k: (v[::step] if v.dim() > 2 else v) for k, v in dev32.items()}
            ref_n = ref_in["frames"].shape[0]
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

            def run_ref(ref_in=ref_in, sync=sync):
                reference_forward_warp(**ref_in)
                sync()

            def run_ours(backend, dev32=dev32, sync=sync):
                forward_warp(**dev32, backend=backend)
                sync()

            # Warm-up (numba compiles, or loads its cache, on the first call), then alternate
            # the reference and the backends so that all see the same machine load.
            for backend in backends:
                run_ours(backend)
            times_ours = {backend: [] for backend in backends}
            times_ref = []
            for _ in range(repeats):
                for backend in backends:
                    times_ours[backend].append(_timed(lambda backend=backend: run_ours(backend)))
                times_ref.append(_timed(run_ref) * n_frames / ref_n)
            t_ref = statistics.median(times_ref)
            load = os.getloadavg()[0]

            # Agreement on the reference frames: float64 exactness, float32 quality.
            sub64 = {k: (v[::step] if v.dim() > 2 else v) for k, v in on(inputs64).items()}
            for backend in backends:
                if (device, backend) not in agreement:
                    if device not in reference64:
                        reference64[device] = reference_forward_warp(**sub64)
                    ref64, ref_mask64 = reference64[device]
                    ours64, ours_mask64 = forward_warp(**sub64, backend=backend)
                    ours32, ours_mask32 = forward_warp(**ref_in, backend=backend)
                    common = ref_mask64 & ours_mask32
                    agreement[device, backend] = {
                        "max_abs_f64": float((ref64 - ours64).abs().max()),
                        "masks_equal_f64": bool(torch.equal(ref_mask64, ours_mask64)),
                        "psnr_f32": _psnr(ours32, ref64, common),
                        "mask_agree_f32": float((ours_mask32 == ref_mask64).double().mean()),
                    }
                t_ours = statistics.median(times_ours[backend])
                rows.append(
                    {
                        "size": f"{n_frames}x{height}x{width}",
                        "device": device,
                        "threads": n_threads,
                        "backend": backend,
                        "ref_s": t_ref,
                        "ref_frames": ref_n,
                        "ours_s": t_ours,
                        "speedup": t_ref / t_ours,
                        **agreement[device, backend],
                        "behind": behind,
                        "load": load,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict], rss_gib: dict[str, tuple[float, float]], rss_size: str) -> str:
    lines = [
        "| size (T x H x W) | device (CPU threads) | backend | reference s | ours s | speed-up "
        "| max abs diff f64 | PSNR f32 (dB) | mask agreement f32 | peak RSS | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ref = f"{row['ref_s']:.2f}"
        if row["ref_frames"] < int(row["size"].split("x")[0]):
            ref += f" (est. from {row['ref_frames']} frames)"
        exact = f"{row['max_abs_f64']:.1e}" + ("" if row["masks_equal_f64"] else " (masks differ)")
        rss = "-"
        peak = rss_gib.get(row["backend"])
        if peak and row["size"] == rss_size and row["device"] == "cpu" and row["threads"] == 2:
            rss = f"{peak[1]:.2f} GiB ({peak[0]:.2f} before the warp)"
        device = row["device"] + (f" ({row['threads']})" if row["device"] == "cpu" else "")
        lines.append(
            f"| {row['size']} | {device} | {row['backend']} | {ref} | {row['ours_s']:.3f} "
            f"| {row['speedup']:.1f}x | {exact} | {row['psnr_f32']:.1f} "
            f"| {100 * row['mask_agree_f32']:.4f}% | {rss} | {row['load']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="CPU thread counts to time"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ref-frames", type=int, default=9, help="frames the reference is timed on (scaled up)"
    )
    args = parser.parse_args()
    sizes = [(49, 384, 672), (49, 576, 1024)]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    load_before = os.getloadavg()[0]
    rows = benchmark(sizes, devices, args.threads, args.ref_frames, args.repeats)
    load = f"{load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    rss_size = "49x576x1024"
    backends = sorted({row["backend"] for row in rows if row["device"] == "cpu"})
    rss = {backend: _peak_rss_gib(49, 576, 1024, backend) for backend in backends}
    compile_s = _numba_first_call_s() if "numba" in backends else None
    text = table(rows, rss, rss_size)
    print(text)
    print(f"load average: {load}")
    if compile_s:
        print(f"numba first call (compiled, cached), float32 then float64: {compile_s}")
    if args.write:
        write_results(text, rows, args, load, compile_s)


def _verdict(rows: list[dict]) -> str:
    """Whether the fastest CPU backend is 10x faster than the reference, per thread count."""
    parts = []
    for threads in sorted({r["threads"] for r in rows if r["device"] == "cpu"}, reverse=True):
        cpu = [r for r in rows if r["device"] == "cpu" and r["threads"] == threads]
        best = [
            max((r for r in cpu if r["size"] == size), key=lambda r: r["speedup"])
            for size in dict.fromkeys(r["size"] for r in cpu)
        ]
        verdict = "met" if all(r["speedup"] >= 10 for r in best) else "NOT met"
        speedups = ", ".join(f"{r['backend']} {r['speedup']:.1f}x at {r['size']}" for r in best)
        parts.append(f"with {threads} thread{'s' * (threads > 1)}: {verdict} ({speedups})")
    return "; ".join(parts)


def write_results(
    text: str,
    rows: list[dict],
    args: argparse.Namespace,
    load: str,
    compile_s: list[tuple[float, float]] | None,
) -> None:
    """Replace (or append) the forward-warp section of RESULTS.md."""
    threads = " ".join(str(t) for t in args.threads)
    command = f"python benchmarks/warp.py --write --threads {threads} " + (
        f"--repeats {args.repeats} --ref-frames {args.ref_frames}"
    )
    behind = ", ".join(sorted({f"{r['size']}: {r['behind']}" for r in rows}))
    numba_line = ""
    if compile_s:
        (f32, f32_cached), (f64, f64_cached) = compile_s
        numba_line = textwrap.fill(
            f"- One-off cost of the numba backend in a fresh process: {f32:.1f} s on the first "
            f"float32 call (importing numba and compiling the kernels), {f64:.1f} s on the first "
            f"float64 one; once compiled, the kernels are cached on disk and a later process "
            f"pays {f32_cached:.2f} s and {f64_cached:.2f} s. The timings above exclude it (one "
            f"warm-up call per backend).",
            width=100,
            subsequent_indent="  ",
            break_on_hyphens=False,
        )
        numba_line += "\n"
    verdict = textwrap.fill(f"**10x target on the CPU:** {_verdict(rows)}.", width=100)
    section = f"""{SECTION}

`devis_core.toolkit.geometry.forward_warp` against `reference_forward_warp` in
`benchmarks/warp.py`, a re-implementation of TrajectoryCrafter's `Warper.forward_warp` as
written there (per-pixel 4x4 matmuls, one frame per call, four `index_put_` splats into a padded
canvas per buffer). Ours is timed with each backend: `torch` (PyTorch kernels, any device) and
`numba` (compiled CPU kernels, the default on the CPU).

{verdict}

- Machine: {_machine()}.
- Command: `{command}`
- Inputs: random textured float32 frames, smooth depth in 2..6 plus noise, TrajectoryCrafter's
  intrinsics scaled to the size, a gradual orbit to theta = 15, phi = 40 degrees around the
  centre depth. Source points behind the target camera (where the reference is knowingly
  wrong, so the comparison would be meaningless): {behind}.
- CPU rows set `torch.set_num_threads` to the number in brackets; 2 is the target setting.
  The reference, like most PyTorch CPU code, splits every kernel over the threads and waits
  for all of them at its end; both our backends spread whole frames over the threads (the
  torch one running single-threaded kernels). When other processes compete for the cores,
  each of the reference's waits can cost a scheduler time slice, so with 2 threads it slows
  down far more than ours and the speed-up grows with the machine's load. The 1-thread rows
  compare the work itself: the reference and the torch backend change little with the load,
  but the numba backend, bound by memory traffic rather than by arithmetic, slows down when
  other processes compete for the shared caches and memory bandwidth (see the load column).
- Times are wall-clock medians of {args.repeats} alternating runs of each. Ours warps the whole
  video in one call; the reference is timed on every k-th frame (about {args.ref_frames} frames
  spread over the trajectory) and scaled to the whole video: it makes one call per frame, so
  its cost is linear in frames. The machine is shared, so absolute times vary by tens of
  percent between runs: compare the rows of one configuration, timed in alternation.
- Load average (1 min): {load};
  after each configuration, in the last column.
{numba_line}- "max abs diff f64" compares ours and the reference in float64 on the reference
  frames (masks must be identical); "PSNR f32" is ours in float32 against the float64
  reference on the pixels both cover, and "mask agreement f32" the fraction of pixels where
  ours in float32 and the float64 reference agree on the mask.
- Peak RSS: high-water mark (`VmHWM`) of a fresh process that builds the 49 x 576 x 1024
  inputs and warps them once on the CPU with 2 threads with that backend (inputs and outputs
  included); in brackets, the peak reached while building the inputs, before the warp started.

{text}
"""
    from results_md import replace_section  # a sibling module: scripts run from benchmarks/

    print(f"wrote {replace_section(SECTION, section)}")


if __name__ == "__main__":
    main()
