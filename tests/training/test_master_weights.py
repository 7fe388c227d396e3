"""fp32 master weights: a bf16 backbone trains and saves its LoRA adapter in float32.

An Adam step moves each weight by about the learning rate; near 1, bf16's spacing is 2^-7,
so a 1e-4 step rounds back to the old value unless the adapter is kept in float32.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from devis_core.config import validate_config
from devis_core.distributed import World
from devis_core.plugins import load_registry
from devis_core.training import Trainer
from devis_core.types import Conditions
from tests.training.conftest import training_data

SIZE = (16, 24)
STEP = 1e-4


def _bf16_backbone(**overrides):
    from devis_plugins.trajectorycrafter.config import TrajectoryCrafterConfig
    from devis_plugins.trajectorycrafter.policy import TrajectoryCrafterBackbone

    fields = {
        "preset": "tiny",
        "resolution": SIZE,
        "steps": 3,
        "dtype": "bfloat16",
        "lora": {"rank": 2, "alpha": 2},
        **overrides,
    }
    return TrajectoryCrafterBackbone(TrajectoryCrafterConfig(**fields))


def _conditions(frames: int = 3) -> Conditions:
    generator = torch.Generator().manual_seed(0)
    render = torch.rand(frames, 3, *SIZE, generator=generator)
    mask = torch.ones(frames, *SIZE, dtype=torch.bool)
    mask[:, :, SIZE[1] // 2 :] = False
    return Conditions(render, mask, torch.rand(frames, 3, *SIZE, generator=generator), "a toy")


def _loss(backbone, conditions: Conditions) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    shape = backbone.latent_shape(conditions)
    noise = torch.randn(2, *shape[1:], generator=generator)
    video = torch.rand(conditions.render.shape, generator=generator)
    error = backbone.v_prediction_error(conditions, video, torch.tensor([700, 300]), noise)
    return error.mean()


def test_bf16_cannot_hold_the_update():
    """The premise: without fp32 master weights this step would be lost."""
    one = torch.ones((), dtype=torch.bfloat16)
    assert torch.equal(one + STEP, one)


def test_a_sub_bf16_step_moves_the_fp32_adapter_of_a_bf16_base(tmp_path):
    backbone = _bf16_backbone()
    parameters = list(backbone.trainable_parameters())
    assert parameters and all(p.dtype == torch.float32 for p in parameters)
    frozen = [p for n, p in backbone.transformer.named_parameters() if ".lora_" not in n]
    assert frozen and all(p.dtype == torch.bfloat16 and not p.requires_grad for p in frozen)
    with torch.no_grad():
        for parameter in parameters:
            parameter.fill_(1.0)
    optimizer = torch.optim.AdamW(parameters, lr=STEP, weight_decay=0.0)
    loss = _loss(backbone, _conditions())
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in parameters)
    optimizer.step()
    state = optimizer.state[parameters[0]]
    assert state["exp_avg"].dtype == torch.float32  # the optimizer state is fp32 too
    moved = torch.cat([(p.detach() - 1.0).abs().flatten() for p in parameters])
    assert float((moved > STEP / 2).float().mean()) > 0.9
    assert float(moved.max()) < 3 * STEP

    saved = load_file(str(backbone.save_lora(tmp_path / "lora.safetensors")))
    assert saved and all(t.dtype == torch.float32 for t in saved.values())
    assert any(float((t - 1.0).abs().max()) > STEP / 2 for t in saved.values())

    # it loads back into another bf16 backbone exactly (no rounding to bf16 on the way)
    other = _bf16_backbone(lora={"path": str(tmp_path / "lora.safetensors")})
    for mine, theirs in zip(parameters, other.trainable_parameters(), strict=True):
        assert theirs.dtype == torch.float32 and torch.equal(mine.detach(), theirs.detach())


def test_the_adapter_stays_fp32_when_switched_off_and_on():
    backbone = _bf16_backbone()
    conditions = _conditions()
    with torch.no_grad():
        with_adapter = _loss(backbone, conditions)
        with backbone.disable_adapter():
            without = _loss(backbone, conditions)
    assert torch.equal(with_adapter, without)  # a fresh adapter (B = 0) changes nothing
    assert all(p.dtype == torch.float32 for p in backbone.trainable_parameters())


@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_a_bf16_training_run_saves_changed_fp32_adapters(tmp_path, dtype):
    registry = load_registry()
    data = training_data(
        str(tmp_path / "run"),
        backbone={**training_data("x")["backbone"], "dtype": dtype},
        training={
            "learning_rate": STEP,
            # the warm start moves B off 0 so that the round's gradient reaches A
            "warm_start": {"steps": 1, "batch_size": 1, "learning_rate": STEP},
        },
    )
    trainer = Trainer(
        validate_config(data, registry), registry, world=World(), resume=None, progress=False
    )
    names = [n for n, _ in trainer.policy.transformer.named_parameters() if ".lora_" in n]
    initial = {n: p.detach().clone() for n, p in zip(names, trainer.parameters, strict=True)}
    assert all(t.dtype == torch.float32 for t in initial.values())
    try:
        run = trainer.run()
    finally:
        trainer.close()
    final = load_file(str(run / "lora.safetensors"))
    assert final and all(t.dtype == torch.float32 for t in final.values())
    # every saved tensor is a parameter (peft's names without the adapter name)
    by_saved_name = {n.replace(".default", ""): t for n, t in initial.items()}
    a_changed = [
        float((final[key] != by_saved_name[key]).float().mean())
        for key in final
        if ".lora_A" in key
    ]
    # A's entries (|a| up to ~0.3) moved by ~1e-4: most of them would round back in bf16
    assert a_changed and sum(a_changed) / len(a_changed) > 0.5
