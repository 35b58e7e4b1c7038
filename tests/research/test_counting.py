"""The per-request tallies of `intercept.research.counting.Counts`: nothing lost on the way to the
metrics and the research ledger, from any number of threads."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from intercept.research.counting import Counts
from intercept.research.ledger import Ledger


def _histogram_count(counts: Counts, name: str) -> float:
    value = counts.registry.get_sample_value(f"intercept_{name}_seconds_count")
    return 0.0 if value is None else value


def test_tallies_reach_the_metrics_on_sync_and_before_every_read() -> None:
    counts = Counts()
    counts.search("search")
    counts.intervention("demo", "block", "en", "harm")
    counts.decided(0.00002)
    counts.answered(0.003)
    assert _histogram_count(counts, "decision") == 0  # tallied, not handed over yet
    assert counts.value("searches", route="search") == 1  # a read syncs first
    assert _histogram_count(counts, "decision") == 1
    assert _histogram_count(counts, "upstream") == 1
    text = counts.exposition().decode()
    assert 'intercept_interventions_total{action="block",category="demo"' in text
    counts.search("search")
    assert b'intercept_searches_total{route="search"} 2.0' in counts.exposition()


def test_the_ledger_takes_the_tallies_before_each_flush(tmp_path: Path) -> None:
    ledger = Ledger.from_url(f"sqlite:{tmp_path / 'ledger.db'}")
    counts = Counts(ledger=ledger)
    for _ in range(3):
        counts.search("search")
        counts.intervention("demo", "block", "en", "harm")
    assert ledger.status.pending == 0  # still in the tallies
    assert ledger.flush_now()
    assert ledger.status.pending == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT sum(count) FROM searches").fetchone() == (3,)
        assert db.execute("SELECT sum(count) FROM interventions").fetchone() == (3,)
    ledger.close()


def test_clicks_and_shadow_hits_take_the_same_batched_path(tmp_path: Path) -> None:
    ledger = Ledger.from_url(f"sqlite:{tmp_path / 'ledger.db'}")
    counts = Counts(ledger=ledger)
    counts.click("survey", "harm")
    counts.shadow("DEMO-009")
    clicked = {"link": "survey", "variant": "harm"}
    assert counts.registry.get_sample_value("intercept_clicks_total", clicked) is None
    assert ledger.status.pending == 0  # tallied, not handed over yet
    assert counts.value("clicks", **clicked) == 1  # a read syncs first
    assert ledger.status.pending == 2  # the click and the shadow hit
    assert ledger.flush_now()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT link, variant, count FROM clicks").fetchall() == [
            ("survey", "harm", 1)
        ]
        assert db.execute("SELECT rule_id, count FROM shadow_hits").fetchall() == [("DEMO-009", 1)]
    assert "DEMO-009" not in counts.exposition().decode()  # per rule: never a metric
    ledger.close()


def test_no_count_is_lost_between_threads_and_syncs() -> None:
    counts = Counts()
    threads, each = 8, 5_000
    stop = threading.Event()

    def count() -> None:
        for _ in range(each):
            counts.search("search")
            counts.decided(0.00001)

    def keep_syncing() -> None:
        while not stop.is_set():
            counts.sync()

    syncer = threading.Thread(target=keep_syncing)
    syncer.start()
    workers = [threading.Thread(target=count) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    syncer.join()
    assert counts.value("searches", route="search") == threads * each
    assert _histogram_count(counts, "decision") == threads * each


def test_timings_are_handed_over_before_they_pile_up() -> None:
    counts = Counts()
    for _ in range(10_000):
        counts.decided(0.00001)
    # the 10,000th timing forced a sync, without any read or timer
    assert counts.registry.get_sample_value("intercept_decision_seconds_count") == 10_000


async def test_sync_every_hands_over_while_nothing_reads() -> None:
    counts = Counts()
    counts.search("search")
    task = asyncio.create_task(counts.sync_every(0.05))
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            sample = counts.registry.get_sample_value(
                "intercept_searches_total", {"route": "search"}
            )
            if sample == 1:
                break
        assert sample == 1
    finally:
        task.cancel()


def test_a_forked_child_starts_with_empty_tallies_and_a_free_lock() -> None:
    """gunicorn --preload and `intercept serve --workers` fork after building: what the
    parent tallied is the parent's to hand over, and a lock held at the fork is not the
    child's."""
    counts = Counts()
    counts.search("search")
    counts._lock.acquire()  # as if another thread held it at the moment of the fork
    pid = os.fork()
    if pid == 0:  # the child: exit status tells the parent what it found
        ok = counts._lock.acquire(timeout=1)
        counts._lock.release()
        counts.search("search")
        os._exit(0 if ok and counts.value("searches", route="search") == 1 else 1)
    counts._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert counts.value("searches", route="search") == 1  # the parent's own count, once


def test_a_failing_hand_over_is_logged_and_never_stops_a_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger.from_url(f"sqlite:{tmp_path / 'ledger.db'}")
    counts = Counts(ledger=ledger)

    def broken(seconds: float) -> None:
        raise OSError("the metrics folder is gone")

    monkeypatch.setattr(counts.decision_seconds, "observe", broken)
    counts.search("search")
    counts.decided(0.00001)
    assert ledger.flush_now()  # the flush went on
    assert "handing counts to the metrics failed (OSError)" in caplog.text
    assert "folder is gone" not in caplog.text  # the kind only
    ledger.close()
