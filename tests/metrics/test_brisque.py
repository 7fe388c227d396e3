"""The offline image quality (BRISQUE with the model shipped in the `brisque` wheel), checked
against that package's own feature code and LIBSVM's prediction."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import skimage.color
import skimage.data
import torch

from devis_core.types import RewardInputs
from devis_plugins.no_reference_quality.brisque import (
    brisque_features,
    brisque_score,
    grey,
    half_size_bicubic,
    load_brisque_model,
)
from tests.metrics.conftest import smooth_video


def _astronaut(height: int, width: int) -> np.ndarray:
    return skimage.data.astronaut()[100 : 100 + height, 150 : 150 + width] / 255.0


def _reference_features(image: np.ndarray) -> np.ndarray:
    """The `brisque` package's features (its code is run, only flattened for NumPy 2)."""
    import brisque

    reference = brisque.BRISQUE()
    grey_image = skimage.color.rgb2gray(image)
    half = cv2.resize(grey_image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    features = list(reference.calculate_brisque_features(grey_image, 7, 7 / 6))
    features += list(reference.calculate_brisque_features(half, 7, 7 / 6))
    return np.array([float(np.asarray(f).reshape(-1)[0]) for f in features])


def _libsvm_score(features: np.ndarray) -> float:
    import brisque
    from libsvm import svmutil

    reference = brisque.BRISQUE()
    scaled = [float(v) for v in reference.scale_features(features)]
    nodes, _ = svmutil.gen_svm_nodearray(scaled, isKernel=False)
    return svmutil.libsvm.svm_predict_probability(reference.model, nodes, (svmutil.c_double * 1)())


@pytest.mark.parametrize("size", [(96, 160), (99, 163)])
def test_brisque_equals_the_brisque_package_and_libsvm(size):
    image = _astronaut(*size)
    frame = torch.from_numpy(image).permute(2, 0, 1)[None]
    features = brisque_features(grey(frame, torch.float64))[0].numpy()
    reference = _reference_features(image)
    np.testing.assert_allclose(features, reference, rtol=1e-9, atol=1e-10)
    model = load_brisque_model()
    expected = _libsvm_score(reference)
    assert float(brisque_score(frame, model, torch.float64)) == pytest.approx(expected, abs=1e-6)
    assert float(brisque_score(frame.float(), model)) == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("size", [(20, 30), (21, 31), (23, 27)])
def test_half_size_is_opencv_bicubic(size):
    image = np.random.default_rng(0).random(size)
    expected = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    result = half_size_bicubic(torch.from_numpy(image)[None])[0].numpy()
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, atol=1e-12)


def test_svr_of_a_hand_written_model(tmp_path):
    """Two support vectors in 2 features: the regression value computed by hand."""
    (tmp_path / "svm.txt").write_text(
        "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho 0.25\n"
        "SV\n2 1:0.5 2:-0.5\n-1 2:1\n"
    )
    with (tmp_path / "normalize.pickle").open("wb") as handle:
        pickle.dump({"min_": [0.0, 0.0], "max_": [2.0, 4.0]}, handle)
    model = load_brisque_model(tmp_path)
    raw = torch.tensor([[1.5, 1.0]], dtype=torch.float64)  # scaled: [0.5, -0.5]
    expected = 2 * np.exp(-0.5 * 0.0) - 1 * np.exp(-0.5 * (0.5**2 + 1.5**2)) - 0.25
    assert float(model.predict(raw)[0]) == pytest.approx(expected, abs=1e-12)


def test_the_range_file_cannot_run_code(tmp_path):
    (tmp_path / "svm.txt").write_text("svm_type epsilon_svr\nkernel_type rbf\ngamma 1\nrho 0\nSV\n")
    with (tmp_path / "normalize.pickle").open("wb") as handle:
        pickle.dump({"min_": [np.float64(0)], "max_": [1.0]}, handle)  # needs a global
    with pytest.raises(pickle.UnpicklingError, match="not plain data"):
        load_brisque_model(tmp_path)


def test_brisque_ranks_a_clean_image_above_its_distorted_versions():
    clean = torch.from_numpy(_astronaut(160, 240)).permute(2, 0, 1).float()[None]
    generator = torch.Generator().manual_seed(0)
    noisy = (clean + 0.15 * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(clean, 5, stride=1, padding=2)
    scores = brisque_score(torch.cat([clean, noisy, blurred]), load_brisque_model())
    assert scores[0] < scores[1] and scores[0] < scores[2]


def test_offline_no_reference_quality_reward_is_brisque_averaged_over_frames(registry):
    term = registry.build("reward", {"kind": "no-reference-quality", "model": "brisque"})
    assert term.higher_is_better is False and term.default_range == (0.0, 100.0)
    videos = smooth_video(0, (2, 3, 3, 40, 56), noise=0.1)
    batch = RewardInputs(videos, videos, videos, torch.ones(2, 3, 40, 56, dtype=torch.bool))
    scores = term.score(batch)
    model = load_brisque_model()
    for b in range(2):
        assert float(scores[b]) == pytest.approx(float(brisque_score(videos[b], model).mean()))
    with pytest.raises(ValueError, match="brisque needs no weights"):
        registry.build(
            "reward", {"kind": "no-reference-quality", "model": "brisque", "weights_path": "x"}
        )
