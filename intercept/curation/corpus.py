"""`intercept test`: precision and recall of a rule set over a labelled corpus of queries.

The corpus is CSV with a header row and the columns `query` and `expect`; `expect` is the id
of the rule that must match the query, or empty when no rule may match. A row expecting rule X
counts as a true positive when X is among the rules matching the query (a more severe rule may
decide, X still matched), otherwise as a false negative; a row expecting nothing counts as a
false positive when any rule matches. Categories are those of the expected rule, or of the
deciding rule for false positives.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from intercept.errors import InterceptError
from intercept.rules.ruleset import RuleSet

__all__ = ["CorpusError", "CorpusResult", "Failure", "Score", "evaluate", "read_corpus"]


class CorpusError(InterceptError, ValueError):
    """The corpus file cannot be used (missing columns, unknown rule ids, bad encoding)."""


@dataclass(slots=True)
class Score:
    """Counts for one category (or overall) and the rates derived from them."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    true_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "true_negatives": self.true_negatives,
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """A corpus row whose outcome differs from its expectation."""

    line: int  # of the row in the corpus file
    query: str
    expected: str  # the rule id the row expects, '' for no match
    got: tuple[str, ...]  # every rule id that matched, the decisive one first


@dataclass(slots=True)
class CorpusResult:
    overall: Score = field(default_factory=Score)
    by_category: dict[str, Score] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    rows: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "overall": self.overall.as_dict(),
            "by_category": {k: v.as_dict() for k, v in sorted(self.by_category.items())},
            "failures": [
                {"line": f.line, "query": f.query, "expected": f.expected, "got": list(f.got)}
                for f in self.failures
            ],
        }


def read_corpus(path: str | Path) -> list[tuple[int, str, str]]:
    """Rows as (line number, query, expected rule id or '')."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CorpusError(f"{name}: cannot read corpus: {error}") from error
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = set(reader.fieldnames or ())
    missing = {"query", "expect"} - columns
    if missing:
        raise CorpusError(
            f"{name}:1: corpus header must name the columns 'query' and 'expect' "
            f"(missing: {', '.join(sorted(missing))})"
        )
    rows: list[tuple[int, str, str]] = []
    try:
        for row in reader:
            rows.append((reader.line_num, row["query"] or "", (row["expect"] or "").strip()))
    except csv.Error as error:
        raise CorpusError(f"{name}:{reader.line_num}: {error}") from error
    return rows


def evaluate(rules: RuleSet, rows: list[tuple[int, str, str]], *, name: str = "") -> CorpusResult:
    """Score `rules` against labelled rows."""
    categories = {spec.id: spec.category for spec in rules.rules}
    unknown = sorted({(line, exp) for line, _, exp in rows if exp and exp not in categories})
    if unknown:
        where = ", ".join(f"{name}:{line} {exp!r}" for line, exp in unknown[:10])
        raise CorpusError(f"corpus expects rule ids that are not loaded: {where}")
    result = CorpusResult(rows=len(rows))

    def score(category: str) -> Score:
        return result.by_category.setdefault(category, Score())

    for line, query, expected in rows:
        got = tuple(m.rule_id for m in rules.match_all(query))
        if expected and expected in got:
            for s in (result.overall, score(categories[expected])):
                s.true_positives += 1
        elif expected:
            for s in (result.overall, score(categories[expected])):
                s.false_negatives += 1
        elif got:
            for s in (result.overall, score(categories[got[0]])):
                s.false_positives += 1
        else:
            result.overall.true_negatives += 1
        if (expected not in got) if expected else got:
            result.failures.append(Failure(line, query, expected, got))
    return result
