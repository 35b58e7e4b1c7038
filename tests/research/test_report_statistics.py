"""`intercept.research.report.statistics`: the Wilson score interval against values solved by hand,
and the rates a report shows (rounded to six places, not defined without trials or with more
successes than trials)."""

from __future__ import annotations

import pytest

from intercept.research.report.statistics import (
    holm,
    newcombe,
    rate,
    rate_interval,
    two_proportion_p,
    wilson,
)

# --- Wilson ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [  # solved by hand from (p - x/n)^2 = z^2 p (1 - p) / n with z = 1.959964
        (20, 100, 0.133367, 0.288829),
        (30, 120, 0.181098, 0.334411),
        (12, 120, 0.058134, 0.166682),
        (20, 65, 0.208870, 0.427976),
        (10, 55, 0.101877, 0.303305),
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
    ],
)
def test_wilson_interval(successes: int, trials: int, low: float, high: float) -> None:
    got = wilson(successes, trials)
    assert got == pytest.approx((low, high), abs=1e-6)


def test_wilson_refuses_impossible_counts() -> None:
    for successes, trials in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError, match="successes"):
            wilson(successes, trials)


def test_rates_are_rounded_and_undefined_where_they_have_no_meaning() -> None:
    assert rate(1, 3) == 0.333333
    assert rate(0, 5) == 0.0
    assert rate(5, 5) == 1.0
    assert rate(1, 0) is None  # no trials
    assert rate(0, 0) is None
    assert rate(6, 5) is None  # more clicks than pages
    assert rate_interval(20, 100) == (0.133367, 0.288829)
    assert rate_interval(10, 10) == (0.722467, 1.0)


# --- a variant against the control ------------------------------------------------------------


@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_newcombe_interval_matches_the_published_examples(
    s1: int, n1: int, s2: int, n2: int, low: float, high: float
) -> None:
    difference, got_low, got_high = newcombe(s1, n1, s2, n2)
    assert difference == pytest.approx(s1 / n1 - s2 / n2)
    assert (got_low, got_high) == pytest.approx((low, high), abs=5e-5)


def test_the_comparison_statistics_match_statsmodels() -> None:
    """Newcombe's interval, the pooled z-test and Holm's correction against statsmodels over a
    grid of counts (edges included: none and all successes, tiny and large samples)."""
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    cases = [(s1, n1, s2, n2) for n1 in (1, 7, 40, 913) for n2 in (3, 40, 1200)
             for s1 in {0, 1, n1 // 3, n1} for s2 in {0, n2 // 2, n2}]  # fmt: skip
    p_values = []
    for s1, n1, s2, n2 in cases:
        _, low, high = newcombe(s1, n1, s2, n2)
        want = proportion.confint_proportions_2indep(s1, n1, s2, n2, method="newcomb")
        # abs 1e-6: z is 1.959964 here (six places, as a report shows), 1.95996398 there
        assert (low, high) == pytest.approx(tuple(map(float, want)), abs=1e-6), (s1, n1, s2, n2)
        p = two_proportion_p(s1, n1, s2, n2)
        if 0 < s1 + s2 < n1 + n2:  # statsmodels divides by zero where both are 0 or both 1
            _, want_p = proportion.proportions_ztest([s1, s2], [n1, n2])
            assert p == pytest.approx(float(want_p), abs=1e-12), (s1, n1, s2, n2)
        else:
            assert p == 1.0
        p_values.append(p)
    want_holm = multitest.multipletests(p_values, method="holm")[1]
    assert holm(p_values) == pytest.approx([float(v) for v in want_holm], abs=1e-12)


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(0.06, 1 x 0.04): in the order given
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_two_proportion_p_refuses_impossible_counts() -> None:
    for counts in ((1, 0, 1, 2), (3, 2, 1, 2), (1, 2, -1, 2)):
        with pytest.raises(ValueError, match="need"):
            two_proportion_p(*counts)
