"""Frequent words of 14 languages, as the matcher reads them: what tells a disguise from a word.

Two files in `intercept/data/`, built from wordfreq 3.1.1 (its "best" lists: the top
`TOP_WORDS` words of each language in `LANGUAGES`; code Apache-2.0, word lists CC BY-SA 4.0,
from Wikipedia, subtitles, news, books, web text, Twitter and Reddit; see
https://github.com/rspeer/wordfreq) by `python -m intercept.lexicon build` (needs
`pip install wordfreq==3.1.1`; the output is the same on every run):

- `lexicon.txt.gz`: every such word after folding and normalization (`intercept.normalize`,
  as a rule phrase: "Straße" -> "strasse", "schön" -> "schon"), one per line, sorted. The
  matcher asks it two questions: is a query word with a doubled letter ("good", "craadle") a
  word of its own, or a stretched rule word; and does filling a masked letter ("tr*asure")
  give some other word than the rule's.
- `collisions.tsv.gz`: the words that folding changes beyond case ("für" -> "fur") and
  that occur at least once per million words (`COLLISION_ZIPF`), as
  `folded, word, language, zipf frequency`, for `intercept check` to tell a curator that a
  term also matches an ordinary word of another language.

Loaded once per process on first use (`words()`: about 0.3 s and 30 MB; the supervisor of
`--workers N` loads it with the rules, so the workers share it), never written.
"""

from __future__ import annotations

import functools
import gzip
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["COLLISION_ZIPF", "LANGUAGES", "TOP_WORDS", "Collision", "build", "collisions", "words"]

LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "nb", "pl", "cs", "fi", "ca")
TOP_WORDS = 30_000
COLLISION_ZIPF = 3.0  # collisions listed: words at least once per million words
_WORDS = "data/lexicon.txt.gz"
_COLLISIONS = "data/collisions.tsv.gz"


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
def words() -> frozenset[str]:
    """Every lexicon word, folded and normalized (no padding, single spaces)."""
    return frozenset(_read(_WORDS).splitlines())


@functools.cache
def collisions() -> dict[str, tuple[Collision, ...]]:
    """Folded form -> the ordinary words that fold to it but are written otherwise."""
    found: dict[str, list[Collision]] = {}
    for line in _read(_COLLISIONS).splitlines():
        folded, word, language, zipf = line.split("\t")
        found.setdefault(folded, []).append(Collision(folded, word, language, float(zipf)))
    return {folded: tuple(entries) for folded, entries in found.items()}


def _forms(word: str) -> list[str]:
    from intercept.normalize import alternatives

    return [reading.strip() for reading in alternatives(word, rule=True) if reading.strip()]


def build(folder: Path) -> tuple[int, int]:
    """Write both files into `folder` from wordfreq (see the module docstring); returns how
    many lexicon words and collisions were written."""
    import wordfreq  # type: ignore[import-not-found, unused-ignore]  # maintainers only

    lexicon: set[str] = set()
    collided: dict[tuple[str, str, str], float] = {}
    for language in LANGUAGES:
        for word in wordfreq.top_n_list(language, TOP_WORDS, wordlist="best"):
            if not any(ch.isalpha() for ch in word):
                continue
            forms = _forms(word)
            lexicon.update(forms)
            lowered = word.casefold()
            for form in forms:
                if form != lowered and " " not in form:
                    zipf = wordfreq.zipf_frequency(word, language, wordlist="best")
                    if zipf >= COLLISION_ZIPF:
                        key = (form, word, language)
                        collided[key] = max(zipf, collided.get(key, 0.0))
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{word}\n" for word in sorted(lexicon))
    (folder / "lexicon.txt.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    rows = sorted(collided.items())
    text = "".join(f"{f}\t{w}\t{lang}\t{zipf:.2f}\n" for (f, w, lang), zipf in rows)
    (folder / "collisions.tsv.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    return len(lexicon), len(rows)


if __name__ == "__main__":  # python -m intercept.lexicon build [FOLDER]
    if sys.argv[1:2] != ["build"]:
        raise SystemExit("usage: python -m intercept.lexicon build [FOLDER]")
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent / "data"
    count, collisions_written = build(target)
    print(f"{count} words, {collisions_written} collisions -> {target}")
