"""Detection targets over the generated corpus (see `tests/detection_corpus.py`):
recall >= 99% in every evasion class, zero false positives on dictionary queries and traps."""

from __future__ import annotations

import pytest

from tests import detection_corpus

pytestmark = pytest.mark.skipif(
    not detection_corpus.WORDLIST.exists(),
    reason=f"{detection_corpus.WORDLIST} missing (Debian package wamerican; .ci/run installs it)",
)


@pytest.fixture(scope="module")
def result() -> detection_corpus.Result:
    return detection_corpus.evaluate(detection_corpus.build())


def test_corpus_is_large_enough() -> None:
    corpus = detection_corpus.build()
    assert len(corpus.rules) >= 1000
    assert sum(len(rows) for rows in corpus.variants.values()) >= 5000
    assert len(corpus.benign) >= 20_000
    assert len(corpus.scunthorpe) >= 1000
    assert len(corpus.joined_traps) >= 500


@pytest.mark.parametrize("name", list(detection_corpus.CLASSES))
def test_recall_per_evasion_class(result: detection_corpus.Result, name: str) -> None:
    found, total = result.recall[name]
    assert found / total >= 0.99, f"{name}: {found}/{total}"


@pytest.mark.parametrize("name", ["dictionary queries", "Scunthorpe traps", "joined-word traps"])
def test_no_false_positives(result: detection_corpus.Result, name: str) -> None:
    assert result.false_positives[name] == []
