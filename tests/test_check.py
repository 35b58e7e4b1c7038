"""`intercept check` logic: examples, warnings, and errors reported rather than raised."""

from __future__ import annotations

from pathlib import Path

from intercept.check import check_rules

FILES = Path(__file__).parent / "files"


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
    report = check_rules([Path(__file__).parent.parent / "rules"])
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
