"""``devis run CONFIG``: synthesise one sample's target view and write everything to look at.

The run directory is held for the run (:func:`~devis_core.engines.run_directory.run_directory`:
a lock, ``run.json`` saying running, finished or failed) and receives the resolved
``config.yaml`` first (so a failed run still says what it ran), then ``source.mp4``,
``render.mp4`` and ``mask.mp4`` (the last accumulation step's conditions), ``generated.mp4``,
``target.mp4`` when the dataset has ground truth, a ``comparison.png`` grid and
``metrics.json``. ``run.save_videos`` chooses the videos' format: ``mp4`` (the default),
``lossless`` (the same names in ``.mkv``, FFV1) or ``none`` (no video).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from devis_core.config import PROVENANCE_KEY, PipelineBase, dump_config, to_yaml
from devis_core.engines.preflight import preflight
from devis_core.engines.run_directory import run_directory, same_config
from devis_core.engines.tables import json_safe
from devis_core.pipeline import Pipeline
from devis_core.registry import Registry
from devis_core.toolkit.files import atomic_write_text
from devis_core.toolkit.media import (
    save_comparison,
    video_suffix,
    write_mask_video,
    write_video,
)

_NOT_COMPARED = ("name", "output", "evaluation", "training", PROVENANCE_KEY)
"""Config keys a rerun into the same directory may change (they do not change its outputs)."""


def run_pipeline(
    config: PipelineBase, registry: Registry, *, progress: bool = True, overwrite: bool = False
) -> Path:
    """Run the configured accumulator and backbone on one sample; return the run directory.

    The directory may hold an earlier ``devis run`` of the same config (its files are
    replaced); anything else is refused unless ``overwrite`` clears it first.
    """
    pipeline = Pipeline(config, registry)
    preflight(config, registry, "run", dataset=lambda: pipeline.dataset)
    resolved = dump_config(config, registry)
    reusable = same_config(resolved, command="run", ignored=_NOT_COMPARED)
    output = Path(config.output)
    with run_directory(output, command="run", overwrite=overwrite, reusable=reusable):
        atomic_write_text(output / "config.yaml", to_yaml(resolved))
        return _synthesise(pipeline, config, output, progress)


def _synthesise(pipeline: Pipeline, config: PipelineBase, output: Path, progress: bool) -> Path:
    """Synthesise ``run.sample`` and write its videos, figure and metrics into ``output``."""
    dataset = pipeline.dataset
    sample = dataset[config.run.sample]
    frames = sample.num_frames
    steps = getattr(getattr(pipeline.accumulator, "config", None), "steps", None)
    generated_frames = 0
    with tqdm(
        desc="accumulation steps", total=steps, unit="step", disable=not progress,
        dynamic_ncols=True,
    ) as bar:  # fmt: skip

        def advance(video: Any) -> None:
            nonlocal generated_frames
            generated_frames += int(video.shape[0])
            bar.update(1)
            bar.set_postfix(frames=generated_frames)

        started = time.perf_counter()
        result = pipeline.synthesize(sample, on_generate=advance)
        seconds = time.perf_counter() - started

    video = result.video.cpu()
    cond = result.conditions
    render, mask = cond.render[-frames:].cpu(), cond.mask[-frames:].cpu()
    rows = [("source", sample.source), ("render", render), ("generated", video)]
    if sample.target is not None:
        rows.append(("ground truth", sample.target))
    if config.run.save_videos != "none":
        lossless = config.run.save_videos == "lossless"
        suffix, fps = video_suffix(lossless), sample.fps
        write_video(output / f"source{suffix}", sample.source, fps, lossless=lossless)
        write_video(output / f"render{suffix}", cond.render.cpu(), fps, lossless=lossless)
        write_mask_video(output / f"mask{suffix}", cond.mask.cpu(), fps, lossless=lossless)
        write_video(output / f"generated{suffix}", video, fps, lossless=lossless)
        if sample.target is not None:
            write_video(output / f"target{suffix}", sample.target, fps, lossless=lossless)
    save_comparison(output / "comparison.png", rows)

    metrics: dict[str, Any] = {
        "sample_id": sample.sample_id,
        "generator_calls": result.generator_calls,
        "seconds": round(seconds, 3),
        "visible_fraction": float(mask.float().mean()),
    }
    metrics.update(
        {name: json_safe(value) for name, value in pipeline.score(sample, video).items()}
    )
    atomic_write_text(output / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return output
