"""The StepwiseAccumulator example of docs/plugins/writing.md works as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import torch

PAGE = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "writing.md"


def _tutorial_namespace() -> dict:
    block = next(b for b in re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
                 if "class PatchedReprojection" in b)  # fmt: skip
    namespace: dict = {}
    exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
    return namespace


def test_patched_reprojection_sees_what_rva_and_the_source_see(registry):
    example = _tutorial_namespace()
    dataset = registry.build(
        "dataset",
        {"kind": "synthetic", "num_samples": 1, "frames": 4, "height": 32, "width": 48,
         "azimuth_range": [50, 50]},
    )  # fmt: skip
    sample = dataset[0]
    depth = registry.build("depth", {"kind": "carried"})
    backbone = registry.build("backbone", {"kind": "passthrough"})
    patched = example["PatchedReprojection"](example["PatchedConfig"](steps=3))
    rva = registry.build("accumulator", {"kind": "rva", "steps": 3})
    rfa = registry.build("accumulator", {"kind": "rfa", "steps": 3})
    runs = {
        name: strategy.run(sample, backbone, depth, generator=torch.Generator().manual_seed(0))
        for name, strategy in {"patched": patched, "rva": rva, "rfa": rfa}.items()
    }
    assert runs["patched"].generator_calls == 3
    # the last step's cameras are the target's: RFA's mask there is what the source sees
    last = {name: run.conditions.mask for name, run in runs.items()}
    assert torch.equal(last["patched"] & last["rfa"], last["rfa"])  # the source fills it all
    assert (last["patched"] & ~last["rfa"]).any()  # and the previous video adds to it
    assert not last["rva"].all()  # RVA alone leaves holes, which the source patches
