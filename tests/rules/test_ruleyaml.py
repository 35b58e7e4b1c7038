"""The strict YAML loader: plain data with lines, duplicate keys, YAML 1.2 scalars, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from intercept.errors import Problem, RuleError
from intercept.rules.ruleyaml import (
    MAX_VALUES,
    LocatedDict,
    LocatedList,
    locate,
    parse_yaml,
    read_yaml_file,
)

TEXT = """\
# a comment
list: {name: demo}
rules:
  - id: A
    terms:
      - kites
      - teapots
  - id: B
"""


def test_data_is_plain_dicts_and_lists_with_lines() -> None:
    data = parse_yaml(TEXT, file="x.yaml").data
    assert data == {
        "list": {"name": "demo"},
        "rules": [{"id": "A", "terms": ["kites", "teapots"]}, {"id": "B"}],
    }
    assert isinstance(data, LocatedDict)
    assert data.line == 2
    assert data.key_lines == {"list": 2, "rules": 3}
    rules = data["rules"]
    assert isinstance(rules, LocatedList)
    assert rules.item_lines == [4, 8]
    assert rules[0].key_lines == {"id": 4, "terms": 5}
    assert rules[0]["terms"].item_lines == [6, 7]


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ((), 2),
        (("rules",), 3),
        (("rules", 1), 8),
        (("rules", 0, "terms", 1), 7),
        (("rules", 0, "missing"), 4),
        (("rules", 5, "id"), 3),
        (("list", "name"), 2),
    ],
)
def test_locate_finds_the_deepest_line_along_a_path(path: tuple[str | int, ...], line: int) -> None:
    assert locate(parse_yaml(TEXT, file="x.yaml").data, path) == line


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("no", "no"),
        ("yes", "yes"),
        ("on", "on"),
        ("true", True),
        ("False", False),
        ("2026-11-29", "2026-11-29"),
        ("012", 12),
        ("0o17", 15),
        ("0x1F", 31),
        ("1_000", "1_000"),
        ("12:30", "12:30"),
        ("1.5", 1.5),
        ("~", None),
        ("", None),
        ("=", "="),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(scalar: str, value: Any) -> None:
    assert parse_yaml(f"key: {scalar}\n", file="x.yaml").data == {"key": value}


def test_every_duplicate_key_is_recorded_with_both_lines_and_last_value_wins() -> None:
    document = parse_yaml("a: 1\nb: {c: 1, c: 2}\na: 3\n", file="x.yaml")
    assert document.data == {"a": 3, "b": {"c": 2}}
    found = [(dup.key, dup.line, dup.first_line, dup.message) for dup in document.duplicate_keys]
    assert found == [
        ("c", 2, 2, "duplicate key 'c' (first at line 2)"),
        ("a", 3, 1, "duplicate key 'a' (first at line 1)"),
    ]
    assert document.duplicate_keys[0].mapping is document.data["b"]


def test_merge_keys_may_be_overridden_without_a_duplicate() -> None:
    document = parse_yaml("base: &b {x: 1, y: 2}\nmore:\n  <<: *b\n  y: 3\n", file="x.yaml")
    assert document.data["more"] == {"x": 1, "y": 3}
    assert document.duplicate_keys == ()


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "a: [1\nb: 2\n",
            2,
            "while parsing a flow sequence at line 1: expected ',' or ']', but got ':'",
        ),
        ("a: b: c\n", 1, "mapping values are not allowed here"),
        (
            "a:\n\tb: 1\n",
            2,
            "while scanning for the next token: found character '\\t' that cannot start any token"
            " (indent with spaces, not tabs)",
        ),
        ("a: 1\n---\nb: 2\n", 2, "found a second document ('---'); a rule file holds one"),
        ("a: *nowhere\n", 1, "found undefined alias (text not shown)"),
        ("a: !!python/name:os.getcwd ''\n", 1, "tag !!python/name:... is not allowed"),
        ("a: !!binary aGk=\n", 1, "tag !!binary is not allowed"),
        ("a: !!timestamp 2026-11-29\n", 1, "tag !!timestamp is not allowed"),
        ("a: !kite x\n", 1, "a custom tag (text not shown) is not allowed"),
        ("a: !!int kites\n", 1, "a value tagged !!int is not an integer"),
        ("a: !!float kites\n", 1, "a value tagged !!float is not a number"),
        ("a: !!bool yes\n", 1, "a value tagged !!bool is not true or false"),
        ("a: &loop [1, *loop]\n", 1, "found an alias inside the node it refers to"),
        ("a: 1\nb: \x07\n", 2, "character #x0007 is not allowed in YAML text"),
    ],
)
def test_invalid_yaml_is_one_located_problem(text: str, line: int, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_yaml(text, file="x.yaml")
    assert caught.value.problems == (Problem("x.yaml", line, None, f"invalid YAML: {message}"),)


def test_explicit_standard_tags_are_allowed() -> None:
    text = "a: !!str 12\nb: !!int '7'\nc: !!bool TRUE\nd: !!null ''\n"
    assert parse_yaml(text, file="x.yaml").data == {"a": "12", "b": 7, "c": True, "d": None}


def test_an_alias_bomb_is_refused_before_anything_is_built() -> None:
    levels = ["a0: &a0 [" + ", ".join(["kite"] * 10) + "]"]
    levels += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, 7)]
    with pytest.raises(RuleError) as caught:
        parse_yaml("\n".join(levels) + "\n", file="x.yaml")
    message = f"invalid YAML: more than {MAX_VALUES:,} values once aliases are expanded"
    assert caught.value.problems == (Problem("x.yaml", 1, None, message),)


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("a: 1\nb: caf\xe9\n".encode("latin-1"))
    with pytest.raises(RuleError) as caught:
        read_yaml_file(path, file="latin1.yaml")
    assert [str(problem) for problem in caught.value.problems] == [
        "latin1.yaml:2: not UTF-8 text (re-save the file as UTF-8)"
    ]


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert read_yaml_file(path, file="bom.yaml").data == {"a": 1}


def test_an_empty_text_is_none() -> None:
    assert parse_yaml("# only a comment\n", file="x.yaml").data is None


def test_the_libyaml_loader_reads_exactly_what_the_python_one_reads() -> None:
    from intercept.rules import ruleyaml

    if ruleyaml._FastLoader is None:
        pytest.skip("PyYAML was built without libyaml: only the pure-Python loader exists")
    text = (Path(__file__).parents[2] / "rules" / "demo.yaml").read_text(encoding="utf-8")
    text += "rules: []\n"  # a duplicate key, recorded by both
    fast = ruleyaml._FastLoader(text)
    slow = ruleyaml._StrictLoader(text)
    try:
        fast_data, slow_data = fast.get_single_data(), slow.get_single_data()
    finally:
        fast.dispose()
        slow.dispose()
    assert fast_data == slow_data
    assert fast_data.key_lines == slow_data.key_lines
    assert fast_data["list"].key_lines == slow_data["list"].key_lines
    assert [d.line for d in fast.duplicate_keys] == [d.line for d in slow.duplicate_keys] != []


def test_text_libyaml_cannot_take_is_a_located_problem_not_a_crash() -> None:
    with pytest.raises(RuleError) as caught:
        parse_yaml('a: "\udcff"\n', file="x.yaml")
    assert caught.value.problems[0].file == "x.yaml"


@pytest.mark.parametrize("text", ["a:\t1\n", "a: [1,\t2]\n"])
def test_tabs_are_judged_the_same_with_or_without_libyaml(text: str) -> None:
    from intercept.rules import ruleyaml

    slow = ruleyaml._StrictLoader(text)
    try:
        slow.get_single_data()
        expected_ok = True
    except Exception:
        expected_ok = False
    finally:
        slow.dispose()
    try:
        parse_yaml(text, file="x.yaml")
        got_ok = True
    except RuleError:
        got_ok = False
    assert got_ok == expected_ok
