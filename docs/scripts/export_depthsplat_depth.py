"""Convert DepthSplat's per-view depth dumps into the files DEVIS's ``depthsplat`` depth reads.

DepthSplat's test mode, with depth saving on, writes one raw depth map per context view as
``<output_dir>/images/<scene>/depth/<frame index>.npy`` (``H x W`` float32, depth in the units
of the scene's cameras). DEVIS reads one file per dataset sample, ``<root>/<sample_id>.npz``
with ``depth`` of shape ``(T, H, W)``. This script stacks the views of every scene in frame
order and names the result after the DEVIS sample id::

    python docs/scripts/export_depthsplat_depth.py \\
        --depthsplat-output outputs/depthsplat-dl3dv --root data/depthsplat-depth \\
        [--ids scene_to_sample.json] [--scale 1.0]

``--ids`` is a JSON object mapping DepthSplat scene names to DEVIS sample ids when they
differ. See ``docs/models.md`` ("Depth: depthsplat") for the DepthSplat command line.

The maps keep DepthSplat's size: DepthSplat ran on a centre crop of each frame (DL3DV's 540x960
frames at 512x960, rows 14 to 525), and the ``depthsplat`` depth puts every map back on the rows
and columns it came from when it reads them, with depth 0 (unknown) outside the crop.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devis_plugins.depthsplat import convert_view_maps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--depthsplat-output", type=Path, required=True, help="DepthSplat output_dir"
    )
    parser.add_argument("--root", type=Path, required=True, help="where DEVIS will read them")
    parser.add_argument("--ids", type=Path, help="JSON {scene: sample_id} when names differ")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply depth by this")
    args = parser.parse_args(argv)
    names = json.loads(args.ids.read_text()) if args.ids else {}
    scenes = sorted(p for p in (args.depthsplat_output / "images").glob("*/depth") if p.is_dir())
    if not scenes:
        print(f"no <scene>/depth directories under {args.depthsplat_output / 'images'}")
        return 1
    for depth_dir in scenes:
        scene = depth_dir.parent.name
        target = args.root / f"{names.get(scene, scene)}.npz"
        convert_view_maps(depth_dir, target, scale=args.scale)
        print(f"{scene} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
