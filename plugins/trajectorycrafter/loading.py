"""Building the model's components: from local checkpoints, or at random for the tiny preset.

The checkpoint layout users have (``docs/models.md``):

- the transformer at a directory root: ``config.json`` + ``diffusion_pytorch_model*.safetensors``
  (Hugging Face repository ``TrajectoryCrafter/TrajectoryCrafter``);
- the base model directory with ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/`` and
  ``model_index.json`` (``alibaba-pai/CogVideoX-Fun-V1.1-5b-InP``).

The tiny preset reads the same layout when given paths (a tiny model written by
``save_pretrained``), and otherwise builds every component from its config with a seeded
random initialisation. Nothing is ever downloaded.

The transformer and the VAE are read by
:func:`devis_core.toolkit.model_directories.load_model_directory`, which accepts the checkpoints
diffusers' ``from_pretrained`` (the published code's loader) does: tensors the model does not
define are skipped with a warning, and a ``.bin`` is unpickled tensors-only.
``tests/models/manifests/`` lists the names and shapes of the published checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import transformers
from diffusers import AutoencoderKLCogVideoX, DDIMScheduler
from safetensors.torch import save_file
from transformers import AutoTokenizer, ByT5Tokenizer, T5Config, T5EncoderModel

from devis_core.errors import MissingWeightsError
from devis_core.toolkit.model_directories import load_model_directory
from devis_plugins.trajectorycrafter.model import CrossTransformer3DModel
from devis_plugins.trajectorycrafter.presets import SCHEDULER_CONFIG, Preset

TRANSFORMER_WHERE = (
    "TrajectoryCrafter's transformer is the Hugging Face repository "
    "TrajectoryCrafter/TrajectoryCrafter (e.g. `huggingface-cli download "
    "TrajectoryCrafter/TrajectoryCrafter --local-dir checkpoints/TrajectoryCrafter`); set "
    "backbone.transformer_path to that directory."
)
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights"
"""Where presets with shipped weights keep them: ``weights/<name>/{transformer,base}``."""

BASE_WHERE = (
    "The base model is the Hugging Face repository alibaba-pai/CogVideoX-Fun-V1.1-5b-InP "
    "(e.g. `huggingface-cli download alibaba-pai/CogVideoX-Fun-V1.1-5b-InP --local-dir "
    "checkpoints/CogVideoX-Fun-V1.1-5b-InP`); set backbone.base_path to that directory."
)


def shipped_paths(preset: Preset) -> tuple[str, str]:
    """The ``transformer/`` and ``base/`` directories of a preset's shipped weights."""
    assert preset.shipped is not None
    directory = SHIPPED_WEIGHTS / preset.shipped
    weights = directory / "transformer" / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        raise MissingWeightsError(
            f"the {preset.shipped} preset's weights are missing ({weights}): they ship with "
            f"DEVIS's source and are written by `python recipes/pretrain_{preset.shipped}.py`; "
            "reinstall DEVIS, rerun the recipe, or set random_init: true"
        )
    return str(directory / "transformer"), str(directory / "base")


@dataclass
class Components:
    """The pieces of a TrajectoryCrafter pipeline."""

    transformer: CrossTransformer3DModel
    text_encoder: T5EncoderModel
    tokenizer: Any
    vae: AutoencoderKLCogVideoX | None
    scheduler: DDIMScheduler


def build_components(
    preset: Preset,
    *,
    transformer_path: str | None,
    base_path: str | None,
    dtype: torch.dtype,
    init_seed: int,
    require_weights: bool,
) -> Components:
    """The transformer, text encoder, tokenizer, VAE and scheduler of one configuration.

    With ``require_weights`` (the full model) both paths must be given; otherwise a missing
    path means "build this part from the preset's config at random".
    """
    if require_weights and transformer_path is None:
        raise MissingWeightsError(
            f"backbone.transformer_path is not set: the full model needs its weights. "
            f"{TRANSFORMER_WHERE}"
        )
    if require_weights and base_path is None:
        raise MissingWeightsError(
            f"backbone.base_path is not set: the full model needs the VAE, T5 text encoder, "
            f"tokenizer and scheduler. {BASE_WHERE}"
        )
    if transformer_path is not None:
        transformer = load_model(
            CrossTransformer3DModel, transformer_path, where=TRANSFORMER_WHERE, dtype=dtype
        )
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            transformer = _cast(CrossTransformer3DModel(**preset.transformer), dtype)
    if base_path is not None:
        return _with_base(transformer, Path(base_path).expanduser(), preset, dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed + 1)
        text_encoder = _cast(T5EncoderModel(T5Config(**preset.text_encoder)), dtype)
        vae = None
        if not preset.pixel_space:
            vae = _cast(AutoencoderKLCogVideoX(**preset.vae), dtype)
    return Components(
        transformer=transformer,
        text_encoder=text_encoder,
        tokenizer=ByT5Tokenizer(),
        vae=vae,
        scheduler=DDIMScheduler.from_config(SCHEDULER_CONFIG),
    )


def load_model(
    model_class: type[ModuleT], directory: str | Path, *, where: str, dtype: torch.dtype
) -> ModuleT:
    """``model_class`` (a diffusers model) from a local directory, as upstream would load it.

    The tensors it skips are reported by the warning only: no caller here acts on them.
    """
    model, _ = load_model_directory(model_class, directory, where=where, dtype=dtype)
    return model


def _cast(module: ModuleT, dtype: torch.dtype) -> ModuleT:
    """``module`` in eval mode and ``dtype`` (no cast, hence no diffusers warning, for float32)."""
    if dtype != torch.float32:
        module = module.to(dtype)
    return module.eval()


def _with_base(
    transformer: CrossTransformer3DModel, base: Path, preset: Preset, dtype: torch.dtype
) -> Components:
    if not base.is_dir():
        raise MissingWeightsError(f"base model directory {base} does not exist. {BASE_WHERE}")
    vae = None
    if not preset.pixel_space:
        vae = load_model(AutoencoderKLCogVideoX, base / "vae", where=BASE_WHERE, dtype=dtype)
    scheduler_file = base / "scheduler" / "scheduler_config.json"
    if not scheduler_file.is_file():
        raise MissingWeightsError(f"{scheduler_file} is missing. {BASE_WHERE}")
    scheduler = DDIMScheduler.from_config(DDIMScheduler.load_config(str(base / "scheduler")))
    return Components(
        transformer=transformer,
        text_encoder=_load_text_encoder(base / "text_encoder", dtype),
        tokenizer=_load_tokenizer(base / "tokenizer"),
        vae=vae,
        scheduler=scheduler,
    )


def _load_text_encoder(directory: Path, dtype: torch.dtype) -> T5EncoderModel:
    if not (directory / "config.json").is_file():
        raise MissingWeightsError(f"{directory / 'config.json'} is missing (T5). {BASE_WHERE}")
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    try:
        model = T5EncoderModel.from_pretrained(
            str(directory), local_files_only=True, **{dtype_key: dtype}
        )
    except OSError as error:
        raise MissingWeightsError(
            f"cannot load the T5 encoder in {directory}: {error}. {BASE_WHERE}"
        ) from None
    return model.eval()


def _load_tokenizer(directory: Path) -> Any:
    if not directory.is_dir():
        raise MissingWeightsError(f"tokenizer directory {directory} is missing. {BASE_WHERE}")
    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, ImportError) as error:
        raise MissingWeightsError(
            f"cannot load the tokenizer in {directory}: {error}. T5's sentencepiece tokenizer "
            f"needs `pip install 'devis[models]'`. {BASE_WHERE}"
        ) from None


def save_components(components: Components, directory: str | Path) -> None:
    """Write a model in the layout users have: ``transformer/`` and ``base/``.

    The transformer is saved without any LoRA adapter (adapters are saved on their own with
    ``save_lora``); ``base/`` holds the text encoder, tokenizer, scheduler and VAE (if any).
    """
    directory = Path(directory)
    transformer_dir = directory / "transformer"
    transformer_dir.mkdir(parents=True, exist_ok=True)
    components.transformer.save_config(str(transformer_dir))
    save_file(
        base_state_dict(components.transformer),
        str(transformer_dir / "diffusion_pytorch_model.safetensors"),
    )
    base = directory / "base"
    components.text_encoder.save_pretrained(str(base / "text_encoder"))
    components.tokenizer.save_pretrained(str(base / "tokenizer"))
    components.scheduler.save_pretrained(str(base / "scheduler"))
    index: dict[str, Any] = {
        "_class_name": "CogVideoXFunInpaintPipeline",
        "text_encoder": ["transformers", type(components.text_encoder).__name__],
        "tokenizer": ["transformers", type(components.tokenizer).__name__],
        "scheduler": ["diffusers", type(components.scheduler).__name__],
    }
    if components.vae is not None:
        components.vae.save_pretrained(str(base / "vae"))
        index["vae"] = ["diffusers", type(components.vae).__name__]
    (base / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def base_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's own weights under their published names, LoRA layers folded out.

    peft renames a wrapped ``x.weight`` to ``x.base_layer.weight`` and adds ``lora_*``
    tensors; this undoes both (without merging the adapter), and copies every tensor so the
    file owns its memory.
    """
    state = {}
    for key, value in model.state_dict().items():
        if ".lora_" in key:
            continue
        state[key.replace(".base_layer.", ".")] = value.detach().contiguous().clone()
    return state
