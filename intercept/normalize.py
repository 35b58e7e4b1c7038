"""From raw text to the forms the matcher compares: the normalization stages after folding.

1. `fold` (see `intercept.fold`): case, compatibility forms, diacritics, lookalikes, invisibles.
2. spelled-out letters are joined: single letters, digits or leet symbols separated by any
   separators ("c a t", "c.a.t", "c / a / t") become one word ("cat"). Ordinary words are never
   joined, so "pic at" stays two words.
3. leetspeak inside words that contain a letter: 4 @ -> a, 3 -> e, 0 -> o, 5 $ -> s, 7 + -> t,
   8 -> b, 9 -> g, 2 -> z, ! -> i, ( -> c; 1 and | stand for i or l, 6 for b or g, and every
   reading is tried (`Normalized.alternatives`). Numbers without letters stay numbers. A symbol
   at the end of a word is punctuation ("cat!"), except $.
4. every run of other characters becomes one space, with one space before and after the text.
5. runs of a repeated letter are collapsed for lookup ("caaat" -> "cat"); the matcher then
   checks the run lengths so that stretching is caught without equating "good" with "god".

Rules and queries go through the same stages, so a phrase written in any script matches in that
script with the same folding.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from intercept.fold import fold

__all__ = ["Normalized", "alternatives", "collapse", "normalize", "runs"]

_LEET_SYMBOLS = "@$!|+(€"
_SYM = re.escape(_LEET_SYMBOLS)
_UNIT = rf"(?:[^\W_]|[{_SYM}])"  # a letter, a digit or a leet symbol
_NOT_UNIT = re.compile(rf"(?:(?!{_UNIT}).)+", re.DOTALL)
_SPELLED = re.compile(rf"(?<!{_UNIT}){_UNIT}(?:{_NOT_UNIT.pattern}{_UNIT}(?!{_UNIT}))+", re.DOTALL)
_TOKEN = re.compile(rf"{_UNIT}+")
_HAS_SYMBOL = re.compile(rf"[{_SYM}]")
_NEEDS_LEET = re.compile(rf"[0-9{_SYM}]")
_NON_WORD = re.compile(r"[\W_]+")
_REPEAT = re.compile(r"(.)\1+", re.DOTALL)
_RUN = re.compile(r"((.)\2*)", re.DOTALL)
_LEADING_PUNCT = "!+("
_TRAILING_PUNCT = "@!|+(€"

# 'L' and 'G' never occur in folded text (it is lowercase): they mark ambiguous leet.
_AMBIGUOUS = {"L": "il", "G": "bg"}
_LEET = str.maketrans(
    {
        "4": "a", "@": "a", "3": "e", "0": "o", "5": "s", "$": "s", "7": "t", "+": "t",
        "8": "b", "9": "g", "2": "z", "!": "i", "(": "c", "€": "e",
        "1": "L", "|": "L", "6": "G",
    }
)  # fmt: skip
_DROP_SYMBOLS = str.maketrans(dict.fromkeys(_LEET_SYMBOLS, ""))
_AMBIGUOUS_RUN = re.compile(r"L+|G+")
_MAX_AMBIGUOUS_GROUPS = 4
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


def _strip_edges(m: re.Match[str]) -> str:
    """Symbols at the edges of a word are punctuation ("(cat", "cat!"), except $ and a leading
    @ or €. Symbols in a number or among themselves are dropped. A lone symbol stays, since it
    may be a spelled-out letter ("c @ t")."""
    token = m.group()
    if len(token) == 1:
        return token
    if not any(c.isalpha() for c in token):
        return token.translate(_DROP_SYMBOLS)  # a number: "$100", "0+0"
    start, end = 0, len(token)
    while start < end and token[start] in _LEADING_PUNCT:
        start += 1
    while end > start and token[end - 1] in _TRAILING_PUNCT:
        end -= 1
    return " " * start + token[start:end] + " " * (len(token) - end)


def _join_spelled(m: re.Match[str]) -> str:
    return _NOT_UNIT.sub("", m.group())


def _resolve_token(m: re.Match[str]) -> str:
    token = m.group()
    if not any(c.isalpha() for c in token):
        return token.translate(_DROP_SYMBOLS)  # a number, or symbols alone
    return token.translate(_LEET)


def _readings(text: str) -> tuple[str, ...]:
    groups = _AMBIGUOUS_RUN.findall(text)
    if not groups:
        return (text,)
    limit = 1 if len(text) > _LONG_TEXT else _MAX_AMBIGUOUS_GROUPS
    out: list[str] = []
    for choice in itertools.product(*(_AMBIGUOUS[g[0]] for g in groups[:limit])):
        # groups past the limit read as their first letter
        letters = iter(choice)

        def pick(group: re.Match[str], letters: Iterator[str] = letters) -> str:
            run = group.group()
            return next(letters, _AMBIGUOUS[run[0]][0]) * len(run)

        out.append(_AMBIGUOUS_RUN.sub(pick, text))
    return tuple(dict.fromkeys(out))


def _stages(text: str, shortcut: bool = True) -> tuple[str, str, str, tuple[str, ...]]:
    folded = fold(text)
    words = folded.split()
    if shortcut and all(len(word) > 1 and word.isalpha() for word in words):
        # Nothing to join, no leetspeak, no punctuation: the common case, done in C.
        return folded, folded, folded, (_pad(" ".join(words)),)
    edged = _TOKEN.sub(_strip_edges, folded) if _HAS_SYMBOL.search(folded) else folded
    spelled = _SPELLED.sub(_join_spelled, edged)
    leet = _TOKEN.sub(_resolve_token, spelled) if _NEEDS_LEET.search(spelled) else spelled
    return folded, spelled, leet, _readings(_pad(_NON_WORD.sub(" ", leet).strip()))


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
    return _REPEAT.sub(r"\1", text)


def runs(text: str) -> list[tuple[str, int]]:
    """Run-length encoding of `text`: [(character, count), ...]."""
    return [(run[0], len(run)) for run, _ in _RUN.findall(text)]
