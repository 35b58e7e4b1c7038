"""What the plaintext and the sealed matcher do alike with a key found in a reading.

`intercept.rules.ruleset.RuleSet` finds keys with an Aho-Corasick automaton,
`intercept.rules.sealedset.SealedRuleSet` by keyed hashes of runs of words; from there on both
take the same steps, kept here so that they cannot drift apart (`tests/rules/test_seal.py`
compares their decisions query by query):

- `verify`: the query's run lengths against the phrase's (stretching may add letters, never
  remove them);
- `record`: the rule noted under the phrase's role (a term, an `unless` phrase, a phrase of
  `all_of` group N), for the decision;
- `hit`: for `explain`, where the phrase stands in the reading as written.

A role is an int: `ROLE_TERM`, `ROLE_UNLESS`, or 2 + N for `all_of` group N.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from intercept.rules import lexicon
from intercept.rules.normalize import runs
from intercept.rules.rulespec import MatchMode, RuleSpec

__all__ = [
    "ROLE_TERM",
    "ROLE_UNLESS",
    "Found",
    "Hit",
    "hit",
    "phrases_of",
    "reading_offsets",
    "record",
    "role_field",
    "verify",
]

ROLE_TERM = 0
ROLE_UNLESS = 1

Found = tuple[set[int], set[int], dict[int, set[int]]]
"""What a scan found: rules with a term, rules with an `unless` phrase, and per rule the
`all_of` roles found (by rule index in the set)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One phrase found in one reading of a query (for `explain`)."""

    rule_id: str
    role: str  # "term", "unless" or "all_of[N]"
    phrase: str
    reading: int
    start: int
    end: int
    text: str


def record(found: Found, rule: int, role: int) -> None:
    """Note that a phrase of `rule` in `role` was found (and verified)."""
    terms, unless, groups = found
    if role == ROLE_TERM:
        terms.add(rule)
    elif role == ROLE_UNLESS:
        unless.add(rule)
    else:
        groups.setdefault(rule, set()).add(role)


def role_field(role: int) -> str:
    """The rule field that holds a phrase of `role`: "terms", "unless" or "all_of[N]"."""
    if role == ROLE_TERM:
        return "terms"
    return "unless" if role == ROLE_UNLESS else f"all_of[{role - 2}]"


def phrases_of(spec: RuleSpec, role: int) -> tuple[str, ...]:
    """The phrases of `spec` in `role`."""
    if role == ROLE_TERM:
        return spec.terms
    return spec.unless if role == ROLE_UNLESS else spec.all_of[role - 2]


def reading_offsets(reading: str) -> list[int]:
    """Where each position of the collapsed `reading` starts in `reading` itself, and its end."""
    return list(itertools.accumulate((n for _, n in runs(reading)), initial=0))


def hit(
    rule_id: str,
    role: int,
    phrase: str,
    index: int,
    reading: str,
    offsets: list[int],
    start: int,
    end: int,
) -> Hit:
    """The `Hit` of a key found at collapsed positions `start` to `end` of reading number
    `index` (`offsets`: `reading_offsets(reading)`); `phrase` as `explain` shows it. The
    span leaves out the key's padding spaces and counts from the reading's first word."""
    lo, hi = offsets[start], offsets[end + 1]
    text = reading[lo:hi]
    lo, hi = lo + len(text) - len(text.lstrip(" ")), lo + len(text.rstrip(" "))
    name = "term" if role == ROLE_TERM else role_field(role)
    # offsets count from the start of the reading without its leading pad space
    return Hit(rule_id, name, phrase, index, lo - 1, hi - 1, reading[lo:hi])


def verify(
    shapes: Iterable[tuple[int, ...]],
    mode: MatchMode,
    doubles: dict[int, int],
    text: str,
    start: int,
    doubled_words: dict[int, bool],
) -> bool:
    """Whether the run lengths of a hit at `start` in the collapsed `text` fit one of the
    phrase's `shapes` (its forms' run lengths).

    `doubles` are the query's runs longer than one by collapsed index. Stretching may lengthen
    a run, never shorten it; a run of two counts as stretching when every letter of that word
    is doubled ("ccaatt"), or when the word as written is no ordinary word
    (`intercept.rules.lexicon`): "craadle" is "cradle" stretched, "good" is not "god".
    `doubled_words` remembers that answer per word, keeping a long query linear.
    """
    for counts in shapes:
        last = len(counts) - 1
        for i, rule_count in enumerate(counts):
            count = doubles.get(start + i, 1)
            if count == rule_count:
                continue
            if count < rule_count:
                break  # a run shorter than the phrase's: not this shape
            open_start = i == 0 and mode is MatchMode.SUBSTRING
            open_end = i == last and mode is not MatchMode.WORD
            if open_start or open_end or count >= 3:
                continue
            if not _stretched_word(doubles, text, start + i, doubled_words):
                break
        else:
            return True  # every run fits
    return False


def _stretched_word(doubles: dict[int, int], text: str, index: int, memo: dict[int, bool]) -> bool:
    """Whether the word around collapsed index `index` may be a stretched one: every letter
    written twice, or, as written, no ordinary word."""
    lo = text.rfind(" ", 0, index) + 1
    if lo not in memo:
        hi = text.find(" ", index)
        hi = hi if hi >= 0 else len(text)
        if all(doubles.get(i, 1) >= 2 for i in range(lo, hi)):
            memo[lo] = True
        else:
            written = "".join(text[i] * doubles.get(i, 1) for i in range(lo, hi))
            memo[lo] = not lexicon.is_word(written)
    return memo[lo]
