"""Variant choice: daily rotation by calendar day, or weighted random draws."""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from intercept.research.variants import VariantChooser

VARIANTS = ("harm", "legal", "help", "neutral")


def test_daily_rotation_follows_the_ordinal_day() -> None:
    chooser = VariantChooser(VARIANTS, mode="daily")
    day = date(2026, 11, 29)
    assert chooser.choose(day) == VARIANTS[day.toordinal() % 4]
    week = [chooser.choose(day + timedelta(days=n)) for n in range(8)]
    assert set(week[:4]) == set(VARIANTS)
    assert week[:4] == week[4:]
    assert chooser.choose(day) == chooser.choose(day)


def test_daily_is_the_default_and_uses_todays_utc_date() -> None:
    chooser = VariantChooser(VARIANTS)
    assert chooser.mode == "daily"
    today = datetime.now(UTC).date()
    assert chooser.choose() in {chooser.choose(today), chooser.choose(today + timedelta(days=1))}


def test_daily_rotation_skips_variants_weighted_zero() -> None:
    chooser = VariantChooser(VARIANTS, weights={"harm": 1, "legal": 1, "help": 0, "neutral": 2})
    days = [chooser.choose(date(2026, 1, 1) + timedelta(days=n)) for n in range(30)]
    assert set(days) == {"harm", "legal", "neutral"}


def test_weights_mode_draws_in_proportion() -> None:
    chooser = VariantChooser(
        VARIANTS,
        mode="weights",
        weights={"harm": 3, "legal": 1, "help": 0, "neutral": 1},
        rng=random.Random(7),
    )
    counts = Counter(chooser.choose() for _ in range(20_000))
    assert counts["help"] == 0
    assert counts["harm"] / counts["legal"] == pytest.approx(3, rel=0.1)
    assert counts["neutral"] / counts["legal"] == pytest.approx(1, rel=0.1)


def test_weights_mode_ignores_the_day_and_defaults_to_equal_weights() -> None:
    chooser = VariantChooser(VARIANTS, mode="weights", rng=random.Random(1))
    drawn = {chooser.choose(date(2026, 1, 1)) for _ in range(200)}
    assert drawn == set(VARIANTS)


def test_weights_mode_draws_exactly_as_random_choices() -> None:
    weights = {"harm": 3, "legal": 1, "help": 0, "neutral": 1.5}
    chooser = VariantChooser(VARIANTS, mode="weights", weights=weights, rng=random.Random(11))
    reference = random.Random(11)
    expected = [reference.choices(VARIANTS, weights=list(weights.values()))[0] for _ in range(5000)]
    assert [chooser.choose() for _ in range(5000)] == expected


def test_same_seed_same_draws() -> None:
    first = VariantChooser(VARIANTS, mode="weights", rng=random.Random(3))
    second = VariantChooser(VARIANTS, mode="weights", rng=random.Random(3))
    assert [first.choose() for _ in range(50)] == [second.choose() for _ in range(50)]


@pytest.mark.parametrize(
    ("variants", "kwargs", "message"),
    [
        ((), {}, "must not be empty"),
        (("harm", "harm"), {}, "unique"),
        (VARIANTS, {"mode": "hourly"}, "mode"),
        (VARIANTS, {"weights": {"scary": 1}}, "unknown variants: scary"),
        (VARIANTS, {"weights": {"harm": -1}}, ">= 0"),
        (VARIANTS, {"weights": {"harm": math.nan}}, "finite"),
        (VARIANTS, {"weights": {"harm": math.inf}}, "finite"),
        (VARIANTS, {"weights": {"harm": True}}, "number"),
        (VARIANTS, {"weights": {"harm": "2"}}, "number"),
        (VARIANTS, {"weights": {"harm": 0, "legal": 0}}, "above 0"),
        (VARIANTS, {"weights": {}}, "above 0"),
    ],
)
def test_bad_configuration_is_refused(
    variants: tuple[str, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        VariantChooser(variants, **kwargs)  # type: ignore[arg-type]


def test_a_mapping_gives_variants_and_weights_at_once() -> None:
    chooser = VariantChooser({"harm": 1, "legal": 0, "neutral": 2}, mode="weights")
    assert chooser.variants == ("harm", "legal", "neutral")
    assert repr(chooser) == "<VariantChooser mode=weights harm=1, legal=0, neutral=2>"
    with pytest.raises(ValueError, match="twice"):
        VariantChooser({"harm": 1}, weights={"harm": 1})


def test_repr_names_mode_and_weights() -> None:
    chooser = VariantChooser(("harm", "help"), mode="weights", weights={"harm": 2})
    assert repr(chooser) == "<VariantChooser mode=weights harm=2, help=0>"


def test_forked_workers_draw_their_own_sequences() -> None:
    """A chooser made before `--workers N` forks must not hand every worker the same random
    sequence (assignments would come in correlated runs): each child reseeds."""
    chooser = VariantChooser({"harm": 1.0, "neutral": 1.0}, mode="weights")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its 64 draws to the parent, then gone
        os.close(read_end)
        os.write(write_end, "".join(chooser.choose()[0] for _ in range(64)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    parent = "".join(chooser.choose()[0] for _ in range(64))
    assert len(child) == 64
    assert child != parent  # the same 64 draws by chance: 2**-64
