"""Matching semantics: every evasion class must match, every false-positive trap must not."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intercept.rules.ruleset import RuleSet
from intercept.rules.rulespec import Action
from tests.conftest import MakeRules, spec


@pytest.fixture
def rules(make_rules: MakeRules) -> RuleSet:
    return make_rules(
        spec("CAT", "cat"),
        spec("BIGCAT", "big cat", action="warn"),
        spec("GOD", "god"),
        spec("BOOK", "book", action="shadow"),
        spec("PICK", "pick", unless=("guitar pick",)),
        spec("LICK", "lick"),
        spec("TEA", all_of=(("teapot",), ("green", "blue"))),
        spec("KITE", "kite", match="prefix"),
        spec("OWL", "owl", match="substring"),
        spec("KOT", "кот", language="ru"),
        spec("GREEK", "γάτα", language="el"),
        spec("DE", "straße", language="de"),
        spec("TR", "kırmızı", language="tr"),
        spec("PL", "żółw", language="pl"),
        spec("FI", "jäätelö", language="fi"),
        spec("ES", "niño", language="es"),
    )


EVASIONS = {
    "case": ["CAT", "Cat", "cAt"],
    "fullwidth": ["ｃａｔ", "ＣＡＴ"],
    "math alphanumerics": ["𝐜𝐚𝐭", "𝓬𝓪𝓽", "𝕔𝕒𝕥", "𝖈𝖆𝖙"],
    "enclosed": ["ⓒⓐⓣ", "🅒🅐🅣", "🄲🄰🅃"],
    "diacritics": ["çàt", "ca\u0301t", "c\u0327a\u0308t"],
    "lookalikes": ["сat", "cаt", "саt", "сат", "ϲat"],
    "invisible": [
        "c\u200bat",
        "ca\u00adt",
        "c\u2060a\u200dt",
        "\ufeffcat",
        "c\u202eat",
        "ca\ufe0ft",
    ],
    "leetspeak": ["c@t", "c4t", "c@7", "c47"],
    "spelled out": ["c a t", "c.a.t", "c-a-t", "c_a_t", "c*a*t", "c / a / t", "c  a  t"],
    "stretched": ["caaaat", "ccaatt", "caaaaaaat", "cccat"],
    "combined": ["c 4 t", "с.@.т", "ｃ\u200bａ\u200bｔ", "c@@@t", "C\u0301 A T"],
    "in a query": ["where is my cat", "cat pictures", "the c-a-t sat"],
}


@pytest.mark.parametrize(
    "query", [pytest.param(q, id=f"{cls}:{q!r}") for cls, qs in EVASIONS.items() for q in qs]
)
def test_evasion_matches(rules: RuleSet, query: str) -> None:
    match = rules.match(query)
    assert match is not None
    assert match.rule_id == "CAT"


@pytest.mark.parametrize(
    "query",
    [
        # Scunthorpe: a word rule never matches inside a longer word
        "catalog",
        "scatter",
        "education",
        "concatenate",
        "bobcat",
        "cats",
        # joining ordinary neighbouring words must not create a match
        "pic at",
        "epic attack",
        "c at",
        # stretching adds letters, it never makes a different word
        "good",
        "bok",
    ],
)
def test_false_positive_traps(rules: RuleSet, query: str) -> None:
    match = rules.match(query)
    assert match is None or match.rule_id not in {"CAT", "GOD", "BOOK"}, match


@pytest.mark.parametrize(
    ("query", "rule_id"),
    [
        ("big cat", "CAT"),  # both match; block beats warn
        ("bigcat", "BIGCAT"),
        ("big-cat", "CAT"),
        ("b i g c a t", "BIGCAT"),
        ("god", "GOD"),
        ("goood", "GOD"),
        ("ggoodd", "GOD"),
        ("book", "BOOK"),
        ("boooook", "BOOK"),
        ("p1ck", "PICK"),  # 1 read as i
        ("1ick", "LICK"),  # 1 read as l
        ("|ick", "LICK"),
        ("pick a guitar", "PICK"),
        ("blue teapot", "TEA"),
        ("teapot in green", "TEA"),
        ("kites", "KITE"),
        ("kiting", None),
        ("skite", None),
        ("howl", "OWL"),
        ("bowling", "OWL"),
    ],
)
def test_decisions(rules: RuleSet, query: str, rule_id: str | None) -> None:
    match = rules.match(query)
    assert (match.rule_id if match else None) == rule_id


def test_word_order_matters(rules: RuleSet) -> None:
    assert "BIGCAT" not in {m.rule_id for m in rules.match_all("cat big")}


@pytest.mark.parametrize(
    "query", ["guitar pick", "a guitar-pick", "GUITAR P1CK", "teapot", "green tea", "blue"]
)
def test_unless_and_all_of(rules: RuleSet, query: str) -> None:
    match = rules.match(query)
    assert match is None or match.rule_id not in {"PICK", "TEA"}


@pytest.mark.parametrize(
    ("query", "rule_id"),
    [
        ("кот", "KOT"),
        ("КОТ", "KOT"),
        ("kот", "KOT"),  # Latin k inside the Cyrillic word
        ("к о т", "KOT"),
        ("γάτα", "GREEK"),
        ("ΓΑΤΑ", "GREEK"),
        ("γατα", "GREEK"),
        ("STRASSE", "DE"),
        ("strasse", "DE"),
        ("Straße", "DE"),
        ("KIRMIZI", "TR"),
        ("kirmizi", "TR"),
        ("ŻÓŁW", "PL"),
        ("zolw", "PL"),
        ("JÄÄTELÖ", "FI"),
        ("jaatelo", "FI"),
        ("NIÑO", "ES"),
        ("nino", "ES"),
    ],
)
def test_rules_in_other_scripts(rules: RuleSet, query: str, rule_id: str) -> None:
    match = rules.match(query)
    assert match is not None
    assert match.rule_id == rule_id


def test_match_carries_rule_fields(rules: RuleSet) -> None:
    match = rules.match("кот")
    assert match is not None
    assert (match.category, match.action, match.language) == ("demo", Action.BLOCK, "ru")
    assert match.action == "block"


def test_ties_break_by_lowest_id(make_rules: MakeRules) -> None:
    rules = make_rules(spec("B-2", "kite"), spec("A-9", "kite"), spec("C-1", "kite", action="warn"))
    match = rules.match("kite")
    assert match is not None
    assert match.rule_id == "A-9"
    assert [m.rule_id for m in rules.match_all("kite")] == ["A-9", "B-2", "C-1"]


def test_most_severe_action_wins(make_rules: MakeRules) -> None:
    rules = make_rules(spec("A", "kite", action="shadow"), spec("B", "kite", action="warn"))
    match = rules.match("kite")
    assert match is not None
    assert match.rule_id == "B"


def test_explain_reports_stages_hits_and_suppression(rules: RuleSet) -> None:
    report = rules.explain("Guitar P1CK for my c.a.t")
    assert report.decision is not None
    assert report.decision.rule_id == "CAT"
    assert "PICK" in report.suppressed
    roles = {(h.rule_id, h.role) for h in report.hits}
    assert {("CAT", "term"), ("PICK", "term"), ("PICK", "unless")} <= roles
    cat = next(h for h in report.hits if h.rule_id == "CAT")
    reading = report.normalized.alternatives[cat.reading].strip()
    assert reading[cat.start : cat.end] == cat.text == "cat"


def test_explain_spans_cover_stretched_text(rules: RuleSet) -> None:
    report = rules.explain("my caaaat")
    hit = next(h for h in report.hits if h.rule_id == "CAT")
    assert hit.text == "caaaat"


@given(st.text())
def test_match_never_raises(text: str) -> None:
    RULES.match(text)
    RULES.explain(text)


RULES = __import__("intercept").compile_rules(
    [
        spec("A", "cat"),
        spec("B", "big cat", match="prefix"),
        spec("C", "owl", match="substring"),
        spec("D", "tea", unless=("tea party",)),
        spec("E", all_of=(("pot",), ("zoo", "owl"))),
        spec("F", "moon"),  # a doubled letter: "mon" holds its key, and must not match
    ]
)


def _slow_match(rules: RuleSet, text: str) -> str | None:
    """The decisive rule by the general path (`match_all`), which has no plain-text shortcut."""
    found = rules.match_all(text)
    return found[0].rule_id if found else None


@pytest.mark.parametrize(
    "text",
    ["garden chairs", "big cat", "bigcat toys", "the owls nest", "a cat", "c a t", "caat",
     "Big Cats", "howl", "cat!", "ca7", "", "   ", "café", "scatter plot", "big catalogue",
     "tea", "tea party", "pot zoo", "zoo pot cat", "pot", "moon", "mon", "mon cat"],
)  # fmt: skip
def test_the_plain_text_shortcut_decides_as_the_general_path(text: str) -> None:
    found = RULES.match(text)
    assert (found.rule_id if found else None) == _slow_match(RULES, text)


@given(st.lists(st.sampled_from(
    ["cat", "big", "owl", "tea", "pot", "zoo", "caat", "a", "x1", "party", "moon", "mon"]
)))  # fmt: skip
def test_the_shortcut_agrees_on_any_sequence_of_words(words: list[str]) -> None:
    text = " ".join(words)
    found = RULES.match(text)
    assert (found.rule_id if found else None) == _slow_match(RULES, text)


def test_huge_and_hostile_queries(rules: RuleSet) -> None:
    assert rules.match("x" * 1_000_000) is None
    assert rules.match("\x00\ud800\udfff" * 1000 + " cat") is not None
    assert rules.match("hello " * 170_000 + "c a t") is not None


def test_euro_sign_reads_as_e(make_rules: MakeRules) -> None:
    rules = make_rules(spec("T", "teapot"))
    match = rules.match("t€apot")
    assert match is not None


def test_overlong_normalized_phrase_is_a_located_error_without_content() -> None:
    from intercept.errors import RuleError
    from intercept.rules.ruleset import compile_rules

    secret = "\ufdfa" * 300  # one character that normalizes to eighteen letters
    bad = spec("LONG", secret)
    with pytest.raises(RuleError) as error:
        compile_rules([bad])
    assert [p.message for p in error.value.problems] == [
        "a phrase is longer than 4095 characters once normalized"
    ]
    assert "\ufdfa" not in str(error.value)
    assert "\u0635" not in str(error.value)


@pytest.mark.parametrize(
    ("query", "rule_id"),
    [
        # more than three kinds of symbol: the natural reading still applies
        ("c@t! $5 (cheap)", "CAT"),
        # words written only in leet symbols are words
        ("(@+", "CAT"),
        # a spelled-out run may start or end with a word of its own
        ("show me a c a t", "CAT"),
        ("i saw a c.a.t", "CAT"),
        # ambiguous digits late in a long query still get every reading
        ("a1 b1 c1 d1 e1 1ick", "LICK"),
        ("a1 " + "x" * 1100 + " 1ick", "LICK"),
    ],
)
def test_reviewed_evasions(rules: RuleSet, query: str, rule_id: str) -> None:
    assert rule_id in {m.rule_id for m in rules.match_all(query)}


@pytest.mark.parametrize(
    ("phrase", "query"),
    [("pic$", "pic"), ("$ale", "ginger ale"), ("c@t", "ct"), ("c@t", "c t")],
)
def test_symbols_in_rule_phrases_are_letters(
    make_rules: MakeRules, phrase: str, query: str
) -> None:
    assert make_rules(spec("R", phrase)).match(query) is None


def test_symbols_in_rule_phrases_still_match_their_disguises(make_rules: MakeRules) -> None:
    rules = make_rules(spec("R", "$ale"), spec("P", "(teapot)"))
    assert rules.match("$ALE") is not None
    assert rules.match("sale") is not None
    assert rules.match("teapot") is not None


@pytest.mark.parametrize(
    ("phrase", "queries"),
    [
        ("catch 22", ["catch22", "catch 22", "catch-22"]),
        ("cat 5", ["cat5", "cat 5"]),
        ("ki1l", ["kill", "kiil"]),  # forms of one phrase sharing one lookup key
        ("1i1", ["lii", "iil", "lil", "iii"]),
    ],
)
def test_every_form_of_a_phrase_matches(
    make_rules: MakeRules, phrase: str, queries: list[str]
) -> None:
    rules = make_rules(spec("R", phrase))
    for query in queries:
        assert rules.match(query) is not None, query


def test_unless_follows_the_rules_match_mode(make_rules: MakeRules) -> None:
    rules = make_rules(spec("P", "pick", match="prefix", unless=("guitar pick",)))
    assert rules.match("picks") is not None
    assert rules.match("guitar picks") is None


@pytest.mark.parametrize(
    "make_query",
    [
        lambda n: " ".join(["aa cat"] * n),
        lambda n: "aabbcc" * n,
        lambda n: "cat " * n,
    ],
)
def test_long_queries_stay_linear(make_rules: MakeRules, make_query: Any) -> None:
    rules = make_rules(spec("C", "cat"), spec("S", "abc", match="substring"))
    query = make_query(16_000)
    started = time.perf_counter()
    rules.match(query)
    rules.explain(query)
    # a generous bound that only a quadratic blowup breaks (it took minutes before the fix)
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("phrase", "match", "same", "different"),
    [
        ("काला", "word", ["काला कुत्ता", "काला"], ["कल", "किला"]),
        ("ปู่", "substring", ["ปู่ย่า"], ["ปู", "ป"]),
        ("かぎ", "substring", ["かぎをなくした", "かき\u3099"], ["かき"]),
    ],
)
def test_scripts_whose_marks_are_letters(
    make_rules: MakeRules, phrase: str, match: str, same: list[str], different: list[str]
) -> None:
    rules = make_rules(spec("R", phrase, match=match))
    for query in same:
        assert rules.match(query) is not None, query
    for query in different:
        assert rules.match(query) is None, query
