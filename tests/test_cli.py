"""The `intercept` command line, run as a curator would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from intercept.cli import main

ROOT = Path(__file__).parent.parent
RULES = ROOT / "rules"
CORPUS = Path(__file__).parent / "files" / "demo_corpus.csv"
BROKEN = Path(__file__).parent / "files" / "broken" / "many_mistakes.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_demo_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(RULES))
    assert code == 0
    assert out.startswith("OK: 10 rules in 1 file(s)")


def test_check_broken_rules_exits_1_with_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(BROKEN))
    assert code == 1
    assert "errors (10):" in out
    assert "many_mistakes.yaml:8: rule MANY-001: field 'action': must be one of" in out
    assert out.rstrip().endswith("FAILED: 10 error(s)")


def test_check_strict_fails_on_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "list: {name: t, source: t, updated: 2026-11-29}\n"
        "defaults: {category: demo, language: en}\n"
        "rules:\n  - {id: A, terms: [kite]}\n  - {id: B, terms: [K1TE]}\n",
        encoding="utf-8",
    )
    assert run(capsys, "check", str(path))[0] == 0
    code, out, _ = run(capsys, "check", "--strict", str(path))
    assert code == 1
    assert "normalizes like 'kite' of rule A" in out


def test_explain_shows_stages_hits_and_decision(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "--rules", str(RULES), "Z3BRA-qu1lt please")
    assert code == 0
    assert "leetspeak           'zebra-quLlt please'" in out
    assert "DEMO-002  term 'zebra quilt'  at 0-11 of words #1: 'zebra quilt'" in out
    assert out.rstrip().endswith("decision: block by DEMO-002 (category demo, language en)")


def test_explain_json_and_suppression(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "--rules", str(RULES), "--json", "teapot museum")
    assert code == 0
    report = json.loads(out)
    assert report["decision"] is None
    assert report["suppressed"] == ["DEMO-003"]
    assert {h["role"] for h in report["hits"]} == {"term", "unless"}


def test_explain_with_broken_rules_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explain", "--rules", str(BROKEN), "kite")
    assert code == 2
    assert "rule set refused: 10 problems" in err


def test_test_command_passes_on_demo_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", "--rules", str(RULES), str(CORPUS))
    assert code == 0, out
    assert "14 queries: precision 1.0000, recall 1.0000" in out
    assert out.rstrip().endswith("PASS (thresholds: precision >= 1.0, recall >= 1.0)")


def test_test_command_thresholds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "c.csv"
    corpus.write_text("query,expect\nblocked example,DEMO-001\nteapot,\n", encoding="utf-8")
    code, out, _ = run(capsys, "test", "--rules", str(RULES), str(corpus))
    assert code == 1
    assert f"{corpus}:3: 'teapot': expected no match, got DEMO-003" in out
    assert run(capsys, "test", "--rules", str(RULES), "--min-precision", "0.5", str(corpus))[0] == 0
    code, out, _ = run(capsys, "test", "--rules", str(RULES), "--json", str(corpus))
    assert code == 1
    assert json.loads(out)["overall"]["false_positives"] == 1


def test_test_command_bad_corpus_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "c.csv"
    corpus.write_text("q\nx\n", encoding="utf-8")
    code, _, err = run(capsys, "test", "--rules", str(RULES), str(corpus))
    assert code == 2
    assert "corpus header must name the columns 'query' and 'expect'" in err


def test_bench_small_run_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "bench", "--rules", "500", "--queries", "2000", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["rules"] == 500
    assert result["queries"] == 2000
    assert 100 <= result["matched"] <= 300  # about 10% hold a disguised phrase, all found
    assert result["queries_per_second"] > 0
    assert 0 < result["p50_us"] <= result["p99_us"] <= result["p999_us"]


def test_schema_is_committed_and_current(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert json.loads((RULES / "schema.json").read_text(encoding="utf-8")) == schema
    demo = yaml.safe_load((RULES / "demo.yaml").read_text(encoding="utf-8"))
    demo["list"]["updated"] = str(demo["list"]["updated"])
    jsonschema.validate(demo, schema)


def test_console_script_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "intercept", "check", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "OK: 10 rules" in done.stdout


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--match-share", "2"])
    assert exit_info.value.code == 2
    assert "must be between 0 and 1" in capsys.readouterr().err
