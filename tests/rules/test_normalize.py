"""Normalization stages after folding, and properties that must hold for any text."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intercept.rules.normalize import (
    _stages,
    alternatives,
    collapse,
    edge_alternatives,
    normalize,
    plain_reading,
    readings_for_matching,
    runs,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Cheap  Flights", " cheap flights "),
        ("ＣＡＴ toys", " cat toys "),
        ("hello", None),  # a repeated letter: run lengths to verify
        ("a cat", None),  # a one-letter word: may be spelled out
        ("c@t", None),
        ("cat5", None),
        ("", " "),
    ],
)
def test_plain_reading_is_the_one_reading_of_plain_words(text: str, expected: str | None) -> None:
    assert plain_reading(text) == expected
    if expected is not None:
        assert readings_for_matching(text) == ((expected,), False)


@pytest.mark.parametrize("text", ["c a t", "c.a.t", "c-a-t", "c_a_t", "c*a*t", "c / a / t"])
def test_spelled_out_letters_are_joined_whatever_separates_them(text: str) -> None:
    assert list(alternatives(text)) == [" cat "]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # spelled-out letters are joined
        ("b i g c a t", [" bigcat "]),
        # ordinary words are never joined
        ("pic at", [" pic at "]),
        ("a big cat", [" a big cat "]),
        # leetspeak without symbols has one reading
        ("c4t", [" cat "]),
        ("h3ll0", [" hello "]),
        ("6ear", [" bear ", " gear "]),
        ("p1ck", [" pick ", " plck "]),  # 1 reads as i and as l
        # numbers stay numbers
        ("top 10 of 2024", [" top 10 of 2024 "]),
        ("$100", [" 100 "]),
        # separators collapse to one space, text is padded
        ("big-cat", [" big cat "]),
        ("big   cat", [" big cat "]),
        ("  ", [" "]),
        ("", [" "]),
    ],
)
def test_alternatives(text: str, expected: list[str]) -> None:
    assert list(alternatives(text)) == expected


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        # symbols read as letters...
        ("c@t", " cat "),
        ("c @ t", " cat "),
        ("$pice", " spice "),
        ("p|ck", " pick "),
        ("g||lion", " gillion "),  # two marks may be two different letters
        ("wyat+", " wyatt "),
        # ...and as separators
        ("cat!", " cat "),
        ("(cat)", " cat "),
        ("r|e|c|a|p", " recap "),
        ("big+cat", " big cat "),
    ],
)
def test_symbols_read_both_ways(text: str, reading: str) -> None:
    assert reading in alternatives(text)


def test_edge_readings_of_long_spelled_runs() -> None:
    # a run of four or more letters may begin or end with a word of its own
    assert edge_alternatives("b i g c a t") == (" b igcat ", " bigca t ", " b igca t ")
    assert edge_alternatives("c a t") == ()
    assert normalize("a c a t").alternatives == (" acat ", " a cat ", " aca t ", " a ca t ")


def test_ambiguous_readings_are_bounded() -> None:
    # eight separate ambiguous groups: 2**5 readings, not 2**8
    assert len(alternatives("a1b1c1d1e1f1g1h1")) == 32
    assert len(alternatives("a|b|c|d|e|f|g|h|i!j+k")) <= 32
    assert len(alternatives("x1y " * 400)) == 2  # long texts vary only the first group


@pytest.mark.parametrize(
    ("text", "expected"),
    [("caaaat", "cat"), ("ccaatt", "cat"), ("book", "bok"), (" a  b ", " a b "), ("", "")],
)
def test_collapse(text: str, expected: str) -> None:
    assert collapse(text) == expected


def test_runs() -> None:
    assert runs(" caat ") == [(" ", 1), ("c", 1), ("a", 2), ("t", 1), (" ", 1)]
    assert runs("") == []


def test_stages_are_reported_in_order() -> None:
    names = [name for name, _ in normalize("C.A.T").stages()]
    assert names == ["original", "folded", "spelled-out joined", "leetspeak", "words", "collapsed"]
    stages = dict(normalize("p1ck").stages())
    assert (stages["words #1"], stages["words #2"]) == ("pick", "plck")


def test_empty() -> None:
    assert normalize("\u200b !!! \u00ad").empty
    assert not normalize("cat").empty


def _slow_stages(text: str) -> tuple[str, ...]:
    """The general path, bypassing the shortcut for plain alphabetic text."""
    return _stages(text, shortcut=False)[3]


@given(st.text())
def test_shortcut_agrees_with_general_path(text: str) -> None:
    assert alternatives(text) == _slow_stages(text)


@given(st.lists(st.text(alphabet="abcdé ", min_size=2), min_size=1))
def test_shortcut_agrees_on_plain_words(words: list[str]) -> None:
    text = " ".join(words)
    assert alternatives(text) == _slow_stages(text)


@given(st.text())
def test_normalize_never_raises_and_is_padded(text: str) -> None:
    for reading in normalize(text).alternatives:
        assert reading.startswith(" ")
        assert reading.endswith(" ")
        assert "  " not in reading or reading == " "


@given(st.text())
def test_normalization_is_idempotent(text: str) -> None:
    for reading in alternatives(text):
        assert alternatives(reading) == (reading,)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_surrogates_controls_and_nul(text: str) -> None:
    normalize("\x00" + text + "\ud800\udfff\x7f")


@settings(max_examples=5, deadline=None)
@given(st.text(min_size=1, max_size=20))
def test_time_is_bounded_on_100_kb(chunk: str) -> None:
    text = (chunk * (100_000 // len(chunk) + 1))[:100_000]
    started = time.perf_counter()
    normalize(text)
    # a generous bound: only catches super-linear blowups, not a benchmark
    assert time.perf_counter() - started < 5.0


def test_one_megabyte_query() -> None:
    assert len(alternatives("c a t 1 " * 125_000)) >= 1
