"""`intercept import`: a rules YAML from a plain list of terms or a CSV export.

The pipeline, in input order:

1. read the terms: a text file, one term per line (blank lines and lines starting with `#`
   skipped), or one column of a CSV file with a header row; every term is stripped;
2. drop exact duplicates;
3. merge terms that normalize alike: a rule phrase is normalized once when rules are compiled
   (`intercept.rules.normalize.normalize(phrase, rule=True)`), and two terms with the same readings
   match exactly the same queries, so only the first spelling is kept;
4. skip terms that cannot be rules: those that normalize to nothing, and those too long;
5. group terms that share a reading without reading alike (`b1ll` reads as `bill` or `blll`,
   so it overlaps `bill`): they go into one rule, that of the first, as its `terms`. Apart,
   `intercept check` would warn that two rules hold the same phrase; together, the rule
   matches what each term matched, and nothing a curator wrote is dropped;
6. compile one rule per group and run it over a dictionary word list: a rule that matches
   more than `max_dictionary_hits` ordinary words is flagged for review;
7. find diacritic collisions as `intercept check` does (`intercept.curation.check.collisions`): a
   term that matches frequent ordinary words of other languages only after folding (`fur` and the
   German `für`). Those words are written as `match` examples of the rule, under a REVIEW
   comment, and reported. That is what a curator reviewing a fresh import needs: the file
   says what the rule does and `check` verifies it, so the import passes `check --strict`,
   while the comment and the report point at the words to judge; deleting such an example
   brings `check`'s warning back. `unless` would not do: it folds alike, so `unless: [für]`
   would stop the rule matching `fur` too; dropping the term would lose what it catches;
8. write a rule file in the repository's format: one rule per group with ids `PREFIX-0001`...,
   each with its terms as `match` examples so that `intercept check` runs them.

Everything found on the way is kept in an `ImportResult` for the report.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from intercept.curation.check import SHOWN_COLLISIONS, Collided, collisions
from intercept.errors import InterceptError, RuleError
from intercept.rules.normalize import normalize
from intercept.rules.ruleschema import (
    CATEGORY_PATTERN,
    LANGUAGE_PATTERN,
    MAX_PHRASE_LENGTH,
    PATTERN_MEANINGS,
    RULE_ID_PATTERN,
)
from intercept.rules.ruleset import RuleSet, compile_rules
from intercept.rules.rulespec import Action, MatchMode, RuleSpec

__all__ = [
    "DEFAULT_WORDLIST",
    "EXAMPLE_WORDS",
    "Flag",
    "ImportResult",
    "Term",
    "TermFileError",
    "check_label",
    "dictionary_hits",
    "import_terms",
    "read_terms",
    "read_wordlist",
    "rule_id",
    "yaml_text",
]

DEFAULT_WORDLIST = Path("/usr/share/dict/words")
"""The word list used when none is named (Debian: package wamerican or another `w*` list)."""
EXAMPLE_WORDS = 5
"""How many matching dictionary words a flagged term shows."""

Format = Literal["txt", "csv"]


class TermFileError(InterceptError, ValueError):
    """The file of terms (or the word list) cannot be used; the message names file and line."""


@dataclass(frozen=True, slots=True)
class Term:
    """One term as read, with where it was read (`file:line`)."""

    text: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Flag:
    """A rule that matches many dictionary words: how many, and the first few."""

    rule_id: str
    term: Term  # the rule's first term
    hits: int  # words of the list that the rule matches
    examples: tuple[str, ...]  # the shortest of them, at most EXAMPLE_WORDS


@dataclass(slots=True)
class ImportResult:
    """What `import_terms` read, dropped, merged, skipped, flagged and wrote."""

    source: str
    column: str | None = None
    read: int = 0
    duplicates: list[tuple[Term, Term]] = field(default_factory=list)  # (dropped, first)
    merged: list[tuple[Term, Term]] = field(default_factory=list)  # (merged, kept)
    # (later, earlier): the later term is written into the rule of the earlier one
    overlaps: list[tuple[Term, Term]] = field(default_factory=list)
    skipped: list[tuple[Term, str]] = field(default_factory=list)  # (term, reason)
    groups: list[tuple[Term, ...]] = field(default_factory=list)  # each rule's terms, in order
    rules: tuple[RuleSpec, ...] = ()
    flags: list[Flag] = field(default_factory=list)
    # (rule id, term): a term that, as a query, does not match its rule: no example for it
    no_self_match: list[tuple[str, str]] = field(default_factory=list)
    # (rule id, term, the ordinary words it matches after folding, most frequent first)
    collisions: list[tuple[str, Term, tuple[Collided, ...]]] = field(default_factory=list)
    wordlist: str | None = None  # the word list checked against, None when not checked
    words: int = 0
    max_dictionary_hits: int = 3
    yaml: str = ""

    @property
    def written(self) -> int:
        return len(self.rules)

    @property
    def terms(self) -> list[Term]:
        """Every term written, in rule order."""
        return [term for group in self.groups for term in group]

    def summary(self) -> str:
        """The counts on one line."""
        return (
            f"{self.read} read, {len(self.duplicates)} duplicate(s), {len(self.merged)} merged, "
            f"{len(self.skipped)} skipped, {len(self.flags)} flagged for review, "
            f"{self.written} written"
        )

    def report_lines(self) -> list[str]:
        """The report for the curator: every dropped, merged, skipped and flagged term."""
        out: list[str] = []
        if self.column is not None:
            out.append(f"{self.source}: terms from column {self.column!r}")
        if self.duplicates:
            out.append(f"duplicates ({len(self.duplicates)}), dropped:")
            out += [
                f"  {t.where}: {t.text!r} (first at {first.where})" for t, first in self.duplicates
            ]
        if self.merged:
            out.append(
                f"merged ({len(self.merged)}), normalize like an earlier term, which is kept:"
            )
            out += [
                f"  {t.where}: {t.text!r} merged into {kept.text!r} ({kept.where})"
                for t, kept in self.merged
            ]
        if self.skipped:
            out.append(f"skipped ({len(self.skipped)}):")
            out += [f"  {t.where}: {t.text!r}: {reason}" for t, reason in self.skipped]
        if self.overlaps:
            out.append(
                f"overlapping ({len(self.overlaps)}), share a normalized reading, written into "
                "the rule of the earlier term:"
            )
            out += [
                f"  {t.where}: {t.text!r} reads like {other.text!r} ({other.where})"
                for t, other in self.overlaps
            ]
        if self.wordlist is None:
            out.append(
                f"dictionary check skipped: no word list ({DEFAULT_WORDLIST} not found; "
                "pass --wordlist, or install one such as Debian's wamerican)"
            )
        elif not self.flags:
            out.append(
                f"dictionary check: no term matches more than {self.max_dictionary_hits} of "
                f"{self.words} words of {self.wordlist}"
            )
        else:
            out.append(
                f"flagged for review ({len(self.flags)}), match more than "
                f"{self.max_dictionary_hits} of {self.words} words of {self.wordlist}:"
            )
            out += [
                f"  {f.rule_id} {f.term.text!r} ({f.term.where}): {f.hits} words, "
                f"e.g. {', '.join(f.examples)}"
                for f in self.flags
            ]
        if self.collisions:
            out.append(
                f"diacritic collisions ({len(self.collisions)}), also match ordinary words "
                "after folding, written as match examples for review:"
            )
            out += [
                f"  {rule} {t.text!r} ({t.where}): {_collided_text(hits)}"
                for rule, t, hits in self.collisions
            ]
        if self.no_self_match:
            missing = ", ".join(f"{rule} {text!r}" for rule, text in self.no_self_match)
            out.append(
                f"written without a match example ({len(self.no_self_match)}), the term as a "
                f"query does not match its own rule: {missing}"
            )
        out.append(f"summary: {self.summary()}")
        return out


# Reading


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise TermFileError(f"{name}:{line}: not UTF-8 text") from error


def _lines(text: str) -> list[str]:
    """Lines as an editor counts them (`\\n`, `\\r\\n` or `\\r`), unlike `str.splitlines`."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def read_terms(
    path: str | Path, fmt: Format | None = None, column: str | None = None
) -> tuple[list[Term], str | None]:
    """The terms of a file, stripped, blanks left out, with the CSV column used (None for txt).

    `fmt` is `txt` or `csv`; by default `csv` for a name ending in `.csv`, else `txt`. A text
    file holds one term per line; blank lines and lines starting with `#` are skipped. A CSV
    file starts with a header row; the terms are in `column`, by default the column named
    `term` (any letter case), else the first column. Raises `TermFileError` naming file and line.
    """
    name = Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise TermFileError(f"{path}: cannot read: {error.strerror or error}") from error
    text = _decode(data, name)
    if fmt is None:
        fmt = "csv" if Path(path).suffix.lower() == ".csv" else "txt"
    if fmt == "txt":
        if column is not None:
            raise TermFileError("--column goes with --format csv")
        terms = [
            Term(line.strip(), name, number)
            for number, line in enumerate(_lines(text), 1)
            if line.strip() and not line.strip().startswith("#")
        ]
        return terms, None
    return _read_csv_terms(text, name, column)


def _read_csv_terms(text: str, name: str, column: str | None) -> tuple[list[Term], str]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise TermFileError(f"{name}:{reader.line_num}: {error}") from error
    if not header:
        raise TermFileError(f"{name}:1: expected a header row naming the columns")
    names = [cell.strip() for cell in header]
    if column is not None:
        if column not in names:
            known = ", ".join(repr(n) for n in names)
            raise TermFileError(f"{name}:1: no column {column!r} in the header (columns: {known})")
        index = names.index(column)
    else:
        lowered = [n.lower() for n in names]
        index = lowered.index("term") if "term" in lowered else 0
    terms: list[Term] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # at the line where the faulty row starts
            raise TermFileError(f"{name}:{start}: {error}") from error
        if index < len(row) and row[index].strip():
            terms.append(Term(row[index].strip(), name, start))
    return terms, names[index]


def read_wordlist(path: str | Path) -> list[str]:
    """Dictionary words, one per line. Blank lines, possessive forms (`...'s`) and words that
    differ from an earlier one only in letter case are left out (the lowercase spelling is
    kept), so that a term which is itself an ordinary word counts one hit, not four (`bill`,
    `Bill`, `bill's`, `Bill's`).

    Bytes that are not UTF-8 are replaced (a word list is often Latin-1); an unreadable file
    raises `TermFileError`.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise TermFileError(f"{path}: cannot read word list: {error.strerror or error}") from error
    words: list[str] = []
    seen: dict[str, int] = {}  # casefolded word: its index in `words`
    for line in _lines(text):
        word = line.strip()
        key = word.casefold()
        if not word or key.endswith(("'s", "\u2019s")):
            continue
        if key not in seen:
            seen[key] = len(words)
            words.append(word)
        elif word.islower():  # "bill" after "Bill": show the ordinary word
            words[seen[key]] = word
    return words


# Cleaning and checking


def _readings(text: str) -> frozenset[str]:
    """The forms the compiler looks for, as a set: equal sets match the same queries."""
    return frozenset(form for form in normalize(text, rule=True).alternatives if form.strip())


def _clean(terms: Sequence[Term], result: ImportResult) -> list[list[Term]]:
    """Drop duplicates, merge terms that read alike, skip terms that cannot be rules, group
    terms that share a reading (in the group of the earliest; a term that joins two groups
    joins them too)."""
    exact: dict[str, Term] = {}
    alike: dict[frozenset[str], Term] = {}
    by_reading: dict[str, Term] = {}
    group_of: dict[str, int] = {}  # reading: index of its group in `groups`
    groups: list[list[Term]] = []
    for term in terms:
        if term.text in exact:
            result.duplicates.append((term, exact[term.text]))
            continue
        exact[term.text] = term
        if len(term.text) > MAX_PHRASE_LENGTH:
            result.skipped.append((term, f"longer than {MAX_PHRASE_LENGTH} characters"))
            continue
        readings = _readings(term.text)
        if not readings:
            result.skipped.append((term, "normalizes to nothing (it could never match)"))
            continue
        if readings in alike:
            result.merged.append((term, alike[readings]))
            continue
        alike[readings] = term
        earlier = next((by_reading[r] for r in sorted(readings) if r in by_reading), None)
        if earlier is not None:
            result.overlaps.append((term, earlier))
        for reading in readings:
            by_reading.setdefault(reading, term)
        joined = sorted({group_of[r] for r in readings if r in group_of})
        if joined:
            index = joined[0]
            for other in joined[1:]:  # the term joins groups apart until now
                groups[index] += groups[other]
                groups[other] = []
            groups[index].append(term)
        else:
            index = len(groups)
            groups.append([term])
        if len(joined) > 1:  # rare: the readings of the groups joined now point to `index`
            for reading, where in list(group_of.items()):
                if where in joined:
                    group_of[reading] = index
        for reading in readings:
            group_of[reading] = index
    order = {id(term): number for number, term in enumerate(terms)}
    return [sorted(group, key=lambda t: order[id(t)]) for group in groups if group]


def check_label(kind: str, value: str) -> str:
    """`value` if it is a valid `kind` ("category", "language" or "id prefix"), else
    `ValueError`."""
    if kind == "id prefix":
        rule_id(value, 1, 1)
        return value
    patterns = {"category": CATEGORY_PATTERN, "language": LANGUAGE_PATTERN}
    pattern = patterns[kind]
    if not re.fullmatch(pattern, value):
        raise ValueError(f"{kind} must be {PATTERN_MEANINGS[pattern]} (got {value!r})")
    return value


def rule_id(prefix: str, number: int, total: int) -> str:
    """The id of rule `number` (from 1) of `total`: `P-0001`, zero-padded to at least 4 digits
    so that ids sort in file order. Raises `ValueError` when the id would not be valid."""
    width = max(4, len(str(total)))
    made = f"{prefix}-{number:0{width}d}"
    if not re.fullmatch(RULE_ID_PATTERN, made):
        raise ValueError(
            f"id prefix {prefix!r} gives invalid ids such as {made!r}: use letters, digits, "
            "'_', '.', ':' or '-', starting with a letter or digit, at most 54 characters"
        )
    return made


def _spec(
    rid: str, group: Sequence[Term], make: tuple[str, str, str, Action, MatchMode]
) -> RuleSpec:
    _, category, language, action, match = make
    texts = tuple(term.text for term in group)
    return RuleSpec(rid, category, action, language, match, terms=texts, examples_match=texts,
                    file=group[0].file, line=group[0].line)  # fmt: skip


def _compile(
    groups: list[list[Term]], result: ImportResult, make: tuple[str, str, str, Action, MatchMode]
) -> tuple[list[list[Term]], list[RuleSpec], RuleSet]:
    """One rule per group, compiled; terms the compiler refuses (over its limits once
    normalized) are moved to `result.skipped` and the rest compiled again."""
    reason = "too long once normalized (the matcher's limit)"
    while True:
        specs = [
            _spec(rule_id(make[0], number, len(groups)), group, make)
            for number, group in enumerate(groups, 1)
        ]
        try:
            return groups, specs, compile_rules(specs)
        except RuleError as error:
            refused = {problem.rule_id for problem in error.problems}
            kept: list[list[Term]] = []
            for group, spec in zip(groups, specs, strict=True):
                if spec.id in refused:  # which of its terms: each alone
                    fits = [t for t in group if _compiles(_spec(spec.id, [t], make))]
                    result.skipped += [(t, reason) for t in group if t not in fits]
                    group = fits
                if group:
                    kept.append(group)
            groups = kept
            if not groups:
                return [], [], compile_rules([])


def _compiles(spec: RuleSpec) -> bool:
    try:
        compile_rules([spec])
    except RuleError:
        return False
    return True


def _collided_text(hits: Sequence[Collided]) -> str:
    """Up to `SHOWN_COLLISIONS` words with language and frequency, as `intercept check`
    names them."""
    text = ", ".join(hit.describe() for hit in hits[:SHOWN_COLLISIONS])
    more = len(hits) - SHOWN_COLLISIONS
    return f"{text} and {more} more" if more > 0 else text


def dictionary_hits(
    rules: RuleSet, words: Iterable[str], *, examples: int = EXAMPLE_WORDS
) -> dict[str, tuple[int, tuple[str, ...]]]:
    """For each rule matching any of `words` (each run as a query): how many words it matches
    and `examples` of them, the shortest first (lowercase before capitalized, then in
    word-list order), as the shortest words show best what a term catches."""
    counts: Counter[str] = Counter()
    found: dict[str, list[tuple[int, bool, int, str]]] = {}
    for index, word in enumerate(words):
        for match in rules.match_all(word):
            counts[match.rule_id] += 1
            shown = found.setdefault(match.rule_id, [])
            shown.append((len(word), not word.islower(), index, word))
            if len(shown) > examples:
                shown.remove(max(shown))
    return {
        rid: (count, tuple(word for *_, word in sorted(found[rid])))
        for rid, count in counts.items()
    }


# Writing

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*|[0-9]{4}-[0-9]{2}-[0-9]{2}")
# read as booleans or null by YAML 1.1 tools, so written quoted
_YAML11_WORDS = frozenset(("y", "n", "yes", "no", "on", "off", "true", "false", "null"))
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def yaml_text(value: str, *, quote: bool = True) -> str:
    """`value` as a YAML scalar that every YAML reader reads back as the same text.

    With `quote` false a plain label (`demo`, `P-0001`, `2026-12-01`) stays unquoted.
    Otherwise, and always for other text, it is double-quoted; quotes, backslashes and every
    character that is not printable (controls, invisible format characters, line and paragraph
    separators, unusual spaces) are escaped, so they survive any editor.
    """
    if not quote and _PLAIN.fullmatch(value) and value.lower() not in _YAML11_WORDS:
        return value
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == " " or char.isprintable():
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _comment_text(text: str) -> str:
    """Text safe for a one-line YAML comment."""
    return "".join(char if char == " " or char.isprintable() else "?" for char in text)


def _render_yaml(
    result: ImportResult, name: str, updated: date, make: tuple[str, str, str, Action, MatchMode]
) -> str:
    _, category, language, action, match = make
    flags = {flag.rule_id: flag for flag in result.flags}
    out = [
        f"# Imported by `intercept import` from {_comment_text(result.source)} on "
        f"{updated.isoformat()}:",
        f"# {result.summary()}.",
    ]
    if flags:
        out.append("# Rules that match many dictionary words carry a REVIEW comment.")
    if result.collisions:
        out.append(
            "# Rules whose terms also match ordinary words of other languages after folding carry"
        )
        out.append(
            "# a REVIEW comment; those words are written as match examples (delete one to be "
            "warned again)."
        )
    out += [
        "list:",
        f"  name: {yaml_text(name)}",
        f"  source: {yaml_text('imported from ' + result.source)}",
        f"  updated: {updated.isoformat()}",
        "defaults:",
        f"  category: {yaml_text(category, quote=False)}",
        f"  action: {action.value}",
        f"  language: {yaml_text(language, quote=False)}",
        f"  match: {match.value}",
        "rules:",
    ]
    without_example = set(result.no_self_match)
    collided: dict[str, list[tuple[Term, tuple[Collided, ...]]]] = {}
    for rule, term, hits in result.collisions:
        collided.setdefault(rule, []).append((term, hits))
    for spec in result.rules:
        flag = flags.get(spec.id)
        if flag is not None:
            words = ", ".join(_comment_text(word) for word in flag.examples)
            out.append(f"  # REVIEW: matches {flag.hits} dictionary words, e.g. {words}")
        examples = [t for t in spec.terms if (spec.id, t) not in without_example]
        for text in spec.terms:
            if text not in examples:
                out.append(
                    f"  # REVIEW: the term {_comment_text(repr(text))} as a query does not "
                    "match this rule"
                )
        for term, hits in collided.get(spec.id, []):
            out.append(
                f"  # REVIEW: {_comment_text(repr(term.text))} also matches ordinary words "
                f"after folding: {_comment_text(_collided_text(hits))}"
            )
            examples += [hit.word for hit in hits if hit.word not in examples]
        out.append(f"  - id: {yaml_text(spec.id, quote=False)}")
        out.append(f"    terms: [{', '.join(yaml_text(t) for t in spec.terms)}]")
        if examples:
            out.append(f"    examples: {{match: [{', '.join(yaml_text(t) for t in examples)}]}}")
    return "\n".join(out) + "\n"


def import_terms(
    path: str | Path,
    *,
    category: str,
    language: str,
    id_prefix: str,
    fmt: Format | None = None,
    column: str | None = None,
    action: Action = Action.SHADOW,
    match: MatchMode = MatchMode.WORD,
    wordlist: str | Path | None = None,
    max_dictionary_hits: int = 3,
    today: date | None = None,
) -> ImportResult:
    """Read the terms of `path` and build a rule file from them (see the module docstring).

    `wordlist` None skips the dictionary check. The list is named after the file's stem, its
    source is "imported from <file name>" and it is dated `today` (default: the local date).
    Raises `ValueError` for an invalid category, language or id prefix, and `TermFileError`
    when the file or word list cannot be read, or no term is left.
    """
    check_label("category", category)
    check_label("language", language)
    check_label("id prefix", id_prefix)
    source = Path(path).name
    terms, used_column = read_terms(path, fmt, column)
    result = ImportResult(source, used_column, read=len(terms))
    result.max_dictionary_hits = max_dictionary_hits
    make = (id_prefix, category, language, action, match)
    groups, specs, rules = _compile(_clean(terms, result), result, make)
    if not specs:
        raise TermFileError(f"{source}: no terms to import ({result.summary()})")
    result.groups, result.rules = [tuple(group) for group in groups], tuple(specs)
    result.no_self_match = [
        (spec.id, text)
        for spec in specs
        for text in spec.terms
        if spec.id not in {m.rule_id for m in rules.match_all(text)}
    ]
    by_text = {
        (spec.id, t.text): t for spec, group in zip(specs, groups, strict=True) for t in group
    }
    result.collisions = [
        (spec.id, by_text[spec.id, phrase], hits) for spec, phrase, hits in collisions(rules)
    ]
    if wordlist is not None:
        words = read_wordlist(wordlist)
        result.wordlist, result.words = str(wordlist), len(words)
        hits = dictionary_hits(rules, words)
        result.flags = [
            Flag(spec.id, group[0], *hits[spec.id])
            for spec, group in zip(specs, groups, strict=True)
            if spec.id in hits and hits[spec.id][0] > max_dictionary_hits
        ]
    result.yaml = _render_yaml(result, Path(path).stem, today or date.today(), make)
    return result
