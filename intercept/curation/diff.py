"""`intercept diff`: what a change to the rules does, for review before it is merged.

Two rule sets (OLD and NEW, each a rule file or folder) are compared by rule id: rules added,
removed, and changed, with the fields that changed. Over an optional corpus of queries, every
query whose decision changes is listed with the old and the new decision, so a curator sees
the impact of a change on real traffic (or on a corpus of known-benign queries) before merging.

Rule phrases are confidential, so by default a changed phrase list is shown as counts
("terms: 3 added, 1 removed"); `show_terms` shows the phrases themselves. A corpus is the
curator's own file, so its queries are shown.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from intercept.curation.corpus import CorpusError
from intercept.rules.ruleset import Match, RuleSet
from intercept.rules.rulespec import RuleSpec

__all__ = [
    "DecisionChange",
    "Diff",
    "FailOn",
    "FieldChange",
    "RuleChange",
    "decision_changes",
    "diff_rules",
    "diff_to_dict",
    "failed",
    "read_queries",
    "render_text",
    "with_corpus",
]

FailOn = Literal["new-matches", "any-change"]
ChangeKind = Literal["new_match", "no_longer_matches", "changed"]

_NOT_COMPARED = frozenset({"id", "file", "line", "list_name"})
"""RuleSpec fields that say where a rule is, not what it does: moving a rule is no change."""
_PHRASE_FIELDS = frozenset({"terms", "unless", "examples_match", "examples_no_match"})
_GROUP_FIELDS = frozenset({"all_of"})
_FIELD_NAMES = {"examples_match": "examples.match", "examples_no_match": "examples.no_match"}


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a rule that differs between OLD and NEW.

    For a label field (`action`, `category`, ...) `old` and `new` hold the values. For a phrase
    field (`terms`, `unless`, `examples.*`; kind "phrases") `added` and `removed` hold the
    phrases that appear only in NEW or only in OLD (counted with repetition); for `all_of`
    (kind "groups") they hold whole groups.
    `reordered` is set when the same phrases are written in another order.
    """

    field: str
    kind: Literal["label", "phrases", "groups"] = "label"
    old: object = None
    new: object = None
    added: tuple[object, ...] = ()
    removed: tuple[object, ...] = ()
    reordered: bool = False

    @property
    def is_phrases(self) -> bool:
        return self.kind != "label"


@dataclass(frozen=True, slots=True)
class RuleChange:
    """A rule present on both sides whose fields differ."""

    old: RuleSpec
    new: RuleSpec
    fields: tuple[FieldChange, ...]

    @property
    def id(self) -> str:
        return self.new.id


@dataclass(frozen=True, slots=True)
class DecisionChange:
    """A corpus query decided differently by OLD and NEW (`None`: no rule matches)."""

    line: int
    query: str
    old: Match | None
    new: Match | None

    @property
    def kind(self) -> ChangeKind:
        if self.old is None:
            return "new_match"
        if self.new is None:
            return "no_longer_matches"
        return "changed"


@dataclass(frozen=True, slots=True)
class Diff:
    """Everything `intercept diff` reports. `corpus` is None when no corpus was given."""

    old_path: str
    new_path: str
    old_rules: RuleSet
    new_rules: RuleSet
    added: tuple[RuleSpec, ...]
    removed: tuple[RuleSpec, ...]
    changed: tuple[RuleChange, ...]
    corpus: str | None = None
    queries: int = 0
    decisions: tuple[DecisionChange, ...] = ()

    @property
    def unchanged(self) -> int:
        return len(self.new_rules.rules) - len(self.added) - len(self.changed)

    def count(self, kind: ChangeKind) -> int:
        """How many corpus queries changed decision in this way."""
        return sum(1 for change in self.decisions if change.kind == kind)


def _label(value: object) -> object:
    """A field value as JSON can hold it: enums by value, other unknown types as text."""
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, tuple | list):
        return [_label(item) for item in value]
    return str(value)


def _compared_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(RuleSpec) if f.name not in _NOT_COMPARED]


def _field_change(name: str, old: Any, new: Any) -> FieldChange | None:
    """How field `name` changed from `old` to `new`, or None when it did not."""
    if old == new:
        return None
    shown = _FIELD_NAMES.get(name, name)
    if name in _PHRASE_FIELDS or name in _GROUP_FIELDS:
        before, after = Counter(old), Counter(new)
        added = tuple((after - before).elements())
        removed = tuple((before - after).elements())
        kind: Literal["phrases", "groups"] = "groups" if name in _GROUP_FIELDS else "phrases"
        reordered = not added and not removed
        return FieldChange(shown, kind, added=added, removed=removed, reordered=reordered)
    return FieldChange(shown, old=old, new=new)


def diff_rules(
    old: RuleSet,
    new: RuleSet,
    *,
    old_path: str = "OLD",
    new_path: str = "NEW",
) -> Diff:
    """Rules added, removed and changed from `old` to `new`, by id.

    A rule is changed when any field that affects what it does or how it is checked differs:
    terms, all_of, unless, category, action, language, match, examples, and any field a later
    version of the rule format adds. Where a rule is (file, line, list) is not compared.
    Added and changed rules come in NEW's load order, removed ones in OLD's.
    """
    old_by_id = {spec.id: spec for spec in old.rules}
    new_ids = {spec.id for spec in new.rules}
    names = _compared_fields()
    added: list[RuleSpec] = []
    changed: list[RuleChange] = []
    for spec in new.rules:
        before = old_by_id.get(spec.id)
        if before is None:
            added.append(spec)
            continue
        fields = [
            change
            for name in names
            if (change := _field_change(name, getattr(before, name), getattr(spec, name)))
        ]
        if fields:
            changed.append(RuleChange(before, spec, tuple(fields)))
    removed = [spec for spec in old.rules if spec.id not in new_ids]
    return Diff(old_path, new_path, old, new, tuple(added), tuple(removed), tuple(changed))


def read_queries(path: str | Path) -> list[tuple[int, str]]:
    """The queries of a corpus file as (line number, query).

    A file ending in `.csv` (any letter case) is CSV (UTF-8) with a header row naming a `query`
    column, like the corpora of `intercept test` (other columns are ignored). Any other file is
    plain text (UTF-8), one query per line; blank lines are skipped, every other line is a
    query as written (there are no comments: a query may start with `#`).

    Raises `CorpusError` naming the file, and the line when known, when it cannot be used.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CorpusError(f"{name}: cannot read corpus: {error.strerror or error}") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CorpusError(f"{name}:{line}: not UTF-8 text") from error
    if Path(path).suffix.lower() != ".csv":
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # as editors count
        return [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if "query" not in (reader.fieldnames or ()):
        raise CorpusError(f"{name}:1: corpus header must name a 'query' column")
    queries: list[tuple[int, str]] = []
    try:
        for row in reader:
            query = row["query"] or ""
            if query.strip():
                queries.append((reader.line_num, query))
    except csv.Error as error:
        raise CorpusError(f"{name}:{reader.line_num}: {error}") from error
    return queries


def decision_changes(
    old: RuleSet, new: RuleSet, queries: Sequence[tuple[int, str]]
) -> list[DecisionChange]:
    """Every query whose decision (rule, action, category, language) differs, in corpus order."""
    changes: list[DecisionChange] = []
    for line, query in queries:
        before, after = old.match(query), new.match(query)
        if before != after:
            changes.append(DecisionChange(line, query, before, after))
    return changes


def with_corpus(diff: Diff, corpus: str, queries: Sequence[tuple[int, str]]) -> Diff:
    """`diff` with the decision changes of its two rule sets over `queries` (from `corpus`)."""
    changes = decision_changes(diff.old_rules, diff.new_rules, queries)
    return dataclasses.replace(diff, corpus=corpus, queries=len(queries), decisions=tuple(changes))


def failed(diff: Diff, fail_on: FailOn | None) -> bool:
    """Whether `fail_on` fails this diff: `new-matches` when a query that matched no rule in OLD
    matches one in NEW, `any-change` when any query's decision changes."""
    if fail_on == "new-matches":
        return diff.count("new_match") > 0
    if fail_on == "any-change":
        return bool(diff.decisions)
    return False


# Rendering


def _relative(file: str, root: str) -> str:
    """`file` inside the rule folder `root` as given to the command, to tell a rule that moved
    to another file from one whose folder was named differently on each side."""
    if Path(root).is_dir():
        return os.path.relpath(file, root)
    return os.path.basename(file)


def _decision_text(match: Match | None, *, full: bool = False) -> str:
    if match is None:
        return "none"
    text = f"{match.rule_id} {match.action.value}"
    return f"{text} (category {match.category}, language {match.language})" if full else text


def _phrase_text(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(item) for item in value) + "]"
    return repr(value)


def _counts_text(spec: RuleSpec) -> str:
    parts = [f"terms: {len(spec.terms)}"] if spec.terms else []
    if spec.all_of:
        size = sum(len(group) for group in spec.all_of)
        parts.append(f"all_of: {len(spec.all_of)} group(s), {size} phrase(s)")
    if spec.unless:
        parts.append(f"unless: {len(spec.unless)}")
    return ", ".join(parts)


def _rule_lines(spec: RuleSpec, show_terms: bool) -> list[str]:
    head = (
        f"  {spec.id}  {spec.where}  {spec.action.value}, category {spec.category}, "
        f"language {spec.language}, match {spec.match.value}"
    )
    if not show_terms:
        return [f"{head}; {_counts_text(spec)}"]
    lines = [head]
    if spec.terms:
        lines.append(f"    terms: {_phrase_text(spec.terms)}")
    for index, group in enumerate(spec.all_of):
        lines.append(f"    all_of[{index}]: {_phrase_text(group)}")
    if spec.unless:
        lines.append(f"    unless: {_phrase_text(spec.unless)}")
    return lines


def _change_lines(change: FieldChange, show_terms: bool) -> list[str]:
    if not change.is_phrases:
        return [f"    {change.field}: {_label(change.old)} -> {_label(change.new)}"]
    unit = "group(s)" if change.kind == "groups" else ""
    if change.reordered:
        return [f"    {change.field}: same {'groups' if unit else 'phrases'}, reordered"]
    counts = f"{len(change.added)} added, {len(change.removed)} removed"
    lines = [f"    {change.field}: {unit + ' ' if unit else ''}{counts}"]
    if show_terms:
        lines += [f"      + {_phrase_text(item)}" for item in change.added]
        lines += [f"      - {_phrase_text(item)}" for item in change.removed]
    return lines


def render_text(diff: Diff, *, show_terms: bool = False, fail_on: FailOn | None = None) -> str:
    """The report as text, for a terminal or a CI log."""
    out: list[str] = []
    old, new = diff.old_rules, diff.new_rules
    out.append(f"OLD {diff.old_path}: {len(old)} rules, version {old.version}")
    out.append(f"NEW {diff.new_path}: {len(new)} rules, version {new.version}")
    for title, specs in (("added", diff.added), ("removed", diff.removed)):
        out.append(f"{title} ({len(specs)}):" if specs else f"{title}: none")
        for spec in specs:
            out += _rule_lines(spec, show_terms)
    out.append(f"changed ({len(diff.changed)}):" if diff.changed else "changed: none")
    for rule in diff.changed:
        moved = ""
        if _relative(rule.old.file, diff.old_path) != _relative(rule.new.file, diff.new_path):
            moved = f" (was {rule.old.where})"
        out.append(f"  {rule.id}  {rule.new.where}{moved}")
        for change in rule.fields:
            out += _change_lines(change, show_terms)
    summary = (
        f"summary: {len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len(diff.changed)} changed, {diff.unchanged} unchanged"
    )
    if diff.corpus is not None:
        kinds = (
            f"{diff.count('new_match')} new match(es), "
            f"{diff.count('no_longer_matches')} no longer matching, "
            f"{diff.count('changed')} changed"
        )
        out.append(
            f"corpus {diff.corpus}: {len(diff.decisions)} of {diff.queries} queries change "
            f"decision ({kinds})"
        )
        for d in diff.decisions:
            # same rule and action: the change is in the category or language, so show them
            full = _decision_text(d.old) == _decision_text(d.new)
            out.append(
                f"  {diff.corpus}:{d.line}: {d.query!r}: {_decision_text(d.old, full=full)} -> "
                f"{_decision_text(d.new, full=full)}"
            )
        summary += (
            f"; {len(diff.decisions)} of {diff.queries} queries change decision, "
            f"{diff.count('new_match')} new match(es)"
        )
    out.append(summary)
    if fail_on is not None:
        verdict = "FAIL" if failed(diff, fail_on) else "PASS"
        out.append(f"{verdict} (--fail-on {fail_on})")
    return "\n".join(out) + "\n"


def _match_dict(match: Match | None) -> dict[str, str] | None:
    if match is None:
        return None
    return {
        "rule_id": match.rule_id,
        "action": match.action.value,
        "category": match.category,
        "language": match.language,
    }


def _rule_dict(spec: RuleSpec, show_terms: bool) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": spec.id,
        "file": spec.file,
        "line": spec.line,
        "action": spec.action.value,
        "category": spec.category,
        "language": spec.language,
        "match": spec.match.value,
        "counts": {
            "terms": len(spec.terms),
            "all_of": len(spec.all_of),
            "unless": len(spec.unless),
        },
    }
    if show_terms:
        entry.update(
            terms=list(spec.terms),
            all_of=[list(group) for group in spec.all_of],
            unless=list(spec.unless),
        )
    return entry


def _change_dict(change: FieldChange, show_terms: bool) -> dict[str, object]:
    if not change.is_phrases:
        return {"field": change.field, "old": _label(change.old), "new": _label(change.new)}
    entry: dict[str, object] = {
        "field": change.field,
        "added": len(change.added),
        "removed": len(change.removed),
        "reordered": change.reordered,
    }
    if show_terms:
        entry.update(
            added_phrases=_label(change.added),
            removed_phrases=_label(change.removed),
        )
    return entry


def diff_to_dict(
    diff: Diff, *, show_terms: bool = False, fail_on: FailOn | None = None
) -> dict[str, object]:
    """The report as JSON-ready data (see `intercept diff --json` in rules/README.md)."""
    corpus: dict[str, object] | None = None
    if diff.corpus is not None:
        corpus = {
            "path": diff.corpus,
            "queries": diff.queries,
            "changes": len(diff.decisions),
            "new_matches": diff.count("new_match"),
            "no_longer_matching": diff.count("no_longer_matches"),
            "changed": diff.count("changed"),
            "decisions": [
                {
                    "line": d.line,
                    "query": d.query,
                    "kind": d.kind,
                    "old": _match_dict(d.old),
                    "new": _match_dict(d.new),
                }
                for d in diff.decisions
            ],
        }
    return {
        "old": {
            "path": diff.old_path,
            "rules": len(diff.old_rules),
            "version": diff.old_rules.version,
        },
        "new": {
            "path": diff.new_path,
            "rules": len(diff.new_rules),
            "version": diff.new_rules.version,
        },
        "added": [_rule_dict(spec, show_terms) for spec in diff.added],
        "removed": [_rule_dict(spec, show_terms) for spec in diff.removed],
        "changed": [
            {
                "id": rule.id,
                "old": {"file": rule.old.file, "line": rule.old.line},
                "new": {"file": rule.new.file, "line": rule.new.line},
                "fields": [_change_dict(change, show_terms) for change in rule.fields],
            }
            for rule in diff.changed
        ],
        "summary": {
            "added": len(diff.added),
            "removed": len(diff.removed),
            "changed": len(diff.changed),
            "unchanged": diff.unchanged,
        },
        "corpus": corpus,
        "fail_on": fail_on,
        "failed": failed(diff, fail_on),
    }
