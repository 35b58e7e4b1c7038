"""Builds the lexicon files of `intercept.rules.lexicon` from wordfreq: `python -m
intercept.rules.lexicon_build [FOLDER]` (default: `intercept/data/`). Needs `pip install
wordfreq==3.1.1` (a test extra, not a runtime dependency); about 40 s; the same output on
every run (sorted, gzip without timestamps)."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import marisa_trie

from intercept.resources import DATA
from intercept.rules.lexicon import (
    COLLISION_ZIPF,
    DOUBLED_LETTER,
    DOUBLED_ZIPF,
    LANGUAGES,
    TOP_WORDS,
)

__all__ = ["build"]


def _forms(word: str) -> list[str]:
    from intercept.rules.normalize import alternatives

    return [reading.strip() for reading in alternatives(word, rule=True) if reading.strip()]


def build(folder: Path) -> tuple[int, int, int]:
    """Write the three files into `folder` from wordfreq (see the module docstring); returns
    how many lexicon words, collisions and doubled-letter words were written."""
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
    doubled: set[str] = set()
    for language in LANGUAGES:
        for word, frequency in wordfreq.get_frequency_dict(language, wordlist="best").items():
            if frequency >= 10 ** (DOUBLED_ZIPF - 9) and DOUBLED_LETTER.search(word):
                doubled.update(form for form in _forms(word) if DOUBLED_LETTER.search(form))
    folder.mkdir(parents=True, exist_ok=True)
    marisa_trie.Trie(sorted(lexicon)).save(str(folder / "lexicon.marisa"))
    marisa_trie.Trie(sorted(doubled)).save(str(folder / "doubled.marisa"))
    rows = sorted(collided.items())
    text = "".join(f"{f}\t{w}\t{lang}\t{zipf:.2f}\n" for (f, w, lang), zipf in rows)
    (folder / "collisions.tsv.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    return len(lexicon), len(rows), len(doubled)


if __name__ == "__main__":  # python -m intercept.rules.lexicon_build [FOLDER]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA
    count, collided, doubled = build(target)
    print(f"{count} words, {collided} collisions, {doubled} doubled-letter words -> {target}")
