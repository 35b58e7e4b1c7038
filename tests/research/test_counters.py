"""The research counters' table (`intercept.research.counters`): well formed, the one source of the
metrics and the ledger's tables, and enough on its own to add a counter."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from intercept.research.counters import COUNTERS, by_name
from intercept.research.counting import Counts
from intercept.research.ledger import NO_PAGE, TABLES, Ledger
from intercept.research.report import DIMENSIONS


def test_names_metrics_and_tables_are_unique_and_well_formed() -> None:
    names = [c.name for c in COUNTERS]
    metrics = [c.metric for c in COUNTERS if c.metric is not None]
    tables = [c.table for c in COUNTERS if c.table is not None]
    for values in (names, metrics, tables):
        assert len(values) == len(set(values))
    for counter in COUNTERS:
        assert counter.metric is None or re.fullmatch(r"intercept_[a-z_]+", counter.metric)
        assert counter.metric is None or not counter.metric.endswith("_total")
        assert counter.table is None or re.fullmatch(r"[a-z_]+", counter.table)
        assert all(re.fullmatch(r"[a-z_]+", label) for label in counter.labels)
        assert counter.help.endswith(".")
        assert counter.metric is not None or counter.table is not None  # it goes somewhere
        # a counter about a shown page carries the variant, where NO_PAGE marks none shown
        assert counter.page == ("variant" in counter.labels), counter.name
    assert by_name("clicks").labels == ("link", "variant")
    with pytest.raises(KeyError):
        by_name("nothing")


def test_the_ledger_tables_are_the_counters_with_a_table() -> None:
    assert {c.table: c.labels for c in COUNTERS if c.table is not None} == TABLES
    assert NO_PAGE == "none"


def test_the_report_dimensions_are_labels_of_the_interventions_counter() -> None:
    assert set(DIMENSIONS) <= set(by_name("interventions").labels)


def test_every_counter_reaches_its_metric_and_its_table_and_nowhere_else(
    tmp_path: Path,
) -> None:
    ledger = Ledger.from_url(f"sqlite:{tmp_path / 'ledger.db'}")
    counts = Counts(ledger=ledger)
    for counter in COUNTERS:
        values = tuple(f"{counter.name}-{i}" for i in range(len(counter.labels)))
        counts.count(counter.name, *values)
        counts.count(counter.name, *values)
    text = counts.exposition().decode()
    assert ledger.flush_now()
    ledger.close()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        for counter in COUNTERS:
            values = tuple(f"{counter.name}-{i}" for i in range(len(counter.labels)))
            if counter.metric is not None:
                labels = dict(zip(counter.labels, values, strict=True))
                assert counts.value(counter.metric.removeprefix("intercept_"), **labels) == 2
            else:  # no series of its own, and its label values in none
                assert all(value not in text for value in values)
            if counter.table is not None:
                rows = db.execute(f"SELECT {', '.join(counter.labels)}, count FROM {counter.table}")
                assert rows.fetchall() == [(*values, 2)]


def test_a_count_with_an_unknown_name_or_the_wrong_labels_is_refused(tmp_path: Path) -> None:
    counts = Counts()
    with pytest.raises(KeyError):
        counts.count("nothing", "x")
    with pytest.raises(ValueError, match="takes 2 labels"):
        counts.count("clicks", "survey")
    ledger = Ledger.from_url(f"sqlite:{tmp_path / 'ledger.db'}")
    with pytest.raises(KeyError):
        ledger.add("nothing", ("x",))
    with pytest.raises(ValueError, match="takes 1 labels"):
        ledger.add("searches", ("a", "b"))
    assert ledger.status.pending == 0
    ledger.close()


_NEW_COUNTER = textwrap.dedent(
    """
    import sqlite3, sys
    import intercept.research.counters as counters

    counters.COUNTERS = (*counters.COUNTERS, counters.CounterSpec(
        name="page_prints", metric="intercept_page_prints", labels=("language", "variant"),
        help="Pages printed.", table="page_prints", page=True,
    ))
    from intercept.research.counting import Counts
    from intercept.research.ledger import Ledger

    ledger = Ledger.from_url("sqlite:" + sys.argv[1])
    counts = Counts(ledger=ledger)
    counts.count("page_prints", "en", "harm")
    counts.search("search")
    text = counts.exposition().decode()
    assert ledger.flush_now()
    ledger.close()
    rows = sqlite3.connect(sys.argv[1]).execute("SELECT language, variant, count FROM page_prints")
    print(rows.fetchall())
    print([line for line in text.splitlines() if "page_prints_total" in line])
    """
)


def test_a_new_counter_is_one_entry_and_its_call_site(tmp_path: Path) -> None:
    """The docstring's recipe, run: an entry appended to the table (before Intercept's other
    modules are imported, as an edit of the file would be) is tallied, exported and stored
    in a table of its own, with no other change."""
    done = subprocess.run(
        [sys.executable, "-c", _NEW_COUNTER, str(tmp_path / "ledger.db")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows, lines = done.stdout.splitlines()
    assert rows == "[('en', 'harm', 1)]"
    assert lines == (
        "['# HELP intercept_page_prints_total Pages printed.', "
        "'# TYPE intercept_page_prints_total counter', "
        '\'intercept_page_prints_total{language="en",variant="harm"} 1.0\']'
    )
