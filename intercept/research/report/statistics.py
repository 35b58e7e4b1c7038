"""The statistics of a report: rates and their 95% Wilson score intervals, and each variant
against the control.

- A rate's interval is Wilson's score interval (Wilson 1927): for p = s/n and z = 1.959964,
  (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).
- A difference of two rates d = p1 - p2 gets Newcombe's hybrid score interval (Newcombe 1998,
  method 10), from the two Wilson intervals (l1, u1) and (l2, u2):
  [d - sqrt((p1-l1)² + (u2-p2)²), d + sqrt((u1-p1)² + (p2-l2)²)]. It keeps within [-1, 1]
  and behaves at 0 and 1, where the Wald interval does not. Checked against Newcombe's worked
  examples and statsmodels (`tests/research/test_report_statistics.py`).
- Whether they differ: the two-sided two-proportion z-test with the pooled proportion,
  z = (p1 - p2) / sqrt(p(1-p)(1/n1 + 1/n2)), p = (s1 + s2) / (n1 + n2); p-value erfc(|z|/√2).
- Many comparisons in one report: Holm's step-down correction (Holm 1979) of their p-values,
  which controls the family-wise error rate without assuming independence: sorted ascending,
  the i-th (from 0) of m becomes max over j <= i of min(1, (m - j)·p_(j)).

Pure functions of counts, no I/O and no knowledge of suppression: the caller
(`intercept.research.report.build`) decides which counts may be used at all. Every figure a report
shows is rounded to `DECIMALS` places here, so CSV, JSON and HTML show the same numbers.

A rate is not defined (None) when there are no trials or more successes than trials (more
clicks than pages): that is not suppression, and the renderers show it as an empty cell.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["DECIMALS", "Z95", "holm", "newcombe", "rate", "rate_interval", "two_proportion_p",
           "wilson"]  # fmt: skip

Z95: Final = 1.959964
DECIMALS: Final = 6


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for `successes` out of `trials` (95% with the default z)."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(successes: int, trials: int) -> float | None:
    """`successes / trials` rounded to `DECIMALS` places; None where it is not defined (no
    trials, or more successes than trials)."""
    if trials <= 0 or successes > trials:
        return None
    return round(successes / trials, DECIMALS)


def rate_interval(successes: int, trials: int) -> tuple[float, float]:
    """The 95% Wilson interval of a defined rate (see `rate`), rounded to `DECIMALS` places."""
    low, high = wilson(successes, trials)
    return round(low, DECIMALS), round(high, DECIMALS)


def newcombe(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """The difference `s1/n1 - s2/n2` and its hybrid score interval (see the module
    docstring): (difference, low, high), unrounded."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson(s1, n1, z)
    l2, u2 = wilson(s2, n2, z)
    d = p1 - p2
    return d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def two_proportion_p(s1: int, n1: int, s2: int, n2: int) -> float:
    """The two-sided p-value of the pooled two-proportion z-test (see the module docstring);
    1.0 where both rates are 0 or both 1 (no variance: nothing tells them apart)."""
    if n1 <= 0 or n2 <= 0 or not (0 <= s1 <= n1 and 0 <= s2 <= n2):
        raise ValueError(f"need 0 <= s <= n and n > 0, got {s1}/{n1} and {s2}/{n2}")
    pooled = (s1 + s2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    return math.erfc(abs(s1 / n1 - s2 / n2) / math.sqrt(variance) / math.sqrt(2))


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given (see the module docstring)."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
