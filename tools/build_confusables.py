"""Regenerate `intercept/data/confusables.tsv` from Unicode's `confusables.txt` (UTS #39).

Usage: python tools/build_confusables.py PATH/TO/confusables.txt

Keeps the single-code-point, non-ASCII sources that stand in for letters: letters of the
Latin, Greek, Cyrillic and related scripts, and symbols whose prototype is a letter. Scripts
that the matcher keeps as they are (Hebrew, Arabic, CJK, Indic, ...) are left out so their
own words are not rewritten into Latin lookalikes. ASCII sources are left out: digits and
ASCII symbols are the leetspeak stage's business.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

KEEP_NAME = re.compile(
    r"^(LATIN|GREEK|CYRILLIC|COPTIC|ARMENIAN|CHEROKEE|MODIFIER LETTER|MATHEMATICAL|"
    r"ROMAN NUMERAL|SMALL ROMAN NUMERAL|FULLWIDTH|HALFWIDTH|CIRCLED|PARENTHESIZED|SQUARED|"
    r"NEGATIVE|SCRIPT|BLACK-LETTER|DOUBLE-STRUCK|TURNED|SUBSCRIPT|SUPERSCRIPT|LISU|"
    r"CANADIAN SYLLABICS|OLD ITALIC|DESERET|GOTHIC|RUNIC|OGHAM|TIFINAGH)\b"
)


def _letters_only(target: str) -> bool:
    folded = unicodedata.normalize("NFKD", target).casefold()
    kept = [c for c in folded if not unicodedata.category(c).startswith("M")]
    return bool(kept) and all(c.isalpha() for c in kept)


def build(source: Path) -> list[str]:
    """Return the TSV lines: source code point, then the prototype's code points."""
    header: list[str] = []
    rows: list[str] = []
    for raw in source.read_text(encoding="utf-8-sig").splitlines():
        if raw.startswith("#") and len(header) < 9:
            header.append(raw)
            continue
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        fields = [f.strip() for f in body.split(";")]
        src = fields[0].split()
        if len(src) != 1:
            continue
        char = chr(int(src[0], 16))
        if char.isascii():
            continue
        target = "".join(chr(int(cp, 16)) for cp in fields[1].split())
        name = unicodedata.name(char, "")
        is_symbol = unicodedata.category(char)[0] in "SP"
        if not (KEEP_NAME.match(name) or is_symbol):
            continue
        if not _letters_only(target):
            continue
        rows.append(f"{src[0]}\t{fields[1]}")
    notice = [
        "# Derived from Unicode confusables.txt (UTS #39) by tools/build_confusables.py.",
        "# Unicode data files are used under the Unicode License (unicode.org/license.txt).",
        *header,
    ]
    return [*notice, *rows]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(__file__).resolve().parent.parent / "intercept" / "data" / "confusables.tsv"
    lines = build(Path(argv[1]))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {sum(not x.startswith('#') for x in lines)} mappings to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
