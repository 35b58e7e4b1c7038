"""`intercept diff`: rules added, removed and changed, and decisions that change on a corpus.

Synthetic, everyday words only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intercept import load_rules
from intercept.cli import main
from intercept.curation import diff as rulediff
from intercept.curation.corpus import CorpusError

ROOT = Path(__file__).parents[2]
RULES = ROOT / "rules"
CORPUS = Path(__file__).parents[1] / "files" / "demo_corpus.csv"
BROKEN = Path(__file__).parents[1] / "files" / "broken" / "many_mistakes.yaml"

HEADER = (
    "list: {name: t, source: synthetic, updated: 2026-11-29}\n"
    "defaults: {category: demo, language: en}\n"
    "rules:\n"
)
OLD = HEADER + (
    "  - id: A-001\n"
    "    terms: [teapot]\n"
    "    action: warn\n"
    "  - id: A-002\n"
    "    terms: [zebra quilt]\n"
    "  - id: A-003\n"
    "    terms: [lantern]\n"
    "    action: shadow\n"
)
NEW = HEADER + (
    "  - id: A-001\n"
    "    terms: [teapot, kettle]\n"
    "    unless: [teapot museum]\n"
    "    action: block\n"
    "  - id: A-003\n"
    "    terms: [lantern]\n"
    "    action: shadow\n"
    "  - id: A-004\n"
    "    terms: [velvet moth]\n"
)
QUERIES = [
    "purple teapot",  # A-001 warn -> block
    "copper kettle",  # none -> A-001 (new match)
    "zebra quilt pattern",  # none
    "teapot museum",  # A-001 warn -> none (unless)
    "paper lantern",  # A-003 both sides: unchanged
    "velvet moth wings",  # none -> A-004 (new match)
    "garden hose",  # none both sides
]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path, Path]:
    """OLD and NEW rule files and a text corpus of QUERIES with a blank line."""
    old = write(tmp_path / "old" / "rules.yaml", OLD)
    new = write(tmp_path / "new" / "rules.yaml", NEW)
    corpus = write(tmp_path / "benign.txt", "\n".join([*QUERIES[:3], "", *QUERIES[3:]]) + "\n")
    return old, new, corpus


def test_same_rules_report_no_change(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "diff", str(RULES), str(RULES), "--corpus", str(CORPUS))
    assert code == 0
    assert "added: none\nremoved: none\nchanged: none\n" in out
    assert "0 of 14 queries change decision" in out
    assert out.rstrip().endswith(
        "summary: 0 added, 0 removed, 0 changed, 10 unchanged; "
        "0 of 14 queries change decision, 0 new match(es)"
    )


def test_text_report_sections_hide_phrases(
    sides: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, _ = sides
    code, out, _ = run(capsys, "diff", str(old), str(new))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"OLD {old}: 3 rules, version {load_rules(old).version}"
    assert lines[1] == f"NEW {new}: 3 rules, version {load_rules(new).version}"
    assert lines[2:] == [
        "added (1):",
        f"  A-004  {new}:11  block, category demo, language en, match word; terms: 1",
        "removed (1):",
        f"  A-002  {old}:7  block, category demo, language en, match word; terms: 1",
        "changed (1):",
        f"  A-001  {new}:4",
        "    action: warn -> block",
        "    terms: 1 added, 0 removed",
        "    unless: 1 added, 0 removed",
        "summary: 1 added, 1 removed, 1 changed, 1 unchanged",
    ]
    for phrase in ("kettle", "velvet moth", "zebra quilt", "teapot museum"):
        assert phrase not in out  # rule phrases are confidential


def test_show_terms_prints_phrases(
    sides: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, _ = sides
    code, out, _ = run(capsys, "diff", "--show-terms", str(old), str(new))
    assert code == 0
    assert f"  A-004  {new}:11  block, category demo, language en, match word\n" in out
    assert "    terms: ['velvet moth']\n" in out
    assert "    terms: 1 added, 0 removed\n      + 'kettle'\n" in out
    assert "    unless: 1 added, 0 removed\n      + 'teapot museum'\n" in out


def test_every_rule_field_is_compared(tmp_path: Path) -> None:
    old = write(
        tmp_path / "old.yaml",
        HEADER + "  - id: B-1\n    all_of: [[lamp], [oil, wick]]\n"
        "    examples: {match: [lamp oil]}\n",
    )
    new = write(
        tmp_path / "new.yaml",
        HEADER + "  - id: B-1\n    all_of: [[lamp], [oil, flame]]\n    category: light\n"
        "    language: fi\n    match: prefix\n"
        "    examples: {match: [lamp oil], no_match: [lamp]}\n",
    )
    diff = rulediff.diff_rules(load_rules(old), load_rules(new))
    (change,) = diff.changed
    fields = {f.field: f for f in change.fields}
    assert list(fields) == ["category", "language", "match", "all_of", "examples.no_match"]
    assert (fields["category"].old, fields["category"].new) == ("demo", "light")
    assert fields["all_of"].added == (("oil", "flame"),)
    assert fields["all_of"].removed == (("oil", "wick"),)
    text = rulediff.render_text(diff)
    assert "    match: word -> prefix\n" in text
    assert "    all_of: group(s) 1 added, 1 removed\n" in text
    assert "    examples.no_match: 1 added, 0 removed\n" in text
    assert "wick" not in text
    assert "      + ['oil', 'flame']\n" in rulediff.render_text(diff, show_terms=True)


def test_reordered_phrases_and_moved_rules(tmp_path: Path) -> None:
    old = write(tmp_path / "old" / "a.yaml", HEADER + "  - {id: C-1, terms: [kite, drum]}\n")
    other = HEADER.replace("name: t", "name: u")
    write(tmp_path / "old" / "b.yaml", other + "  - {id: C-2, terms: [harp]}\n")
    new = write(
        tmp_path / "new" / "a.yaml",
        HEADER + "  - {id: C-2, terms: [harp]}\n  - {id: C-1, terms: [drum, kite]}\n",
    )
    diff = rulediff.diff_rules(
        load_rules(old.parent),
        load_rules(new.parent),
        old_path=str(old.parent),
        new_path=str(new.parent),
    )
    assert [rule.id for rule in diff.changed] == ["C-1"]  # C-2 moved to another file: unchanged
    text = rulediff.render_text(diff)
    assert "    terms: same phrases, reordered\n" in text
    assert f"  C-1  {new}:5\n" in text  # same relative file name: no "(was ...)"


def test_corpus_decisions_text(
    sides: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, corpus = sides
    code, out, _ = run(capsys, "diff", str(old), str(new), "--corpus", str(corpus))
    assert code == 0
    assert (
        f"corpus {corpus}: 5 of 7 queries change decision "
        "(2 new match(es), 2 no longer matching, 1 changed)\n"
        f"  {corpus}:1: 'purple teapot': A-001 warn -> A-001 block\n"
        f"  {corpus}:2: 'copper kettle': none -> A-001 block\n"
        f"  {corpus}:3: 'zebra quilt pattern': A-002 block -> none\n"
        f"  {corpus}:5: 'teapot museum': A-001 warn -> none\n"
        f"  {corpus}:7: 'velvet moth wings': none -> A-004 block\n"
    ) in out
    assert out.rstrip().endswith(
        "summary: 1 added, 1 removed, 1 changed, 1 unchanged; "
        "5 of 7 queries change decision, 2 new match(es)"
    )


def test_category_or_language_change_is_shown_in_full(tmp_path: Path) -> None:
    old = write(tmp_path / "old.yaml", HEADER + "  - {id: D-1, terms: [kite]}\n")
    new = write(tmp_path / "new.yaml", HEADER + "  - {id: D-1, terms: [kite], language: fi}\n")
    diff = rulediff.with_corpus(
        rulediff.diff_rules(load_rules(old), load_rules(new)), "q.txt", [(1, "red kite")]
    )
    assert diff.decisions[0].kind == "changed"
    assert (
        "  q.txt:1: 'red kite': D-1 block (category demo, language en) -> "
        "D-1 block (category demo, language fi)\n"
    ) in rulediff.render_text(diff)


def test_json_report(sides: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    old, new, corpus = sides
    code, out, _ = run(capsys, "diff", "--json", str(old), str(new), "--corpus", str(corpus))
    assert code == 0
    report = json.loads(out)
    assert report["old"] == {"path": str(old), "rules": 3, "version": load_rules(old).version}
    assert [r["id"] for r in report["added"]] == ["A-004"]
    assert report["added"][0]["counts"] == {"terms": 1, "all_of": 0, "unless": 0}
    assert "terms" not in report["added"][0]
    assert [r["id"] for r in report["removed"]] == ["A-002"]
    (changed,) = report["changed"]
    assert changed["id"] == "A-001"
    assert changed["fields"] == [
        {"field": "action", "old": "warn", "new": "block"},
        {"field": "terms", "added": 1, "removed": 0, "reordered": False},
        {"field": "unless", "added": 1, "removed": 0, "reordered": False},
    ]
    assert report["summary"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 1}
    corpus_report = report["corpus"]
    assert (corpus_report["queries"], corpus_report["changes"]) == (7, 5)
    assert corpus_report["new_matches"] == 2
    assert corpus_report["no_longer_matching"] == 2
    assert corpus_report["decisions"][1] == {
        "line": 2,
        "query": "copper kettle",
        "kind": "new_match",
        "old": None,
        "new": {"rule_id": "A-001", "action": "block", "category": "demo", "language": "en"},
    }
    assert (report["fail_on"], report["failed"]) == (None, False)
    assert "kettle" not in json.dumps(report["changed"])
    code, out, _ = run(capsys, "diff", "--json", "--show-terms", str(old), str(new))
    report = json.loads(out)
    assert report["corpus"] is None
    assert report["added"][0]["terms"] == ["velvet moth"]
    assert report["changed"][0]["fields"][1]["added_phrases"] == ["kettle"]


def test_fail_on_new_matches(
    sides: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, corpus = sides
    args = ["diff", str(old), str(new), "--fail-on", "new-matches", "--corpus"]
    code, out, _ = run(capsys, *args, str(corpus))
    assert code == 1
    assert out.rstrip().endswith("FAIL (--fail-on new-matches)")
    # decisions change, but no query that matched nothing matches now
    no_new = write(tmp_path / "other.txt", "purple teapot\nzebra quilt\ngarden hose\n")
    code, out, _ = run(capsys, *args, str(no_new))
    assert code == 0
    assert out.rstrip().endswith("PASS (--fail-on new-matches)")
    code, out, _ = run(capsys, *args, str(no_new), "--json")
    assert code == 0
    assert json.loads(out)["failed"] is False


def test_fail_on_any_change(
    sides: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, _ = sides
    args = ["diff", str(old), str(new), "--fail-on", "any-change", "--corpus"]
    lost = write(tmp_path / "lost.txt", "zebra quilt\n")  # a match lost is a change too
    code, out, _ = run(capsys, *args, str(lost))
    assert code == 1
    assert out.rstrip().endswith("FAIL (--fail-on any-change)")
    steady = write(tmp_path / "steady.txt", "paper lantern\ngarden hose\n")
    code, out, _ = run(capsys, *args, str(steady), "--json")
    assert code == 0
    assert json.loads(out)["fail_on"] == "any-change"
    # rule changes alone do not fail: only decisions on the corpus count
    assert run(capsys, *args, str(steady))[0] == 0


def test_fail_on_needs_corpus(
    sides: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, _ = sides
    code, out, err = run(capsys, "diff", str(old), str(new), "--fail-on", "new-matches")
    assert (code, out) == (2, "")
    assert "--fail-on needs --corpus" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["diff", str(old), str(new), "--fail-on", "sometimes"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("side", ["OLD", "NEW"])
def test_bad_rules_exit_2_naming_the_side(
    side: str, sides: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, _ = sides
    paths = [str(BROKEN), str(new)] if side == "OLD" else [str(old), str(BROKEN)]
    code, out, err = run(capsys, "diff", *paths)
    assert (code, out) == (2, "")
    assert err.startswith(f"intercept diff: {side} ({BROKEN}): rule set refused: 10 problems")
    assert f"{BROKEN}:8: rule MANY-001: field 'action': must be one of" in err


def test_missing_rules_path_exits_2(
    sides: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, _, _ = sides
    code, _, err = run(capsys, "diff", str(old), str(tmp_path / "nowhere"))
    assert code == 2
    assert f"NEW ({tmp_path / 'nowhere'})" in err
    assert "no such file or folder" in err


def test_unusable_corpus_exits_2_with_file_and_line(
    sides: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new, _ = sides
    no_column = write(tmp_path / "c.csv", "text,expect\nkite,\n")
    code, _, err = run(capsys, "diff", str(old), str(new), "--corpus", str(no_column))
    assert code == 2
    assert f"{no_column}:1: corpus header must name a 'query' column" in err
    latin = tmp_path / "q.txt"
    latin.write_bytes(b"kite\ndrum\ncaf\xe9\n")
    code, _, err = run(capsys, "diff", str(old), str(new), "--corpus", str(latin))
    assert code == 2
    assert f"{latin}:3: not UTF-8 text" in err
    code, _, err = run(capsys, "diff", str(old), str(new), "--corpus", str(tmp_path / "none.txt"))
    assert code == 2
    assert "cannot read corpus" in err


def test_read_queries_text_and_csv(tmp_path: Path) -> None:
    text = write(tmp_path / "q.txt", "\ufeffkite\r\n\r\n#hashtag kite\r\n  \r\nlast line")
    assert rulediff.read_queries(text) == [(1, "kite"), (3, "#hashtag kite"), (5, "last line")]
    csv_file = write(tmp_path / "q.CSV", 'note,query\nx,kite\ny,\nz,"drum, big"\n')
    assert rulediff.read_queries(csv_file) == [(2, "kite"), (4, "drum, big")]
    assert len(rulediff.read_queries(CORPUS)) == 14  # an `intercept test` corpus works as is
    with pytest.raises(CorpusError, match="'query'"):
        rulediff.read_queries(write(tmp_path / "bad.csv", "a,b\n1,2\n"))


def test_functions_compose(sides: tuple[Path, Path, Path]) -> None:
    old_path, new_path, corpus = sides
    old, new = load_rules(old_path), load_rules(new_path)
    queries = rulediff.read_queries(corpus)
    changes = rulediff.decision_changes(old, new, queries)
    assert [(c.line, c.kind) for c in changes] == [
        (1, "changed"),
        (2, "new_match"),
        (3, "no_longer_matches"),
        (5, "no_longer_matches"),
        (7, "new_match"),
    ]
    diff = rulediff.with_corpus(rulediff.diff_rules(old, new), str(corpus), queries)
    assert (diff.queries, diff.count("new_match")) == (7, 2)
    assert rulediff.failed(diff, "new-matches")
    assert rulediff.failed(diff, "any-change")
    assert not rulediff.failed(diff, None)
    assert rulediff.diff_to_dict(diff, fail_on="any-change")["failed"] is True
