"""`intercept test` scoring: precision, recall, per category, failures, and bad corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercept.curation.corpus import CorpusError, evaluate, read_corpus
from tests.conftest import MakeRules, spec


def _corpus(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "corpus.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_scores_and_failures(make_rules: MakeRules, tmp_path: Path) -> None:
    rules = make_rules(
        spec("K", "kite", category="toys"),
        spec("T", "teapot", category="kitchen"),
        spec("T2", "kettle", category="kitchen", action="warn"),
    )
    path = _corpus(
        tmp_path,
        "query,expect\n"
        "red kite,K\n"  # TP toys
        "k1te,K\n"  # TP toys
        "teapot,T\n"  # TP kitchen
        "tea pot,T\n"  # FN kitchen
        "kettle,\n"  # FP kitchen (T2 decides)
        "weather,\n"  # TN
        '"kite, teapot",T\n',  # TP: T matched, though K decides (both block, K < T)
    )
    result = evaluate(rules, read_corpus(path), name=str(path))
    assert result.rows == 7
    o = result.overall
    assert (o.true_positives, o.false_positives, o.false_negatives, o.true_negatives) == (
        4,
        1,
        1,
        1,
    )
    assert o.precision == pytest.approx(4 / 5)
    assert o.recall == pytest.approx(4 / 5)
    assert result.by_category["toys"].recall == 1.0
    assert result.by_category["kitchen"].precision == pytest.approx(2 / 3)
    assert [(f.line, f.expected, f.got) for f in result.failures] == [
        (5, "T", ()),
        (6, "", ("T2",)),
    ]


def test_missing_columns(tmp_path: Path) -> None:
    path = _corpus(tmp_path, "q,rule\nkite,K\n")
    with pytest.raises(CorpusError, match=r"corpus.csv:1: corpus header must name the columns"):
        read_corpus(path)


def test_unknown_rule_ids(make_rules: MakeRules, tmp_path: Path) -> None:
    path = _corpus(tmp_path, "query,expect\nkite,NOPE\n")
    with pytest.raises(CorpusError, match=r"corpus.csv:2 'NOPE'"):
        evaluate(make_rules(spec("K", "kite")), read_corpus(path), name=str(path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    path.write_bytes(b"query,expect\n\xff\xfe,\n")
    with pytest.raises(CorpusError, match="cannot read corpus"):
        read_corpus(path)


def test_bom_is_accepted(tmp_path: Path) -> None:
    path = _corpus(tmp_path, "\ufeffquery,expect\nkite,\n")
    assert read_corpus(path) == [(2, "kite", "")]
