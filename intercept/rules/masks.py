"""Masked letters: a symbol written in place of one letter of a word (`tr*asure`, `p#ssword`).

The rule, for queries only (rule phrases are written plainly):

- A mask is one of `* # ? _ . -` with a letter or digit on both sides, inside one
  whitespace-separated chunk of the folded query; masks at a chunk's edges ("*treasure*") are
  emphasis, not masks, and two masks in a row are not read.
- A masked word has at least `MIN_LETTERS` (5) letters besides its masks, and at most two
  masks, never side by side; two only in words of 8 or more characters, masks included
  ("p*ssw*rd").
- `-`, `.` and `_` between ordinary words are separators ("well-known", "tree.house"): a
  chunk with only those whose parts are all lexicon words of three or more letters is left
  alone. `* # ?` are always masks ("dach*hund", though "dach" and "hund" are words).
- Each mask is filled with each letter a-z (26 words, 676 for two masks). The fill is taken
  only when it is unambiguous: if exactly one fill is an ordinary word of the lexicon
  (`intercept.rules.lexicon`, 14 languages), that word; if none is, the one fill that is a rule
  word, if exactly one is (it starts a phrase, alone or after the one or two words before
  it in the query: "big lant*rn"; a sealed rule set can tell the same by hashes, so both
  decide alike); otherwise nothing. So a mask never lets a rule match a different ordinary
  word: "c*t" is too short, and "b*rder" reads as nothing, since "border" and the Danish
  "byrder" both fit.

The filled words replace the masked chunks in one extra query text, whose readings the matcher
scans beside the usual ones (`masked_text`). Parts that are numbers ("covid-19") are no
masked word. Cost: nothing unless the query holds one of the six symbols between word
characters; then one fold, the split, and for at most `MAX_MASKED` chunks 26 (or 676)
lexicon lookups, and as many rule lookups when no fill is an ordinary word (measured:
"e-mail" about 15 µs, "tr*asure" about 20 µs more than a plain query).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from intercept.rules import lexicon
from intercept.rules.fold import fold
from intercept.rules.normalize import alternatives, collapse

__all__ = ["MASKS", "MAX_MASKED", "MAX_TEXTS", "MIN_LETTERS", "has_mask", "masked_text"]

MASKS = "*#?_.-"
MIN_LETTERS = 5
MAX_MASKED = 4  # chunks with a mask read per query: the work per query stays bounded
MAX_TEXTS = 4  # filled texts per query
_TWO_MASKS_FROM = 8  # letters and masks
_WORD_PART = 3  # parts of at least this many letters that are words: a separator
_MASK = re.compile(f"[{re.escape(MASKS)}]")
_BLANKS = re.compile(r"[*#?]")  # never a separator between words
# a mask with a letter on each side and two on one (five letters and at most two masks leave
# a part of two letters somewhere): spelled-out letters ("c.a.t") are passed over at once
_INNER_MASK = re.compile(rf"\w\w[{re.escape(MASKS)}]\w|\w[{re.escape(MASKS)}]\w\w")
_PLACEHOLDER = "ж"  # a letter every stage keeps as it is; a chunk holding it is not read
_FILLS = string.ascii_lowercase


def has_mask(text: str) -> bool:
    """Whether `text` may hold a masked word (a mask symbol between two word characters)."""
    return _INNER_MASK.search(text) is not None


def _fill_options(word: str, masks: int) -> list[str]:
    """`word` with its one or two placeholders replaced by every letter a-z."""
    if masks == 1:
        head, tail = word.split(_PLACEHOLDER)
        return [head + letter + tail for letter in _FILLS]
    head, middle, tail = word.split(_PLACEHOLDER)
    return [head + a + middle + b + tail for a in _FILLS for b in _FILLS]


def _joined(pieces: list[str]) -> str:
    """The collapse of `"".join(pieces)` for pieces each collapsed already: only where two
    pieces meet can a letter repeat."""
    out = pieces[0]
    for piece in pieces[1:]:
        out += piece[1:] if out and piece and out[-1] == piece[0] else piece
    return out


def _collapsed_fills(word: str, masks: int) -> list[str]:
    """`collapse` of each of `_fill_options(word, masks)`, in the same order, at a fraction
    of the cost."""
    pieces = [collapse(piece) for piece in word.split(_PLACEHOLDER)]
    if masks == 1:  # inlined: the common case
        head, tail = pieces
        last, first, rest = head[-1:], tail[:1], tail[1:]
        return [
            (head if letter == last else head + letter) + (rest if letter == first else tail)
            for letter in _FILLS
        ]
    head, middle, tail = pieces
    return [_joined([head, a, middle, b, tail]) for a in _FILLS for b in _FILLS]


RuleWord = Callable[[str, tuple[str, ...]], bool]
"""`(word, before)`: whether a normalized, collapsed word starts a phrase, alone or after the
last one or two words of `before` (the query's words before it, collapsed)."""


def _before(chunks: list[str], index: int) -> tuple[str, ...]:
    """The query's last two words before chunk `index`, as the matcher reads them (their
    first reading, collapsed); none across a chunk that is not one word."""
    words: list[str] = []
    for chunk in reversed([chunk for chunk in chunks[:index] if chunk][-2:]):
        reading = alternatives(chunk)[:1]
        word = reading[0].strip() if reading else ""
        if not word or " " in word:
            break
        words.insert(0, collapse(word))
    return tuple(words)


def _unmask(chunk: str, is_rule_word: RuleWord, before: tuple[str, ...]) -> tuple[str, ...]:
    """The words `chunk` (folded) may stand for, if it is a masked word with one sure
    reading: the one ordinary word, or the fills that spell one rule word ("fla-by": "flabby"
    and "flaaby" both collapse to the rule's "flaby"; the matcher's run lengths pick)."""
    core = chunk.strip(MASKS)
    parts = _MASK.split(core)
    masks = len(parts) - 1
    if not 1 <= masks <= 2 or not all(parts) or _PLACEHOLDER in core:
        return ()
    if any(part.isdigit() for part in parts):
        return ()  # a number beside it: "covid-19", "4.5", "route-66"
    words = lexicon.words()
    separators = not _BLANKS.search(core)  # only - . _ may join words
    if separators and all(len(part) >= _WORD_PART and part in words for part in parts):
        return ()  # a separator between ordinary words: "well-known", "tree.house"
    joined = _PLACEHOLDER.join(parts)
    plain = all(part.isalpha() for part in parts)  # the common case: no leetspeak to read
    for reading in (joined,) if plain else alternatives(joined):
        word = reading.strip()
        if " " in word or word.count(_PLACEHOLDER) != masks:
            continue  # the parts did not read as one word
        letters = len(word) - masks
        if letters < MIN_LETTERS or (masks == 2 and len(word) < _TWO_MASKS_FROM):
            continue
        fills = _fill_options(word, masks)
        ordinary = [fill for fill in fills if fill in words]
        if len(ordinary) == 1:
            return (ordinary[0],)
        if ordinary:
            continue  # two ordinary words fit: which one is meant cannot be told
        keys = _collapsed_fills(word, masks)
        found = {key for key in set(keys) if is_rule_word(key, before)}
        if len(found) == 1:
            (key,) = found
            return tuple(fill for fill, each in zip(fills, keys, strict=True) if each == key)
    return ()


def masked_text(text: str, is_rule_word: RuleWord) -> list[str]:
    """`text` with each masked word replaced by its sure fills (see the module docstring):
    one text per combination, at most `MAX_TEXTS`; none when no masked word has a fill."""
    if not has_mask(text):
        return []
    chunks = fold(text).split(" ")
    texts: list[list[str]] = [chunks]
    tried = 0
    for index, chunk in enumerate(chunks):
        if _MASK.search(chunk):
            tried += 1
            if tried > MAX_MASKED:
                break  # bounded work for a query made of masks
            fills = _unmask(chunk, is_rule_word, _before(chunks, index))
            if fills:
                texts = [[*t[:index], fill, *t[index + 1 :]] for t in texts for fill in fills]
                texts = texts[:MAX_TEXTS]
    return [" ".join(t) for t in texts] if texts[0] is not chunks else []
