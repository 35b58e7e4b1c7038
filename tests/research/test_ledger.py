"""The research ledger against real databases: a SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from intercept.research.ledger import (
    DAY,
    HOUR,
    TABLES,
    Backend,
    Ledger,
    LedgerError,
    LedgerReader,
    LedgerStatus,
    from_url,
    scrub_error,
)
from tests.pg_helpers import PostgresServer, free_port
from tests.processes import demo_serve, intercept_process

T0 = 1_790_000_000 - 1_790_000_000 % DAY  # a UTC midnight (2026-09-21)

Stored = dict[str, dict[tuple[Any, ...], int]]


class Clock:
    """A settable clock for the ledger's hour buckets."""

    def __init__(self, now: float = T0 + 600) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger URL for each backend: a new SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    value: str = request.getfixturevalue("pg_url")
    return value


def stored(url: str) -> Stored:
    """Every stored row, read with the database's own client (not the ledger's code)."""
    out: Stored = {table: {} for table in TABLES}
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite://")
        if not Path(path).exists():
            return out
        with contextlib.closing(sqlite3.connect(path)) as conn:
            for table, labels in TABLES.items():
                with contextlib.suppress(sqlite3.OperationalError):
                    for row in conn.execute(
                        f"SELECT hour, {', '.join(labels)}, count FROM {table}"
                    ):
                        out[table][tuple(row[:-1])] = row[-1]
        return out
    import psycopg

    with psycopg.connect(url) as pg:
        for table, labels in TABLES.items():
            try:
                rows = pg.execute(f"SELECT hour, {', '.join(labels)}, count FROM {table}")
            except psycopg.errors.UndefinedTable:
                pg.rollback()
                continue
            for row in rows:
                out[table][tuple(row[:-1])] = row[-1]
    return out


def fill(ledger: Ledger, times: int = 1) -> None:
    for _ in range(times):
        ledger.add_search("search")
        ledger.add_intervention("demo", "block", "en", "harm")
        ledger.add_click("survey", "harm")
        ledger.add_shadow("DEMO-009")
        ledger.add("warn_continues", ("demo", "harm", "en"))
        ledger.add("survey_answers", ("why", "stop", "harm", "en"))
        ledger.add("experiment_pages", ("spring", "0123456789ab"))


PER_FILL = len(TABLES)
"""Counts (and rows) one `fill` adds: one in every table."""


def expected(hour: int, times: int = 1) -> Stored:
    return {
        "searches": {(hour, "search"): times},
        "interventions": {(hour, "demo", "block", "en", "harm"): times},
        "clicks": {(hour, "survey", "harm"): times},
        "shadow_hits": {(hour, "DEMO-009"): times},
        "warn_continues": {(hour, "demo", "harm", "en"): times},
        "survey_answers": {(hour, "why", "stop", "harm", "en"): times},
        "experiment_pages": {(hour, "spring", "0123456789ab"): times},
    }


# --- buffering and flushing -----------------------------------------------------------------


def test_counts_stay_in_memory_until_a_flush(url: str) -> None:
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    fill(ledger, 3)
    assert ledger.status.pending == 3 * PER_FILL
    assert ledger.status.last_flush is None
    assert stored(url) == {table: {} for table in TABLES}
    if url.startswith("sqlite:"):
        assert not Path(url.removeprefix("sqlite://")).exists()  # nothing opened before a flush
    assert ledger.flush_now() is True
    assert stored(url) == expected(T0, 3)
    status = ledger.status
    assert (status.pending, status.failures, status.last_error) == (0, 0, None)
    assert status.last_flush == clock.now
    assert status.backend == url.partition(":")[0]
    ledger.close()


def test_flushes_add_up_and_hours_are_separate_buckets(url: str) -> None:
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    fill(ledger)
    assert ledger.flush_now()
    fill(ledger, 2)
    assert ledger.flush_now()
    assert stored(url) == expected(T0, 3)
    clock.now = T0 + HOUR + 1  # the next hour
    ledger.add_search("search")
    clock.now = T0 + 2 * HOUR - 1  # still that hour
    ledger.add_search("search")
    ledger.add_search("autocomplete")
    assert ledger.flush_now()
    assert stored(url)["searches"] == {
        (T0, "search"): 3,
        (T0 + HOUR, "search"): 2,
        (T0 + HOUR, "autocomplete"): 1,
    }
    assert ledger.flush_now()  # nothing pending: nothing to do
    ledger.close()


def test_two_ledgers_on_one_database_sum(url: str) -> None:
    """Two workers (or replicas) add to the same buckets, also while flushing at once."""
    first, second = Ledger.from_url(url), Ledger.from_url(url)
    for ledger in (first, second):
        ledger._clock = Clock()
    fill(first, 2)
    fill(second, 5)
    assert first.flush_now()
    assert second.flush_now()
    assert stored(url) == expected(T0, 7)

    def hammer(ledger: Ledger) -> None:
        for _ in range(20):
            fill(ledger, 10)
            assert ledger.flush_now(), ledger.status

    threads = [threading.Thread(target=hammer, args=(ledger,)) for ledger in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stored(url) == expected(T0, 7 + 2 * 20 * 10)
    first.close()
    second.close()


WORKER = textwrap.dedent(
    """
    import sys
    from intercept.research.ledger import Ledger
    ledger = Ledger.from_url(sys.argv[1], clock=lambda: {now})
    for _ in range(25):
        for _ in range(8):
            ledger.add_search("search")
            ledger.add_intervention("demo", "warn", "fi", "help")
        assert ledger.flush_now(), ledger.status
    ledger.close()
    """
)


def test_worker_processes_sum(url: str) -> None:
    """Separate processes, as `workers: N` or several replicas run them."""
    script = WORKER.format(now=T0 + 5)
    processes = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    rows = stored(url)
    assert rows["searches"] == {(T0, "search"): 3 * 25 * 8}
    assert rows["interventions"] == {(T0, "demo", "warn", "fi", "help"): 3 * 25 * 8}


async def test_run_flushes_periodically_and_aclose_flushes_the_rest(url: str) -> None:
    ledger = Ledger.from_url(url, clock=Clock())
    task = asyncio.create_task(ledger.run(0.05))
    fill(ledger)
    for _ in range(200):
        await asyncio.sleep(0.02)
        if ledger.status.last_flush is not None:
            break
    assert stored(url) == expected(T0)
    fill(ledger, 4)  # counted after the last periodic flush: the shutdown flush writes them
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await ledger.aclose()
    assert stored(url) == expected(T0, 5)
    assert ledger.status.pending == 0


def test_run_needs_a_positive_interval() -> None:
    ledger = Ledger.from_url("sqlite:unused.db")
    with pytest.raises(ValueError, match="positive"):
        asyncio.run(ledger.run(0))


def test_prune_deletes_old_buckets(url: str) -> None:
    clock = Clock(T0 + 10 * DAY + 300)
    ledger = Ledger.from_url(url, clock=clock)
    for day in (0, 5, 7, 8, 10):
        clock.now = T0 + day * DAY + 300
        fill(ledger)
    assert ledger.flush_now()
    clock.now = T0 + 10 * DAY + 300
    assert ledger.prune(3) == 2 * PER_FILL  # days 0 and 5: a row in every table each
    assert {hour for hour, _ in stored(url)["searches"]} == {T0 + d * DAY for d in (7, 8, 10)}
    with pytest.raises(ValueError, match="at least 1"):
        ledger.prune(0)
    ledger.close()


# --- failures -------------------------------------------------------------------------------


def test_sqlite_unreachable_file_keeps_counts_and_recovers(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    failures: list[int] = []
    clock = Clock()
    ledger = Ledger.from_url(
        f"sqlite:///{folder}/ledger.db", clock=clock, on_failure=lambda: failures.append(1)
    )
    fill(ledger, 2)
    assert ledger.flush_now() is False
    status = ledger.status
    assert status.failures == status.consecutive_failures == 1
    assert status.pending == 2 * PER_FILL
    assert status.last_error == "OperationalError: unable to open database file"
    assert failures == [1]
    fill(ledger)  # counting goes on while the database is unreachable
    assert ledger.flush_now() is False
    assert ledger.status.pending == 3 * PER_FILL
    assert ledger.status.failures == 2
    folder.mkdir()
    assert ledger.flush_now() is True
    status = ledger.status
    assert (status.pending, status.failures, status.consecutive_failures) == (0, 2, 0)
    assert status.last_error is None
    assert status.last_flush == clock.now
    assert stored(f"sqlite:///{folder}/ledger.db") == expected(T0, 3)
    ledger.close()


def test_sqlite_locked_database_keeps_counts_and_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger.from_url(url, clock=Clock(), busy_timeout=0.1)
    fill(ledger)
    assert ledger.flush_now()
    blocker = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    fill(ledger, 2)
    assert ledger.flush_now() is False
    assert ledger.status.last_error == "OperationalError: database is locked"
    assert ledger.status.pending == 2 * PER_FILL
    blocker.execute("COMMIT")
    blocker.close()
    assert ledger.flush_now() is True
    assert ledger.status.last_error is None
    assert stored(url) == expected(T0, 3)
    ledger.close()


class GatedBackend(Backend):
    """A database whose writes wait for a gate and fail while `failing` is set."""

    name = "sqlite"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.failing = False
        self.rows: dict[tuple[Any, ...], int] = {}

    def write(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        if self.failing:
            raise OSError(28, "No space left on device")
        for table, params in rows.items():
            for row in params:
                key = (table, *row[:-1])
                self.rows[key] = self.rows.get(key, 0) + row[-1]

    def prune(self, before_hour: int) -> int:
        return 0

    def close(self) -> None:
        pass


async def test_cancelling_run_during_a_flush_loses_nothing() -> None:
    backend = GatedBackend()
    ledger = Ledger(backend, clock=Clock())
    fill(ledger, 2)
    task = asyncio.create_task(ledger.run(0.01))
    await asyncio.to_thread(backend.entered.wait, 10)  # the flush is in the worker thread
    assert ledger.status.pending == 2 * PER_FILL  # in flight still counts as pending
    task.cancel()  # SIGTERM arrives mid-flush
    with contextlib.suppress(asyncio.CancelledError):
        await task
    fill(ledger)
    backend.gate.set()
    await ledger.aclose()
    assert backend.rows[("searches", T0, "search")] == 3
    assert ledger.status.pending == 0


async def test_a_full_disk_keeps_the_batch_for_the_next_flush() -> None:
    backend = GatedBackend()
    backend.gate.set()
    backend.failing = True
    ledger = Ledger(backend, clock=Clock())
    fill(ledger)
    assert await ledger.flush() is False
    assert ledger.status.last_error == "OSError: [Errno 28] No space left on device"
    assert ledger.status.pending == PER_FILL
    backend.failing = False
    fill(ledger)
    assert await ledger.flush() is True
    assert backend.rows[("interventions", T0, "demo", "block", "en", "harm")] == 2
    assert ledger.status.last_error is None


def test_postgresql_down_keeps_counts_and_hides_the_password() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://writer:s3cret-Pa55@127.0.0.1:{port}/ledger"
    ledger = Ledger.from_url(url, clock=Clock(), connect_timeout=2)
    fill(ledger, 3)
    assert ledger.flush_now() is False
    status = ledger.status
    assert status.pending == 3 * PER_FILL
    assert status.failures == 1
    assert status.last_error is not None
    assert status.last_error.startswith("OperationalError: ")
    assert "s3cret" not in status.last_error
    assert "s3cret" not in repr(dataclasses.asdict(status))
    assert "search" not in status.last_error
    assert "demo" not in status.last_error
    assert ledger.backend == "postgresql"


def test_postgresql_restarted_server_keeps_counts(postgres: PostgresServer, pg_url: str) -> None:
    """The real server stops (as in a failover or an upgrade) and comes back."""
    if not postgres.managed:
        pytest.skip("the server named by INTERCEPT_TEST_POSTGRES_URL is not stopped by tests")
    ledger = Ledger.from_url(pg_url, clock=Clock(), connect_timeout=2)
    fill(ledger)
    assert ledger.flush_now()
    postgres.stop()
    try:
        fill(ledger, 2)
        assert ledger.flush_now() is False  # the open connection is gone
        assert ledger.flush_now() is False  # and a new one is refused
        status = ledger.status
        assert status.pending == 2 * PER_FILL
        assert status.consecutive_failures == 2
        assert status.last_error is not None
        assert status.last_error.startswith("OperationalError")
    finally:
        postgres.start()
    fill(ledger)
    assert ledger.flush_now() is True
    assert ledger.status.last_error is None
    assert stored(pg_url) == expected(T0, 4)
    ledger.close()


def test_postgresql_refused_connections_keep_counts(postgres: PostgresServer, pg_url: str) -> None:
    """The database refuses connections and drops the ledger's session; then allows again."""
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    ledger = Ledger.from_url(pg_url, clock=Clock())
    fill(ledger)
    assert ledger.flush_now()
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        fill(ledger, 2)
        assert not ledger.flush_now()
        assert not ledger.flush_now()
        assert ledger.status.pending == 2 * PER_FILL
        assert ledger.status.failures == 2
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    assert ledger.flush_now()
    assert ledger.status.last_error is None
    assert stored(pg_url) == expected(T0, 3)
    ledger.close()


def test_postgresql_dropped_idle_session_is_replaced_at_once(
    postgres: PostgresServer, pg_url: str
) -> None:
    """The server ends the ledger's idle session (restart, failover, idle timeout): the flush
    opens a new one and succeeds; nothing is counted as a failure."""
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    ledger = Ledger.from_url(pg_url, clock=Clock())
    fill(ledger)
    assert ledger.flush_now()
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    fill(ledger)
    assert ledger.flush_now()
    assert ledger.status.failures == 0
    assert stored(pg_url) == expected(T0, 2)
    ledger.close()


def test_newer_schema_version_is_refused(url: str) -> None:
    ledger = Ledger.from_url(url, clock=Clock())
    fill(ledger)
    assert ledger.flush_now()
    ledger.close()
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            conn.execute("UPDATE ledger_meta SET value = '99'")
            conn.commit()
    else:
        import psycopg

        with psycopg.connect(url) as pg:
            pg.execute("UPDATE ledger_meta SET value = '99'")
    later = Ledger.from_url(url, clock=Clock())
    fill(later)
    assert not later.flush_now()
    assert later.status.last_error is not None
    assert "schema version 99" in later.status.last_error
    with pytest.raises(LedgerError, match="schema version 99"):
        LedgerReader(url)


# --- schema and privacy ---------------------------------------------------------------------


def columns(url: str) -> dict[str, list[str]]:
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    import psycopg

    with psycopg.connect(url) as pg:
        out: dict[str, list[str]] = {}
        for table, column in pg.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ):
            out.setdefault(table, []).append(column)
        return out


def test_schema_is_exactly_the_documented_one(url: str) -> None:
    ledger = Ledger.from_url(url, clock=Clock())
    fill(ledger)
    assert ledger.flush_now()
    ledger.close()
    assert columns(url) == {
        "ledger_meta": ["key", "value"],
        "searches": ["hour", "route", "count"],
        "interventions": ["hour", "category", "action", "language", "variant", "count"],
        "clicks": ["hour", "link", "variant", "count"],
        "shadow_hits": ["hour", "rule_id", "count"],
        "warn_continues": ["hour", "category", "variant", "language", "count"],
        "survey_answers": ["hour", "question", "option", "variant", "language", "count"],
        "experiment_pages": ["hour", "experiment", "design", "count"],
    }


def test_sqlite_file_holds_only_label_values(tmp_path: Path, make_rules: Any) -> None:
    """Requests carrying a canary query, address and user agent leave no trace of them."""
    from tests.conftest import spec

    canary = "zqxcanary7741"
    rules = make_rules(
        spec("DEMO-001", "blocked example"), spec("DEMO-009", "trial", action="shadow")
    )
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger.from_url(url, clock=Clock())
    requests = [
        {"q": f"blocked example {canary}", "ip": "203.0.113.77", "ua": f"Mozilla/5.0 {canary}"},
        {"q": f"{canary} trial", "ip": "198.51.100.9", "ua": "curl/8.0"},
        {"q": f"nothing here {canary}", "ip": "192.0.2.1", "ua": "Lynx"},
    ]
    for request in requests:  # what a front door does with each request
        ledger.add_search("search")
        match = rules.match(request["q"])
        if match is None:
            continue
        ledger.add_intervention(match.category, match.action.value, match.language, "harm")
        if match.action.value == "shadow":
            ledger.add_shadow(match.rule_id)
    ledger.add_click("survey", "harm")
    assert ledger.flush_now()
    ledger.close()
    files = sorted(tmp_path.iterdir())
    data = b"".join(path.read_bytes() for path in files)
    for value in ("search", "demo", "block", "harm", "DEMO-009", "survey"):
        assert value.encode() in data  # the scan sees what is stored...
    for request in requests:  # ...and nothing of the requests
        for secret in request.values():
            assert secret.encode() not in data
    assert canary.encode() not in data
    assert b"blocked example" not in data
    assert stored(url)["searches"] == {(T0, "search"): 3}
    assert stored(url)["shadow_hits"] == {(T0, "DEMO-009"): 1}


# --- URLs, status, scrubbing, reading -------------------------------------------------------


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = Ledger.from_url("sqlite:data/ledger.db", clock=Clock())
    assert relative.backend == "sqlite"
    (tmp_path / "data").mkdir()
    relative.add_search("search")
    assert relative.flush_now()
    assert (tmp_path / "data" / "ledger.db").is_file()
    relative.close()
    absolute = from_url(f"sqlite:///{tmp_path}/abs.db")
    absolute.add_search("search")
    assert absolute.flush_now()
    assert (tmp_path / "abs.db").is_file()
    absolute.close()
    assert from_url(f"sqlite:////{tmp_path}/abs.db").backend == "sqlite"
    assert from_url("postgres://u:p@db.example:5432/ledger").backend == "postgresql"
    assert from_url("postgresql://db.example/ledger?sslmode=require").backend == "postgresql"
    for bad, message in [
        ("mysql://u:hunter2@h/db", "unknown ledger URL 'mysql'"),
        ("ledger.db", "unknown ledger URL"),
        ("sqlite://host/ledger.db", "no host"),
        ("sqlite:", "needs a file name"),
        ("sqlite::memory:", "needs a file name"),
    ]:
        with pytest.raises(LedgerError, match=message) as raised:
            from_url(bad)
        assert "hunter2" not in str(raised.value)


def test_status_is_a_frozen_json_ready_snapshot() -> None:
    ledger = Ledger.from_url("sqlite:unused.db")
    status = ledger.status
    assert isinstance(status, LedgerStatus)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.pending = 3  # type: ignore[misc]
    assert dataclasses.asdict(status) == {
        "backend": "sqlite",
        "last_flush": None,
        "pending": 0,
        "failures": 0,
        "consecutive_failures": 0,
        "last_error": None,
    }


def test_scrub_error_removes_secrets_and_values() -> None:
    error = RuntimeError(
        'connection to server at "10.0.0.5", port 5432 failed: password authentication '
        'failed for user "writer"\nDETAIL: Key (route)=(search) already exists'
    )
    text = scrub_error(error, keep=("10.0.0.5",), secrets=("pa55",))
    assert text == (
        'RuntimeError: connection to server at "10.0.0.5", port 5432 failed: password '
        'authentication failed for user "…"'
    )
    assert scrub_error(ValueError("bad dsn postgresql://u:pa55@h/db password=pa55")) == (
        "ValueError: bad dsn <url> password=***"
    )
    assert scrub_error(ValueError("x pa55 y"), secrets=("pa55",)) == "ValueError: x *** y"
    assert scrub_error(KeyError()) == "KeyError"
    assert len(scrub_error(ValueError("x" * 1000))) < 220


def test_reader_sums_per_day(url: str) -> None:
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    for hour in (0, 5, 23, 24, 30):
        clock.now = T0 + hour * HOUR + 60
        fill(ledger, 2)
    assert ledger.flush_now()
    ledger.close()
    with LedgerReader(url) as reader:
        rows = reader.daily("searches", T0, T0 + 2 * DAY)
        assert [(r.day, r.labels, r.count) for r in rows] == [
            (T0 // DAY, ("search",), 6),
            (T0 // DAY + 1, ("search",), 4),
        ]
        rows = reader.daily("interventions", T0 + DAY, T0 + DAY + 7 * HOUR)
        assert [(r.day, r.labels, r.count) for r in rows] == [
            (T0 // DAY + 1, ("demo", "block", "en", "harm"), 4)
        ]
        with pytest.raises(ValueError, match="unknown ledger table"):
            reader.daily("queries", 0, 1)


def test_reader_never_creates_a_ledger(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no such ledger file"):
        LedgerReader(f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists()
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerError, match="not an Intercept ledger"):
        LedgerReader(f"sqlite:///{other}")


def test_reader_hides_the_password_of_an_unreachable_server() -> None:
    url = f"postgresql://reader:s3cret-Pa55@127.0.0.1:{free_port()}/ledger"
    with pytest.raises(LedgerError) as raised:
        LedgerReader(url)
    assert "s3cret" not in str(raised.value)
    assert "postgresql://reader:***@127.0.0.1" in str(raised.value)


def test_report_reads_postgresql(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`intercept report` over the PostgreSQL ledger that replicas share."""
    import json

    from intercept.cli import main

    for _ in range(2):  # two replicas
        ledger = Ledger.from_url(pg_url, clock=Clock())
        for _ in range(30):
            ledger.add_search("search")
        for _ in range(12):
            ledger.add_intervention("demo", "block", "en", "harm")
        assert ledger.flush_now()
        ledger.close()
    code = main(
        ["report", "--ledger", pg_url, "--from", "2026-09-21", "--to", "2026-09-21",
         "--by", "day", "--format", "json"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    (day,) = json.loads(out)["periods"]
    assert (day["period"], day["searches"], day["interventions"]) == ("2026-09-21", 60, 24)
    assert day["intervention_rate"] == 0.4


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_stopping_intercept_serve(sig: str, tmp_path: Path) -> None:
    """A real `intercept serve`. SIGTERM and SIGINT, with a flush interval far longer than the
    test: every count reaches the ledger because the stop flushes. SIGKILL (a crash) after a
    flush interval has passed: the counts of before that flush are there."""
    import os
    import signal
    import urllib.error
    import urllib.request

    port = free_port()
    database = tmp_path / "ledger.db"
    env = {
        **os.environ,
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": f"sqlite:{database}",
        "INTERCEPT_LEDGER__FLUSH_SECONDS": "0.2" if sig == "SIGKILL" else "300",
        "INTERCEPT_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
    }
    command = demo_serve("authz", port, "--upstream", "http://127.0.0.1:9")
    with intercept_process(*command, env=env) as proc:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in ready, proc.stderr.read() if proc.stderr else ""
        statuses = []
        for query in ["blocked+example"] * 3 + ["garden+chairs"] * 4:
            url = f"http://127.0.0.1:{port}/_intercept/authz/search?q={query}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
        assert statuses == [403] * 3 + [200] * 4
        if sig == "SIGKILL":
            deadline = time.monotonic() + 10
            while sum(stored(f"sqlite://{database}")["searches"].values()) < 7:
                assert time.monotonic() < deadline, "no flush within 10 s"
                time.sleep(0.1)
            proc.kill()
            proc.wait(timeout=15)
        else:
            assert stored(f"sqlite://{database}")["searches"] == {}  # not flushed yet
            proc.send_signal(getattr(signal, sig))
            assert proc.wait(timeout=15) == 0
    rows = stored(f"sqlite://{database}")
    assert sum(rows["searches"].values()) == 7
    assert sum(rows["interventions"].values()) == 3
    assert {labels[1] for labels in rows["interventions"]} == {"demo"}
