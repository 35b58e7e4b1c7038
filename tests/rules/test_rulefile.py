"""Reading rule files: good fixtures become `RuleSpec`s, broken ones exact, located problems.

Fixtures live in `tests/files/good/` and `tests/files/broken/` (one broken file per kind of
mistake). Tests run from `tests/files/` so that messages show the short paths as given.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from intercept.errors import Problem, RuleError
from intercept.rules.rulefile import read_rules
from intercept.rules.ruleschema import rules_json_schema
from intercept.rules.rulespec import Action, ListInfo, MatchMode, RuleSpec
from intercept.rules.ruleyaml import read_yaml_file

FILES = Path(__file__).parents[1] / "files"

CATEGORY_RULE = "1 to 32 lowercase letters, digits, '_' or '-', starting with a letter or digit"
ID_RULE = "1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
NON_BLANK = "must be text with at least one non-space character"

BROKEN: list[tuple[str, list[str]]] = [
    (
        "broken/syntax.yaml",
        [
            "broken/syntax.yaml:5: invalid YAML: while parsing a flow sequence at line 4:"
            " expected ',' or ']', but got ':'"
        ],
    ),
    (
        "broken/tab_indent.yaml",
        [
            "broken/tab_indent.yaml:3: invalid YAML: while scanning for the next token: found"
            " character '\\t' that cannot start any token (indent with spaces, not tabs)"
        ],
    ),
    (
        "broken/python_tag.yaml",
        ["broken/python_tag.yaml:5: invalid YAML: tag !!python/object/apply:... is not allowed"],
    ),
    (
        "broken/two_documents.yaml",
        [
            "broken/two_documents.yaml:4: invalid YAML: found a second document ('---');"
            " a rule file holds one"
        ],
    ),
    (
        "broken/duplicate_key.yaml",
        [
            "broken/duplicate_key.yaml:7: rule DUPKEY-001: duplicate key 'terms' (first at line 5)",
            "broken/duplicate_key.yaml:8: rule DUPKEY-001: duplicate key 'match' (first at line 8)",
            "broken/duplicate_key.yaml:9: duplicate key 'defaults' (first at line 2)",
        ],
    ),
    ("broken/empty.yaml", ["broken/empty.yaml: empty file: expected keys 'list' and 'rules'"]),
    (
        "broken/top_level_list.yaml",
        [
            "broken/top_level_list.yaml:1: expected a mapping with keys 'list' and 'rules'"
            " (got a list)"
        ],
    ),
    ("broken/missing_list.yaml", ["broken/missing_list.yaml:1: missing required field 'list'"]),
    (
        "broken/unknown_top_key.yaml",
        [
            "broken/unknown_top_key.yaml:1: missing required field 'rules'",
            "broken/unknown_top_key.yaml:3: unknown field (name not shown; did you mean 'rules'?)",
        ],
    ),
    (
        "broken/no_rules.yaml",
        ["broken/no_rules.yaml:3: field 'rules': must not be an empty list"],
    ),
    (
        "broken/bad_action.yaml",
        [
            "broken/bad_action.yaml:6: rule ACTION-001: field 'action': must be one of block, warn,"
            " shadow (got 'bloc')"
        ],
    ),
    (
        "broken/unknown_field.yaml",
        [
            "broken/unknown_field.yaml:4: rule FIELD-001: needs 'terms' or 'all_of'",
            "broken/unknown_field.yaml:5: rule FIELD-001: unknown field"
            " (name not shown; did you mean 'terms'?)",
        ],
    ),
    (
        "broken/bad_id.yaml",
        [
            f"broken/bad_id.yaml:4: rule kites and teapots: field 'id': must be {ID_RULE}"
            " (got 'kites and teapots')"
        ],
    ),
    ("broken/missing_id.yaml", ["broken/missing_id.yaml:4: missing required field 'id'"]),
    (
        "broken/bad_category.yaml",
        [
            f"broken/bad_category.yaml:6: rule CAT-001: field 'category': must be {CATEGORY_RULE}"
            " (got 'Paper Kites')"
        ],
    ),
    (
        "broken/bad_language.yaml",
        [
            "broken/bad_language.yaml:6: rule LANG-001: field 'language': must be a BCP 47"
            " language tag such as 'en', 'fi' or 'pt-BR' (got 'English')"
        ],
    ),
    (
        "broken/bad_match.yaml",
        [
            "broken/bad_match.yaml:6: rule MATCH-001: field 'match': must be one of word, prefix,"
            " substring (got 'whole')"
        ],
    ),
    (
        "broken/terms_and_all_of.yaml",
        ["broken/terms_and_all_of.yaml:4: rule BOTH-001: use either 'terms' or 'all_of', not both"],
    ),
    (
        "broken/no_phrases.yaml",
        ["broken/no_phrases.yaml:4: rule NONE-001: needs 'terms' or 'all_of'"],
    ),
    (
        "broken/empty_terms.yaml",
        ["broken/empty_terms.yaml:5: rule EMPTY-001: field 'terms': must not be an empty list"],
    ),
    (
        "broken/blank_phrase.yaml",
        [
            f"broken/blank_phrase.yaml:7: rule BLANK-001: field 'terms[1]': {NON_BLANK} (got '')",
            f"broken/blank_phrase.yaml:8: rule BLANK-001: field 'terms[2]': {NON_BLANK}"
            " (got '   ')",
        ],
    ),
    (
        "broken/empty_group.yaml",
        ["broken/empty_group.yaml:5: rule GROUP-001: field 'all_of[1]': must not be an empty list"],
    ),
    (
        "broken/not_a_list.yaml",
        ["broken/not_a_list.yaml:5: rule TYPE-001: field 'terms': must be a list (got text)"],
    ),
    (
        "broken/not_text.yaml",
        [
            "broken/not_text.yaml:5: rule TYPE-002: field 'terms[1]': must be text (got a number)",
            "broken/not_text.yaml:5: rule TYPE-002: field 'terms[2]': must be text (got true)",
        ],
    ),
    (
        "broken/empty_value.yaml",
        [
            "broken/empty_value.yaml:6: rule VALUE-001: field 'action': must not be empty"
            " (leave the key out to use the default)"
        ],
    ),
    (
        "broken/missing_category.yaml",
        [
            "broken/missing_category.yaml:4: rule NOCAT-001: missing required field 'category'"
            " (set it on the rule or in 'defaults')"
        ],
    ),
    (
        "broken/missing_language.yaml",
        [
            "broken/missing_language.yaml:3: rule NOLANG-001: missing required field 'language'"
            " (set it on the rule or in 'defaults')"
        ],
    ),
    (
        "broken/bad_defaults.yaml",
        [
            "broken/bad_defaults.yaml:2: field 'defaults.action': must be one of block, warn,"
            " shadow (got 'stop')"
        ],
    ),
    (
        "broken/bad_date.yaml",
        [
            "broken/bad_date.yaml:1: field 'list.updated': must be a real calendar date written"
            " YYYY-MM-DD (got '2026-02-30')"
        ],
    ),
    (
        "broken/rule_not_mapping.yaml",
        ["broken/rule_not_mapping.yaml:4: a rule must be a mapping with an 'id' (got text)"],
    ),
    (
        "broken/duplicate_id.yaml",
        [
            "broken/duplicate_id.yaml:6: rule SAME-001: duplicate id SAME-001"
            " (first defined at broken/duplicate_id.yaml:4)"
        ],
    ),
    (
        "broken/duplicate_id_across",
        [
            "broken/duplicate_id_across/b.yaml:6: rule ACROSS-001: duplicate id ACROSS-001"
            " (first defined at broken/duplicate_id_across/a.yaml:4)"
        ],
    ),
    (
        "broken/many_mistakes.yaml",
        [
            "broken/many_mistakes.yaml:2: missing required field 'list.updated'",
            "broken/many_mistakes.yaml:8: rule MANY-001: field 'action': must be one of block,"
            " warn, shadow (got 'bloc')",
            "broken/many_mistakes.yaml:9: rule MANY-002: needs 'terms' or 'all_of'",
            "broken/many_mistakes.yaml:10: rule MANY-002: unknown field"
            " (name not shown; did you mean 'terms'?)",
            "broken/many_mistakes.yaml:12: rule MANY-003: missing required field 'category'"
            " (set it on the rule or in 'defaults')",
            f"broken/many_mistakes.yaml:13: rule MANY-003: field 'terms[0]': {NON_BLANK}"
            " (got '  ')",
            "broken/many_mistakes.yaml:14: rule MANY-001: duplicate id MANY-001"
            " (first defined at broken/many_mistakes.yaml:5)",
            "broken/many_mistakes.yaml:17: rule MANY-001: duplicate key 'category'"
            " (first at line 16)",
            "broken/many_mistakes.yaml:18: rule MANY-001: field 'match': must be one of word,"
            " prefix, substring (got 'whole')",
            "broken/many_mistakes.yaml:19: unknown field (name not shown)",
        ],
    ),
]

# Broken files whose mistake is one of form, so the JSON Schema alone catches it too.
SCHEMA_CATCHES = [
    "bad_action.yaml",
    "bad_category.yaml",
    "bad_defaults.yaml",
    "bad_id.yaml",
    "bad_language.yaml",
    "bad_match.yaml",
    "blank_phrase.yaml",
    "empty_group.yaml",
    "empty_terms.yaml",
    "empty_value.yaml",
    "missing_id.yaml",
    "missing_list.yaml",
    "no_phrases.yaml",
    "no_rules.yaml",
    "not_a_list.yaml",
    "not_text.yaml",
    "rule_not_mapping.yaml",
    "terms_and_all_of.yaml",
    "top_level_list.yaml",
    "unknown_field.yaml",
    "unknown_top_key.yaml",
]

GOOD_FILES = [
    "good/demo.yaml",
    "good/no_defaults.yml",
    "good/tree/10-kites.yaml",
    "good/tree/20-teapots/more.yml",
]


@pytest.fixture(autouse=True)
def _in_files_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(FILES)


def _problems(paths: str | Path | Iterable[str | Path]) -> list[str]:
    with pytest.raises(RuleError) as caught:
        read_rules(paths)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize(("path", "expected"), BROKEN, ids=[path for path, _ in BROKEN])
def test_broken_files_report_exact_problems(path: str, expected: list[str]) -> None:
    assert _problems(path) == expected


def test_a_problem_carries_file_line_rule_id_and_message() -> None:
    with pytest.raises(RuleError) as caught:
        read_rules("broken/bad_action.yaml")
    message = "field 'action': must be one of block, warn, shadow (got 'bloc')"
    assert caught.value.problems == (Problem("broken/bad_action.yaml", 6, "ACTION-001", message),)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == (
        f"rule set refused: 1 problem\n  broken/bad_action.yaml:6: rule ACTION-001: {message}"
    )


def test_every_mistake_of_a_file_is_reported_in_one_pass() -> None:
    with pytest.raises(RuleError) as caught:
        read_rules("broken/many_mistakes.yaml")
    assert len(caught.value.problems) == 10
    assert str(caught.value).startswith("rule set refused: 10 problems\n")


def test_every_file_of_a_set_is_reported_in_one_pass() -> None:
    in_path_order = sorted(BROKEN, key=lambda entry: Path(entry[0]).parts)
    assert _problems("broken") == [line for _, lines in in_path_order for line in lines]


def test_path_problems_come_with_the_problems_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a rule file\n")
    assert _problems(["nowhere", tmp_path, "broken/bad_match.yaml"]) == [
        "nowhere: no such file or folder",
        f"{tmp_path}: no rule files (*.yaml, *.yml) in folder",
        "broken/bad_match.yaml:6: rule MATCH-001: field 'match': must be one of word, prefix,"
        " substring (got 'whole')",
    ]


def test_a_good_file_reads_into_specs_with_defaults_applied() -> None:
    specs, lists = read_rules("good/demo.yaml")
    assert lists == [ListInfo(name="demo", source="synthetic demo terms", updated="2026-11-29")]
    # each rule: the fields its entry sets, in the file's order; then those it takes from the
    # file's defaults (or, for `match`, RuleSpec's own); then where it was read
    assert specs == [
        RuleSpec(
            id="DEMO-001",
            terms=("blue kite", "paper kite"),
            unless=("kite festival",),
            examples_match=("cheap blue kite",),
            examples_no_match=("kite festival tickets",),
            # defaults
            category="demo",
            action=Action.BLOCK,
            language="en",
            match=MatchMode.WORD,
            # where
            file="good/demo.yaml",
            line=5,
            list_name="demo",
        ),
        RuleSpec(
            id="DEMO-002",
            all_of=(("teapot",), ("striped", "spotted")),
            action=Action.WARN,
            match=MatchMode.PREFIX,
            # defaults
            category="demo",
            language="en",
            # where
            file="good/demo.yaml",
            line=10,
            list_name="demo",
        ),
        RuleSpec(
            id="DEMO-003",
            terms=("tabby cat",),
            action=Action.SHADOW,
            category="cats",
            language="fi",
            match=MatchMode.SUBSTRING,
            examples_match=("tabby cats",),
            examples_no_match=("tabby",),
            # where
            file="good/demo.yaml",
            line=15,
            list_name="demo",
        ),
    ]


def test_without_defaults_action_is_block_and_match_is_word() -> None:
    specs, _ = read_rules("good/no_defaults.yml")
    assert [(spec.id, spec.action, spec.match, spec.language) for spec in specs] == [
        ("PLAIN-001", Action.BLOCK, MatchMode.WORD, "no"),
        ("PLAIN-002", Action.BLOCK, MatchMode.WORD, "pt-BR"),
    ]


def test_a_folder_is_read_recursively_in_sorted_order_skipping_other_and_hidden_files() -> None:
    specs, lists = read_rules("good")
    assert [(spec.where, spec.id, spec.list_name) for spec in specs] == [
        ("good/demo.yaml:5", "DEMO-001", "demo"),
        ("good/demo.yaml:10", "DEMO-002", "demo"),
        ("good/demo.yaml:15", "DEMO-003", "demo"),
        ("good/no_defaults.yml:6", "PLAIN-001", "plain"),
        ("good/no_defaults.yml:10", "PLAIN-002", "plain"),
        ("good/tree/10-kites.yaml:4", "KITE:1", "kites"),
        ("good/tree/10-kites.yaml:5", "KITE.2", "kites"),
        ("good/tree/20-teapots/more.yml:4", "TEA_1", "teapots"),
    ]
    assert [info.name for info in lists] == ["demo", "plain", "kites", "teapots"]


@pytest.mark.parametrize(
    "paths",
    [
        "good/tree/10-kites.yaml",
        Path("good/tree/10-kites.yaml"),
        ["good/tree/10-kites.yaml"],
        (Path("good/tree/10-kites.yaml"),),
        "./good/tree/10-kites.yaml",
    ],
    ids=["str", "Path", "list", "tuple", "dot-slash"],
)
def test_paths_may_be_given_as_str_path_or_several(
    paths: str | Path | Iterable[str | Path],
) -> None:
    specs, _ = read_rules(paths)
    assert [spec.id for spec in specs] == ["KITE:1", "KITE.2"]


@pytest.mark.parametrize(
    ("folder", "file"),
    [("good/tree", "good/tree/10-kites.yaml"), ("good/tree/", "good/tree/10-kites.yaml")],
)
def test_files_in_a_folder_are_named_from_the_folder_as_given(folder: str, file: str) -> None:
    specs, _ = read_rules(folder)
    assert specs[0].file == file


def test_a_file_reached_twice_is_read_once() -> None:
    specs, lists = read_rules(["good/tree", "good/tree/10-kites.yaml"])
    assert [spec.id for spec in specs] == ["KITE:1", "KITE.2", "TEA_1"]
    assert len(lists) == 2


def test_no_paths_read_nothing() -> None:
    assert read_rules([]) == ([], [])


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"list: {name: caf\xe9}\n")
    assert _problems(path) == [f"{path}:1: not UTF-8 text (re-save the file as UTF-8)"]


def _schema_validator() -> Any:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema (test extra) checks the schema given to editors"
    )
    schema = rules_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_json_schema_is_draft_2020_12_with_a_title() -> None:
    schema = rules_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Intercept rule file"
    assert schema["required"] == ["list", "rules"]
    _schema_validator()


@pytest.mark.parametrize("path", GOOD_FILES)
def test_the_json_schema_accepts_good_files(path: str) -> None:
    data = read_yaml_file(Path(path), file=path).data
    assert [error.message for error in _schema_validator().iter_errors(data)] == []


@pytest.mark.parametrize("name", SCHEMA_CATCHES)
def test_the_json_schema_rejects_broken_files(name: str) -> None:
    data = read_yaml_file(Path("broken", name), file=name).data
    assert list(_schema_validator().iter_errors(data)) != []
