"""Pre-train TrajectoryCrafter's ``toy`` preset on the synthetic world: the recipe of its weights.

Three resumable stages, all under the config's ``output`` directory:

1. ``pool/``: the training scenes, rendered once (a scene costs about three training steps
   to render) into shards of source, reprojection (render and mask) and ground-truth target.
2. ``checkpoint/``: the whole transformer trained on v-prediction (the diffusion loss the
   published model was trained with) at uniformly drawn timesteps, AdamW with warm-up and a
   cosine decay, and an exponential moving average of the weights; every draw of scenes,
   timesteps and noise is derived from the step, so a resumed run repeats the same batches.
3. ``model/``: the averaged weights in the layout ``transformer_path``/``base_path`` read;
   ``--install`` copies it to the package, where ``preset: toy`` finds it.

    python recipes/pretrain_toy.py --workers 2 --install
    python recipes/pretrain_toy.py -o training.steps=10 -o output=/tmp/toy   # a smoke run

``log.jsonl`` has the loss per step and the validation PSNR (one-step generation on held-out
validation scenes, next to the weight-free ``inpaint`` generator's) every ``validate_every``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from devis_core.config import apply_overrides, read_yaml
from devis_core.plugins import load_registry
from devis_core.toolkit.accumulation import one_step_conditions
from devis_core.toolkit.files import atomic_directory, atomic_path
from devis_core.toolkit.measures import psnr
from devis_core.toolkit.results import append_record
from devis_core.training.state_files import read_state, verify_manifest, write_manifest, write_state
from devis_core.types import Conditions

CONFIG = Path(__file__).with_suffix(".yaml")
PACKAGE_WEIGHTS = (
    Path(__file__).resolve().parent.parent / "plugins" / "trajectorycrafter" / "weights" / "toy"
)
SHARD_SCENES = 100
POOL_KEYS = ("source", "target", "render", "mask")


# --- stage 1: the pool of training scenes ---------------------------------------------------


def render_shard(data: dict[str, Any], shard: int, path: Path) -> None:
    """Render scenes ``[shard * SHARD_SCENES, ...)`` of the ``data`` dataset into ``path``."""
    dataset = load_registry().build("dataset", data)
    indices = range(shard * SHARD_SCENES, min((shard + 1) * SHARD_SCENES, len(dataset)))
    columns: dict[str, list[torch.Tensor]] = {key: [] for key in POOL_KEYS}
    captions = set()
    for index in indices:
        sample = dataset[index]
        captions.add(sample.caption)
        shown = one_step_conditions(sample, sample.source_depth)
        columns["source"].append(sample.source.half())
        columns["target"].append(sample.target.half())
        columns["render"].append(shown.render.half())
        columns["mask"].append(shown.mask.to(torch.uint8))
    with atomic_path(path) as staging:
        tensors = {key: torch.stack(value) for key, value in columns.items()}
        save_file(tensors, str(staging), metadata={"caption": captions.pop()})
    if captions:
        raise ValueError("the pool keeps one caption; the dataset gives its scenes several")


def build_pool(
    data: dict[str, Any], directory: Path, workers: int
) -> tuple[dict[str, torch.Tensor], str]:
    """Every training scene as stacked tensors and their caption, rendering missing shards."""
    directory.mkdir(parents=True, exist_ok=True)
    shards = math.ceil(data["num_samples"] / SHARD_SCENES)
    paths = [directory / f"shard-{shard:04d}.safetensors" for shard in range(shards)]
    todo = [(data, shard, path) for shard, path in enumerate(paths) if not path.is_file()]
    if todo:
        print(f"rendering {len(todo)} of {shards} shards of {SHARD_SCENES} scenes", flush=True)
        if workers == 1:
            for arguments in tqdm(todo):
                render_shard(*arguments)
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in tqdm(pool.imap_unordered(_render_shard_star, todo), total=len(todo)):
                    pass
    loaded = [load_file(str(path)) for path in paths]
    with safe_open(str(paths[0]), framework="pt") as first:
        caption = first.metadata()["caption"]
    return {key: torch.cat([shard[key] for shard in loaded]) for key in POOL_KEYS}, caption


def _render_shard_star(arguments: tuple[dict[str, Any], int, Path]) -> None:
    torch.set_num_threads(1)  # one process per core
    render_shard(*arguments)


def pool_conditions(pool: dict[str, torch.Tensor], index: int, caption: str) -> Conditions:
    """The one-step conditions of training scene ``index``, in float32."""
    return Conditions(
        pool["render"][index].float(),
        pool["mask"][index].bool(),
        pool["source"][index].float(),
        caption,
    )


# --- stage 2: training ------------------------------------------------------------------------


def learning_rate(step: int, settings: dict[str, Any]) -> float:
    """Linear warm-up to the peak, then a cosine decay to ``final_learning_rate_fraction``."""
    peak = settings["learning_rate"]
    if step < settings["warmup_steps"]:
        return peak * (step + 1) / settings["warmup_steps"]
    progress = (step - settings["warmup_steps"]) / max(
        1, settings["steps"] - settings["warmup_steps"]
    )
    floor = settings["final_learning_rate_fraction"]
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


class Pretraining:
    """The model, optimizer and weight average of one pre-training run, and its checkpoints."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.settings = config["training"]
        self.output = Path(config["output"])
        self.registry = load_registry()
        self.backbone = self.registry.build("backbone", config["backbone"])
        self.transformer = self.backbone.transformer.train().requires_grad_(True)
        self.parameters = dict(self.transformer.named_parameters())
        self.average = {name: p.detach().clone() for name, p in self.parameters.items()}
        self.optimizer = torch.optim.AdamW(
            self.parameters.values(),
            lr=self.settings["learning_rate"],
            weight_decay=self.settings["weight_decay"],
        )
        self.step = 0
        self.log_path = self.output / "log.jsonl"

    # checkpoints

    @property
    def checkpoint(self) -> Path:
        return self.output / "checkpoint"

    def save(self) -> None:
        state = {
            "step": self.step,
            "model": {name: p.detach() for name, p in self.parameters.items()},
            "average": self.average,
            "optimizer": self.optimizer.state_dict(),
            "config": json.dumps(self.config, sort_keys=True),
        }
        with atomic_directory(self.checkpoint) as staging:
            write_state(staging, state)
            write_manifest(staging)

    def resume(self) -> None:
        """Continue from ``checkpoint/`` if there is one (of the same config)."""
        if not self.checkpoint.is_dir():
            return
        verify_manifest(self.checkpoint, ("state.safetensors", "state.json"))
        state = read_state(self.checkpoint)
        saved = json.loads(state["config"])
        if saved["training"] | {"steps": 0} != self.settings | {"steps": 0} or any(
            saved[key] != self.config[key] for key in ("backbone", "data", "seed")
        ):
            raise SystemExit(
                f"{self.checkpoint} was written with another config; use another output "
                "directory (only training.steps may change when resuming)"
            )
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                parameter.copy_(state["model"][name])
                self.average[name].copy_(state["average"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        print(f"resumed from {self.checkpoint} at step {self.step}", flush=True)

    # the loop

    def train(self, pool: dict[str, torch.Tensor], caption: str, validation: list[Any]) -> None:
        settings = self.settings
        bar = tqdm(total=settings["steps"], initial=self.step, desc="pre-training")
        while self.step < settings["steps"]:
            started = time.perf_counter()
            generator = torch.Generator().manual_seed(self.config["seed"] * 1_000_003 + self.step)
            scenes = torch.randint(
                len(pool["target"]), (settings["scenes_per_step"],), generator=generator
            )
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(self.step, settings)
            self.optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for index in scenes.tolist():
                count = settings["timesteps_per_scene"]
                cond = pool_conditions(pool, index, caption)
                shape = self.backbone.latent_shape(cond)
                timesteps = torch.randint(0, 1000, (count,), generator=generator)
                noise = torch.randn((count, *shape[1:]), generator=generator)
                target = pool["target"][index].float()
                loss = self.backbone.v_prediction_error(cond, target, timesteps, noise).mean()
                (loss / len(scenes)).backward()
                total += float(loss.detach()) / len(scenes)
            norm = torch.nn.utils.clip_grad_norm_(
                self.parameters.values(), settings["max_grad_norm"]
            )
            self.optimizer.step()
            self._update_average()
            self.step += 1
            bar.update()
            bar.set_postfix(loss=f"{total:.4f}")
            append_record(
                self.log_path,
                {
                    "step": self.step,
                    "loss": total,
                    "grad_norm": float(norm),
                    "lr": learning_rate(self.step - 1, settings),
                    "seconds": time.perf_counter() - started,
                },
            )
            if self.step % settings["checkpoint_every"] == 0 or self.step == settings["steps"]:
                self.save()
            if self.step % settings["validate_every"] == 0 or self.step == settings["steps"]:
                append_record(
                    self.log_path, {"step": self.step, "validation_psnr": self.validate(validation)}
                )
        bar.close()

    def _update_average(self) -> None:
        decay = min(self.settings["ema_decay"], (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                self.average[name].lerp_(parameter.detach(), 1 - decay)

    # evaluation and export

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The weight average in the model, in eval mode; the trained weights back after."""
        trained = {name: p.detach().clone() for name, p in self.parameters.items()}
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                parameter.copy_(self.average[name])
        self.transformer.eval()
        try:
            yield
        finally:
            self.transformer.train()
            with torch.no_grad():
                for name, parameter in self.parameters.items():
                    parameter.copy_(trained[name])

    def validate(self, validation: list[Any]) -> float:
        """Mean PSNR of one-step generation (averaged weights) on the validation scenes."""
        with self.averaged():
            videos = [
                self.backbone.generate(cond, torch.Generator().manual_seed(number))
                for number, (_, cond) in enumerate(validation)
            ]
        values = [
            float(psnr(video, sample.target))
            for video, (sample, _) in zip(videos, validation, strict=True)
        ]
        return sum(values) / len(values)

    def export(self) -> Path:
        """The averaged weights as a model directory (``model/transformer`` and ``model/base``)."""
        directory = self.output / "model"
        with self.averaged(), atomic_directory(directory) as staging:
            self.backbone.save_pretrained(staging)
            (staging / "recipe.json").write_text(
                json.dumps({"config": self.config, "steps": self.step}, indent=1) + "\n"
            )
        return directory


def validation_set(registry: Any, data: dict[str, Any]) -> list[tuple[Any, Conditions]]:
    """The validation scenes with their one-step conditions."""
    dataset = registry.build("dataset", data)
    return [
        (sample, one_step_conditions(sample, sample.source_depth))
        for sample in (dataset[i] for i in range(len(dataset)))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("-o", "--override", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--workers", type=int, default=1, help="Processes rendering the pool.")
    parser.add_argument("--install", action="store_true", help="Copy the model to the package.")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="Torch threads of training (a runtime choice: a resumed run may change it).",
    )
    args = parser.parse_args()
    config = apply_overrides(read_yaml(args.config), args.override)
    torch.set_num_threads(args.threads)
    run = Pretraining(config)
    run.output.mkdir(parents=True, exist_ok=True)
    run.resume()
    pool, caption = build_pool(config["data"], run.output / "pool", args.workers)
    validation = validation_set(run.registry, config["validation"])
    if run.step == 0:
        reference = run.registry.build("backbone", {"kind": "inpaint"})
        baseline = [float(psnr(reference.generate(c), s.target)) for s, c in validation]
        append_record(
            run.log_path, {"step": 0, "inpaint_validation_psnr": sum(baseline) / len(baseline)}
        )
    run.train(pool, caption, validation)
    directory = run.export()
    print(f"wrote {directory}", flush=True)
    if args.install:
        shutil.rmtree(PACKAGE_WEIGHTS, ignore_errors=True)
        shutil.copytree(directory, PACKAGE_WEIGHTS)
        print(f"installed in {PACKAGE_WEIGHTS}", flush=True)


if __name__ == "__main__":
    main()
