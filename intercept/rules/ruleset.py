"""The compiled, immutable rule set: one Aho-Corasick automaton over every normalized phrase.

Compilation turns each phrase into lookup keys: the phrase is normalized like a query, and for
a phrase of several words every way of joining neighbouring words is a key too, so "big cat"
also finds "bigcat". `word` keys carry a space at both ends, `prefix` keys at the start only,
`substring` keys none; since normalized queries are padded and separated by single spaces, an
automaton hit on a `word` key already sits on word boundaries. A hit is then verified against
the run lengths of the query (stretching may add letters, never remove them, and a run of two
counts as stretching only when the whole word is doubled), which is cheap and rare; those
steps, shared with the sealed sets, are `intercept.rules.matching`.

Decisions: a rule matches when one of its `terms` is found, or a phrase from every `all_of`
group is found, and none of its `unless` phrases is found anywhere (`unless` phrases use the
rule's match mode, so "guitar pick" also guards "guitar picks" for a prefix rule). When several
rules match, the most severe action wins (block > warn > shadow), then the lowest id.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import ahocorasick

from intercept.errors import Problem, RuleError
from intercept.rules import lexicon
from intercept.rules.masks import has_mask, masked_text
from intercept.rules.matching import (
    ROLE_TERM,
    ROLE_UNLESS,
    Found,
    Hit,
    hit,
    phrases_of,
    reading_offsets,
    record,
    verify,
)
from intercept.rules.normalize import (
    Normalized,
    alternatives,
    collapse,
    doubled_runs,
    edge_alternatives,
    normalize,
    plain_reading,
    readings_for_matching,
    runs,
    shape_text,
)
from intercept.rules.rulespec import Action, ListInfo, MatchMode, RuleSpec

__all__ = [
    "CompiledKey",
    "Explanation",
    "Hit",
    "Match",
    "RuleSet",
    "compile_rules",
    "compiled_keys",
    "decide",
]

_MAX_JOINED_WORDS = 6
_DIGIT = re.compile(r"[0-9]")


@dataclass(frozen=True, slots=True)
class Match:
    """The decisive rule for a query."""

    rule_id: str
    category: str
    action: Action
    language: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """What `RuleSet.explain` reports: the stages, every hit, the rules that matched."""

    normalized: Normalized
    hits: tuple[Hit, ...]
    matched: tuple[Match, ...]
    suppressed: tuple[str, ...]
    decision: Match | None


# A lookup key's meaning is packed into one int, to keep 100,000 rules small in memory:
# bits 0-11 key length, 12-13 match mode, 14-21 role (0 term, 1 unless, 2+N all_of group N),
# 22-33 the phrase's index in its list, 34 "has repeated letters", 35 and up the rule's index.
_MODES = (MatchMode.WORD, MatchMode.PREFIX, MatchMode.SUBSTRING)
_MODE_CODE = {mode: code for code, mode in enumerate(_MODES)}
_MAX_KEY = (1 << 12) - 1
_MAX_PHRASES = 1 << 12
_MAX_GROUPS = (1 << 8) - 2


def _pack(rule: int, role: int, phrase: int, mode: MatchMode, length: int, counted: bool) -> int:
    return (
        length
        | _MODE_CODE[mode] << 12
        | role << 14
        | phrase << 22
        | int(counted) << 34
        | rule << 35
    )


def _phrase_forms(phrase: str, mode: MatchMode) -> set[str]:
    """Every uncollapsed padded form of `phrase` that the automaton should look for: each
    reading, and each way of joining its neighbouring words (a joined form holding a digit is
    normalized again, since "catch22" reads its digits as leetspeak where "catch 22" does not)."""
    forms: set[str] = set()
    for reading in alternatives(phrase, rule=True):
        words = reading.split()
        if not words:
            continue
        gaps = len(words) - 1
        if gaps <= _MAX_JOINED_WORDS - 1:
            joins: Iterable[tuple[bool, ...]] = itertools.product((False, True), repeat=gaps)
        else:
            joins = ((False,) * gaps, (True,) * gaps)
        for join in joins:
            text = words[0]
            for word, joined in zip(words[1:], join, strict=True):
                text += word if joined else " " + word
            texts = alternatives(text, rule=True) if any(join) and _DIGIT.search(text) else (text,)
            for each in texts:
                each = each.strip()
                if mode is MatchMode.WORD:
                    forms.add(f" {each} ")
                elif mode is MatchMode.PREFIX:
                    forms.add(f" {each}")
                else:
                    forms.add(each)
    return forms


@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """An immutable, compiled rule set. Build it with `intercept.load_rules`."""

    rules: tuple[RuleSpec, ...]
    lists: tuple[ListInfo, ...]
    version: str
    _automaton: ahocorasick.Automaton = field(repr=False)
    _single: array[int] = field(repr=False)  # a key's meaning, by the automaton's value
    _shared: tuple[tuple[int, ...], ...] = field(repr=False)  # keys with several meanings
    # run lengths of forms with a doubled letter, by (meaning, key): forms of one phrase may
    # share a meaning and differ in their runs ("kill" and "kiil" of the phrase "ki1l")
    _counts: dict[tuple[int, str], tuple[tuple[int, ...], ...]] = field(repr=False)
    _groups: tuple[int, ...] = field(repr=False)
    _rank: tuple[int, ...] = field(repr=False)  # decision order: severity, then id

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        names = ", ".join(info.name for info in self.lists) or "-"
        return f"<RuleSet {len(self.rules)} rules, lists {names}, version {self.version}>"

    def _meanings(self, value: int) -> tuple[int, ...]:
        return (self._single[value],) if value >= 0 else self._shared[-1 - value]

    def _scan(
        self, readings: Sequence[str], hits: list[Hit] | None = None, first_index: int = 0
    ) -> Found:
        found: Found = (set(), set(), {})
        if self._automaton.kind != ahocorasick.AHOCORASICK:
            return found  # no phrase at all (every rule disabled or expired)
        for reading_index, reading in enumerate(readings, first_index):
            collapsed = collapse(reading)
            doubles = doubled_runs(reading) if collapsed != reading else {}
            positions = list(doubles)  # increasing
            doubled_words: dict[int, bool] = {}
            offsets: list[int] | None = None
            for end, value in self._automaton.iter(collapsed):
                meanings = self._meanings(value)
                start = end - (meanings[0] & _MAX_KEY) + 1  # one key, one length
                first = bisect.bisect_left(positions, start)
                plain = first == len(positions) or positions[first] > end
                for entry in meanings:
                    counted = entry >> 34 & 1
                    if plain:
                        if counted:
                            continue  # the rule has a doubled letter that the query lacks
                    else:
                        shapes = (
                            self._counts[(entry, collapsed[start : end + 1])]
                            if counted
                            else ((1,) * (entry & _MAX_KEY),)
                        )
                        mode = _MODES[entry >> 12 & 3]
                        if not verify(shapes, mode, doubles, collapsed, start, doubled_words):
                            continue
                    record(found, entry >> 35, entry >> 14 & 0xFF)
                    if hits is not None:
                        if offsets is None:
                            offsets = reading_offsets(reading)
                        hits.append(self._hit(entry, reading_index, reading, offsets, start, end))
        return found

    def _hit(
        self, entry: int, index: int, reading: str, offsets: list[int], start: int, end: int
    ) -> Hit:
        spec = self.rules[entry >> 35]
        role, phrase = entry >> 14 & 0xFF, entry >> 22 & (_MAX_PHRASES - 1)
        text = phrases_of(spec, role)[phrase]
        return hit(spec.id, role, text, index, reading, offsets, start, end)

    def _decide(self, terms: set[int], unless: set[int], groups: dict[int, set[int]]) -> list[int]:
        if not terms and not groups:
            return []  # the usual case: nothing found
        matched = terms - unless if unless else terms
        for rule, found in groups.items():
            if rule not in unless and len(found) == self._groups[rule]:
                matched.add(rule)
        return sorted(matched, key=self._rank.__getitem__)

    def _match_of(self, index: int) -> Match:
        spec = self.rules[index]
        return Match(spec.id, spec.category, spec.action, spec.language)

    def _rule_word(self, word: str, before: tuple[str, ...]) -> bool:
        """Whether `word` (normalized, collapsed), alone or after the last one or two words
        of `before`, starts a key: a rule word a masked word may be filled with
        (`intercept.rules.masks`). The automaton answers it, no other table is kept."""
        automaton = self._automaton
        if automaton.kind != ahocorasick.AHOCORASICK:
            return False
        return any(
            automaton.match(f" {' '.join((*before[len(before) - count :], word))} ")
            for count in range(min(2, len(before)) + 1)
        )

    def _readings(self, text: str) -> tuple[tuple[str, ...], bool]:
        """The usual readings of `text`, then those of its letters read by their shape
        (`normalize.shape_text`) and of its masked words filled in (`intercept.rules.masks`), and
        whether edge readings may exist."""
        usual, has_edges = readings_for_matching(text)
        shaped = shape_text(text)  # "ΗΟΝΕΥ": Greek capitals read as the Latin they look like
        if shaped is not None:
            usual += tuple(r for r in alternatives(shaped) if r not in usual)
        if has_mask(text):
            for filled in masked_text(text, self._rule_word):
                usual += tuple(r for r in alternatives(filled) if r not in usual)
        return usual, has_edges

    def _matched(self, text: str) -> list[int]:
        usual, has_edges = self._readings(text)
        order = self._decide(*self._scan(usual))
        if not order and has_edges:  # rarer readings, only when the usual ones found nothing
            order = self._decide(*self._scan(edge_alternatives(text)))
        return order

    def match(self, text: str) -> Match | None:
        """The decisive match for `text`, or None. Never raises for any `str`."""
        reading = plain_reading(text)
        if reading is not None and self._automaton.kind == ahocorasick.AHOCORASICK:
            # most queries: one reading with nothing to verify; no key in it, no match
            for _ in self._automaton.iter(reading):
                break
            else:
                return None
            # a key in it: that one reading is all the general path would scan
            order = self._decide(*self._scan((reading,)))
        else:
            order = self._matched(text)
        return self._match_of(order[0]) if order else None

    def match_all(self, text: str) -> list[Match]:
        """Every matching rule for `text`, decisive first."""
        return [self._match_of(r) for r in self._matched(text)]

    def explain(self, text: str) -> Explanation:
        """Every stage of normalization, every phrase found, and the decision (the same as
        `match` gives: readings from `edge_alternatives` count only when the others find
        nothing)."""
        normalized = normalize(text)
        usual, _ = self._readings(text)  # masked words filled in, as `match` reads them
        if len(usual) > len(alternatives(text)):  # listed among the readings, before the
            edges = normalized.alternatives[len(alternatives(text)) :]  # edge ones
            normalized = dataclasses.replace(normalized, alternatives=(*usual, *edges))
        hits: list[Hit] = []
        terms, unless, groups = self._scan(usual, hits)
        order = self._decide(terms, unless, groups)
        found = terms | {rule for rule, g in groups.items() if len(g) == self._groups[rule]}
        suppressed = {self.rules[r].id for r in found & unless}
        if not order:
            rest = normalized.alternatives[len(usual) :]
            terms, unless, groups = self._scan(rest, hits, first_index=len(usual))
            order = self._decide(terms, unless, groups)
            found = terms | {rule for rule, g in groups.items() if len(g) == self._groups[rule]}
            suppressed |= {self.rules[r].id for r in found & unless}
        matched = tuple(self._match_of(r) for r in order)
        return Explanation(
            normalized,
            tuple(hits),
            matched,
            tuple(sorted(suppressed)),
            matched[0] if matched else None,
        )


def _version(rules: Sequence[RuleSpec]) -> str:
    digest = hashlib.sha256()
    for spec in rules:
        fields = (spec.id, spec.category, spec.action.value, spec.language, spec.match.value,
                  spec.terms, spec.all_of, spec.unless)  # fmt: skip
        digest.update(repr(fields).encode())
    return digest.hexdigest()[:16]


def compile_rules(
    rules: Sequence[RuleSpec], lists: Sequence[ListInfo] = (), *, today: str | None = None
) -> RuleSet:
    """Compile validated specs into a `RuleSet`. Rules with `status: disabled`, or whose
    `expires` day has come (`today`, UTC, by default the current day), are left out.

    Phrases that normalize to nothing are skipped (`intercept check` warns about them).
    Raises `RuleError` for the limits of the packed lookup table: a phrase over 4,095
    characters once normalized, over 4,096 phrases or 254 `all_of` groups in one rule. The
    message never quotes the phrase: keyword lists are confidential.
    """
    day = today or datetime.now(UTC).date().isoformat()
    rules = [spec for spec in rules if spec.active_on(day)]
    # The automaton stores 32-bit ints: an index into `single`, or -1-N for `shared[N]`.
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    single = array("q")
    shared: list[list[int]] = []
    counts: dict[tuple[int, str], tuple[tuple[int, ...], ...]] = {}

    problems: list[Problem] = []

    def add(rule: int, role: int, index: int, phrase: str, mode: MatchMode) -> None:
        spec = rules[rule]
        if index >= _MAX_PHRASES or role > _MAX_GROUPS + 1:
            message = f"more than {_MAX_PHRASES} phrases in a list or {_MAX_GROUPS} groups"
            problems.append(Problem(spec.file, spec.line, spec.id, message))
            return
        for form in _phrase_forms(phrase, mode):
            key = collapse(form)
            if len(key) > _MAX_KEY:
                message = f"a phrase is longer than {_MAX_KEY} characters once normalized"
                problems.append(Problem(spec.file, spec.line, spec.id, message))
                return
            entry = _pack(rule, role, index, mode, len(key), key != form)
            if key != form:
                shape = tuple(n for _, n in runs(form))
                known = counts.get((entry, key), ())
                if shape not in known:
                    counts[(entry, key)] = (*known, shape)
            old = automaton.get(key, None)
            if old is None:
                automaton.add_word(key, len(single))
                single.append(entry)
            elif old >= 0:
                if single[old] != entry:
                    shared.append([single[old], entry])
                    automaton.add_word(key, -len(shared))
            elif entry not in shared[-1 - old]:
                shared[-1 - old].append(entry)

    for rule, spec in enumerate(rules):
        for index, phrase in enumerate(spec.terms):
            add(rule, ROLE_TERM, index, phrase, spec.match)
        for group, phrases in enumerate(spec.all_of):
            for index, phrase in enumerate(phrases):
                add(rule, 2 + group, index, phrase, spec.match)
        for index, phrase in enumerate(spec.unless):
            add(rule, ROLE_UNLESS, index, phrase, spec.match)
    if problems:
        raise RuleError(problems)
    automaton.make_automaton()
    lexicon.preload()  # with the rules: forked workers share it, no query waits for it

    order = sorted(range(len(rules)), key=lambda r: (-rules[r].action.severity, rules[r].id))
    rank = [0] * len(rules)
    for position, index in enumerate(order):
        rank[index] = position
    return RuleSet(
        rules=tuple(rules),
        lists=tuple(lists),
        version=_version(rules),
        _automaton=automaton,
        _single=single,
        _shared=tuple(tuple(meanings) for meanings in shared),
        _counts=counts,
        _groups=tuple(len(spec.all_of) for spec in rules),
        _rank=tuple(rank),
    )


@dataclass(frozen=True, slots=True)
class CompiledKey:
    """One meaning of one lookup key of a compiled `RuleSet` (see `compiled_keys`)."""

    key: str  # collapsed and padded as the automaton holds it: " big cat "
    rule: int  # index in `RuleSet.rules`
    role: int  # 0 term, 1 unless, 2 + N all_of group N
    phrase: int  # index in the rule's `terms`, `unless` or `all_of[N]`
    mode: MatchMode
    shapes: tuple[tuple[int, ...], ...] | None  # run lengths to verify, None: all ones


def compiled_keys(rules: RuleSet) -> Iterator[CompiledKey]:
    """Every lookup key of `rules` with each of its meanings, in no particular order: what
    the automaton holds, for `intercept.rules.seal` to turn into keyed hashes."""
    for key, value in rules._automaton.items():
        for entry in rules._meanings(value):
            role = entry >> 14 & 0xFF
            counted = entry >> 34 & 1
            yield CompiledKey(
                key=key,
                rule=entry >> 35,
                role=role,
                phrase=entry >> 22 & (_MAX_PHRASES - 1),
                mode=_MODES[entry >> 12 & 3],
                shapes=rules._counts[(entry, key)] if counted else None,
            )


def decide(rules: RuleSet, texts: Iterable[str]) -> tuple[Match, str] | None:
    """The decisive match over all texts (most severe action, then lowest id) and its text."""
    best: tuple[Match, str] | None = None
    for text in texts:
        match = rules.match(text)
        if match is None:
            continue
        if best is None or (-match.action.severity, match.rule_id) < (
            -best[0].action.severity,
            best[0].rule_id,
        ):
            best = (match, text)
    return best
