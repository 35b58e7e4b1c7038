"""`intercept check`: validate rule files, run every rule's examples, warn about weak rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from intercept.errors import Problem, RuleError
from intercept.normalize import normalize
from intercept.ruleset import RuleSet, compile_rules
from intercept.rulespec import RuleSpec

__all__ = ["CheckReport", "check_rules"]


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What `check_rules` found. `ok` is False when there is any error."""

    rules: int = 0
    files: int = 0
    examples: int = 0
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.errors


def _problem(spec: RuleSpec, message: str) -> Problem:
    return Problem(spec.file, spec.line, spec.id, message)


def _phrases(spec: RuleSpec) -> list[str]:
    return [*spec.terms, *(p for group in spec.all_of for p in group)]


def _example_errors(rules: RuleSet) -> tuple[int, list[Problem]]:
    errors: list[Problem] = []
    count = 0
    for spec in rules.rules:
        for query in spec.examples_match:
            count += 1
            if spec.id not in {m.rule_id for m in rules.match_all(query)}:
                errors.append(_problem(spec, f"example {query!r} should match but does not"))
        for query in spec.examples_no_match:
            count += 1
            if spec.id in {m.rule_id for m in rules.match_all(query)}:
                errors.append(_problem(spec, f"example {query!r} should not match but does"))
    return count, errors


def _warnings(rules: RuleSet) -> list[Problem]:
    warnings: list[Problem] = []
    seen: dict[str, tuple[RuleSpec, str]] = {}
    for spec in rules.rules:
        for phrase in (*_phrases(spec), *spec.unless):
            if normalize(phrase, rule=True).empty:
                warnings.append(
                    _problem(spec, f"phrase {phrase!r} normalizes to nothing and never matches")
                )
        for phrase in _phrases(spec):
            clash = None
            for form in normalize(phrase, rule=True).alternatives:
                if form == " ":
                    continue
                first = seen.setdefault(form, (spec, phrase))
                if clash is None and first[0].id != spec.id:
                    clash = (first, form)
            if clash is not None:
                (other, other_phrase), form = clash
                warnings.append(
                    _problem(
                        spec,
                        f"phrase {phrase!r} normalizes like {other_phrase!r} of rule {other.id} "
                        f"({other.where}): {form.strip()!r}",
                    )
                )
        if spec.unless:
            guard = compile_rules(
                [RuleSpec(spec.id, spec.category, spec.action, spec.language,
                          spec.match, terms=spec.unless)]
            )  # fmt: skip
            covered = [p for p in _phrases(spec) if guard.match(p) is not None]
            never = [p for p in spec.terms if p in covered] + [
                f"all_of[{i}]" for i, group in enumerate(spec.all_of)
                if all(p in covered for p in group)
            ]  # fmt: skip
            for what in never:
                subject = f"phrases of {what}" if what.startswith("all_of[") else f"phrase {what!r}"
                warnings.append(
                    _problem(spec, f"unless covers the rule's own {subject}: it never matches")
                )
    return warnings


def check_rules(paths: Sequence[str | Path] | Iterable[str | Path]) -> CheckReport:
    """Read, compile and examine rule files; never raises `RuleError` (it becomes `errors`)."""
    from intercept.rulefile import read_rules

    paths = list(paths)
    try:
        specs, lists = read_rules(paths)
        rules = compile_rules(specs, lists)
    except RuleError as error:
        return CheckReport(errors=error.problems)
    count, errors = _example_errors(rules)
    files = len({spec.file for spec in specs})
    today = datetime.now(UTC).date().isoformat()
    expired = [
        _problem(spec, f"expired on {spec.expires}: no longer matched; remove it or move the date")
        for spec in specs
        if spec.status == "active" and spec.expires is not None and spec.expires <= today
    ]
    warnings = (*expired, *_warnings(rules))
    return CheckReport(len(specs), files, count, tuple(errors), warnings)
