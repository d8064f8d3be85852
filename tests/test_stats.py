"""The statistics over seeds, checked against scipy and against hand computation."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from nnlab import stats

SAMPLE = [0.52, 0.47, 0.61, 0.55, 0.49]


def test_t_interval_matches_scipy():
    low, high = stats.t_interval(SAMPLE)
    expected = scipy_stats.t.interval(
        0.95, len(SAMPLE) - 1, loc=np.mean(SAMPLE), scale=scipy_stats.sem(SAMPLE)
    )
    assert (low, high) == pytest.approx(expected, rel=1e-12)


def test_t_interval_by_hand_for_two_values():
    # n = 2: mean 1, s = sqrt(2), t(0.975, 1) = 12.7062..., half-width = t * s / sqrt(2) = t.
    low, high = stats.t_interval([0.0, 2.0])
    assert (low, high) == pytest.approx((1 - 12.706204736, 1 + 12.706204736), rel=1e-9)


def test_summary_of_one_value_states_no_interval():
    s = stats.summarize([0.3])
    assert s.n == 1 and s.mean == 0.3 and s.ci_low is None and s.ci_high is None
    assert s.interval_text() == "n=1, no interval"
    assert stats.probability_better([0.3], [0.1, 0.2], higher_is_better=True) is None


def test_summary_leaves_out_failed_values():
    s = stats.summarize([0.5, math.nan, 0.7, math.inf])
    assert s.n == 2 and s.mean == pytest.approx(0.6) and (s.min, s.max) == (0.5, 0.7)
    assert stats.summarize([math.nan]) is None


def test_welch_difference_matches_scipy():
    a, b = SAMPLE, [0.58, 0.66, 0.71, 0.6, 0.69, 0.64]
    diff, low, high = stats.difference_interval(a, b)
    welch = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (low, high) == pytest.approx((welch.low, welch.high), rel=1e-10)


@pytest.mark.parametrize(
    "a, b, lower_is_better_p",
    [
        # a = [0, 1] resamples to a mean of 0, 0.5 or 1 with probability 1/4, 1/2, 1/4; b's
        # mean is always 0.75: a is lower with probability 3/4, never tied.
        ([0.0, 1.0], [0.75, 0.75], 0.75),
        # b's mean always 0.5: a lower 1/4, tied 1/2 (counted half): 1/4 + 1/4 = 1/2.
        ([0.0, 1.0], [0.5, 0.5], 0.5),
        # Far apart: certain.
        ([0.1, 0.11, 0.12], [0.9, 0.91, 0.92], 1.0),
    ],
)
def test_bootstrap_probability_by_hand(a, b, lower_is_better_p):
    p = stats.probability_better(a, b, higher_is_better=False)
    assert p == pytest.approx(lower_is_better_p, abs=0.015)  # 10,000 resamples
    assert stats.probability_better(a, b, higher_is_better=True) == pytest.approx(
        1 - lower_is_better_p, abs=0.015
    )


def test_ranking_flags_groups_not_distinguishable_from_the_best():
    groups = {
        "clear winner": [0.10, 0.11, 0.12, 0.10],
        "close": [0.11, 0.13, 0.12, 0.14],
        "far": [0.50, 0.52, 0.51, 0.49],
        "one seed": [0.05],
    }
    ranked = stats.rank_groups(groups, higher_is_better=False)
    by_name = {r.group: r for r in ranked}
    # "one seed" has the lowest mean, so it ranks first, with no interval: nothing overlaps
    # an interval that does not exist, and no probability is claimed against it.
    assert [r.group for r in ranked] == ["one seed", "clear winner", "close", "far"]
    assert by_name["one seed"].is_best and by_name["clear winner"].p_beats_best is None
    ranked = stats.rank_groups({k: v for k, v in groups.items() if k != "one seed"}, False)
    by_name = {r.group: r for r in ranked}
    assert by_name["clear winner"].is_best and by_name["clear winner"].p_beats_best is None
    assert by_name["close"].tied_with_best and not by_name["far"].tied_with_best
    assert 0 < by_name["close"].p_beats_best < 0.5 and by_name["far"].p_beats_best == 0.0
