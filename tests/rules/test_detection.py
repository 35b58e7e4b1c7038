"""Detection targets over the generated corpus (see `tests/detection_corpus.py`):
recall >= 99% in every evasion class, zero false positives on dictionary queries and traps,
and on 258,000 frequent words of 14 languages (wordfreq) apart from the diacritic
collisions curators are told about; then each new class by example. About 25 s."""

from __future__ import annotations

import pytest

from intercept.rules import lexicon, masks
from intercept.rules.fold import fold
from intercept.rules.ruleset import compile_rules
from intercept.rules.rulespec import Action, RuleSpec
from tests import detection_corpus

pytestmark = pytest.mark.skipif(
    not detection_corpus.WORDLIST.exists(),
    reason=f"{detection_corpus.WORDLIST} missing (Debian package wamerican; .ci/run installs it)",
)


@pytest.fixture(scope="module")
def result() -> detection_corpus.Result:
    return detection_corpus.evaluate(detection_corpus.build())


def test_corpus_is_large_enough() -> None:
    corpus = detection_corpus.build()
    assert len(corpus.rules) >= 1000
    assert sum(len(rows) for rows in corpus.variants.values()) >= 5000
    assert len(corpus.benign) >= 20_000
    assert len(corpus.scunthorpe) >= 1000
    assert len(corpus.joined_traps) >= 500


@pytest.mark.parametrize("name", list(detection_corpus.CLASSES))
def test_recall_per_evasion_class(result: detection_corpus.Result, name: str) -> None:
    found, total = result.recall[name]
    assert found / total >= 0.99, f"{name}: {found}/{total}"


@pytest.mark.parametrize("name", ["dictionary queries", "Scunthorpe traps", "joined-word traps"])
def test_no_false_positives(result: detection_corpus.Result, name: str) -> None:
    assert result.false_positives[name] == []


@pytest.mark.parametrize(("name", "share"), [
    ("one letter doubled", 0.05), ("two or three letters doubled", 0.03),
    ("one letter masked (* # ? _ . -)", 0.2), ("two letters masked", 0.1),
])  # fmt: skip
def test_few_disguises_read_as_another_word(
    result: detection_corpus.Result, name: str, share: float
) -> None:
    """Generated disguises left out of recall because they spell, or a mask fits, another
    ordinary word ("willing" for "wiling", "t*mper"): what the lexicon costs in recall."""
    _, total = result.recall[name]
    left = result.excused[name]
    assert 0 < left / (left + total) <= share, (name, left, total)


@pytest.fixture(scope="module")
def frequent() -> detection_corpus.Frequent:
    pytest.importorskip("wordfreq", reason="the test extra wordfreq==3.1.1 is not installed")
    corpus = detection_corpus.build()
    phrases = {rule.terms[0] for rule in corpus.rules}
    return detection_corpus.frequent_words(compile_rules(corpus.rules), phrases)


def test_frequent_words_of_14_languages_are_never_matched(
    frequent: detection_corpus.Frequent,
) -> None:
    assert frequent.words >= 250_000
    assert frequent.languages >= 12
    assert frequent.false_positives == []


def test_every_diacritic_collision_is_one_curators_are_told_about(
    frequent: detection_corpus.Frequent,
) -> None:
    """ "für" matching a rule "fur" is the price of folding diacritics: each such word of the
    frequent set is listed for the rule's word in `lexicon.collisions()`, which `intercept
    check` reports."""
    assert 10 <= len(frequent.collisions) <= 200
    listed = lexicon.collisions()
    for word, language, _rule in frequent.collisions:
        folded = fold(word)
        assert any(c.word == word and c.language == language for c in listed[folded]), word


RULES = compile_rules([
    RuleSpec(f"R{i}", "demo", Action.BLOCK, "en", terms=(term,))
    for i, term in enumerate(["cradle", "treasure", "password", "god", "glimmerfrond",
                              "big lantern", "border", "small", "love", "honey", "ημερα"])
])  # fmt: skip


@pytest.mark.parametrize(("query", "rule"), [
    ("craadle", "R0"), ("treeasuure", "R1"), ("borrder", "R6"), ("good", None), ("goods", None),
    ("tr*asure", "R1"), ("tr#asure map", "R1"), ("cr*dl3", "R0"), ("p*ssw*rd", "R2"),
    ("glimm?rfrond", "R4"), ("big lant*rn", "R5"), ("*treasure*", "R1"), ("tr**sure", None),
    ("c*t", None), ("b*rder", None), ("well-known", None), ("e-mail", None),
    ("covid-19", None), ("smaIl", "R7"), ("Iove", "R8"), ("Ireland", None), ("ILL", None),
    ("ΗΟΝΕΥ", "R9"), ("smaΙl", "R7"), ("ΗΜΕΡΑ", "R10"),
])  # fmt: skip
def test_each_new_class_by_example(query: str, rule: str | None) -> None:
    """Doubled letters read as stretching unless the word is an ordinary one ("good" is not
    "god"); masks filled only when one word fits ("b*rder": border and byrder, a Danish word,
    both fit); a capital I inside or starting a word may be an l, and so may a Greek capital
    iota; Greek capitals also read as the Latin letters they look like ("ΗΟΝΕΥ"), while a
    Greek word in capitals still matches its Greek rule."""
    found = RULES.match(query)
    assert (found.rule_id if found else None) == rule


def test_greek_capitals_read_both_ways_in_one_query() -> None:
    assert {m.rule_id for m in RULES.match_all("ΗΟΝΕΥ ΗΜΕΡΑ")} == {"R9", "R10"}


def test_masked_words_read_per_query_are_bounded() -> None:
    """A query made of masks costs at most `MAX_MASKED` masked chunks: the fifth is not read."""
    padding = " ".join(["zq*xzqx"] * masks.MAX_MASKED)
    assert RULES.match("tr*asure") is not None
    assert RULES.match(f"{padding} tr*asure") is None
    assert RULES.match(f"tr*asure {padding}") is not None
