"""Sealed bundles: keys, the file, refusals, and decisions equal to the plaintext rules.

The central claim is that a sealed set decides every query like the plaintext rules it was
sealed from. It is checked query by query on the demo rules, on a synthetic set that uses
every feature of `word` rules, on random text, and on the detection corpus
(`tests/detection_corpus.py`: dictionary words as rules, thousands of disguised and benign
queries).
"""

from __future__ import annotations

import json
import random
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

import intercept
from intercept.cli import KEY_FILE_ENV, main
from intercept.config import load_config
from intercept.core import Answer, Engine, Pass
from intercept.pages import load_pages
from intercept.rules.normalize import alternatives, collapse
from intercept.rules.rulefile import read_rules
from intercept.rules.ruleset import RuleSet, compile_rules
from intercept.rules.rulespec import ListInfo, RuleSpec
from intercept.rules.seal import (
    KEY_ENV,
    SealError,
    Unsealable,
    is_sealed_bundle,
    load_sealed,
    new_key_file,
    open_bundle,
    read_key_file,
    seal_rules,
)
from intercept.rules.sealedset import SealedRuleSet
from tests import detection_corpus
from tests.conftest import spec

ROOT = Path(__file__).parents[2]
RULES = ROOT / "rules"
SECRET = bytes(range(32))
LISTS = (ListInfo("trial", "synthetic", "2026-11-29"),)
TODAY = "2026-11-29"


def sealed_pair(
    specs: Sequence[RuleSpec],
    lists: Sequence[ListInfo] = LISTS,
    *,
    today: str = TODAY,
    secret: bytes = SECRET,
) -> tuple[RuleSet, SealedRuleSet, str]:
    """(the plaintext rule set, the sealed one, the bundle's text) for word rules `specs`."""
    result = seal_rules(specs, lists, secret, today=today, salt=bytes(16))
    plain = compile_rules(result.rules, lists, today=today)
    sealed = open_bundle(result.text.encode(), secret, today=today)
    return plain, sealed, result.text


def decision(rules: RuleSet, query: str) -> tuple[str, str] | None:
    match = rules.match(query)
    return None if match is None else (match.rule_id, match.action.value)


def assert_same_decisions(plain: RuleSet, sealed: RuleSet, queries: Iterable[str]) -> int:
    """Compare `match()` (rule id and action, or None) and every matching rule in order;
    returns the number of queries compared."""
    compared = 0
    mismatches = []
    for query in queries:
        compared += 1
        if decision(plain, query) != decision(sealed, query) or [
            m.rule_id for m in plain.match_all(query)
        ] != [m.rule_id for m in sealed.match_all(query)]:
            mismatches.append((query, decision(plain, query), decision(sealed, query)))
    assert mismatches == [], f"{len(mismatches)} of {compared} differ: {mismatches[:10]}"
    return compared


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.key"
    new_key_file(path)
    return path


# --- keys -------------------------------------------------------------------------------------


def test_new_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k"
    fingerprint = new_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", path.read_text())
    assert len(read_key_file(path)) == 32
    assert re.fullmatch(r"[0-9A-F]{32}", fingerprint)
    before = path.read_bytes()
    with pytest.raises(SealError, match="exists already"):
        new_key_file(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "size"),
    [
        (b"ab" * 32, 32),  # hex
        (b"  " + b"AB" * 40 + b"\n", 40),  # hex, either case, whitespace around it
        (bytes(range(200, 240)), 40),  # raw bytes
        (b"a long passphrase, not hex, 32 bytes", 36),  # raw text
    ],
)
def test_key_file_hex_or_raw(tmp_path: Path, content: bytes, size: int) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    assert len(read_key_file(path)) == size


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"ab" * 31, "holds 31 hex-encoded bytes of secret; at least 32"),
        (b"abc", "odd number of hex digits"),
        (bytes(range(100, 131)), "holds 31 bytes of secret; at least 32"),
        (b"", "holds 0 bytes"),
    ],
)
def test_short_keys_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    with pytest.raises(SealError, match=message) as error:
        read_key_file(path)
    assert "intercept seal --new-key" in str(error.value) or "odd" in str(error.value)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(SealError, match="cannot read key file"):
        read_key_file(tmp_path / "nope")


def test_cli_reads_the_same_environment_variable() -> None:
    assert KEY_FILE_ENV == KEY_ENV == "INTERCEPT_RULES_KEY_FILE"


# --- the bundle -------------------------------------------------------------------------------


def demo_specs() -> tuple[list[RuleSpec], list[ListInfo]]:
    return read_rules(RULES)


def test_round_trip_of_the_demo_rules(tmp_path: Path, key_file: Path) -> None:
    specs, lists = demo_specs()
    result = seal_rules(specs, lists, read_key_file(key_file), skip_unsealable=True)
    path = tmp_path / "demo.bundle"
    path.write_text(result.text, encoding="utf-8")
    assert is_sealed_bundle(path)
    assert not is_sealed_bundle(RULES / "demo.yaml")
    sealed = intercept.load_rules(path, key_file=key_file)
    assert isinstance(sealed, SealedRuleSet)
    assert isinstance(sealed, RuleSet)  # every front door takes it as it is
    plain = compile_rules(result.rules, lists)
    fields = [(s.id, s.category, s.action, s.language, s.match) for s in plain.rules]
    assert [(s.id, s.category, s.action, s.language, s.match) for s in sealed.rules] == fields
    assert len(sealed) == len(plain) == 9
    assert sealed.lists == tuple(lists)
    assert re.fullmatch(r"[0-9a-f]{16}", sealed.version)
    assert "DEMO-005" not in {s.id for s in sealed.rules}
    # the rules of a sealed set carry no phrases and no examples
    assert all(not (s.terms or s.all_of or s.unless) for s in sealed.rules)
    assert all(not (s.examples_match or s.examples_no_match) for s in sealed.rules)
    assert "SealedRuleSet 9 rules, lists demo" in repr(sealed)


def test_bundle_format(key_file: Path) -> None:
    specs, lists = demo_specs()
    text = seal_rules(specs, lists, read_key_file(key_file), skip_unsealable=True).text
    assert text.startswith('{\n "format": "intercept-sealed-bundle/1",\n')
    document = json.loads(text)
    assert list(document) == [
        "format", "about", "key_fingerprint", "salt", "lists", "rules", "prefixes", "keys", "mac",
    ]  # fmt: skip
    assert document["rules"][3] == {
        "id": "DEMO-004", "category": "demo", "action": "block", "language": "en",
        "match": "word", "all_of": 2, "list": "demo", "expires": None,
    }  # fmt: skip
    hexadecimal = re.compile(r"[0-9A-F]+")
    for value in (*document["prefixes"], *document["keys"], *document["keys"].values()):
        assert hexadecimal.fullmatch(value)
    assert document["prefixes"] == sorted(document["prefixes"])
    assert list(document["keys"]) == sorted(document["keys"])
    assert all(len(key) == 32 for key in document["keys"])
    assert all(len(value) % 32 == 0 for value in document["keys"].values())  # padded
    # one rule, prefix or key a line
    assert text.count("\n") > len(document["rules"]) + len(document["keys"])


def test_payload_sizes_do_not_tell_phrase_lengths() -> None:
    short, long = ["ox", "zoo", "x" * 60], ["quintessential unremarkable quartermaster"]
    twice = ["balloon", "bookkeeping tomorrow afternoon"]  # two or more doubled letters
    rules = [spec(f"L-{i}", phrase) for i, phrase in enumerate(short + long + twice)]
    document = json.loads(seal_rules(rules, LISTS, SECRET, today=TODAY).text)
    sizes = sorted(len(value) // 2 for value in document["keys"].values())
    # 16 bytes of entries and 16 of tag, whatever the phrase's length; 32 bytes of entries
    # for keys whose phrase has two or more runs of a doubled letter
    assert sizes == [32] * 7 + [48] * 5, sizes


def test_bundles_sealed_with_one_key_share_no_hashes(key_file: Path) -> None:
    specs, lists = demo_specs()
    secret = read_key_file(key_file)
    first = json.loads(seal_rules(specs, lists, secret, skip_unsealable=True).text)
    second = json.loads(seal_rules(specs, lists, secret, skip_unsealable=True).text)
    assert first["key_fingerprint"] == second["key_fingerprint"]
    assert not set(first["keys"]) & set(second["keys"])
    assert not set(first["prefixes"]) & set(second["prefixes"])


def phrase_forms(specs: Iterable[RuleSpec]) -> set[str]:
    """Every phrase and example of `specs`: as written, case-folded, each word, and every
    normalized form (collapsed, words joined)."""
    texts: set[str] = set()
    for s in specs:
        phrases = [*s.terms, *s.unless, *(p for g in s.all_of for p in g)]
        texts |= {*s.examples_match, *s.examples_no_match}
        for text in phrases:
            texts |= {text, text.casefold(), *text.split()}
        for phrase in phrases:
            for form in alternatives(phrase, rule=True):
                for each in (form.strip(), collapse(form).strip()):
                    texts |= {each, each.replace(" ", ""), *each.split()}
    return {t for t in texts if len(t.strip()) >= 3}


def assert_no_plaintext(text: str, specs: Iterable[RuleSpec]) -> int:
    """No phrase form stands in the bundle as a word of its own (field names hold short
    forms inside longer words: "cat" in "category"); returns the number of forms sought."""
    forms = phrase_forms(specs)
    found = sorted(form for form in forms if re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text))
    assert found == [], f"plaintext in the bundle: {found}"
    return len(forms)


def test_the_bundle_holds_no_plaintext_phrase(key_file: Path) -> None:
    specs, lists = demo_specs()
    result = seal_rules(specs, lists, read_key_file(key_file), skip_unsealable=True)
    sealed_ids = {s.id for s in result.rules}
    assert assert_no_plaintext(result.text, [s for s in specs if s.id in sealed_ids]) > 50
    rich = rich_rules()
    assert assert_no_plaintext(seal_rules(rich, LISTS, SECRET, today=TODAY).text, rich) > 100


@pytest.mark.skipif(not detection_corpus.WORDLIST.exists(), reason="wamerican missing")
def test_the_detection_bundle_holds_no_plaintext_term() -> None:
    rules = detection_corpus.build(variants_per_class=1, benign_count=1).rules
    text = seal_rules(rules, LISTS, SECRET, today=TODAY).text
    data = text.encode()
    terms = [t for r in rules for t in r.terms]
    assert [t for t in terms if t.encode() in data] == []
    words = {w for t in terms for w in t.split()}
    assert [w for w in words if w.encode() in data] == []


# --- refusals -------------------------------------------------------------------------------


def write_bundle(tmp_path: Path, key_file: Path) -> Path:
    specs, lists = demo_specs()
    path = tmp_path / "demo.bundle"
    path.write_text(
        seal_rules(specs, lists, read_key_file(key_file), skip_unsealable=True).text,
        encoding="utf-8",
    )
    return path


def test_wrong_key_is_refused(tmp_path: Path, key_file: Path) -> None:
    bundle = write_bundle(tmp_path, key_file)
    other = tmp_path / "other.key"
    new_key_file(other)
    with pytest.raises(SealError, match="bundle was sealed with a different key") as error:
        intercept.load_rules(bundle, key_file=other)
    assert isinstance(error.value, intercept.RuleError)


def test_no_key_is_refused(tmp_path: Path, key_file: Path) -> None:
    bundle = write_bundle(tmp_path, key_file)
    with pytest.raises(SealError, match="is a sealed bundle: give its key file"):
        intercept.load_rules(bundle)


def test_a_changed_bundle_is_refused(tmp_path: Path, key_file: Path) -> None:
    bundle = write_bundle(tmp_path, key_file)
    text = bundle.read_text(encoding="utf-8")
    changed = text.replace('"action": "block"', '"action": "shadow"', 1)
    assert changed != text
    with pytest.raises(SealError, match="changed after sealing"):
        open_bundle(changed.encode(), read_key_file(key_file))
    newer = text.replace("intercept-sealed-bundle/1", "intercept-sealed-bundle/2")
    (tmp_path / "newer.bundle").write_text(newer, encoding="utf-8")
    assert is_sealed_bundle(tmp_path / "newer.bundle")
    with pytest.raises(SealError, match="unsupported bundle format"):
        load_sealed(tmp_path / "newer.bundle", key_file)
    with pytest.raises(SealError, match="not JSON"):
        open_bundle(text[:200].encode(), read_key_file(key_file))


def test_a_bundle_is_loaded_on_its_own(tmp_path: Path, key_file: Path) -> None:
    bundle = write_bundle(tmp_path, key_file)
    with pytest.raises(SealError, match="loaded on its own"):
        intercept.load_rules([bundle, RULES], key_file=key_file)
    # plain rule files load as before, with or without a key file
    assert len(intercept.load_rules(RULES, key_file=key_file)) == 10
    assert len(intercept.load_rules([RULES / "demo.yaml"])) == 10


def test_unsealable_rules_are_named_and_refused() -> None:
    specs = [
        spec("W-1", "teapot"),
        spec("P-1", "kite", match="prefix"),
        spec("S-1", "owl", match="substring"),
    ]
    with pytest.raises(Unsealable) as error:
        seal_rules(specs, LISTS, SECRET)
    problems = error.value.problems
    assert [p.rule_id for p in problems] == ["P-1", "S-1"]
    assert "match 'prefix' cannot be sealed" in problems[0].message
    assert "match 'substring' cannot be sealed" in problems[1].message
    assert "kite" not in str(error.value)
    assert "owl" not in str(error.value)
    result = seal_rules(specs, LISTS, SECRET, skip_unsealable=True)
    assert [s.id for s in result.rules] == ["W-1"]
    assert [s.id for s, _ in result.unsealable] == ["P-1", "S-1"]
    with pytest.raises(SealError, match="no rule to seal"):
        seal_rules(specs[1:], LISTS, SECRET, skip_unsealable=True)


def test_disabled_and_expired_rules(key_file: Path) -> None:
    base = spec("E-1", "teapot")
    specs = [
        replace(base, expires="2026-12-01"),
        replace(base, id="E-2", expires="2026-11-01"),
        replace(base, id="E-3", status="disabled"),
        spec("E-4", "lantern"),
    ]
    result = seal_rules(specs, LISTS, SECRET, today=TODAY)
    assert [s.id for s in result.rules] == ["E-1", "E-4"]  # never sealed: expired, disabled
    assert [s.id for s in result.inactive] == ["E-2", "E-3"]
    data = result.text.encode()
    now = open_bundle(data, SECRET, today=TODAY)
    later = open_bundle(data, SECRET, today="2026-12-01")
    assert decision(now, "blue teapot") == ("E-1", "block")
    assert decision(later, "blue teapot") is None  # expired since sealing
    assert [s.id for s in later.rules] == ["E-4"]
    assert later.version != now.version
    plain_later = compile_rules(specs, LISTS, today="2026-12-01")
    assert_same_decisions(plain_later, later, ["blue teapot", "lantern", "teapot lantern"])


# --- decisions equal ----------------------------------------------------------------------------


def rich_rules() -> list[RuleSpec]:
    """Word rules using every feature the matcher has (everyday and made-up words only)."""
    return [
        spec("R-01", "cat"),
        spec("R-02", "big cat", action="warn"),
        spec("R-03", "god"),
        spec("R-04", "book", action="shadow"),
        spec("R-05", "pick", unless=("guitar pick", "toothpick holder")),
        spec("R-06", "lick"),
        spec("R-07", all_of=(("teapot",), ("green", "blue sky"))),
        spec("R-08", all_of=(("lantern",), ("midnight", "moonless"), ("old harbour",))),
        spec("R-09", "balloon", "coffee cup", "bookkeeper"),  # doubled letters
        spec("R-10", "ki1l", "1i1"),  # ambiguous leet in the phrase: forms sharing a key
        spec("R-11", "catch 22", "cat 5", "route 66 diner"),  # digits, joined or not
        spec("R-12", "$ale", "(teapot)", "c@t nap"),  # symbols in phrases
        spec("R-13", "one two three four five six seven eight"),  # beyond the join limit
        spec("R-14", "a b c"),  # single letters
        spec("R-15", "кот", "синий чайник", language="ru"),
        spec("R-16", "γάτα", language="el"),
        spec("R-17", "straße", "blaue straße", language="de"),
        spec("R-18", "काला", "काला कुत्ता", language="hi"),
        spec("R-19", "zebra quilt", action="warn"),
        spec("R-20", "zebra quilt", action="warn"),  # a tie: the lowest id decides
        spec("R-21", "zebra", action="shadow", unless=("zebra crossing",)),
        spec("R-22", "velvet moth", "velvetmoth", action="shadow", category="trial"),
        spec("R-23", "aa", "zzz", "good night"),
        spec("R-24", all_of=(("kite",), ("kite string",)), unless=("kite shop",)),
        spec("R-25", "ice cream", "icecream van"),
    ]


CONTEXT = [
    "please", "where", "buy", "cheap", "the", "my", "pics", "a", "i", "x", "new", "old", "of",
    "in", "green", "blue", "sky", "night", "string", "shop", "crossing", "holder", "museum",
]  # fmt: skip
TRAPS = [
    "catalog", "scatter", "bobcat", "cats", "pic at", "epic attack", "c at", "good", "bok",
    "guitar pick", "a guitar-pick", "GUITAR P1CK", "green tea", "teapot", "ballon", "baloon",
    "coffe cup", "bokeeper", "kil", "catch", "22", "route 6 diner", "sale", "ale", "ct", "c t",
    "one two three four five six seven", "onetwo three four five six seven eight", "ab c",
    "кошка", "синий", "straß", "कल", "किला", "zebra crossing", "zebra crossing zebra quilt",
    "velvet", "moth", "a", "zz", "good knight", "kite shop kite string", "ice", "cream",
    "toothpick holder pick", "lantern midnight", "lantern midnight old harbour",
    "", " ", "!!!", "$100", "c@t", "(@+", "show me a c a t", "i saw a c.a.t", "a1 b1 c1 1ick",
]  # fmt: skip


def rich_queries(rules: Sequence[RuleSpec], count: int, seed: int = 7) -> list[str]:
    """Every phrase disguised by each evasion class of the detection corpus, in context."""
    rnd = random.Random(seed)
    phrases = [p for r in rules for p in (*r.terms, *r.unless, *(q for g in r.all_of for q in g))]
    queries = list(TRAPS)
    classes = list(detection_corpus.CLASSES.values())
    while len(queries) < count:
        picked = [rnd.choice(phrases) for _ in range(rnd.choice((1, 1, 2, 3)))]
        parts = [rnd.choice(classes)(rnd, p) if rnd.random() < 0.8 else p for p in picked]
        parts += rnd.sample(CONTEXT, rnd.randint(0, 3))
        rnd.shuffle(parts)
        queries.append(rnd.choice((" ", " ", "-", "  ", ", ")).join(parts))
    return queries


def test_decisions_equal_on_the_demo_rules(key_file: Path) -> None:
    specs, lists = demo_specs()
    result = seal_rules(specs, lists, read_key_file(key_file), skip_unsealable=True)
    plain = compile_rules(result.rules, lists)
    sealed = open_bundle(result.text.encode(), read_key_file(key_file))
    examples = [q for s in specs for q in (*s.examples_match, *s.examples_no_match)]
    rows = (ROOT / "tests/files/demo_corpus.csv").read_text(encoding="utf-8").splitlines()
    corpus = [row.split(",")[0] for row in rows[1:]]
    queries = examples + corpus + rich_queries(result.rules, 2000)
    assert assert_same_decisions(plain, sealed, queries) >= 2000
    for example in specs[0].examples_match:  # and the sealed set does match them
        assert decision(sealed, example) == ("DEMO-001", "block")


def test_decisions_equal_on_every_feature_of_word_rules() -> None:
    rules = rich_rules()
    plain, sealed, _ = sealed_pair(rules)
    queries = rich_queries(rules, 6000)
    assert assert_same_decisions(plain, sealed, queries) == 6000
    # the features were exercised: every rule decided some query, unless suppressed some
    decided = {m.rule_id for q in queries if (m := sealed.match(q))}
    assert decided >= {r.id for r in rules} - {"R-20"}  # R-19 wins the tie
    assert sealed.match("zebra quilt") == plain.match("zebra quilt")
    assert decision(sealed, "zebra quilt") == ("R-19", "warn")
    assert decision(sealed, "guitar pick") is None
    assert decision(sealed, "goood") == ("R-03", "block")
    assert decision(sealed, "good") is None


TEXT = st.text(
    alphabet=st.sampled_from([*"catbigodkpluesnrzqvmhx1!|@$4306 .-_", "\u200b", "с", "а"]),
    max_size=40,
)


@given(TEXT)
def test_decisions_equal_on_random_text(text: str) -> None:
    plain, sealed = RANDOM_PAIR
    assert [m.rule_id for m in plain.match_all(text)] == [m.rule_id for m in sealed.match_all(text)]


RANDOM_PAIR = sealed_pair(rich_rules())[:2]


@pytest.mark.skipif(not detection_corpus.WORDLIST.exists(), reason="wamerican missing")
def test_decisions_equal_on_the_detection_corpus() -> None:
    corpus = detection_corpus.build()
    plain, sealed, _ = sealed_pair(corpus.rules)
    queries = [q for rows in corpus.variants.values() for q, _ in rows]
    queries += corpus.benign + corpus.scunthorpe + corpus.joined_traps
    compared = assert_same_decisions(plain, sealed, queries)
    assert compared >= 25_000
    print(f"\ndetection corpus: {len(corpus.rules)} rules, {compared} queries, 0 mismatches")
    # the sealed set keeps the corpus's targets: recall and no false positives
    found = sum(
        rule_id in {m.rule_id for m in sealed.match_all(q)}
        for rows in corpus.variants.values()
        for q, rule_id in rows
    )
    assert found / sum(len(rows) for rows in corpus.variants.values()) >= 0.99
    assert [q for q in corpus.benign if sealed.match(q)] == []


def test_explain_names_rules_but_not_phrases() -> None:
    plain, sealed, _ = sealed_pair(rich_rules())
    for query in ("Guitar P1CK for my c.a.t", "teapot under a blue sky", "my caaaat"):
        report, reference = sealed.explain(query), plain.explain(query)
        assert report.decision == reference.decision
        assert report.matched == reference.matched
        assert report.suppressed == reference.suppressed
        assert report.normalized == reference.normalized
        key = [(h.rule_id, h.role, h.reading, h.start, h.end, h.text) for h in report.hits]
        assert sorted(key) == sorted(
            (h.rule_id, h.role, h.reading, h.start, h.end, h.text) for h in reference.hits
        )
        assert all(re.fullmatch(r"<sealed [a-z_\[\]0-9]+>", h.phrase) for h in report.hits)
    report = sealed.explain("teapot under a blue sky")
    assert {h.phrase for h in report.hits} == {
        "<sealed all_of[0][0]>",  # R-07's "teapot"
        "<sealed all_of[1][1]>",  # R-07's "blue sky"
        "<sealed terms[1]>",  # R-12's "(teapot)"
    }


def test_hostile_queries() -> None:
    _, sealed, _ = sealed_pair(rich_rules())
    assert sealed.match("x" * 1_000_000) is None
    assert sealed.match("\x00\ud800\udfff" * 1000 + " cat") is not None
    assert sealed.match("hello " * 170_000 + "c a t") is not None
    assert sealed.match("aa cat " * 16_000) is not None
    assert sealed.explain("cat " * 16_000).decision is not None


# --- the commands -------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_new_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k"
    code, out, _ = run(capsys, "seal", "--new-key", str(path))
    assert code == 0
    assert "mode 0600" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run(capsys, "seal", "--new-key", str(path))[0] == 2  # never overwritten
    assert run(capsys, "seal", "--new-key", str(tmp_path / "k2"), str(RULES))[0] == 2
    assert run(capsys, "seal", str(RULES))[0] == 2  # needs --key-file and -o


def test_cli_seal_refuses_unsealable_rules(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "demo.bundle"
    code, _, err = run(capsys, "seal", str(RULES), "--key-file", str(key_file), "-o", str(bundle))
    assert code == 1
    assert "rule DEMO-005: match 'prefix' cannot be sealed" in err
    assert "--skip-unsealable" in err
    assert not bundle.exists()


def test_cli_seal_check_explain_test(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "demo.bundle"
    key = str(key_file)
    code, out, _ = run(
        capsys, "seal", str(RULES), "--key-file", key, "-o", str(bundle), "--skip-unsealable"
    )
    assert code == 0, out
    assert out.startswith(f"sealed 9 rules from 1 file(s) into {bundle}:")
    assert "left out (1):" in out
    assert "rule DEMO-005: match 'prefix' cannot be sealed" in out
    assert "verified: the bundle decides like the rules on 48 example queries" in out

    code, out, _ = run(capsys, "check", str(bundle), "--key-file", key, "--strict")
    assert code == 0
    assert out.startswith(f"OK: sealed bundle {bundle}: 9 rules")
    code, out, _ = run(capsys, "check", str(bundle), str(RULES), "--key-file", key)
    assert code == 0
    assert "OK: 10 rules in 1 file(s), 48 examples pass" in out
    code, out, _ = run(capsys, "check", str(bundle))
    assert code == 1
    assert "is a sealed bundle: give its key file" in out
    other = tmp_path / "other.key"
    new_key_file(other)
    code, out, _ = run(capsys, "check", str(bundle), "--key-file", str(other))
    assert code == 1
    assert "bundle was sealed with a different key" in out

    code, out, _ = run(
        capsys, "explain", "--rules", str(bundle), "--key-file", key, "Z3BRA-qu1lt please"
    )
    assert code == 0
    assert "DEMO-002  term '<sealed terms[0]>'  at 0-11 of words #1: 'zebra quilt'" in out
    assert "decision: block by DEMO-002" in out
    code, _, err = run(capsys, "explain", "--rules", str(bundle), "zebra quilt")
    assert code == 2
    assert "give its key file" in err

    corpus = tmp_path / "corpus.csv"
    rows = (ROOT / "tests/files/demo_corpus.csv").read_text(encoding="utf-8").splitlines()
    corpus.write_text("\n".join(r for r in rows if "DEMO-005" not in r) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "test", "--rules", str(bundle), "--key-file", key, str(corpus))
    assert code == 0, out
    assert "precision 1.0000, recall 1.0000" in out

    # the bundle is not replaced by a failed seal, and -o never replaces a rule file
    target = tmp_path / "rules.yaml"
    target.write_text((RULES / "demo.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    code, _, err = run(
        capsys, "seal", str(RULES), "--key-file", key, "-o", str(target), "--skip-unsealable"
    )
    assert code == 2
    assert "is not a sealed bundle: refusing to replace it" in err
    assert target.read_text(encoding="utf-8") == (RULES / "demo.yaml").read_text(encoding="utf-8")


def test_cli_key_file_from_the_environment(
    tmp_path: Path,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = write_bundle(tmp_path, key_file)
    monkeypatch.setenv(KEY_ENV, str(key_file))
    code, out, _ = run(capsys, "explain", "--rules", str(bundle), "--json", "lantern at midnight")
    assert code == 0
    report = json.loads(out)
    assert report["decision"]["rule_id"] == "DEMO-004"
    assert [h["phrase"] for h in report["hits"]] == [
        "<sealed all_of[0][0]>", "<sealed all_of[1][0]>",
    ]  # fmt: skip
    assert "lantern" not in json.dumps(report["hits"]).replace('"lantern"', "")


# --- serving ----------------------------------------------------------------------------------


def test_an_engine_over_a_sealed_bundle_decides_requests(tmp_path: Path, key_file: Path) -> None:
    bundle = write_bundle(tmp_path, key_file)
    config = load_config(
        None, environ={}, overrides={"rules": str(bundle), "messages": str(ROOT / "messages")}
    )
    rules = intercept.load_rules(config.rules, key_file=key_file)
    engine = Engine(config, rules, load_pages(config.pages_folder, survey_url=config.survey_url))
    headers: CIMultiDict[str] = CIMultiDict()
    blocked = engine.decide("GET", "/search?q=bl0cked+ex4mple", headers, None)
    assert isinstance(blocked, Answer)
    assert b"bl0cked" not in blocked.body
    assert engine.decide("GET", "/search?q=kites", headers, None) == Pass("/search?q=kites")
    shadow = engine.decide("GET", "/search?q=velvet+moth", headers, None)
    assert shadow == Pass("/search?q=velvet+moth")  # counted, never shown
    warned = engine.decide("GET", "/search?q=purple+teapot", headers, None)
    assert isinstance(warned, Answer)
    assert b"/_intercept/continue/" in warned.body
    assert engine.counts.value("searches", route="search") == 4


async def test_the_proxy_serves_a_sealed_bundle(
    tmp_path: Path, key_file: Path, upstream: object
) -> None:
    from aiohttp.test_utils import TestServer

    from intercept.server.serve import start
    from tests.processes import free_port
    from tests.upstream import fetch

    assert isinstance(upstream, TestServer)
    bundle = write_bundle(tmp_path, key_file)
    config = load_config(
        None,
        environ={},
        overrides={
            "upstream": f"http://127.0.0.1:{upstream.port}",
            "rules": str(bundle),
            "messages": str(ROOT / "messages"),
            "listen": f"127.0.0.1:{free_port()}",
        },
    )
    rules = intercept.load_rules(config.rules, key_file=key_file)
    engine = Engine(config, rules, load_pages(config.pages_folder, survey_url=config.survey_url))
    server = await start(config, engine)
    try:
        base = f"http://{config.listen}"
        status, headers, body = await fetch("GET", f"{base}/search?q=z3bra+qu1lt")
        assert status == 200
        assert "X-Upstream" not in headers  # answered by Intercept, not the upstream
        assert b"z3bra" not in body
        status, headers, _ = await fetch("GET", f"{base}/search?q=zebra+crossing")
        assert status == 200
        assert headers.get("X-Upstream") == "results"
    finally:
        await server.cleanup()
