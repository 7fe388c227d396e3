"""MUSIQ through pyiqa: loading, VBench's preprocessing and averaging. The checkpoint written
here holds random weights: the scores are not real image quality values."""

from __future__ import annotations

import builtins

import pytest
import torch
from torchvision.transforms import Resize

from devis_core.errors import MissingWeightsError, UsageError
from devis_core.toolkit.musiq_network import MUSIQScorer, load_musiq, vbench_musiq_input
from tests.metrics.conftest import smooth_video


def test_vbench_longer_side_preprocessing():
    levels = torch.round(smooth_video(0, (2, 3, 300, 700)) * 255).to(torch.uint8)
    frames = levels / 255  # 8-bit frames, as VBench reads them from a file
    prepared = vbench_musiq_input(frames)
    assert prepared.shape == (2, 3, 219, 512)  # int(512 / 700 * 300) = 219
    expected = Resize((219, 512), antialias=False)(levels).float() / 255  # VBench's transform
    torch.testing.assert_close(prepared, expected, atol=0, rtol=0)
    small = smooth_video(1, (1, 3, 64, 80))
    torch.testing.assert_close(vbench_musiq_input(small), torch.round(small * 255) / 255)


def test_musiq_without_a_checkpoint_says_which_file():
    with pytest.raises(MissingWeightsError, match="musiq_spaq_ckpt-358bb6af.pth"):
        load_musiq(None)
    with pytest.raises(MissingWeightsError, match="IQA-PyTorch"):
        load_musiq("/nonexistent/musiq.pth")


def test_musiq_without_pyiqa_says_how_to_install(tmp_path, monkeypatch):
    checkpoint = tmp_path / "musiq.pth"
    checkpoint.write_bytes(b"")
    real_import = builtins.__import__

    def no_pyiqa(name, *args, **kwargs):
        if name.startswith("pyiqa"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyiqa)
    with pytest.raises(UsageError, match=r"pip install 'devis\[musiq\]'"):
        load_musiq(checkpoint)


@pytest.fixture(scope="module")
def random_musiq(tmp_path_factory):
    """pyiqa's MUSIQ with random weights, and a checkpoint file of them."""
    musiq_arch = pytest.importorskip("pyiqa.archs.musiq_arch")
    torch.manual_seed(0)
    model = musiq_arch.MUSIQ(pretrained=False).eval()
    checkpoint = tmp_path_factory.mktemp("musiq") / "random-musiq.pth"
    torch.save(model.state_dict(), checkpoint)
    return model, checkpoint


@pytest.mark.slow
def test_imaging_quality_plumbing_with_random_musiq(registry, random_musiq):
    reference, checkpoint = random_musiq
    metric = registry.build("metric", {"kind": "imaging-quality", "weights_path": str(checkpoint)})
    videos = smooth_video(2, (2, 1, 3, 32, 32))
    values = metric.compute(videos, videos)
    with torch.no_grad():
        frames = torch.round(videos[:, 0] * 255) / 255
        expected = torch.cat([reference(frame[None]).flatten() for frame in frames]) / 100
    torch.testing.assert_close(values, expected, atol=1e-5, rtol=1e-5)


def test_no_reference_quality_reward_with_random_musiq(registry, random_musiq, tmp_path):
    _, checkpoint = random_musiq
    term = registry.build(
        "reward",
        {"kind": "no-reference-quality", "model": "musiq", "weights_path": str(checkpoint)},
    )
    assert term.higher_is_better and term.default_range == (0.0, 1.0)
    bad = tmp_path / "not-musiq.pth"
    torch.save({"weight": torch.zeros(1)}, bad)
    with pytest.raises(UsageError, match="not a MUSIQ"):
        MUSIQScorer(bad)
