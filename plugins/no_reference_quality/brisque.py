"""BRISQUE no-reference image quality, batched in torch, with the model of the ``brisque`` wheel.

BRISQUE (Mittal, Moorthy and Bovik 2012) describes an image by 36 natural-scene statistics
(generalised Gaussian fits of its mean-subtracted contrast-normalised coefficients and of their
pairwise products, at full and half resolution) and maps them to a quality score with a
support vector regressor trained on human opinion scores. The trained regressor (an
epsilon-SVR with an RBF kernel, ``svm.txt``, and the feature ranges, ``normalize.pickle``)
ships inside the ``brisque`` package on PyPI (Apache-2.0), so it runs with no download.

The features follow that package's own code exactly (the regressor was trained on them):
grey levels ``0.2125 R + 0.7154 G + 0.0721 B`` of a ``[0, 1]`` image, a normalised 7x7
Gaussian window with sigma 7/6 and zero padding, ``C = 1/255``, asymmetric generalised
Gaussian fits whose shape solves ``phi(alpha) = R_hat`` exactly, and OpenCV's bicubic
half-size resize. Scores are about 0 (pristine) to 100 (heavily distorted); lower is better.
Only the model files are read from the package; its Python code is not imported. Scores are
computed in float32 by default (about 0.01 from the float64 ones); in float64 they equal the
package's to 1e-9.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from devis_core.errors import MissingWeightsError, UsageError

GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)
"""scikit-image's ``rgb2gray`` weights, which the ``brisque`` package uses."""

_WINDOW = 7
_SIGMA = 7 / 6
_C = 1 / 255
_CUBIC_HALF = (-0.09375, 0.59375, 0.59375, -0.09375)
"""OpenCV's bicubic weights (A = -0.75) at the half-pixel offset a 2x downscale samples."""


@dataclass
class BrisqueModel:
    """The regressor: support vectors, their coefficients, ``gamma``, ``rho`` and feature ranges."""

    support_vectors: Tensor
    coefficients: Tensor
    gamma: float
    rho: float
    feature_min: Tensor
    feature_max: Tensor

    def to(self, device: torch.device | str) -> BrisqueModel:
        return BrisqueModel(
            self.support_vectors.to(device),
            self.coefficients.to(device),
            self.gamma,
            self.rho,
            self.feature_min.to(device),
            self.feature_max.to(device),
        )

    def predict(self, features: Tensor) -> Tensor:
        """SVR output for ``(N, 36)`` raw features: ``sum_i c_i exp(-gamma |x - s_i|^2) - rho``."""
        low, high = self.feature_min, self.feature_max
        scaled = -1 + 2.0 * (features.double() - low) / (high - low)
        distances = torch.cdist(scaled, self.support_vectors).square()
        return torch.exp(-self.gamma * distances) @ self.coefficients - self.rho


def package_model_dir() -> Path:
    """Where the ``brisque`` package keeps ``svm.txt`` and ``normalize.pickle`` (not imported)."""
    spec = importlib.util.find_spec("brisque")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            "the offline no-reference-quality model (BRISQUE) is read from the `brisque` package, "
            "which is not installed: `pip install brisque` (a dependency of devis)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def load_brisque_model(directory: str | Path | None = None) -> BrisqueModel:
    """Read ``svm.txt`` (LIBSVM text format) and ``normalize.pickle`` from ``directory``."""
    directory = Path(directory) if directory is not None else package_model_dir()
    svm_file, range_file = directory / "svm.txt", directory / "normalize.pickle"
    for path in (svm_file, range_file):
        if not path.is_file():
            raise MissingWeightsError(
                f"BRISQUE model file {path} is missing; it ships with the `brisque` package "
                "(`pip install brisque`)"
            )
    header, vectors, coefficients = _read_libsvm(svm_file)
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise UsageError(f"{svm_file}: expected an epsilon_svr model with an rbf kernel")
    with range_file.open("rb") as handle:
        ranges = _PlainDataUnpickler(handle).load()
    low = torch.tensor(ranges["min_"], dtype=torch.float64)
    high = torch.tensor(ranges["max_"], dtype=torch.float64)
    width = low.numel()
    dense = torch.zeros(len(vectors), width, dtype=torch.float64)
    for row, entries in enumerate(vectors):
        for index, value in entries:
            dense[row, index - 1] = value
    return BrisqueModel(
        support_vectors=dense,
        coefficients=torch.tensor(coefficients, dtype=torch.float64),
        gamma=float(header["gamma"]),
        rho=float(header["rho"]),
        feature_min=low,
        feature_max=high,
    )


def _read_libsvm(path: Path) -> tuple[dict[str, str], list[list[tuple[int, float]]], list[float]]:
    header: dict[str, str] = {}
    vectors: list[list[tuple[int, float]]] = []
    coefficients: list[float] = []
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if line.strip() == "SV":
            break
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        coefficients.append(float(parts[0]))
        vectors.append([(int(i), float(v)) for i, v in (p.split(":") for p in parts[1:])])
    return header, vectors, coefficients


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numbers only: a data file must not run code."""

    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def grey(frames: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(N, 3, H, W)`` in ``[0, 1]`` -> ``(N, H, W)`` grey levels (``rgb2gray``) in ``dtype``."""
    weights = torch.tensor(GREY_WEIGHTS, dtype=dtype, device=frames.device)
    return torch.einsum("nchw,c->nhw", frames.to(dtype), weights)


def brisque_features(grey_frames: Tensor) -> Tensor:
    """The 36 BRISQUE features of ``(N, H, W)`` grey frames: 18 at full and 18 at half size.

    Per scale: shape and mean variance of the MSCN coefficients, then shape, mean, left and
    right variance of their horizontal, vertical and two diagonal neighbour products. The ten
    shape equations of all frames are solved together (one bisection, not one per fit).
    """
    moments = _scale_moments(grey_frames) + _scale_moments(half_size_bicubic(grey_frames))
    left, right, big_r = (torch.stack(parts, dim=1) for parts in zip(*moments, strict=True))
    alpha, mean, left, right = _aggd_parameters(left, right, solve_shape(big_r))
    features = []
    for k in range(len(moments)):
        if k % 5 == 0:  # the MSCN map itself: shape and average variance
            features += [alpha[:, k], (left[:, k] + right[:, k]) / 2]
        else:
            features += [alpha[:, k], mean[:, k], left[:, k], right[:, k]]
    return torch.stack(features, dim=1)


def brisque_score(
    frames: Tensor, model: BrisqueModel, dtype: torch.dtype = torch.float32
) -> Tensor:
    """BRISQUE score of each ``(N, 3, H, W)`` frame in ``[0, 1]`` (lower is better).

    Features are computed in ``dtype``: float32 by default, three times faster than float64
    on a CPU and within about 0.01 of it on the 0 to 100 scale; in float64 the features equal
    the ``brisque`` package's to 1e-9. A perfectly flat frame has no statistics to fit: NaN.
    """
    return model.predict(brisque_features(grey(frames, dtype)))


def half_size_bicubic(images: Tensor) -> Tensor:
    """OpenCV's ``resize(fx=0.5, fy=0.5, INTER_CUBIC)`` of ``(N, H, W)`` images.

    A 2x bicubic downscale samples every output pixel half-way between source pixels
    ``2i`` and ``2i + 1``, so it is a fixed 4-tap separable filter; borders are replicated
    and the output size is ``H / 2`` rounded half to even, as OpenCV does.
    """
    columns = _half_last_axis(images)
    return _half_last_axis(columns.transpose(-1, -2)).transpose(-1, -2)


def _half_last_axis(images: Tensor) -> Tensor:
    size = images.shape[-1]
    count = _round_half_even(size / 2)
    offsets = torch.arange(4, device=images.device) - 1
    starts = torch.arange(count, device=images.device)[:, None] * 2
    index = (starts + offsets).clamp(0, size - 1)
    taps = torch.tensor(_CUBIC_HALF, dtype=images.dtype, device=images.device)
    return images[..., index] @ taps


def _round_half_even(value: float) -> int:
    return int(round(value))  # Python rounds half to even, like OpenCV's cvRound


def mscn(images: Tensor) -> Tensor:
    """Mean-subtracted contrast-normalised coefficients, as the ``brisque`` package computes."""
    padded = F.pad(torch.stack([images, images * images]), (3, 3, 3, 3))
    local_mean, local_square = _gaussian_valid(padded).unbind(0)
    deviation = torch.sqrt((local_mean * local_mean - local_square).abs())
    return (images - local_mean) / (deviation + _C)


def _gaussian_valid(x: Tensor) -> Tensor:
    """The normalised 7x7 Gaussian (sigma 7/6) over valid windows, as two 1D passes."""
    axis = torch.arange(_WINDOW, dtype=torch.float64) - _WINDOW // 2
    profile = torch.exp(-(axis**2) / (2 * _SIGMA**2))
    taps = (profile / profile.sum()).tolist()  # the 2D kernel is the outer product of these
    for dim in (-1, -2):
        size = x.shape[dim] - _WINDOW + 1
        out = x.narrow(dim, 0, size) * taps[0]
        for k in range(1, _WINDOW):
            out.add_(x.narrow(dim, k, size), alpha=taps[k])
        x = out
    return x


def _scale_moments(images: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
    """AGGD moments of the MSCN map and of its four neighbour products, at one scale."""
    coefficients = mscn(images)
    n = coefficients.shape[0]
    maps = [
        coefficients,
        coefficients[:, :, :-1] * coefficients[:, :, 1:],  # horizontal neighbours
        coefficients[:, :-1, :] * coefficients[:, 1:, :],  # vertical
        coefficients[:, :-1, :-1] * coefficients[:, 1:, 1:],  # main diagonal
        coefficients[:, 1:, :-1] * coefficients[:, :-1, 1:],  # secondary diagonal
    ]
    return [aggd_moments(values.reshape(n, -1)) for values in maps]


def aggd_moments(values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Left and right variances and ``R_hat`` of each row, for an asymmetric GGD fit.

    Left are the negative values, right the others, as the ``brisque`` package splits them.
    """
    count = values.shape[1]
    total_square = torch.linalg.vector_norm(values, 2, dim=1) ** 2
    left_square = torch.linalg.vector_norm(values.clamp(max=0), 2, dim=1) ** 2
    left_count = (values < 0).sum(1)
    left_var = left_square / left_count
    right_var = (total_square - left_square) / (count - left_count)
    gamma_hat = left_var.sqrt() / right_var.sqrt()
    r_hat = (torch.linalg.vector_norm(values, 1, dim=1) / count) ** 2 / (total_square / count)
    big_r = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    return left_var, right_var, big_r


def _aggd_parameters(
    left_var: Tensor, right_var: Tensor, alpha: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    ratio = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    mean = (
        (right_var.sqrt() - left_var.sqrt())
        * ratio
        * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
    )
    return alpha, mean, left_var, right_var


def solve_shape(target: Tensor, iterations: int = 64) -> Tensor:
    """The ``alpha`` with ``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) = target``, by bisection.

    The ratio rises monotonically from 0 to 3/4, so the root is unique; targets outside
    that range give the nearest end of the search interval ``[0.05, 50]``.
    """
    low = torch.full_like(target, math.log(0.05))
    high = torch.full_like(target, math.log(50.0))
    for _ in range(iterations):
        middle = (low + high) / 2
        alpha = middle.exp()
        log_ratio = 2 * torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)
        above = log_ratio > target.log()
        high = torch.where(above, middle, high)
        low = torch.where(above, low, middle)
    return ((low + high) / 2).exp()
