"""From raw text to the forms the matcher compares: the normalization stages after folding.

1. `fold` (see `intercept.fold`): case, compatibility forms, diacritics, lookalikes, invisibles.
2. spelled-out letters are joined: single letters, digits or leet symbols separated by any
   separators ("c a t", "c.a.t", "c / a / t") become one word ("cat"). Ordinary words are never
   joined, so "pic at" stays two words.
3. leetspeak inside words that contain a letter: 4 @ -> a, 3 -> e, 0 -> o, 5 $ -> s, 7 + -> t,
   8 -> b, 9 -> g, 2 -> z, ! -> i, ( -> c, € -> e; 1 and | stand for i or l, 6 for b or g.
   The symbols @ $ ! | + ( € are also separators ("cat!", "r|e|c|a|p", "big+cat"), so each
   kind of symbol in the text is read both ways. Every reading is tried
   (`Normalized.alternatives`, at most 32). Numbers without letters stay numbers.
4. every run of other characters becomes one space, with one space before and after the text.
5. runs of a repeated letter are collapsed for lookup ("caaat" -> "cat"); the matcher then
   checks the run lengths so that stretching is caught without equating "good" with "god".

Rules and queries go through the same stages, so a phrase written in any script matches in that
script with the same folding.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass

from intercept.fold import fold

__all__ = ["Normalized", "alternatives", "collapse", "normalize", "runs"]

_LEET_SYMBOLS = "@$!|+(€"
_SYMBOL = re.compile(f"[{re.escape(_LEET_SYMBOLS)}]")
# Uppercase ASCII never occurs in folded text (it is lowercase), so it serves as marks: a
# symbol read as a letter becomes a mark (a word character), and so does an ambiguous digit.
# 1 and | are different marks so that "|1" can read as "il" as well as "ii" and "ll".
_SYMBOL_MARKS = {"@": "A", "$": "S", "!": "I", "|": "J", "+": "T", "(": "C", "€": "E"}
_LEET = str.maketrans(
    {
        "4": "a", "A": "a", "3": "e", "E": "e", "0": "o", "5": "s", "S": "s", "7": "t",
        "T": "t", "8": "b", "9": "g", "2": "z", "I": "i", "C": "c",
        "1": "L", "J": "J", "6": "G",
    }
)  # fmt: skip
_DROP_MARKS = str.maketrans(dict.fromkeys(_SYMBOL_MARKS.values(), ""))
_AMBIGUOUS = {"L": "il", "J": "il", "G": "bg"}
_AMBIGUOUS_RUN = re.compile(r"L+|J+|G+")
_TOKEN = re.compile(r"\w+")
# words holding a mark or a digit; anchored at word starts to stay linear on long words
_LEET_TOKEN = re.compile(r"\b(?=\w*?[A-Z0-9])\w+")
_MARK_TOKEN = re.compile(r"\b(?=\w*?[A-Z])\w+")
_MARK_OR_DIGIT = re.compile(r"[A-Z0-9]")
_LETTER = re.compile(r"[^\W\dA-Z]")  # a letter that is not a mark
_SPELLED = re.compile(r"\b\w\b(?:\W+\w\b)+")  # single characters between separators
_NOT_WORD = re.compile(r"\W+")
_REPEAT = re.compile(r"(.)\1+", re.DOTALL)
_RUN = re.compile(r"((.)\2*)", re.DOTALL)
_MAX_READINGS = 32
_LONG_TEXT = 1024


@dataclass(frozen=True, slots=True)
class Normalized:
    """The stages of one text's normalization, for `explain` and for the matcher.

    `alternatives` are the padded, separator-normalized forms (one per reading of ambiguous
    leet), before run collapsing; `collapsed` are the same forms with repeated letters collapsed.
    """

    original: str
    folded: str
    spelled: str
    leet: str
    alternatives: tuple[str, ...]

    @property
    def collapsed(self) -> tuple[str, ...]:
        return tuple(collapse(a) for a in self.alternatives)

    @property
    def empty(self) -> bool:
        """True when nothing matchable is left (only separators, invisibles, punctuation)."""
        return all(not a.strip() for a in self.alternatives)

    def stages(self) -> list[tuple[str, str]]:
        """(stage name, text) pairs in pipeline order."""
        out = [
            ("original", self.original),
            ("folded", self.folded),
            ("spelled-out joined", self.spelled),
            ("leetspeak", self.leet),
        ]
        for i, alt in enumerate(self.alternatives):
            suffix = f" #{i + 1}" if len(self.alternatives) > 1 else ""
            out.append((f"words{suffix}", alt.strip()))
            out.append((f"collapsed{suffix}", collapse(alt).strip()))
        return out


def _tidy_token(m: re.Match[str]) -> str:
    """Symbols inside a number ("$100") or among themselves ("@@") are not letters."""
    token = m.group()
    if len(token) == 1 or _LETTER.search(token):
        return token
    return token.translate(_DROP_MARKS)


def _join_spelled(m: re.Match[str]) -> str:
    return _NOT_WORD.sub("", m.group())


def _resolve_token(m: re.Match[str]) -> str:
    token = m.group()
    if not _LETTER.search(token):
        return token.translate(_DROP_MARKS)  # a number, or a lone symbol
    return token.translate(_LEET)


def _symbol_roles(folded: str) -> list[dict[int, str]]:
    """Translation tables, one per reading of the leet symbols present: each kind of symbol is
    a letter mark or a separator; every combination when there are at most three kinds,
    otherwise all letters and all separators. `_` is always a separator."""
    present = "".join(sorted(set(_SYMBOL.findall(folded))))
    if not present and "_" not in folded:
        return [{}]  # nothing to translate
    return _roles_for(present)


@functools.cache
def _roles_for(present: str) -> list[dict[int, str]]:
    if len(present) > 3:
        masks: list[tuple[bool, ...]] = [(False,) * len(present), (True,) * len(present)]
    else:
        masks = list(itertools.product((False, True), repeat=len(present)))
    return [
        str.maketrans({"_": " "} | {c: " " if sep else _SYMBOL_MARKS[c]
                                    for c, sep in zip(present, mask, strict=True)})
        for mask in masks
    ]  # fmt: skip


def _run_options(run: str) -> list[str]:
    """Readings of a run of one ambiguous mark: all one letter, or, for two marks, any pair."""
    letters = _AMBIGUOUS[run[0]]
    first, second = letters[0], letters[1]
    options = [first * len(run), second * len(run)]
    if len(run) == 2:
        options += [first + second, second + first]
    return options


def _letter_readings(text: str, budget: int) -> list[str]:
    """Every reading of the ambiguous marks in `text`, at most `budget` of them; groups past
    the budget (or past the first in very long texts) read as their first option."""
    if text.islower():
        return [text]  # no marks: they are uppercase
    groups = [_run_options(run) for run in _AMBIGUOUS_RUN.findall(text)]
    if not groups:
        return [text]
    varied, size = 0, 1
    limit = 1 if len(text) > _LONG_TEXT else len(groups)
    while varied < limit and size * len(groups[varied]) <= budget:
        size *= len(groups[varied])
        varied += 1
    out: list[str] = []
    for choice in itertools.product(*groups[:varied]):
        picks = iter([*choice, *(options[0] for options in groups[varied:])])

        def pick(_: re.Match[str], picks: Iterator[str] = picks) -> str:
            return next(picks)

        out.append(_AMBIGUOUS_RUN.sub(pick, text))
    return out


def _stages(text: str, shortcut: bool = True) -> tuple[str, str, str, tuple[str, ...]]:
    """(folded, spelled, leet, readings); spelled and leet as in the first reading."""
    folded = fold(text)
    words = folded.split()
    if shortcut and all(len(word) > 1 and word.isalpha() for word in words):
        # Nothing to join, no leetspeak, no punctuation: the common case, done in C.
        return folded, folded, folded, (_pad(" ".join(words)),)
    roles = _symbol_roles(folded)
    budget = max(1, _MAX_READINGS // len(roles))
    readings: list[str] = []
    shown: tuple[str, str] | None = None
    for role in roles:
        variant = folded.translate(role) if role else folded
        if not variant.islower():  # marks are uppercase
            variant = _MARK_TOKEN.sub(_tidy_token, variant)
        spelled = _SPELLED.sub(_join_spelled, variant)
        leet = (
            _LEET_TOKEN.sub(_resolve_token, spelled) if _MARK_OR_DIGIT.search(spelled) else spelled
        )
        shown = shown or (spelled, leet)
        readings += _letter_readings(_pad(" ".join(_TOKEN.findall(leet))), budget)
    assert shown is not None
    return folded, shown[0], shown[1], tuple(dict.fromkeys(readings))


def _pad(words: str) -> str:
    return f" {words} " if words else " "


def normalize(text: str) -> Normalized:
    """Run every stage on `text`. Never raises for any `str`; time is linear in its length."""
    folded, spelled, leet, alternatives = _stages(text)
    return Normalized(text, folded, spelled, leet, alternatives)


def alternatives(text: str) -> tuple[str, ...]:
    """The matcher's hot path: only the padded forms, one per reading of ambiguous leet."""
    return _stages(text)[3]


def collapse(text: str) -> str:
    """Collapse every run of one repeated character to a single character."""
    return _REPEAT.sub(_first_group, text) if _REPEAT.search(text) else text


_first_group = operator.methodcaller("group", 1)


def runs(text: str) -> list[tuple[str, int]]:
    """Run-length encoding of `text`: [(character, count), ...]."""
    return [(run[0], len(run)) for run, _ in _RUN.findall(text)]
