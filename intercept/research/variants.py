"""Which message variant a searcher sees, chosen without any state about the searcher.

Two modes:

- `daily`: every searcher sees the same variant all day, and the variant rotates by calendar
  day (the date's ordinal number modulo the number of variants). This is how the Ahmia field
  experiment assigned variants: comparable days, no cookie, nothing stored per user. Variants
  given a weight of 0 are left out of the rotation.
- `weights`: each intervention draws a variant at random with the configured weights
  (`random.choices`), e.g. `{harm: 2, legal: 1, help: 1, neutral: 1}`.

Days are UTC dates unless the caller passes `today`, so every instance of a deployment agrees
on the variant whatever its local time zone. A chooser forked into workers (`--workers N`)
draws from the random module's generator, which reseeds itself in each child: a generator of
its own, made before the fork, would give every worker the very sequence its siblings draw,
and `weights` assignments would come in correlated runs.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Literal

__all__ = ["VariantChooser", "VariantMode"]

VariantMode = Literal["weights", "daily"]

_EPOCH = date(1970, 1, 1).toordinal()  # Unix time counts UTC days from here, leap seconds aside


class VariantChooser:
    """Chooses a message variant per intervention; see the module docstring for the modes.

    `variants` is the ordered list of variant ids (the daily rotation follows this order), or
    a mapping of variant ids to weights, which is the same as passing its keys as `variants`
    and the mapping as `weights`. `weights` maps variant ids to non-negative numbers; unlisted
    variants get weight 0, and without weights every variant weighs 1. `rng` replaces the
    random source (for tests). Raises `ValueError` for an empty or repeated variant, an
    unknown variant in `weights`, a negative or non-finite weight, weights given twice, or
    weights that leave no variant to choose.
    """

    __slots__ = ("_cumulative", "_random", "_rotation", "_weights", "mode", "variants")

    def __init__(
        self,
        variants: Sequence[str] | Mapping[str, float],
        *,
        mode: VariantMode = "daily",
        weights: Mapping[str, float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(variants, Mapping):
            if weights is not None:
                raise ValueError("weights given twice: as the variants mapping and as weights")
            weights = variants
        names = tuple(variants)
        if not names:
            raise ValueError("variants must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"variants must be unique (got {', '.join(names)})")
        if mode not in ("weights", "daily"):
            raise ValueError(f"mode must be 'weights' or 'daily' (got {mode!r})")
        chosen = _weights(names, weights)
        self.variants: tuple[str, ...] = names
        self.mode: VariantMode = mode
        self._weights: tuple[float, ...] = chosen
        self._cumulative = list(itertools.accumulate(chosen))  # computed once, not per choice
        self._rotation: tuple[str, ...] = tuple(
            name for name, weight in zip(names, chosen, strict=True) if weight > 0
        )
        # without an injected source, the random module's own generator: it reseeds itself
        # in every forked child, so workers forked from one supervisor draw their own sequences
        self._random = rng.random if rng is not None else random.random

    def __repr__(self) -> str:
        weights = ", ".join(
            f"{name}={weight:g}" for name, weight in zip(self.variants, self._weights, strict=True)
        )
        return f"<VariantChooser mode={self.mode} {weights}>"

    def choose(self, today: date | None = None) -> str:
        """The variant for one intervention. `today` sets the day for `daily` mode (UTC today
        when omitted); `weights` mode ignores it."""
        if self.mode == "weights":
            # what random.choices(cum_weights=...) does for one draw, without its list
            draw = self._random() * self._cumulative[-1]
            return self.variants[bisect.bisect(self._cumulative, draw, 0, len(self.variants) - 1)]
        ordinal = today.toordinal() if today is not None else _EPOCH + int(time.time() // 86_400)
        return self._rotation[ordinal % len(self._rotation)]


def _weights(names: tuple[str, ...], weights: Mapping[str, float] | None) -> tuple[float, ...]:
    if weights is None:
        return tuple(1.0 for _ in names)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"weights name unknown variants: {', '.join(unknown)}")
    values: list[float] = []
    for name in names:
        weight = weights.get(name, 0.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"weight for {name!r} must be a number (got {weight!r})")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight for {name!r} must be a finite number >= 0 (got {weight!r})")
        values.append(float(weight))
    if not any(value > 0 for value in values):
        raise ValueError("at least one variant needs a weight above 0")
    return tuple(values)
