"""The statistics behind every table: confidence intervals of a mean and paired tests.

A table row is a mean over samples (and seeds); whether two rows differ by more than that
sampling noise is what a reader needs before trusting a ranking. These are the textbook
Student-t forms, computed here with the standard library (the t distribution through the
regularised incomplete beta function) so that the core needs no scipy:

- :func:`mean_interval`: the 95% confidence interval of a mean, ``mean +- t(0.975, n - 1) *
  std / sqrt(n)``;
- :func:`paired_p_value`: the two-sided p-value of the paired t-test of two rows measured on
  the same samples (each sample is its own control, so the scene-to-scene spread, much larger
  than most differences between methods, cancels).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

SIGNIFICANCE = 0.05
"""Below this p-value a difference between two rows is reported as significant."""

CONFIDENCE = 0.95
"""Coverage of the confidence intervals in ``table.json``."""


def t_two_sided_p(t: float, df: float) -> float:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return _incomplete_beta(df / 2, 0.5, df / (df + t * t))


def t_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (bisection on
    the distribution function to double precision)."""
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), not {probability}")
    if probability < 0.5:
        return -t_quantile(1 - probability, df)
    tail = 2 * (1 - probability)  # the two-sided p-value of the quantile sought
    low, high = 0.0, 1.0
    while t_two_sided_p(high, df) > tail:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if t_two_sided_p(middle, df) > tail else (low, middle)
    return (low + high) / 2


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """The :data:`CONFIDENCE` interval of the mean of ``values`` (t distribution, ``n - 1``
    degrees of freedom); NaN bounds with fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean = statistics.fmean(values)
    half = t_quantile((1 + CONFIDENCE) / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean - half, mean + half


def paired_p_value(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test of ``first`` against ``second`` (pairs in order).

    NaN with fewer than two pairs. Differences that are all equal have no spread to test
    against: p is 1 when they are all zero (the rows are the same), 0 otherwise (a constant
    shift is no noise).
    """
    if len(first) != len(second):
        raise ValueError(f"paired samples differ in length: {len(first)} and {len(second)}")
    differences = [a - b for a, b in zip(first, second, strict=True)]
    n = len(differences)
    if n < 2:
        return math.nan
    mean, spread = statistics.fmean(differences), statistics.stdev(differences)
    if spread == 0:
        return 1.0 if mean == 0 else 0.0
    return t_two_sided_p(mean / (spread / math.sqrt(n)), n - 1)


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)`` (continued fraction, Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1 - front * _beta_fraction(b, a, 1 - x) / b
    return front * _beta_fraction(a, b, x) / a


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny, epsilon = 1e-300, 1e-16
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < epsilon:
            break
    return result
