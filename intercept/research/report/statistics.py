"""The statistics of a report: rates and their 95% Wilson score intervals.

Pure functions of counts, no I/O and no knowledge of suppression: the caller
(`intercept.research.report.build`) decides which counts may be used at all. Every figure a report
shows is rounded to `DECIMALS` places here, so CSV, JSON and HTML show the same numbers.

A rate is not defined (None) when there are no trials or more successes than trials (more
clicks than pages): that is not suppression, and the renderers show it as an empty cell.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["DECIMALS", "Z95", "rate", "rate_interval", "wilson"]

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
