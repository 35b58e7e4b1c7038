"""`intercept.research.report.statistics`: the Wilson score interval against values solved by hand,
and the rates a report shows (rounded to six places, not defined without trials or with more
successes than trials)."""

from __future__ import annotations

import pytest

from intercept.research.report.statistics import rate, rate_interval, wilson

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
