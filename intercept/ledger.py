"""The research ledger: hourly aggregate counts in SQLite or PostgreSQL, and nothing else.

What is stored: per UTC hour (the bucket is the hour's start as Unix seconds), counts of
searches by route, interventions by category, action, language and message variant, clicks by
link id and variant, and shadow-rule hits by rule id. Every label comes from the rule files and
the messages configuration. No query text, client address, user agent, cookie or per-request
identifier ever reaches the ledger: its methods take only those labels.

How it is written: `add_*` calls are O(1) increments of an in-memory buffer (they run on the
request path). `run(interval)` flushes the buffer every `interval` seconds in a worker thread,
one transaction per flush, adding to the stored counts with an upsert, so several processes
(workers of one host sharing a SQLite file, or replicas sharing a PostgreSQL database) sum their
counts. `aclose()` flushes what is left: a graceful stop (SIGTERM, SIGINT) loses nothing. A
crash (SIGKILL, power loss) loses the counts buffered since the last successful flush: at most
one flush interval, plus whatever was still pending because the database was unreachable
(`status.pending` shows how many).

Counts that cannot be written at shutdown (a full disk, a database that is down) go to a local
spool file, when the ledger has one (`intercept serve` always gives it one: `ledger.spool`):
the same aggregate rows, replayed into the ledger by the next start, and after every later
successful flush (idempotently: see `intercept.spool`). Only when the spool cannot be written
either are they lost, and their number is logged.

A database that is down, locked or full never fails a request: a failed flush puts its counts
back into the buffer, to be retried with the next flush; the failure is counted in
`status.failures` and described (exception type and a scrubbed message, with no password and
no label value) in `status.last_error` until a flush succeeds again. If a commit fails in a way
that leaves unknown whether the database applied it (the connection drops during COMMIT), the
retry may count that batch twice; it never loses it.

URLs (`Ledger.from_url`): `sqlite:relative/path.db`, `sqlite:///absolute/path.db`,
`postgresql://user:password@host:port/database` (also `postgres://`, and libpq query
parameters such as `?sslmode=require`). PostgreSQL needs the `psycopg` package (version 3).

Retention: `prune(older_than_days)` deletes hourly buckets older than that many days from every
table (call it daily, e.g. with the configured retention).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

from intercept.errors import InterceptError
from intercept.spool import Spool, SpoolError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "DAY",
    "HOUR",
    "NO_PAGE",
    "SCHEMA_VERSION",
    "TABLES",
    "DailyCount",
    "Ledger",
    "LedgerError",
    "LedgerReader",
    "LedgerStatus",
    "from_url",
    "open_reader",
    "redacted_url",
    "scrub_error",
    "sqlite_path",
]

logger = logging.getLogger("intercept.ledger")

SCHEMA_VERSION: Final = 1
HOUR: Final = 3600
DAY: Final = 86400

#: The `variant` of an intervention that showed no page: a shadow hit, or an autocomplete
#: route's empty suggestion list. Such rows take no part in click-through per variant.
NO_PAGE: Final = "none"

#: Each table's label columns, in primary-key order (after `hour`). Nothing else is stored.
TABLES: Final[dict[str, tuple[str, ...]]] = {
    "searches": ("route",),
    "interventions": ("category", "action", "language", "variant"),
    "clicks": ("link", "variant"),
    "shadow_hits": ("rule_id",),
}

# (table, hour start in Unix seconds, label values in TABLES order)
_Key = tuple[str, int, tuple[str, ...]]
_Batch = dict[_Key, int]


class LedgerError(InterceptError):
    """The ledger cannot be opened or read (bad URL, missing file, not a ledger database).

    Messages never hold a password. Failures of the background flush are not raised: they are
    reported in `Ledger.status`."""


@dataclass(frozen=True, slots=True)
class LedgerStatus:
    """A snapshot of the ledger for `/readyz` and `/admin/status` (JSON-ready with `asdict`).

    - `backend`: "sqlite" or "postgresql".
    - `last_flush`: Unix time of the last flush that wrote counts, None before the first one.
    - `pending`: counted events not yet written (buffered, or in a flush that is running).
    - `failures`: failed flushes since start; `consecutive_failures` since the last success.
    - `last_error`: the last failure as "ExceptionType: scrubbed message" while the ledger is
      failing, None once a flush succeeds again (and before any failure).
    """

    backend: str
    last_flush: float | None
    pending: int
    failures: int
    consecutive_failures: int
    last_error: str | None


# --- scrubbing ------------------------------------------------------------------------------

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_SECRET_KV = re.compile(r"(?i)\b(password|passwd|pwd|user|dbname)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|«[^»]*»")


def scrub_error(
    error: BaseException, *, keep: Iterable[str] = (), secrets: Iterable[str] = ()
) -> str:
    """`ExceptionType: first line of the message`, with URLs, `key=value` credentials, quoted
    values (which may hold a label value or a password) and every string in `secrets`
    removed; a quoted string equal to one in `keep` (the server's host name) stays."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL.sub("<url>", text)
    text = _SECRET_KV.sub(lambda m: f"{m.group(1)}=***", text)
    kept = set(keep)
    text = _QUOTED.sub(lambda m: m.group(0) if m.group(0)[1:-1] in kept else '"…"', text)
    if len(text) > 200:
        text = text[:199] + "…"
    name = type(error).__name__
    return f"{name}: {text}" if text else name


# --- backends -------------------------------------------------------------------------------


def _ddl() -> list[str]:
    statements = [
        "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ]
    for table, labels in TABLES.items():
        columns = ", ".join(f"{label} TEXT NOT NULL" for label in labels)
        key = ", ".join(("hour", *labels))
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table} (hour BIGINT NOT NULL, {columns}, "
            f"count BIGINT NOT NULL, PRIMARY KEY ({key}))"
        )
    return statements


def _upsert_sql(table: str, placeholder: str) -> str:
    labels = TABLES[table]
    columns = ", ".join(("hour", *labels, "count"))
    values = ", ".join([placeholder] * (len(labels) + 2))
    key = ", ".join(("hour", *labels))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({key}) "
        f"DO UPDATE SET count = {table}.count + excluded.count"
    )


def _daily_sql(table: str, placeholder: str) -> str:
    labels = ", ".join(TABLES[table])
    return (
        f"SELECT hour / {DAY} AS day, {labels}, CAST(SUM(count) AS BIGINT) FROM {table} "
        f"WHERE hour >= {placeholder} AND hour < {placeholder} "
        f"GROUP BY day, {labels} ORDER BY day, {labels}"
    )


# A replayed spool file's marker: key `spool:<file id>`, value the replay's Unix time (so
# that pruning removes it with the buckets of its age).
_MARK_SQL: Final = (
    "INSERT INTO ledger_meta (key, value) VALUES ('spool:' || %s, %s) ON CONFLICT (key) DO NOTHING"
)
_UNMARK_SQL: Final = (
    "DELETE FROM ledger_meta WHERE key LIKE 'spool:%%' AND CAST(value AS BIGINT) < %s"
)


def _rows_by_table(batch: _Batch) -> dict[str, list[tuple[Any, ...]]]:
    """The batch as upsert parameters per table, sorted so that concurrent writers take row
    locks in the same order (no deadlocks between replicas)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for (table, hour, labels), count in sorted(batch.items()):
        if count:
            out.setdefault(table, []).append((hour, *labels, count))
    return out


def _check_version(found: object) -> None:
    if str(found) != str(SCHEMA_VERSION):
        raise LedgerError(
            f"ledger schema version {found} is not the version {SCHEMA_VERSION} this Intercept "
            "writes (upgrade Intercept, or use a new ledger database)"
        )


class _Backend(ABC):
    """One database. Methods run in worker threads, serialized by the ledger's I/O lock."""

    name: str

    @abstractmethod
    def write(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        """Add the rows' counts in one transaction; raise on any failure (nothing applied)."""

    def write_once(self, rows: dict[str, list[tuple[Any, ...]]], marker: str, now: int) -> bool:
        """Add the rows' counts together with the marker `marker` in `ledger_meta`, in one
        transaction, unless the marker is already there (then add nothing and return False):
        a spool file is replayed at most once, whatever crashes or races."""
        raise NotImplementedError(f"{type(self).__name__} cannot replay a spool")

    @abstractmethod
    def prune(self, before_hour: int) -> int:
        """Delete buckets older than `before_hour`; return the number of rows deleted."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection, if any."""

    def describe(self, error: BaseException) -> str:
        return scrub_error(error)


class _SQLite(_Backend):
    name = "sqlite"

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited over fork is never used
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _ddl():
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO ledger_meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO NOTHING",
                    (str(SCHEMA_VERSION),),
                )
                (found,) = conn.execute(
                    "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
                ).fetchone()
                _check_version(found)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _transaction(self, work: Callable[[sqlite3.Connection], int]) -> int:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            self.close()  # reopen next time: the file may have moved, or be repaired
            raise
        return result

    def write(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        def work(conn: sqlite3.Connection) -> int:
            for table, params in rows.items():
                conn.executemany(_upsert_sql(table, "?"), params)
            return 0

        self._transaction(work)

    def write_once(self, rows: dict[str, list[tuple[Any, ...]]], marker: str, now: int) -> bool:
        def work(conn: sqlite3.Connection) -> int:
            if conn.execute(_MARK_SQL.replace("%s", "?"), (marker, str(now))).rowcount != 1:
                return 0  # replayed before (the file outlived a crash)
            for table, params in rows.items():
                conn.executemany(_upsert_sql(table, "?"), params)
            return 1

        return self._transaction(work) == 1

    def prune(self, before_hour: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            deleted = 0
            for table in TABLES:
                deleted += conn.execute(
                    f"DELETE FROM {table} WHERE hour < ?", (before_hour,)
                ).rowcount
            conn.execute(_UNMARK_SQL.replace("%s", "?"), (before_hour,))
            return deleted

        return self._transaction(work)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):  # closing a broken connection
                conn.close()


class _PostgreSQL(_Backend):
    name = "postgresql"

    def __init__(self, url: str, connect_timeout: float) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        parts = urlsplit(url)
        self._host = parts.hostname or ""
        self._secrets = tuple(s for s in (parts.password, unquote(parts.password or "")) if s)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._pid = 0

    def describe(self, error: BaseException) -> str:
        return scrub_error(error, keep=(self._host,), secrets=self._secrets)

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        conn = self._conn
        if conn is not None and self._pid == os.getpid() and not conn.closed:
            return conn
        self._conn = None
        conn = psycopg.connect(
            self.url, connect_timeout=max(1, round(self.connect_timeout)), autocommit=False
        )
        try:
            with conn.transaction():
                conn.execute("SET LOCAL statement_timeout = 30000")
                # one process at a time creates the tables (concurrent CREATE IF NOT EXISTS
                # can collide in the catalog)
                conn.execute("SELECT pg_advisory_xact_lock(7263540131)")
                for statement in _ddl():
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO ledger_meta (key, value) VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO NOTHING",
                    (str(SCHEMA_VERSION),),
                )
                row = conn.execute(
                    "SELECT value FROM ledger_meta WHERE key = 'schema_version'"
                ).fetchone()
                _check_version(None if row is None else row[0])
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _transaction(self, work: Callable[[psycopg.Connection[tuple[Any, ...]]], int]) -> int:
        import psycopg

        for attempt in (1, 2):
            reused = self._conn is not None and self._pid == os.getpid() and not self._conn.closed
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL statement_timeout = 30000")
                    return work(conn)
            except psycopg.OperationalError:
                broken = conn.broken
                self.close()
                # a kept connection that the server dropped while idle (restart, failover,
                # idle timeout): one more try on a new one, within this flush
                if attempt == 1 and reused and broken:
                    continue
                raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        def work(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
            with conn.cursor() as cursor:
                for table, params in rows.items():
                    cursor.executemany(_upsert_sql(table, "%s"), params)
            return 0

        self._transaction(work)

    def write_once(self, rows: dict[str, list[tuple[Any, ...]]], marker: str, now: int) -> bool:
        def work(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
            # a concurrent replay of the same file waits here for the first to commit
            if conn.execute(_MARK_SQL, (marker, str(now))).rowcount != 1:
                return 0
            with conn.cursor() as cursor:
                for table, params in rows.items():
                    cursor.executemany(_upsert_sql(table, "%s"), params)
            return 1

        return self._transaction(work) == 1

    def prune(self, before_hour: int) -> int:
        def work(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
            deleted = 0
            for table in TABLES:
                cursor = conn.execute(f"DELETE FROM {table} WHERE hour < %s", (before_hour,))
                deleted += max(cursor.rowcount, 0)
            conn.execute(_UNMARK_SQL, (before_hour,))
            return deleted

        return self._transaction(work)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):  # closing a broken connection
                conn.close()


# --- URLs -----------------------------------------------------------------------------------


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:` ledger URL, as written (relative paths stay relative)."""
    rest = url[len("sqlite:") :]
    if rest.startswith("//"):
        # sqlite:///abs/path (empty authority); sqlite:////abs/path is accepted too
        authority, _, path = rest[2:].partition("/")
        if authority:
            raise LedgerError(
                "a sqlite URL has no host: use sqlite:relative/path.db or sqlite:///absolute/path.db"
            )
        path = "/" + path.lstrip("/")
    else:
        path = rest
    path = unquote(path.partition("?")[0])
    if not path or path.endswith("/") or path == ":memory:":
        raise LedgerError(f"sqlite ledger URL needs a file name, got {url!r}")
    return Path(path)


def redacted_url(url: str) -> str:
    """`url` with any password replaced by ***, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _backend(url: str, *, busy_timeout: float, connect_timeout: float) -> _Backend:
    if url.startswith("sqlite:"):
        return _SQLite(sqlite_path(url).absolute(), busy_timeout)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # noqa: F401
        except ImportError as error:
            raise LedgerError(
                "a postgresql ledger needs the psycopg package: pip install 'psycopg[binary]'"
            ) from error
        return _PostgreSQL(url, connect_timeout)
    scheme = url.partition(":")[0] if ":" in url else url
    raise LedgerError(
        f"unknown ledger URL {redacted_url(scheme)!r}: use sqlite:PATH, sqlite:///ABSOLUTE/PATH or "
        "postgresql://user:password@host:port/database"
    )


# --- the ledger -----------------------------------------------------------------------------


class Ledger:
    """Hourly aggregate counts, buffered in memory and flushed to a database.

    `add_*` may be called from any thread (a short lock guards the buffer); in the aiohttp
    server they run on the event loop and `run()` does the database I/O in a worker thread.
    With a `spool` (a path prefix, see `intercept.spool`), counts that the last flush of
    `aclose()` or `close()` cannot write are spooled there, and `run()` replays spool files
    at its start and after every successful flush.
    """

    def __init__(
        self,
        backend: _Backend,
        *,
        clock: Callable[[], float] = time.time,
        on_failure: Callable[[], None] | None = None,
        spool: Path | None = None,
    ) -> None:
        self._backend = backend
        self._spool = None if spool is None else Spool(spool, TABLES)
        self._spooled = (0, 0) if self._spool is None else self._spool.waiting()
        self._clock = clock
        self._on_failure = on_failure
        self._buffer: _Batch = {}
        self._lock = threading.Lock()  # guards _buffer and _inflight_events
        self._io_lock = threading.Lock()  # one database operation at a time
        self._inflight_events = 0
        self._inflight: asyncio.Task[bool] | None = None
        self._last_flush: float | None = None
        self._failures = 0
        self._consecutive = 0
        self._last_error: str | None = None
        self.before_take: Callable[[], None] | None = None
        alive = weakref.ref(self)

        def forget_in_child() -> None:  # the parent writes what it buffered, not the child
            ledger = alive()
            if ledger is not None:
                ledger._forget()

        os.register_at_fork(after_in_child=forget_in_child)

    def _forget(self) -> None:
        self._lock, self._io_lock = threading.Lock(), threading.Lock()
        self._buffer = {}
        self._inflight_events = 0
        self._inflight = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        on_failure: Callable[[], None] | None = None,
        busy_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        spool: Path | None = None,
    ) -> Ledger:
        """A ledger writing to `url` (see the module docstring). Nothing is opened until the
        first flush, so a database that is down does not stop the server from starting.
        `on_failure` is called once per failed flush (on the event loop for `run()`), e.g. to
        increment a metric. `spool`: see the class. Raises `LedgerError` for a URL it cannot
        use."""
        backend = _backend(url, busy_timeout=busy_timeout, connect_timeout=connect_timeout)
        return cls(backend, clock=clock, on_failure=on_failure, spool=spool)

    # -- the hot path --

    def _hour(self) -> int:
        now = int(self._clock())
        return now - now % HOUR

    def _add(self, key: _Key, count: int) -> None:
        with self._lock:
            buffer = self._buffer
            buffer[key] = buffer.get(key, 0) + count

    def add_search(self, route: str, count: int = 1) -> None:
        """Count `count` searches on route `route`."""
        self._add(("searches", self._hour(), (route,)), count)

    def add_intervention(
        self, category: str, action: str, language: str, variant: str, count: int = 1
    ) -> None:
        """Count `count` interventions (the matched rule's category and action, the page
        language and message variant)."""
        self._add(("interventions", self._hour(), (category, action, language, variant)), count)

    def add_click(self, link: str, variant: str) -> None:
        """Count one click on link id `link` of a page in message variant `variant`."""
        self._add(("clicks", self._hour(), (link, variant)), 1)

    def add_shadow(self, rule_id: str) -> None:
        """Count one hit of shadow rule `rule_id`."""
        self._add(("shadow_hits", self._hour(), (rule_id,)), 1)

    # -- flushing --

    def _take(self) -> _Batch:
        if self.before_take is not None:
            self.before_take()  # counts held elsewhere come in first (intercept.counting)
        with self._lock:
            batch, self._buffer = self._buffer, {}
            self._inflight_events += sum(batch.values())
        return batch

    def _write(self, batch: _Batch) -> BaseException | None:
        """Write `batch` (in any thread); the failure, if any, is returned, not raised."""
        rows = _rows_by_table(batch)
        try:
            with self._io_lock:
                if rows:
                    self._backend.write(rows)
        except Exception as error:  # a broken database must never reach a request
            return error
        return None

    def _settle(self, batch: _Batch, error: BaseException | None) -> bool:
        """Account for a finished write: on failure the batch goes back into the buffer."""
        events = sum(batch.values())
        with self._lock:
            self._inflight_events -= events
            if error is not None:
                buffer = self._buffer
                for key, count in batch.items():
                    buffer[key] = buffer.get(key, 0) + count
        if error is None:
            self._last_flush = self._clock()
            self._consecutive = 0
            self._last_error = None
            return True
        self._failures += 1
        self._consecutive += 1
        self._last_error = self._backend.describe(error)
        if self._consecutive == 1 or self._consecutive % 100 == 0:
            logger.warning(
                "research ledger: flush failed (%d in a row), %d counts kept for retry: %s",
                self._consecutive,
                self.status.pending,
                self._last_error,
            )
        if self._on_failure is not None:
            try:
                self._on_failure()
            except Exception:  # pragma: no cover - a metric hook must not break flushing
                logger.exception("research ledger: on_failure hook failed")
        return False

    def flush_now(self) -> bool:
        """Write the buffered counts now, in this thread (tests, shutdown without a loop).
        True when everything taken was written (or nothing was pending); on failure the
        counts stay buffered for the next flush."""
        batch = self._take()
        if not batch:
            return True
        return self._settle(batch, self._write(batch))

    async def _flush(self) -> bool:
        if self._inflight is not None:  # a slow database: never two flushes at once
            return await asyncio.shield(self._inflight)
        batch = self._take()
        if not batch:
            return True

        async def write_and_settle() -> bool:
            error = await asyncio.to_thread(self._write, batch)
            return self._settle(batch, error)

        task = asyncio.get_running_loop().create_task(write_and_settle())
        self._inflight = task

        def done(_: asyncio.Task[bool]) -> None:
            if self._inflight is task:
                self._inflight = None

        task.add_done_callback(done)
        # shielded: cancelling run() mid-flush never loses the batch; it is settled anyway
        return await asyncio.shield(task)

    async def flush(self) -> bool:
        """Write the buffered counts now, in a worker thread (see `flush_now`)."""
        return await self._flush()

    async def run(self, interval: float) -> None:
        """Replay the spool, then flush every `interval` seconds until cancelled (then call
        `aclose()`); after every successful flush, replay spool files that appeared (a
        sibling worker's, spooled while the database was down)."""
        if interval <= 0:
            raise ValueError("the flush interval must be positive")
        if self._spool is not None:
            await asyncio.to_thread(self.replay_spool)
        while True:
            await asyncio.sleep(interval)
            if await self._flush() and self._spool is not None:
                await asyncio.to_thread(self.replay_spool)

    async def aclose(self) -> None:
        """The final flush (one attempt, after any flush in flight), then close the
        database. Counts that cannot be written now go to the spool; only if there is none,
        or it cannot be written either, are they lost, and their number is logged."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
        ok = await self._flush()
        if not ok:
            await asyncio.to_thread(self._spool_rest, "shutdown")
        await asyncio.to_thread(self._close_backend)

    def close(self) -> None:
        """`flush_now()` (spooling what it cannot write), then close the database
        (synchronous `aclose`)."""
        if not self.flush_now():
            self._spool_rest("close")
        self._close_backend()

    def _spool_rest(self, when: str) -> None:
        """The buffered counts into a new spool file; kept buffered (and logged as lost at
        exit) when there is no spool or it cannot be written."""
        with self._lock:
            batch = {key: count for key, count in self._buffer.items() if count}
            self._buffer = {}
        events = sum(batch.values())
        problem = "no spool configured"
        if self._spool is not None and batch:
            try:
                path = self._spool.write(batch.items())
            except OSError as error:
                problem = f"nor spooled: {scrub_error(error)}"
            else:
                with self._lock:
                    rows, counts = self._spooled
                    self._spooled = (rows + len(batch), counts + events)
                logger.warning(
                    "research ledger: %d counts could not be written at %s (%s); spooled as "
                    "%d rows to %s, added to the ledger by the next start",
                    events,
                    when,
                    self._last_error,
                    len(batch),
                    path,
                )
                return
        with self._lock:
            buffer = self._buffer
            for key, count in batch.items():
                buffer[key] = buffer.get(key, 0) + count
        logger.error(
            "research ledger: %d counts could not be written at %s: %s; %s",
            self.status.pending,
            when,
            self._last_error,
            problem,
        )

    def replay_spool(self) -> int:
        """Add every spool file's rows to the ledger (each file once: see `intercept.spool`)
        and delete the files; stop at the first database failure (the files stay for the
        next attempt). Blocking. Returns the number of counts added."""
        spool = self._spool
        if spool is None:
            return 0
        added = waiting_rows = waiting_counts = 0
        failing = False
        for path in spool.files():
            try:
                content = spool.read(path)
            except SpoolError as error:
                logger.warning(
                    "research ledger: spool file %s is malformed (%s); set aside as %s.bad",
                    path,
                    error,
                    path.name,
                )
                spool.quarantine(path)
                continue
            except OSError:  # gone meanwhile: a sibling worker replayed it
                continue
            if not failing:
                try:
                    with self._io_lock:
                        applied = self._backend.write_once(
                            _rows_by_table(content.rows), content.id, int(self._clock())
                        )
                except Exception as error:
                    failing = True
                    logger.warning(
                        "research ledger: spool not replayed yet (%d counts wait): %s",
                        content.counts,
                        self._backend.describe(error),
                    )
                else:
                    spool.remove(path)
                    if applied:
                        added += content.counts
                        logger.info(
                            "research ledger: %d spooled counts (%d rows) added from %s",
                            content.counts,
                            len(content.rows),
                            path,
                        )
                    continue
            waiting_rows += len(content.rows)
            waiting_counts += content.counts
        with self._lock:
            self._spooled = (waiting_rows, waiting_counts)
        return added

    @property
    def spool(self) -> dict[str, Any]:
        """For `/admin/status`: the spool's path prefix (None without a spool) and the rows
        and counts in its files waiting to be replayed, as last seen (when the ledger was
        made, after each replay attempt, and after spooling)."""
        with self._lock:
            rows, counts = self._spooled
        prefix = None if self._spool is None else str(self._spool.prefix)
        return {"spool": prefix, "spooled_rows": rows, "spooled_counts": counts}

    def _close_backend(self) -> None:
        with self._io_lock:
            self._backend.close()

    # -- maintenance and status --

    def prune(self, older_than_days: int) -> int:
        """Delete every hourly bucket that started more than `older_than_days` days ago
        (from all four tables, in one transaction); return how many rows went. Blocking:
        call it through `asyncio.to_thread` on an event loop. Raises what the database
        raises."""
        if older_than_days < 1:
            raise ValueError("older_than_days must be at least 1")
        now = int(self._clock())
        cutoff = now - now % HOUR - older_than_days * DAY
        with self._io_lock:
            return self._backend.prune(cutoff)

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._backend.name

    @property
    def status(self) -> LedgerStatus:
        """How the ledger is doing (see `LedgerStatus`)."""
        with self._lock:
            pending = sum(self._buffer.values()) + self._inflight_events
        return LedgerStatus(
            backend=self._backend.name,
            last_flush=self._last_flush,
            pending=pending,
            failures=self._failures,
            consecutive_failures=self._consecutive,
            last_error=self._last_error,
        )


def from_url(url: str, **options: Any) -> Ledger:
    """`Ledger.from_url(url, **options)`."""
    return Ledger.from_url(url, **options)


# --- reading, for reports -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DailyCount:
    """Counts of one table summed over one UTC day for one combination of labels."""

    day: int  # days since 1970-01-01 (UTC)
    labels: tuple[str, ...]  # in TABLES order
    count: int


class LedgerReader:
    """Read-only access for `intercept report`: counts summed per UTC day. Opening never
    creates a database: a missing SQLite file or a database without ledger tables is a
    `LedgerError`."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = url
        backend = _backend(url, busy_timeout=5.0, connect_timeout=connect_timeout)
        self._backend = backend
        self._sqlite: sqlite3.Connection | None = None
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = None
        try:
            if isinstance(backend, _SQLite):
                if not backend.path.is_file():
                    raise LedgerError(f"{url}: no such ledger file ({backend.path})")
                uri = backend.path.resolve().as_uri() + "?mode=ro"
                self._sqlite = sqlite3.connect(uri, uri=True, timeout=5.0)
            else:
                assert isinstance(backend, _PostgreSQL)
                import psycopg

                self._pg = psycopg.connect(url, connect_timeout=round(connect_timeout))
                self._pg.read_only = True
            self._check()
        except LedgerError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise LedgerError(
                f"cannot read ledger {redacted_url(url)}: {backend.describe(error)}"
            ) from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._sqlite is not None:
            return list(self._sqlite.execute(sql.replace("%s", "?"), tuple(params)).fetchall())
        assert self._pg is not None
        return list(self._pg.execute(sql, tuple(params)).fetchall())

    def _check(self) -> None:
        try:
            rows = self._query("SELECT value FROM ledger_meta WHERE key = 'schema_version'")
        except Exception:
            raise LedgerError(
                f"{redacted_url(self.url)} is not an Intercept ledger (no ledger_meta table)"
            ) from None
        _check_version(rows[0][0] if rows else None)

    def daily(self, table: str, start: int, end: int) -> list[DailyCount]:
        """`table`'s counts summed per UTC day and label combination, for hourly buckets in
        [start, end) (Unix seconds)."""
        if table not in TABLES:
            raise ValueError(f"unknown ledger table {table!r}")
        width = len(TABLES[table])
        try:
            rows = self._query(_daily_sql(table, "%s"), (start, end))
        except Exception as error:
            raise LedgerError(
                f"cannot read ledger {redacted_url(self.url)}: {self._backend.describe(error)}"
            ) from None
        return [
            DailyCount(int(row[0]), tuple(str(v) for v in row[1 : 1 + width]), int(row[-1]))
            for row in rows
        ]

    def close(self) -> None:
        """Close the connection."""
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_reader(url: str) -> LedgerReader:
    """A `LedgerReader` over `url`."""
    return LedgerReader(url)
