"""The statistics of every table, against scipy and against values worked out by hand.

The core computes the t distribution itself (no scipy dependency); scipy, installed with
scikit-image, is the independent reference here.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest
from scipy import stats

from devis_core.engines.evaluate import summarise
from devis_core.engines.statistics import (
    mean_interval,
    paired_p_value,
    t_quantile,
    t_two_sided_p,
)


@pytest.mark.parametrize("df", [1, 2, 3, 7, 29, 500])
@pytest.mark.parametrize("probability", [0.6, 0.9, 0.975, 0.995])
def test_t_quantile_matches_scipy(df, probability):
    assert t_quantile(probability, df) == pytest.approx(stats.t.ppf(probability, df), rel=1e-10)
    assert t_quantile(1 - probability, df) == pytest.approx(stats.t.ppf(1 - probability, df))


def test_t_quantile_matches_the_printed_table():
    # two-sided 95% critical values of Student's t, as statistics textbooks print them
    for df, printed in [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)]:
        assert round(t_quantile(0.975, df), 3) == printed


@pytest.mark.parametrize("t", [0.05, 0.8, 2.0, 4.5, 30.0])
@pytest.mark.parametrize("df", [1, 3, 12, 100])
def test_two_sided_p_matches_scipy(t, df):
    assert t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(t, df), rel=1e-9, abs=1e-300)


def test_the_95_interval_of_a_mean_by_hand():
    values = [1.0, 2.0, 3.0, 4.0]
    # mean 2.5, sample std sqrt(5/3), t(0.975, 3) = 3.182446305284263 (scipy-free constant)
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    low, high = mean_interval(values)
    assert low == pytest.approx(2.5 - half, rel=1e-12) and high == pytest.approx(2.5 + half)
    assert all(math.isnan(bound) for bound in mean_interval([1.0]))


def test_paired_p_value_matches_scipy_ttest_rel():
    draw = random.Random(3)
    for n in (2, 3, 8, 40):
        first = [draw.gauss(20, 3) for _ in range(n)]
        second = [value + draw.gauss(0.4, 1.0) for value in first]
        expected = stats.ttest_rel(second, first).pvalue
        assert paired_p_value(second, first) == pytest.approx(expected, rel=1e-9)
        assert paired_p_value(first, second) == pytest.approx(expected, rel=1e-9)


def test_pairing_is_what_makes_a_small_consistent_gain_significant():
    scenes = [12.0, 25.0, 18.0, 31.0, 9.0, 22.0]  # scene-to-scene spread dwarfs the gain
    better = [v + 0.3 + 0.01 * i for i, v in enumerate(scenes)]
    assert paired_p_value(better, scenes) < 0.001
    assert stats.ttest_ind(better, scenes).pvalue > 0.9  # unpaired, the gain is lost in noise


def test_paired_p_value_edge_cases():
    assert paired_p_value([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0  # the same row
    assert paired_p_value([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]) == 0.0  # a constant shift
    assert math.isnan(paired_p_value([1.0], [2.0]))
    with pytest.raises(ValueError, match="differ in length"):
        paired_p_value([1.0, 2.0], [1.0])


def _record(method, index, **values):
    return {"method": method, "key": "k", "sample_id": f"s{index}", "index": index, **values}


def test_summarise_gives_mean_std_n_interval_and_paired_p_against_the_first_method():
    base = [10.0, 14.0, 11.0, 19.0]
    ours = [10.5, 14.9, math.nan, 20.1]  # sample 2 failed: no value, left out of n and pairs
    records = [_record("base", i, psnr=v) for i, v in enumerate(base)]
    records += [_record("ours", i, psnr=v) for i, v in enumerate(ours)]
    names, rows = summarise(records, ["base", "ours"])
    assert names == ["psnr"]
    base_row, our_row = rows
    finite = [10.5, 14.9, 20.1]
    assert our_row["psnr"] == pytest.approx(statistics.fmean(finite))
    assert our_row["psnr std"] == pytest.approx(statistics.stdev(finite))
    assert our_row["psnr n"] == 3 and our_row["samples"] == 4
    half = stats.t.ppf(0.975, 2) * statistics.stdev(finite) / math.sqrt(3)
    assert our_row["psnr ci95 low"] == pytest.approx(statistics.fmean(finite) - half)
    assert our_row["psnr ci95 high"] == pytest.approx(statistics.fmean(finite) + half)
    expected = stats.ttest_rel([10.5, 14.9, 20.1], [10.0, 14.0, 19.0]).pvalue
    assert our_row["psnr p"] == pytest.approx(expected)
    assert math.isnan(base_row["psnr p"])  # the reference is not tested against itself


def test_summarise_pairs_by_seed_and_index_and_honours_the_reference():
    records = [
        {"method": m, "seed": seed, "index": i, "reward": 0.5 + 0.1 * seed - 0.2 * i + offset}
        for m, offset in (("warm", 0.0), ("grpo", 0.2))
        for seed in (0, 1)
        for i in (0, 1)
    ]
    records[0]["reward"] += 0.05  # warm, seed 0, scene 0: not a constant shift any more
    _, rows = summarise(records, ["warm", "grpo"], reference="grpo", pair_by=("seed", "index"))
    warm = [r["reward"] for r in records if r["method"] == "warm"]
    grpo = [r["reward"] for r in records if r["method"] == "grpo"]
    assert rows[0]["reward p"] == pytest.approx(stats.ttest_rel(warm, grpo).pvalue)
    assert math.isnan(rows[1]["reward p"])
    assert rows[0]["reward n"] == 4


def test_a_single_method_has_no_p_value():
    _, rows = summarise([_record("only", 0, psnr=1.0), _record("only", 1, psnr=3.0)], ["only"])
    assert "psnr p" not in rows[0] and rows[0]["psnr std"] == pytest.approx(math.sqrt(2))
