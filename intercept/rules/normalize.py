"""From raw text to the forms the matcher compares: the normalization stages after folding.

1. `fold` (see `intercept.rules.fold`): case, compatibility forms, diacritics, lookalikes,
   invisibles.
2. symbols: @ $ ! | + ( € are letters inside words and punctuation at their edges (the
   natural reading: "c@t", "(cat)", "cat!", "$ale"). In queries each kind of symbol is also
   read as a letter everywhere and as a separator everywhere ("r|e|c|a|p", "big+cat").
3. spelled-out letters are joined: single letters, digits or symbols separated by any
   separators ("c a t", "c.a.t", "c / a / t") become one word ("cat"). Ordinary words are never
   joined, so "pic at" stays two words. A run of four or more may start or end with a
   one-letter word ("a c a t"): `edge_alternatives` keeps those letters apart.
4. leetspeak inside words: 4 @ -> a, 3 € -> e, 0 -> o, 5 $ -> s, 7 + -> t, 8 -> b, 9 -> g,
   2 -> z, ! -> i, ( -> c; 1 and | stand for i or l, 6 for b or g. In queries a capital I
   right after a lowercase letter ("smaIl") stands for i or l too (it is read as 1 before
   folding), and so does one starting a word of lowercase letters unless the word with an
   i is an ordinary one (`intercept.rules.lexicon`: "Ireland", "Is" stay; "Iove" does not).
   Words of symbols alone are leetspeak ("(@+"); numbers, with a sign or currency at an
   edge, stay numbers ("$100").
   Every reading is tried (`Normalized.alternatives`, at most 32).
5. every run of other characters becomes one space, with one space before and after the text.
6. runs of a repeated letter are collapsed for lookup ("caaat" -> "cat"); the matcher then
   checks the run lengths so that stretching is caught without equating "good" with "god".

Rules and queries go through the same stages, so a phrase written in any script matches in that
script with the same folding.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from intercept.rules import lexicon
from intercept.rules.fold import fold, shape_readings

__all__ = [
    "Normalized",
    "alternatives",
    "collapse",
    "doubled_runs",
    "edge_alternatives",
    "normalize",
    "plain_reading",
    "readings_for_matching",
    "runs",
    "shape_text",
]

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
_MARK_OR_DIGIT = re.compile(r"[A-Z0-9]")
_LETTER = re.compile(r"[^\W\dA-Z]")  # a letter that is not a mark
_REPEAT = re.compile(r"(.)\1+", re.DOTALL)
_DOUBLE = re.compile(r"(.)\1", re.DOTALL)  # finds "no repeats" twice as fast as _REPEAT
_RUN = re.compile(r"((.)\2*)", re.DOTALL)
_NUMBER = re.compile(r"[A-Z]?[0-9]+[A-Z]?")
_MARK_SYMBOLS = str.maketrans(_SYMBOL_MARKS)
_LEADING_PUNCTUATION = "!+("
_TRAILING_PUNCTUATION = "@!|+(€"
_MAX_READINGS = 32
# a capital I right after a lowercase letter ("smaIl", "heIIo") is read as i or l, like 1;
# at the start of a word before lowercase letters too, unless that word is an ordinary one
# with an i ("Ireland", "In" stay; "Iove" reads "iove" and "love")
_CAPITAL_I = re.compile(r"(?<=[a-z])I+")
_INITIAL_I = re.compile(r"(?<![^\W\d_])I(?=[a-z])([a-z]*)")
_LONG_TEXT = 1024


@dataclass(frozen=True, slots=True)
class _Syntax:
    """The word-level patterns. Python's `\\w` has no combining marks, so text that keeps
    marks inside its words (Indic scripts, Thai) uses a variant whose words include them."""

    token: re.Pattern[str]  # a word
    leet_token: re.Pattern[str]  # a word holding a mark or a digit
    mark_token: re.Pattern[str]  # a word holding a mark
    spelled: re.Pattern[str]  # single characters between separators
    long_spelled: re.Pattern[str]  # four or more of them
    symbol_word: re.Pattern[str]  # a word with its leet symbols
    singles: re.Pattern[str]  # two one-character words in a row

    @classmethod
    def build(cls, marks: str) -> _Syntax:
        """The patterns for words that may hold `marks` (a regex class body; "" for `\\w`
        words). `singles` looks only at words joined by single spaces."""
        symbols = re.escape(_LEET_SYMBOLS)
        word, other = rf"[\w{marks}]", rf"[^\w{marks}]"
        unit = rf"\w[{marks}]*" if marks else r"\w"  # a letter and its marks
        begin = rf"(?<!{word})"  # anchored at word starts: the lookaheads stay linear
        single = rf"{begin}{unit}(?!{word})"
        return cls(
            re.compile(rf"{word}+"),
            re.compile(rf"{begin}(?={word}*?[A-Z0-9]){word}+"),
            re.compile(rf"{begin}(?={word}*?[A-Z]){word}+"),
            re.compile(rf"{single}(?:{other}+{unit}(?!{word}))+"),
            re.compile(rf"{single}(?:{other}+{unit}(?!{word})){{3,}}"),
            re.compile(rf"[\w{marks}{symbols}]+"),
            re.compile(rf" {unit} {unit} "),
        )


def _mark_class() -> str:
    """Every combining mark (they sit in planes 0, 1 and 14) as a regex class body."""
    ranges: list[list[int]] = []
    for code in itertools.chain(range(0x20000), range(0xE0000, 0xE0200)):
        if unicodedata.category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(
        f"\\U{low:08x}" + (f"-\\U{high:08x}" if high > low else "") for low, high in ranges
    )


_MARKS = _mark_class()
_KEPT_MARK = re.compile(f"[{_MARKS}]")
_PLAIN = _Syntax.build("")
_MARKED = _Syntax.build(_MARKS)


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


def _as_ones(m: re.Match[str]) -> str:
    return "1" * len(m.group())


def _initial_i(m: re.Match[str]) -> str:
    return m.group() if "i" + m.group(1) in lexicon.words() else "1" + m.group(1)


def _capital_i(text: str) -> str:
    """`text` with each capital I that may stand for l written as 1 (see `_CAPITAL_I`)."""
    return _INITIAL_I.sub(_initial_i, _CAPITAL_I.sub(_as_ones, text))


def _is_punctuation_or_number(token: str) -> bool:
    """A word without letters whose marks are not letters: a number with a sign or currency at
    an edge ("$100", "2024!"), or one symbol repeated ("!!!"). Other symbol-only words ("(@+")
    are leetspeak."""
    return len(set(token)) == 1 or _NUMBER.fullmatch(token) is not None


def _tidy_token(m: re.Match[str]) -> str:
    token = m.group()
    if len(token) == 1 or _LETTER.search(token) or not _is_punctuation_or_number(token):
        return token
    return token.translate(_DROP_MARKS)


def _resolve_token(m: re.Match[str]) -> str:
    token = m.group()
    if not _LETTER.search(token) and _is_punctuation_or_number(token):
        return token.translate(_DROP_MARKS)
    return token.translate(_LEET)


def _natural_symbols(m: re.Match[str]) -> str:
    """Symbols inside a word are letters; at its edges they are punctuation ("(cat)", "cat!"),
    except a leading $ @ € and a trailing $ ("$ale", "pics$")."""
    token = m.group()
    start, end = 0, len(token)
    while start < end and token[start] in _LEADING_PUNCTUATION:
        start += 1
    while end > start and token[end - 1] in _TRAILING_PUNCTUATION:
        end -= 1
    if start == end:
        return token.translate(_MARK_SYMBOLS)  # a lone symbol may be a spelled-out letter
    middle = token[start:end].translate(_MARK_SYMBOLS)
    return " " * start + middle + " " * (len(token) - end)


def _symbol_readings(folded: str, both_ways: bool, syntax: _Syntax) -> list[str]:
    """The text with leet symbols read as letter marks or as separators.

    First the natural reading (`_natural_symbols`). For queries (`both_ways`) also every
    combination of reading each kind of symbol as a letter or a separator when at most three
    kinds are present, otherwise all letters and all separators. `_` is always a separator.
    """
    if "_" in folded:
        folded = folded.replace("_", " ")
    present = "".join(sorted(set(_SYMBOL.findall(folded))))
    if not present:
        return [folded]
    out = [syntax.symbol_word.sub(_natural_symbols, folded)]
    if both_ways:
        out += [folded.translate(table) for table in _roles_for(present)]
    return list(dict.fromkeys(out))


@functools.cache
def _roles_for(present: str) -> list[dict[int, str]]:
    if len(present) > 3:
        masks: list[tuple[bool, ...]] = [(False,) * len(present), (True,) * len(present)]
    else:
        masks = list(itertools.product((False, True), repeat=len(present)))
    return [
        str.maketrans({c: " " if sep else _SYMBOL_MARKS[c]
                       for c, sep in zip(present, mask, strict=True)})
        for mask in masks
    ]  # fmt: skip


def _spelled_readings(text: str, edges: bool, syntax: _Syntax) -> list[str]:
    """Spelled-out letters joined (`edges` False); or, for `edges`, the readings that keep the
    first and/or last letter of a run of four or more apart, since it may be a word of its own
    ("a c a t", "c a t x")."""
    if not syntax.spelled.search(text):
        return [] if edges else [text]
    if not edges:
        return [syntax.spelled.sub(lambda m: "".join(syntax.token.findall(m.group())), text)]
    if not syntax.long_spelled.search(text):
        return []
    out = []
    for keep_first, keep_last in ((True, False), (False, True), (True, True)):

        def join(m: re.Match[str], first: bool = keep_first, last: bool = keep_last) -> str:
            units = syntax.token.findall(m.group())
            if len(units) < 4:
                return "".join(units)
            head = units[0] + " " if first else ""
            tail = " " + units[-1] if last else ""
            middle = units[1 if first else 0 : len(units) - 1 if last else len(units)]
            return head + "".join(middle) + tail

        out.append(syntax.spelled.sub(join, text))
    return out


def _run_options(run: str) -> list[str]:
    """Readings of a run of one ambiguous mark: all one letter, or, for two marks, any pair."""
    letters = _AMBIGUOUS[run[0]]
    first, second = letters[0], letters[1]
    options = [first * len(run), second * len(run)]
    if len(run) == 2:
        options += [first + second, second + first]
    return options


def _word_options(word: str, limit: int) -> list[str]:
    groups = [_run_options(run) for run in _AMBIGUOUS_RUN.findall(word)]
    out = []
    for choice in itertools.islice(itertools.product(*groups), limit):
        picks = iter(choice)

        def pick(_: re.Match[str], picks: Iterator[str] = picks) -> str:
            return next(picks)

        out.append(_AMBIGUOUS_RUN.sub(pick, word))
    return out


def _letter_readings(text: str, budget: int) -> list[str]:
    """Readings of the ambiguous marks (1 | 6) in `text`, at most `budget` of them.

    First, reading j gives every word its j-th reading, so each word's readings are all tried
    wherever it stands; then combinations across words, in order, while the budget lasts.
    """
    if not _AMBIGUOUS_RUN.search(text):
        return [text]
    if len(text) > _LONG_TEXT:
        budget = min(budget, 2)
    words = [_word_options(w, budget) if _AMBIGUOUS_RUN.search(w) else [w] for w in text.split(" ")]
    widest = max(len(options) for options in words)
    out = [" ".join(o[j % len(o)] for o in words) for j in range(min(widest, budget))]
    for combination in itertools.product(*words):
        if len(out) >= budget:
            break
        out.append(" ".join(combination))
    return list(dict.fromkeys(out))[:budget]


def _stages(
    text: str, shortcut: bool = True, *, rule: bool = False, edges: bool = False
) -> tuple[str, str, str, tuple[str, ...], bool]:
    """(folded, spelled, leet, readings, has edge readings); spelled and leet as in the first
    reading.

    With `edges`, only the readings that keep the edge letters of spelled-out runs apart
    (`_spelled_readings`); the matcher asks for them only when nothing else matched.
    """
    if not rule and "I" in text:
        text = _capital_i(text)  # "smaIl", "Iove": i or l, as 1 is
    folded = fold(text)
    words = folded.split()
    if shortcut and _plain(words):
        # Nothing to join, no leetspeak, no punctuation: the common case, done in C.
        return folded, folded, folded, () if edges else (_pad(" ".join(words)),), False
    marked = not folded.isascii() and max(folded) >= "\u0300" and _KEPT_MARK.search(folded)
    syntax = _MARKED if marked else _PLAIN
    spelled_forms: list[str] = []
    long_runs = False
    for variant in _symbol_readings(folded, not rule, syntax):
        if not variant.islower():  # marks are uppercase
            variant = syntax.mark_token.sub(_tidy_token, variant)
        spelled_forms += _spelled_readings(variant, edges, syntax)
        long_runs = long_runs or syntax.long_spelled.search(variant) is not None
    budget = max(2, _MAX_READINGS // max(1, len(spelled_forms)))
    readings: list[str] = []
    shown = (folded, folded)
    for index, spelled in enumerate(spelled_forms):
        leet = (
            syntax.leet_token.sub(_resolve_token, spelled)
            if _MARK_OR_DIGIT.search(spelled)
            else spelled
        )
        if index == 0:
            shown = (spelled, leet)
        spaced = _pad(" ".join(syntax.token.findall(leet)))
        if edges and syntax.singles.search(spaced):
            continue  # two one-letter words in a row: not a reading the pipeline could give
        readings += _letter_readings(spaced, budget)
    return folded, shown[0], shown[1], tuple(dict.fromkeys(readings)), long_runs


def _plain(words: list[str]) -> bool:
    """Words of two or more letters only: their one reading is the words themselves."""
    return all(len(word) > 1 and word.isalpha() for word in words)


@functools.cache
def _shapes() -> tuple[re.Pattern[str], dict[int, str]]:
    readings = shape_readings()
    return re.compile(f"[{re.escape(''.join(readings))}]"), str.maketrans(dict(readings))


def shape_text(text: str) -> str | None:
    """In a query, `text` with each letter whose shape reads as another letter than its
    folding gives (Greek Η for h, Ι for l: `intercept.rules.fold.shape_readings`) written as that
    letter, for a second set of readings; None when it has none (any ASCII text)."""
    if text.isascii():
        return None
    pattern, table = _shapes()
    return text.translate(table) if pattern.search(text) else None


def plain_reading(text: str) -> str | None:
    """The one collapsed reading of `text` when it is plain words of two or more letters
    without a repeated letter (most queries), else None. For such a text this is exactly
    what `readings_for_matching` gives, with no edge readings, and what the matcher scans."""
    if "I" in text and _capital_i(text) != text:
        return None  # a capital I standing for l has two readings
    if shape_text(text) is not None:
        return None  # so has a Greek capital Η (n or h)
    words = fold(text).split()
    if not _plain(words):
        return None
    reading = _pad(" ".join(words))
    return None if _DOUBLE.search(reading) else reading


def _pad(words: str) -> str:
    return f" {words} " if words else " "


def normalize(text: str, *, rule: bool = False) -> Normalized:
    """Run every stage on `text`. Never raises for any `str`; time is linear in its length.

    With `rule=True` the text is a rule phrase: symbols take only their natural reading and
    spelled-out letters are always joined whole, so a phrase never matches less than it says.
    """
    folded, spelled, leet, readings, _ = _stages(text, rule=rule)
    if not rule:  # edge readings last, so the usual readings keep their numbers
        readings += tuple(r for r in edge_alternatives(text) if r not in readings)
    return Normalized(text, folded, spelled, leet, readings)


def alternatives(text: str, *, rule: bool = False) -> tuple[str, ...]:
    """The matcher's hot path: the padded readings of `text` (see `normalize`), without those
    of `edge_alternatives`."""
    return _stages(text, rule=rule)[3]


def readings_for_matching(text: str) -> tuple[tuple[str, ...], bool]:
    """`alternatives(text)`, and whether `edge_alternatives(text)` may have any."""
    _, _, _, readings, has_edges = _stages(text)
    return readings, has_edges


def edge_alternatives(text: str) -> tuple[str, ...]:
    """Readings that keep a spelled-out run's first or last letter apart ("a c a t")."""
    return _stages(text, edges=True)[3]


def collapse(text: str) -> str:
    """Collapse every run of one repeated character to a single character."""
    return _REPEAT.sub(_first_group, text) if _DOUBLE.search(text) else text


_first_group = operator.methodcaller("group", 1)


def doubled_runs(text: str) -> dict[int, int]:
    """Runs longer than one in `text`, by their index in `collapse(text)`: {index: length}."""
    out: dict[int, int] = {}
    removed = 0
    for m in _REPEAT.finditer(text):
        size = m.end() - m.start()
        out[m.start() - removed] = size
        removed += size - 1
    return out


def runs(text: str) -> list[tuple[str, int]]:
    """Run-length encoding of `text`: [(character, count), ...]."""
    return [(run[0], len(run)) for run, _ in _RUN.findall(text)]
