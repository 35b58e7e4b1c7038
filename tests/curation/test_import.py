"""`intercept import`: a rules YAML from a list of terms, checked like any rule file.

Synthetic, everyday words only; the word lists are written by the tests (one test uses the
system dictionary when it is installed).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from intercept import load_rules
from intercept.cli import main
from intercept.curation.importer import (
    DEFAULT_WORDLIST,
    TermFileError,
    dictionary_hits,
    import_terms,
    read_terms,
    read_wordlist,
    rule_id,
    yaml_text,
)
from intercept.rules.rulefile import read_rules
from intercept.rules.ruleset import compile_rules
from intercept.rules.rulespec import Action, MatchMode, RuleSpec

WORDS = [
    "lamp", "Lamp", "lamp's", "lamps", "lamplight", "lampshade", "lamppost",
    "zebra", "teapot", "kettle", "kettles", "garden",
]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def wordlist(tmp_path: Path) -> Path:
    return write(tmp_path / "words", "\n".join(WORDS) + "\n")


def options(wordlist: Path, *more: str) -> list[str]:
    return ["--category", "demo", "--language", "en", "--id-prefix", "IMP",
            "--wordlist", str(wordlist), *more]  # fmt: skip


def import_to_file(
    capsys: pytest.CaptureFixture[str], terms: Path, wordlist: Path, *more: str
) -> tuple[Path, str]:
    """`intercept import TERMS` with `options(wordlist, *more)` into out.yaml beside TERMS:
    (that file, what the import wrote to stderr). The import must succeed, stdout empty."""
    out_file = terms.with_name("out.yaml")
    code, out, err = run(
        capsys, "import", str(terms), *options(wordlist, *more, "-o", str(out_file))
    )
    assert (code, out) == (0, ""), err
    return out_file, err


def check(capsys: pytest.CaptureFixture[str], path: Path, *flags: str) -> str:
    code, out, _ = run(capsys, "check", *flags, str(path))
    assert code == 0, out
    return out


def test_text_list_duplicates_merges_and_skips(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    terms = write(
        tmp_path / "teapots.txt",
        "# a synthetic list\nteapot\n\n  zebra quilt  \nteapot\nTEAPOT\nt3ap0t\n...\nkettle\n",
    )
    out_file, err = import_to_file(capsys, terms, wordlist)
    assert "duplicates (1), dropped:\n  teapots.txt:5: 'teapot' (first at teapots.txt:2)\n" in err
    assert (
        "merged (2), normalize like an earlier term, which is kept:\n"
        "  teapots.txt:6: 'TEAPOT' merged into 'teapot' (teapots.txt:2)\n"
        "  teapots.txt:7: 't3ap0t' merged into 'teapot' (teapots.txt:2)\n"
    ) in err
    assert "skipped (1):\n  teapots.txt:8: '...': normalizes to nothing" in err
    assert "summary: 7 read, 1 duplicate(s), 2 merged, 1 skipped, 0 flagged for review, " in err
    assert err.rstrip().endswith(f"wrote {out_file}: 3 rule(s), action shadow")

    check(capsys, out_file, "--strict")
    specs, (info,) = read_rules(out_file)
    assert [(s.id, s.terms, s.examples_match) for s in specs] == [
        ("IMP-0001", ("teapot",), ("teapot",)),
        ("IMP-0002", ("zebra quilt",), ("zebra quilt",)),
        ("IMP-0003", ("kettle",), ("kettle",)),
    ]
    assert {(s.category, s.action, s.language, s.match) for s in specs} == {
        ("demo", Action.SHADOW, "en", MatchMode.WORD)
    }
    assert (info.name, info.source) == ("teapots", "imported from teapots.txt")
    date.fromisoformat(info.updated)


def test_yaml_is_written_in_the_repository_format(tmp_path: Path, wordlist: Path) -> None:
    terms = write(tmp_path / "kites.txt", "red kite\n")
    result = import_terms(
        terms,
        category="demo",
        language="no",
        id_prefix="KITE",
        wordlist=wordlist,
        today=date(2026, 12, 1),
    )
    assert result.yaml == (
        "# Imported by `intercept import` from kites.txt on 2026-12-01:\n"
        "# 1 read, 0 duplicate(s), 0 merged, 0 skipped, 0 flagged for review, 1 written.\n"
        "list:\n"
        '  name: "kites"\n'
        '  source: "imported from kites.txt"\n'
        "  updated: 2026-12-01\n"
        "defaults:\n"
        "  category: demo\n"
        "  action: shadow\n"
        '  language: "no"\n'  # quoted: YAML 1.1 tools read a plain no as false
        "  match: word\n"
        "rules:\n"
        "  - id: KITE-0001\n"
        '    terms: ["red kite"]\n'
        '    examples: {match: ["red kite"]}\n'
    )


def test_csv_term_column_first_column_and_named_column(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = write(
        tmp_path / "export.csv",
        'id,Term,note\n1,garden gnome,x\n2,,empty\n3,"lamp, brass",comma\n4,garden gnome,dup\n',
    )
    terms, column = read_terms(export)
    assert column == "Term"
    assert [(t.text, t.line) for t in terms] == [
        ("garden gnome", 2),
        ("lamp, brass", 4),
        ("garden gnome", 5),
    ]
    first, column = read_terms(export, "csv", "note")
    assert column == "note"
    assert [t.text for t in first] == ["x", "empty", "comma", "dup"]
    plain = write(tmp_path / "plain.csv", "words,n\nkite,1\ndrum,2\n")
    assert [t.text for t in read_terms(plain)[0]] == ["kite", "drum"]  # first column

    out_file, err = import_to_file(capsys, export, wordlist, "--format", "csv")
    assert err.startswith("export.csv: terms from column 'Term'\n")
    assert "  export.csv:5: 'garden gnome' (first at export.csv:2)" in err
    check(capsys, out_file)
    assert [s.terms for s in load_rules(out_file).rules] == [("garden gnome",), ("lamp, brass",)]


def test_csv_errors_name_file_and_line(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = write(tmp_path / "export.csv", "term,note\nkite,x\n")
    code, out, err = run(capsys, "import", str(export), "--column", "word", *options(wordlist))
    assert (code, out) == (2, "")
    assert "export.csv:1: no column 'word' in the header (columns: 'term', 'note')" in err
    broken = write(tmp_path / "broken.csv", 'term\nkite\n"drum\nharp\n')
    code, _, err = run(capsys, "import", str(broken), *options(wordlist))
    assert code == 2
    assert "broken.csv:3: unexpected end of data" in err
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"kite\ncaf\xe9\n")
    code, _, err = run(capsys, "import", str(latin), *options(wordlist))
    assert code == 2
    assert "latin.txt:2: not UTF-8 text" in err


def test_usage_errors_exit_2(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    terms = write(tmp_path / "t.txt", "kite\n")
    for bad in (["--category", "Demo"], ["--language", "english"], ["--id-prefix", "-x"]):
        args = options(wordlist)
        flag = args.index(bad[0])
        args[flag + 1] = bad[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["import", str(terms), *args])
        assert exit_info.value.code == 2
    assert "must be 1 to 32 lowercase letters" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["import", str(terms), *options(wordlist, "--action", "ban")])
    capsys.readouterr()

    code, _, err = run(capsys, "import", str(terms), *options(wordlist, "-o", str(terms)))
    assert code == 2
    assert "would overwrite the input file" in err
    assert terms.read_text(encoding="utf-8") == "kite\n"
    code, _, err = run(capsys, "import", str(tmp_path / "none.txt"), *options(wordlist))
    assert code == 2
    assert "none.txt: cannot read" in err
    code, _, err = run(capsys, "import", str(terms), *options(tmp_path / "no-words"))
    assert code == 2
    assert "cannot read word list" in err
    code, _, err = run(capsys, "import", str(terms), "--column", "x", *options(wordlist))
    assert code == 2
    assert "--column goes with --format csv" in err
    empty = write(tmp_path / "empty.txt", "# nothing but comments\n\n...\n")
    code, _, err = run(capsys, "import", str(empty), *options(wordlist))
    assert code == 2
    assert "empty.txt: no terms to import (2 read, " not in err  # a comment is not a term
    assert "empty.txt: no terms to import (1 read, 0 duplicate(s), 0 merged, 1 skipped" in err


def test_dictionary_flagging_with_a_small_word_list(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    terms = write(tmp_path / "t.txt", "lamp\nkettle\nzebra\n")
    out_file, err = import_to_file(capsys, terms, wordlist, "--match", "prefix")
    # Lamp and lamp's count as lamp: 5 words, more than the default 3
    assert (
        f"flagged for review (1), match more than 3 of 10 words of {wordlist}:\n"
        "  IMP-0001 'lamp' (t.txt:1): 5 words, e.g. lamp, lamps, lamppost, lamplight, lampshade\n"
    ) in err
    text = out_file.read_text(encoding="utf-8")
    assert (
        "  # REVIEW: matches 5 dictionary words, e.g. lamp, lamps, lamppost, lamplight, "
        "lampshade\n  # REVIEW: 'lamp' also matches ordinary words after folding: "
    ) in text  # the prefix also starts lämpö (fi) and lámpara (es), written as examples
    assert text.index("lampshade\n") < text.index("  - id: IMP-0001\n")
    assert text.count("REVIEW: matches") == 1  # kettle: 2 words, zebra: 1
    check(capsys, out_file, "--strict")

    code, out, err = run(
        capsys, "import", str(terms), *options(wordlist, "--match", "prefix"),
        "--max-dictionary-hits", "1",
    )  # fmt: skip
    assert code == 0
    assert "flagged for review (2)" in err
    assert "  IMP-0002 'kettle' (t.txt:2): 2 words, e.g. kettle, kettles\n" in err
    assert out.startswith("# Imported by `intercept import` from t.txt on ")  # YAML on stdout

    code, out, err = run(capsys, "import", str(terms), *options(wordlist))  # match: word
    assert code == 0
    assert f"dictionary check: no term matches more than 3 of 10 words of {wordlist}" in err
    assert "REVIEW: matches" not in out
    assert "  # REVIEW: 'zebra' also matches ordinary words after folding: žebra (cs, " in out


def test_dictionary_hits_and_word_list_reading(tmp_path: Path, wordlist: Path) -> None:
    assert read_wordlist(wordlist) == [
        "lamp", "lamps", "lamplight", "lampshade", "lamppost",
        "zebra", "teapot", "kettle", "kettles", "garden",
    ]  # fmt: skip
    rules = compile_rules(
        [
            RuleSpec("S-1", "demo", Action.SHADOW, "en", MatchMode.SUBSTRING, terms=("e",)),
            RuleSpec("W-1", "demo", Action.SHADOW, "en", MatchMode.WORD, terms=("garden",)),
        ]
    )
    hits = dictionary_hits(rules, read_wordlist(wordlist), examples=2)
    assert hits == {"S-1": (6, ("zebra", "teapot")), "W-1": (1, ("garden",))}  # shortest first


def test_skipped_dictionary_check_is_reported(tmp_path: Path) -> None:
    result = import_terms(
        write(tmp_path / "t.txt", "kite\n"), category="demo", language="en", id_prefix="K"
    )
    assert result.wordlist is None
    assert result.flags == []
    assert any(line.startswith("dictionary check skipped") for line in result.report_lines())


def test_action_and_match_options(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    terms = write(tmp_path / "t.txt", "kite\n")
    more = ("--action", "block", "--match", "substring")
    (spec,) = load_rules(import_to_file(capsys, terms, wordlist, *more)[0]).rules
    assert (spec.action, spec.match) == (Action.BLOCK, MatchMode.SUBSTRING)


def test_awkward_terms_round_trip_exactly(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    awkward = [
        '"quoted" kite',
        "back\\slash kite",
        "1984",
        "true",
        "no",
        "- dash kite",
        "kite: colon",
        "#hash kite",  # a comment only at the start of a line of a text list
        "tea\u200bpot cozy",
        "nbsp\u00a0kite",
        "ｆｕｌｌ ｗｉｄｔｈ",
        "синий змей",
        "{brace} [bracket] kite",
        "'single' kite",
        "x" * 40 + " kite",
    ]
    export = tmp_path / "awkward.csv"
    export.write_text(
        "term\n" + "".join('"' + t.replace('"', '""') + '"\n' for t in awkward), encoding="utf-8"
    )
    out_file, _ = import_to_file(capsys, export, wordlist)
    check(capsys, out_file)
    assert [s.terms[0] for s in load_rules(out_file).rules] == awkward
    assert "\u200b" not in out_file.read_text(encoding="utf-8")  # escaped, visible in an editor


def test_too_long_terms_are_skipped(tmp_path: Path) -> None:
    terms = write(tmp_path / "t.txt", "kite\n" + "kite " * 101 + "\n")
    result = import_terms(terms, category="demo", language="en", id_prefix="K")
    assert [s.terms for s in result.rules] == [("kite",)]
    ((term, reason),) = result.skipped
    assert (term.line, reason) == (2, "longer than 500 characters")


def test_overlapping_readings_go_into_one_rule(tmp_path: Path, wordlist: Path) -> None:
    terms = write(tmp_path / "t.txt", "b1ll\nkite\nbill\nbl1l\n")  # 1 reads as i or l
    result = import_terms(terms, category="demo", language="en", id_prefix="K", wordlist=wordlist)
    assert [s.terms for s in result.rules] == [("b1ll", "bill", "bl1l"), ("kite",)]
    assert [(later.text, earlier.text) for later, earlier in result.overlaps] == [
        ("bill", "b1ll"),
        ("bl1l", "b1ll"),
    ]
    assert "  t.txt:3: 'bill' reads like 'b1ll' (t.txt:1)" in result.report_lines()


def test_a_term_joining_two_groups_joins_them(tmp_path: Path) -> None:
    # "g1ll" reads as "gill" or "glll"; "gl1l" as "glil" or "glll"; "gil1" as "gili" or "gill"
    terms = write(tmp_path / "t.txt", "gl1l\nkite\ngil1\ng1ll\n")
    result = import_terms(terms, category="demo", language="en", id_prefix="K")
    assert [s.terms for s in result.rules] == [("gl1l", "gil1", "g1ll"), ("kite",)]
    assert [t.text for t in result.terms] == ["gl1l", "gil1", "g1ll", "kite"]


def test_fresh_import_passes_check_strict(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    terms = write(tmp_path / "t.txt", "gl1mmerfr0nd\nfur\nglimmerfrond\nkettle\n")
    out_file, err = import_to_file(capsys, terms, wordlist)
    assert (
        "overlapping (1), share a normalized reading, written into the rule of the earlier term:\n"
        "  t.txt:3: 'glimmerfrond' reads like 'gl1mmerfr0nd' (t.txt:1)\n"
    ) in err
    assert (
        "diacritic collisions (1), also match ordinary words after folding, written as match "
        "examples for review:\n  IMP-0002 'fur' (t.txt:2): für (de, zipf 6.9, +7 languages)\n"
    ) in err
    text = out_file.read_text(encoding="utf-8")
    assert (
        "  - id: IMP-0001\n"
        '    terms: ["gl1mmerfr0nd", "glimmerfrond"]\n'
        '    examples: {match: ["gl1mmerfr0nd", "glimmerfrond"]}\n'
        "  # REVIEW: 'fur' also matches ordinary words after folding: für (de, zipf 6.9, "
        "+7 languages)\n"
        "  - id: IMP-0002\n"
        '    terms: ["fur"]\n'
        '    examples: {match: ["fur", "für"]}\n'
    ) in text
    assert "OK: 3 rules in 1 file(s), 5 examples pass, 0 warning(s)" in check(
        capsys, out_file, "--strict"
    )
    # deleting the example brings check's warning back
    write(out_file, text.replace('"fur", "für"', '"fur"'))
    code, out, _ = run(capsys, "check", "--strict", str(out_file))
    assert code == 1
    assert "phrase 'fur' also matches ordinary words after folding: für (de, " in out


def test_fresh_prefix_import_passes_check_strict(
    tmp_path: Path, wordlist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    terms = write(tmp_path / "t.txt", "schon\nlamp\n")
    out_file, _ = import_to_file(capsys, terms, wordlist, "--match", "prefix")
    (spec, _) = load_rules(out_file).rules
    assert {"schön", "schöne", "schönheit"} <= set(spec.examples_match)
    check(capsys, out_file, "--strict")


def test_rule_ids_sort_in_file_order() -> None:
    assert rule_id("P", 7, 12) == "P-0007"
    assert rule_id("P", 7, 12_345) == "P-00007"
    with pytest.raises(ValueError, match="invalid ids"):
        rule_id("bad prefix", 1, 1)


def test_yaml_text_quoting() -> None:
    assert yaml_text("demo", quote=False) == "demo"
    assert yaml_text("yes", quote=False) == '"yes"'
    assert yaml_text("a\tb\u2028c") == '"a\\tb\\u2028c"'
    assert yaml_text("\U000e0001") == '"\\U000e0001"'


@pytest.mark.skipif(
    not DEFAULT_WORDLIST.is_file(),
    reason="Debian package wamerican is not installed (.ci/run installs it)",
)
def test_system_dictionary_flags_a_short_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    terms = write(tmp_path / "t.txt", "cat\nzebra quilt\n")
    out_file = tmp_path / "out.yaml"
    code, _, err = run(
        capsys, "import", str(terms), "--category", "demo", "--language", "en",
        "--id-prefix", "SYS", "--match", "prefix", "-o", str(out_file),
    )  # fmt: skip
    assert code == 0, err
    flagged = re.search(r"  SYS-0001 'cat' \(t.txt:1\): (\d+) words, e.g. cat, cats, ", err)
    assert flagged, err
    assert int(flagged.group(1)) > 50  # catalog, category, caterpillar, ...
    assert "SYS-0002" not in err
    check(capsys, out_file)


def test_read_terms_rejects_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(TermFileError, match=r"header row"):
        read_terms(write(tmp_path / "e.csv", ""))
