"""Frequent words of 14 languages, as the matcher reads them: what tells a disguise from a word.

Three files in `intercept/data/`, built from wordfreq 3.1.1 (its "best" lists; code
Apache-2.0, word lists CC BY-SA 4.0, from Wikipedia, subtitles, news, books, web text,
Twitter and Reddit; see https://github.com/rspeer/wordfreq) by `python -m
intercept.rules.lexicon_build` (needs `pip install wordfreq==3.1.1`; the same output on every run):

- `lexicon.marisa`: the top `TOP_WORDS` words of each language in `LANGUAGES` (291,613
  words), folded and normalized as a rule phrase is ("Straße" -> "strasse", "schön" ->
  "schon"), as a MARISA trie (the `marisa-trie` package: 0.7 MB in memory and on disk, 0.5 µs
  per lookup; a Python set of the same words costs 29 MB). The matcher asks it whether
  filling a masked letter ("tr*asure") gives an ordinary word, and whether a capital I
  starting a word ("Iove") begins an ordinary word.
- `doubled.marisa`: every word with a doubled letter that wordfreq lists at zipf 1 or more
  (`DOUBLED_ZIPF`: once per 100 million words; 980,196 words), far more than the top lists
  hold, since "riffling" and "bussed" are ordinary words, not stretched rule words. With the
  first, `is_word` tells a query word with a doubled letter ("good", "craadle") that is a
  word of its own from a stretched rule word.
- `collisions.tsv.gz`: the words that folding changes beyond case ("für" -> "fur") and that
  occur at least once per million words (`COLLISION_ZIPF`), as `folded, word, language,
  zipf frequency`, for `intercept check` to tell a curator that a term also matches an
  ordinary word of another language.

The tries are loaded once per process (`preload`, with the rules, so the workers of
`--workers N` share them; about 10 ms), never written.
"""

from __future__ import annotations

import functools
import gzip
import re
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

import marisa_trie

__all__ = ["COLLISION_ZIPF", "DOUBLED_LETTER", "DOUBLED_ZIPF", "LANGUAGES", "TOP_WORDS",
           "Collision", "WordSet", "collisions", "is_word", "preload", "words"]  # fmt: skip

LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "nb", "pl", "cs", "fi", "ca")
TOP_WORDS = 30_000
COLLISION_ZIPF = 3.0  # collisions listed: words at least once per million words
_WORDS = "data/lexicon.marisa"
_COLLISIONS = "data/collisions.tsv.gz"
_DOUBLED = "data/doubled.marisa"
DOUBLED_LETTER = re.compile(r"(\w)\1")  # a letter twice in a row (lexicon_build keeps such words)
DOUBLED_ZIPF = 1.0


@dataclass(frozen=True, slots=True)
class Collision:
    """An ordinary word that folds to `folded`: which one, in which language, how frequent
    (zipf: 6 is once per thousand words, 3 once per million)."""

    folded: str
    word: str
    language: str
    zipf: float


def _read(name: str) -> str:
    data = resources.files("intercept").joinpath(name).read_bytes()
    return gzip.decompress(data).decode("utf-8")


@functools.cache
def words() -> WordSet:
    """Every lexicon word, folded and normalized (no padding, single spaces)."""
    return _trie(_WORDS)


@functools.cache
def collisions() -> dict[str, tuple[Collision, ...]]:
    """Folded form -> the ordinary words that fold to it but are written otherwise."""
    found: dict[str, list[Collision]] = {}
    for line in _read(_COLLISIONS).splitlines():
        folded, word, language, zipf = line.split("\t")
        found.setdefault(folded, []).append(Collision(folded, word, language, float(zipf)))
    return {folded: tuple(entries) for folded, entries in found.items()}


class WordSet(Protocol):
    """What `words()` gives: membership of a folded, normalized word."""

    def __contains__(self, word: object) -> bool: ...


def _trie(name: str) -> WordSet:
    trie: WordSet = marisa_trie.Trie().frombytes(
        resources.files("intercept").joinpath(name).read_bytes()
    )
    return trie


@functools.cache
def _doubled() -> WordSet:
    return _trie(_DOUBLED)


def preload() -> None:
    """Load everything now (with the rules), so that no query waits for it."""
    words()
    _doubled()


def is_word(word: str) -> bool:
    """Whether `word` (folded, normalized, not collapsed) is an ordinary word: in `words()`,
    or, when it has a doubled letter, in the wider list of such words (see the module
    docstring)."""
    return word in words() or word in _doubled()
