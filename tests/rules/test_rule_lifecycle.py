"""`status: disabled` and `expires:`: validated always, matched only while active."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercept import RuleError, load_rules
from intercept.curation.check import check_rules
from intercept.rules.rulefile import read_rules
from intercept.rules.ruleset import compile_rules

RULES = """\
list: {name: life, source: synthetic, updated: 2026-11-29}
defaults: {category: demo, action: block, language: en}
rules:
  - id: L-1
    terms: ["amber falcon"]
  - id: L-2
    terms: ["cobalt heron"]
    status: disabled
  - id: L-3
    terms: ["copper lynx"]
    expires: 2026-01-01
  - id: L-4
    terms: ["silver otter"]
    expires: 2999-12-31
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "life.yaml"
    path.write_text(RULES, encoding="utf-8")
    return path


def test_only_active_unexpired_rules_match(rules_file: Path) -> None:
    rules = load_rules(rules_file)
    assert [spec.id for spec in rules.rules] == ["L-1", "L-4"]
    assert rules.match("amber falcon") is not None
    assert rules.match("cobalt heron") is None
    assert rules.match("copper lynx") is None
    assert rules.match("silver otter") is not None


def test_expiry_is_the_first_day_not_matched(rules_file: Path) -> None:
    specs, lists = read_rules(rules_file)
    assert compile_rules(specs, lists, today="2025-12-31").match("copper lynx") is not None
    assert compile_rules(specs, lists, today="2026-01-01").match("copper lynx") is None


def test_check_warns_about_expired_rules(rules_file: Path) -> None:
    report = check_rules([rules_file])
    assert report.ok
    assert any(p.rule_id == "L-3" and "expired on 2026-01-01" in p.message for p in report.warnings)
    assert not any(p.rule_id == "L-2" for p in report.warnings)  # disabled on purpose


def test_bad_status_and_dates_are_located_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        RULES.replace("status: disabled", "status: paused").replace("2026-01-01", "2026-02-30"),
        encoding="utf-8",
    )
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    text = str(caught.value)
    assert "L-2" in text
    assert "L-3" in text
    assert "bad.yaml:" in text


def test_a_set_with_every_rule_retired_matches_nothing_and_never_fails(tmp_path: Path) -> None:
    path = tmp_path / "off.yaml"
    path.write_text(
        RULES.replace(
            '    terms: ["amber falcon"]\n', '    terms: ["amber falcon"]\n    status: disabled\n'
        ).replace("2999-12-31", "2001-01-01"),
        encoding="utf-8",
    )
    rules = load_rules(path)
    assert len(rules) == 0
    assert rules.match("amber falcon silver otter") is None
    assert rules.match_all("amber falcon") == []
    assert rules.explain("amber falcon").decision is None
