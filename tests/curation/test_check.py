"""`intercept check` logic: examples, warnings, and errors reported rather than raised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from intercept.cli import main
from intercept.curation.check import check_rules

FILES = Path(__file__).parents[1] / "files"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "list: {name: t, source: test, updated: 2026-11-29}\n"
        "defaults: {category: demo, language: en}\n"
        "rules:\n" + body,
        encoding="utf-8",
    )
    return path


def test_demo_rules_pass() -> None:
    report = check_rules([Path(__file__).parents[2] / "rules"])
    assert report.ok, report.errors
    assert report.rules >= 10
    assert report.examples >= 40
    assert report.warnings == ()


def test_failing_examples_are_errors(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - id: A\n    terms: [teapot]\n    examples: {match: [kettle], no_match: [big teapot]}\n",
    )
    report = check_rules([path])
    assert not report.ok
    assert [str(p) for p in report.errors] == [
        f"{path}:4: rule A: example 'kettle' should match but does not",
        f"{path}:4: rule A: example 'big teapot' should not match but does",
    ]


def test_warnings(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - id: A\n"
        "    terms: [teapot]\n"
        "  - id: B\n"
        "    terms: [T-E-A-P-O-T]\n"
        "  - id: C\n"
        "    terms: ['!!!']\n"
        "  - id: D\n"
        "    terms: [green kite]\n"
        "    unless: [kite]\n",
    )
    report = check_rules([path])
    assert report.ok
    assert [str(p) for p in report.warnings] == [
        f"{path}:6: rule B: phrase 'T-E-A-P-O-T' normalizes like 'teapot' of rule A "
        f"({path}:4): 'teapot'",
        f"{path}:8: rule C: phrase '!!!' normalizes to nothing and never matches",
        f"{path}:10: rule D: unless covers the rule's own phrase 'green kite': it never matches",
    ]


def test_broken_files_become_errors() -> None:
    report = check_rules([FILES / "broken" / "many_mistakes.yaml"])
    assert not report.ok
    assert len(report.errors) == 10


def test_overlong_phrase_is_reported_not_raised(tmp_path: Path) -> None:
    path = _write(tmp_path, f"  - id: A\n    terms: [{'kite ' * 120}]\n")
    report = check_rules([path])
    assert [str(p) for p in report.errors] == [
        f"{path}:5: rule A: field 'terms[0]': must be at most 500 characters (got text)"
    ]


def test_no_clash_warning_for_words_the_matcher_tells_apart(tmp_path: Path) -> None:
    path = _write(tmp_path, "  - id: A\n    terms: [good]\n  - id: B\n    terms: [god]\n")
    assert check_rules([path]).warnings == ()


def test_unless_warning_needs_a_whole_group_covered(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - id: A\n    all_of: [[tea], [green, blue]]\n    unless: [green]\n"
        "  - id: B\n    all_of: [[tea], [green]]\n    unless: [green]\n",
    )
    warnings = [str(p) for p in check_rules([path]).warnings if "unless covers" in p.message]
    assert warnings == [
        f"{path}:7: rule B: unless covers the rule's own phrases of all_of[1]: it never matches"
    ]


def _collision_warnings(path: Path) -> list[str]:
    return [str(p) for p in check_rules([path]).warnings if "after folding" in p.message]


def test_a_term_that_folds_onto_an_ordinary_word_is_warned_about(tmp_path: Path) -> None:
    path = _write(tmp_path, "  - id: A\n    terms: [teapot, fur]\n")
    assert _collision_warnings(path) == [
        f"{path}:4: rule A: phrase 'fur' also matches ordinary words after folding: "
        "für (de, zipf 6.9, +7 languages); list them in examples.match to accept, "
        "or narrow the rule"
    ]


def test_a_leet_term_and_an_all_of_phrase_are_warned_about_too(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - id: A\n    terms: [f0r]\n  - id: B\n    all_of: [[lantern], [midnight, schon]]\n",
    )
    leet, group = _collision_warnings(path)
    # most frequent first: för (sv 7.2), før (nb 6.2), fór (cs 3.5), fôr (nb 3.3)
    assert (
        "after folding: för (sv, zipf 7.2, +3 languages), før (nb, zipf 6.2, +1 language), " in leet
    )
    assert group.startswith(f"{path}:6: rule B: phrase 'schon' also matches ordinary words")
    assert "schön (de, zipf 5.5)" in group


def test_prefix_phrases_list_the_words_they_start(tmp_path: Path) -> None:
    path = _write(tmp_path, "  - id: A\n    terms: [schon]\n    match: prefix\n")
    (warning,) = _collision_warnings(path)
    assert "schön (de, zipf 5.5), schöne (de, zipf 5.0), " in warning
    assert warning.count(" (de, zipf ") == 5  # at most five words named
    assert re.search(r"\) and \d+ more; list them", warning)
    # no collision: a word the phrase matches without folding, or no word at all
    path = _write(tmp_path, "  - id: A\n    terms: [gloomcrow]\n    match: prefix\n")
    assert _collision_warnings(path) == []


def test_accepting_a_collision_with_an_example_silences_it(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "  - id: A\n    terms: [fur]\n    examples: {match: [für, 'fur hat']}\n"
        "  - id: B\n    terms: [f0r]\n    examples: {match: ['för och før', fór, fôr]}\n",
    )
    report = check_rules([path])
    assert report.ok
    assert report.warnings == ()


def test_unless_folds_alike_so_it_cannot_single_out_the_ordinary_word(tmp_path: Path) -> None:
    path = _write(tmp_path, "  - id: A\n    terms: [fur]\n    unless: [für]\n")
    assert [str(p) for p in check_rules([path]).warnings] == [
        f"{path}:4: rule A: unless covers the rule's own phrase 'fur': it never matches"
    ]  # the collision is no longer warned about: the rule no longer matches für (nor fur)


def test_phrases_of_several_words_are_not_checked(tmp_path: Path) -> None:
    # "żebra quilt" (Polish żebra) folds to "zebra quilt", but is no ordinary text
    path = _write(tmp_path, "  - id: A\n    terms: [zebra quilt, fur-hat]\n")
    assert _collision_warnings(path) == []


def test_collisions_fail_strict_until_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "  - id: A\n    terms: [fur]\n")
    assert main(["check", str(path)]) == 0
    assert main(["check", "--strict", str(path)]) == 1
    out = capsys.readouterr().out
    assert "für (de, zipf 6.9, +7 languages)" in out
    assert "FAILED: 1 warning(s) with --strict" in out
    path = _write(tmp_path, "  - id: A\n    terms: [fur]\n    examples: {match: [für]}\n")
    assert main(["check", "--strict", str(path)]) == 0
