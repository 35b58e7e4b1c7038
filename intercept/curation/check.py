"""`intercept check`: validate rule files, run every rule's examples, warn about weak rules.

Besides duplicates, phrases that normalize to nothing and `unless` phrases that cover the rule,
it warns about diacritic collisions: ordinary words of the lexicon's 14 languages
(`intercept.rules.lexicon.collisions()`) that a phrase matches only because folding removes what
tells them apart (the phrase `fur` matches the German `für`, `schon` matches `schön`). Which:

- a one-word phrase is compared in its rule's mode: as a whole word (`word`), as the start of a
  word (`prefix`: `schon` also finds `schöne`) or anywhere in one (`substring`). A word the
  phrase would match without folding (`café` for the prefix `caf`) is no collision.
- a phrase of several words (and a reading of several words: `big-cat`) is not checked. The
  table holds single words, and one colliding word inside a phrase is ordinary text only if
  the rest of the phrase is in the same language (`schön gut` for `schon gut`, but not
  `żebra quilt` for `zebra quilt`), which the lexicon cannot tell: it does not record the
  language of a word that folding leaves unchanged.
- each candidate is confirmed by running it through the compiled set (for an `all_of`
  phrase, with one phrase of every other group beside it): a word the rule's `unless` covers,
  or that the rule does not match at all (disabled, expired), is not warned about.
- a curator accepts a collision by writing the word in the rule: in `examples.match` (a query
  it must match, which `check` then runs), or as a word of one of its phrases. `unless` cannot
  tell the two apart: it folds alike, so `unless: [für]` stops `fur` too (and is warned about).

The lexicon is loaded only when a set is checked (about 0.4 s), never when the module is
imported.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from intercept.errors import Problem, RuleError
from intercept.rules.lexicon import Collision
from intercept.rules.normalize import alternatives, normalize
from intercept.rules.ruleset import RuleSet, compile_rules
from intercept.rules.rulespec import MatchMode, RuleSpec

__all__ = ["SHOWN_COLLISIONS", "CheckReport", "Collided", "check_rules", "collisions"]

SHOWN_COLLISIONS = 5
"""How many colliding words a warning names, the most frequent first."""


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


# Diacritic collisions


@dataclass(frozen=True, slots=True)
class Collided:
    """An ordinary word that a rule phrase matches only because folding removes what tells
    them apart (`für` for the phrase `fur`): the language where it is most frequent, how
    frequent there (zipf), in how many of the lexicon's languages it is listed, and the
    folded form by which the phrase matches it."""

    word: str
    language: str
    zipf: float
    languages: int
    folded: str

    def describe(self) -> str:
        """`für (de, zipf 6.9, +7 languages)`."""
        others = self.languages - 1
        more = f", +{others} language{'s' if others > 1 else ''}" if others else ""
        return f"{self.word} ({self.language}, zipf {self.zipf:.1f}{more})"


def _key(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def _accepted(spec: RuleSpec) -> frozenset[str]:
    """Words the curator wrote in the rule itself: its phrases and its `match` examples."""
    texts = (*_phrases(spec), *spec.examples_match)
    return frozenset(word for text in texts for word in _key(text).split())


class _Lexicon:
    """`intercept.rules.lexicon.collisions()`, loaded on first use (about 0.4 s), with its keys
    sorted and joined for `prefix` and `substring` phrases once one is met."""

    def __init__(self) -> None:
        from intercept.rules import lexicon

        enabled = gc.isenabled()
        gc.disable()  # ~80,000 small acyclic objects: the collector would rescan them often
        try:
            self.table = lexicon.collisions()
        finally:
            if enabled:
                gc.enable()
        self._sorted: list[str] | None = None
        self._joined: tuple[str, list[int]] | None = None

    def keys(self, form: str, mode: MatchMode) -> list[str]:
        """The folded forms a one-word reading `form` matches in `mode`."""
        if mode is MatchMode.WORD:
            return [form] if form in self.table else []
        if self._sorted is None:
            self._sorted = sorted(self.table)
        keys = self._sorted
        if mode is MatchMode.PREFIX:
            start = bisect.bisect_left(keys, form)
            end = bisect.bisect_left(keys, form + "\U0010ffff")
            return keys[start:end]
        if self._joined is None:  # one string to search: a C-speed scan per phrase
            starts = list(itertools.accumulate((len(k) + 1 for k in keys), initial=0))
            self._joined = ("\n".join(keys), starts)
        joined, starts = self._joined
        found: list[str] = []
        at = joined.find(form)
        while at >= 0:
            index = bisect.bisect_right(starts, at) - 1
            found.append(keys[index])
            at = joined.find(form, starts[index + 1])
        return found


def _plain_match(raw: str, word: str, mode: MatchMode) -> bool:
    """Whether a one-word phrase (`raw`, casefolded) matches `word` without any folding."""
    if mode is MatchMode.WORD:
        return raw == word
    return word.startswith(raw) if mode is MatchMode.PREFIX else raw in word


def _contexts(spec: RuleSpec) -> list[tuple[str, str]]:
    """Each phrase of the rule, with what a query needs beside it to match: nothing for a
    term, one phrase of every other group for an `all_of` phrase."""
    out = [(phrase, "") for phrase in spec.terms]
    for index, group in enumerate(spec.all_of):
        others = " ".join(g[0] for i, g in enumerate(spec.all_of) if i != index)
        out += [(phrase, others) for phrase in group]
    return out


def _candidates(phrase: str, mode: MatchMode, lexicon: _Lexicon) -> dict[str, list[Collision]]:
    """Colliding word -> its lexicon entries (one per language), for the phrase's one-word
    readings."""
    raw = _key(phrase).strip()
    found: dict[str, list[Collision]] = {}
    for reading in sorted({r.strip() for r in alternatives(phrase, rule=True)}):
        if not reading or " " in reading:
            continue
        for key in lexicon.keys(reading, mode):
            for entry in lexicon.table[key]:
                if not _plain_match(raw, _key(entry.word), mode):
                    found.setdefault(entry.word, []).append(entry)
    return found


def collisions(rules: RuleSet) -> list[tuple[RuleSpec, str, tuple[Collided, ...]]]:
    """Every rule phrase (terms and `all_of`, not `unless`) that matches ordinary words of the
    lexicon only after folding, with those words, the most frequent first (see the module
    docstring for which words count). Loads the lexicon unless the set has no phrase."""
    out: list[tuple[RuleSpec, str, tuple[Collided, ...]]] = []
    lexicon: _Lexicon | None = None
    for spec in rules.rules:
        accepted: frozenset[str] | None = None
        for phrase, context in _contexts(spec):
            lexicon = lexicon or _Lexicon()
            hits: list[Collided] = []
            for word, entries in _candidates(phrase, spec.match, lexicon).items():
                accepted = _accepted(spec) if accepted is None else accepted
                if _key(word) in accepted:
                    continue
                probe = f"{word} {context}" if context else word
                if spec.id not in {m.rule_id for m in rules.match_all(probe)}:
                    continue
                best = max(entries, key=lambda e: (e.zipf, e.language))
                languages = len({e.language for e in entries})
                hits.append(Collided(word, best.language, best.zipf, languages, best.folded))
            if hits:
                hits.sort(key=lambda c: (-c.zipf, c.word))
                out.append((spec, phrase, tuple(hits)))
    return out


def _collision_warnings(rules: RuleSet) -> list[Problem]:
    warnings = []
    for spec, phrase, hits in collisions(rules):
        words = ", ".join(hit.describe() for hit in hits[:SHOWN_COLLISIONS])
        more = len(hits) - SHOWN_COLLISIONS
        if more > 0:
            words += f" and {more} more"
        warnings.append(
            _problem(
                spec,
                f"phrase {phrase!r} also matches ordinary words after folding: {words}; "
                "list them in examples.match to accept, or narrow the rule",
            )
        )
    return warnings


def check_rules(paths: Sequence[str | Path] | Iterable[str | Path]) -> CheckReport:
    """Read, compile and examine rule files; never raises `RuleError` (it becomes `errors`)."""
    from intercept.rules.rulefile import read_rules

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
    warnings = (*expired, *_warnings(rules), *_collision_warnings(rules))
    return CheckReport(len(specs), files, count, tuple(errors), warnings)
