"""The ledger's writer: `Ledger` takes counts on the request path, buffers them in memory and
flushes them to a backend in batches; what cannot be written at shutdown goes to the spool.

How it is written: `add` (and its `add_*` shorthands) are O(1) increments of an in-memory
buffer (they may run on the request path). `run(interval)` flushes the buffer every
`interval` seconds in a worker thread, one transaction per flush, adding to the stored counts
with an upsert, so several processes (workers of one host sharing a SQLite file, or replicas
sharing a PostgreSQL database) sum their counts. `aclose()` flushes what is left: a graceful
stop (SIGTERM, SIGINT) loses nothing. A crash (SIGKILL, power loss) loses the counts buffered
since the last successful flush: at most one flush interval, plus whatever was still pending
because the database was unreachable (`status.pending` shows how many).

Its methods take only label values (see `intercept.research.ledger.schema`): no query text, client
address, user agent, cookie or per-request identifier can reach the ledger or the spool.

Counts that cannot be written at shutdown (a full disk, a database that is down) go to a local
spool file, when the ledger has one (`intercept serve` always gives it one: `ledger.spool`):
the same aggregate rows, replayed into the ledger by the next start, and after every later
successful flush (idempotently: see `intercept.research.spool`). Only when the spool cannot be
written either are they lost, and their number is logged.

A database that is down, locked or full never fails a request: a failed flush puts its counts
back into the buffer, to be retried with the next flush; the failure is counted in
`status.failures` and described (exception type and a scrubbed message, with no password and
no label value) in `status.last_error` until a flush succeeds again.

A forked child starts with an empty buffer: the parent writes what it buffered, not the child.

Retention: `prune(older_than_days)` deletes hourly buckets older than that many days from every
table (call it daily, e.g. with the configured retention).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intercept.research.forks import reset_in_child
from intercept.research.ledger.backend import Backend, scrub_error
from intercept.research.ledger.schema import DAY, HOUR, TABLES, Batch, Key, rows_by_table
from intercept.research.ledger.urls import backend_for
from intercept.research.spool import Spool, SpoolError

__all__ = ["Ledger", "LedgerStatus", "from_url"]

logger = logging.getLogger("intercept.ledger")


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


class Ledger:
    """Hourly aggregate counts, buffered in memory and flushed to a database.

    `add_*` may be called from any thread (a short lock guards the buffer); in the aiohttp
    server they run on the event loop and `run()` does the database I/O in a worker thread.
    With a `spool` (a path prefix, see `intercept.research.spool`), counts that the last flush of
    `aclose()` or `close()` cannot write are spooled there, and `run()` replays spool files
    at its start and after every successful flush.
    """

    def __init__(
        self,
        backend: Backend,
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
        self._buffer: Batch = {}
        self._lock = threading.Lock()  # guards _buffer and _inflight_events
        self._io_lock = threading.Lock()  # one database operation at a time
        self._inflight_events = 0
        self._inflight: asyncio.Task[bool] | None = None
        self._last_flush: float | None = None
        self._failures = 0
        self._consecutive = 0
        self._last_error: str | None = None
        self.before_take: Callable[[], None] | None = None
        reset_in_child(self, Ledger._forget)  # the parent writes what it buffered

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
        """A ledger writing to `url` (see `intercept.research.ledger.urls`). Nothing is opened until
        the first flush, so a database that is down does not stop the server from starting.
        `on_failure` is called once per failed flush (on the event loop for `run()`), e.g. to
        increment a metric. `spool`: see the class. Raises `LedgerError` for a URL it cannot
        use."""
        backend = backend_for(url, busy_timeout=busy_timeout, connect_timeout=connect_timeout)
        return cls(backend, clock=clock, on_failure=on_failure, spool=spool)

    # -- the hot path --

    def _hour(self) -> int:
        now = int(self._clock())
        return now - now % HOUR

    def _add(self, key: Key, count: int) -> None:
        with self._lock:
            buffer = self._buffer
            buffer[key] = buffer.get(key, 0) + count

    def add(self, table: str, labels: tuple[str, ...], count: int = 1) -> None:
        """Count `count` events in `table` (a counter's table, `intercept.research.counters`) with
        these label values, in `TABLES` order, in the current hour. KeyError for an unknown
        table, ValueError for the wrong number of labels (nothing is counted then)."""
        if len(labels) != len(TABLES[table]):
            raise ValueError(f"table {table} takes {len(TABLES[table])} labels")
        self._add((table, self._hour(), labels), count)

    def add_search(self, route: str, count: int = 1) -> None:
        """Count `count` searches on route `route`."""
        self.add("searches", (route,), count)

    def add_intervention(
        self, category: str, action: str, language: str, variant: str, count: int = 1
    ) -> None:
        """Count `count` interventions (the matched rule's category and action, the page
        language and message variant)."""
        self.add("interventions", (category, action, language, variant), count)

    def add_click(self, link: str, variant: str) -> None:
        """Count one click on link id `link` of a page in message variant `variant`."""
        self.add("clicks", (link, variant))

    def add_shadow(self, rule_id: str) -> None:
        """Count one hit of shadow rule `rule_id`."""
        self.add("shadow_hits", (rule_id,))

    # -- flushing --

    def _take(self) -> Batch:
        if self.before_take is not None:
            self.before_take()  # counts held elsewhere come in first (intercept.research.counting)
        with self._lock:
            batch, self._buffer = self._buffer, {}
            self._inflight_events += sum(batch.values())
        return batch

    def _write(self, batch: Batch) -> BaseException | None:
        """Write `batch` (in any thread); the failure, if any, is returned, not raised."""
        rows = rows_by_table(batch)
        try:
            with self._io_lock:
                if rows:
                    self._backend.write(rows)
        except Exception as error:  # a broken database must never reach a request
            return error
        return None

    def _put_back(self, batch: Batch) -> None:
        """Add `batch` back into the buffer (the caller holds `_lock`)."""
        buffer = self._buffer
        for key, count in batch.items():
            buffer[key] = buffer.get(key, 0) + count

    def _settle(self, batch: Batch, error: BaseException | None) -> bool:
        """Account for a finished write: on failure the batch goes back into the buffer."""
        events = sum(batch.values())
        with self._lock:
            self._inflight_events -= events
            if error is not None:
                self._put_back(batch)
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
            self._put_back(batch)
        logger.error(
            "research ledger: %d counts could not be written at %s: %s; %s",
            self.status.pending,
            when,
            self._last_error,
            problem,
        )

    def replay_spool(self) -> int:
        """Add every spool file's rows to the ledger (each file once: see
        `intercept.research.spool`) and delete the files; stop at the first database failure (the
        files stay for the next attempt). Blocking. Returns the number of counts added."""
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
                            rows_by_table(content.rows), content.id, int(self._clock())
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
        (from every table, in one transaction); return how many rows went. Blocking:
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
