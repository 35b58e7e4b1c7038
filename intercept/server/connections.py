"""Client connections under abuse: the file limit, a cap on open connections, deadlines for
a request head and for an idle keep-alive connection, and accept errors logged in summary.

Invariants:
- A listener never holds more than its cap of client connections for longer than a loop
  iteration: at the cap a new connection closes the listener's oldest idle one (no request
  in progress: silent, or still sending its head), or, if every one is busy, is answered a
  bare 503 and closed. The newest connection is the last one shed, so a client that sends its
  request at once is served while idle connections hold the cap (nginx reuses idle
  connections alike). Each listener counts its own: the admin listener keeps answering
  `/readyz` and `/metrics` while the public one is full.
- The caps stay below the file limit, with room for upstream connections, the ledger and
  files, so that `accept()` does not fail with EMFILE under a flood of connections.
- A request head must be complete within `timeouts.client_header` seconds of the
  connection's start, and of its own first byte on a kept-alive connection (slowloris); a
  connection with nothing in progress is closed `timeouts.keepalive` seconds after its last
  response. Both ride on aiohttp's own keep-alive timer: no timer is added per request, and
  per received chunk the cost is one check after aiohttp's parser.
- Accept errors (EMFILE and the like) reach the `intercept` log as one line per interval with
  a count, instead of asyncio's traceback per failed accept (megabytes a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from intercept.config import Config

__all__ = [
    "AcceptErrorLog",
    "FileLimit",
    "GatedServer",
    "TimedHandler",
    "caps_for",
    "connection_caps",
    "prepare",
    "raise_file_limit",
]  # fmt: skip

log = logging.getLogger("intercept")

# Files kept free beside the client connections: the upstream client's pool
# (`upstream_pool.size`), the admin listener's connections, connections accepted in one
# batch before the cap sheds them (asyncio accepts up to the backlog, 128, per wake-up),
# the ledger, rules, pages, logs.
_UPSTREAM_POOL = 256  # the pool's default size
_ACCEPT_BATCH = 128
_OTHER_FILES = 64
# without a configured cap, at most this many per listener: memory, not files, is then the
# bound (roughly 10-20 KB per idle aiohttp connection)
_DEFAULT_CEILING = 10_000
_SHED = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class FileLimit:
    """The process's open-file limit: before and after the start-up raise, and the ceiling."""

    before: int
    soft: int
    hard: int  # -1: unlimited


def raise_file_limit() -> FileLimit:
    """Raise the soft open-file limit (RLIMIT_NOFILE) to the hard limit, as far as allowed.
    systemd's default soft limit is 1,024 under a hard limit of 524,288: without the raise,
    a thousand idle connections exhaust the process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):  # above nr_open: keep what we have
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    unlimited = resource.RLIM_INFINITY
    return FileLimit(
        before=-1 if before == unlimited else before,
        soft=-1 if soft == unlimited else soft,
        hard=-1 if hard == unlimited else hard,
    )


def connection_caps(
    public: int | None, admin: int, *, soft: int | None = None, upstream: int = _UPSTREAM_POOL
) -> tuple[int, int]:
    """The public and admin listeners' connection caps: `public` if configured (None: derived
    from the soft file limit `soft`, the current one if not given), `admin` as configured;
    their sum is kept below the file limit minus the reserve for everything else (`upstream`:
    the upstream client's pool size)."""
    if soft is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft < 0:
        room = _DEFAULT_CEILING
    else:
        room = max(32, soft - upstream - _ACCEPT_BATCH - _OTHER_FILES)
    admin = max(1, min(admin, room // 4))
    derived = max(16, min(_DEFAULT_CEILING, room - admin))
    return (derived if public is None else public), admin


def caps_for(config: Config) -> tuple[int, int]:
    """`connection_caps` for `config`, under the current file limit."""
    limits = config.limits
    pool = config.upstream_pool.size
    return connection_caps(limits.connections, limits.admin_connections, upstream=pool)


def prepare(config: Config) -> FileLimit:
    """At start, before listening: raise the file limit and say it, with the caps, in one
    line (with `--workers N` once, in the supervisor; the workers inherit the limit)."""
    limit = raise_file_limit()
    public, admin = caps_for(config)
    log.info(
        "file limit: %s open files (soft limit was %s; hard limit %s); client connections "
        "at most %d per process, admin listener %d",
        _shown(limit.soft), _shown(limit.before), _shown(limit.hard), public, admin,
    )  # fmt: skip
    return limit


def _shown(value: int) -> str:
    return "unlimited" if value < 0 else str(value)


class TimedHandler(web.RequestHandler):
    """aiohttp's connection handler with a deadline for the request head (`header_timeout`,
    set by the server after construction), on top of its keep-alive timer: the timer's
    close time is brought forward to the head's deadline, and aiohttp closes the connection
    at that time if it is still waiting for a complete head."""

    header_timeout: float = 0.0
    fresh: bool = True  # accepted, and not a byte received yet
    partial: bool = False  # bytes of a request head received, the head not yet complete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.header_timeout > 0 and self.transport is not None:
            self._head_due(self._loop.time() + self.header_timeout)

    def data_received(self, data: bytes) -> None:
        self.fresh = False
        before = self._request_count
        super().data_received(data)
        self.partial = self._request_count == before
        waiter = self._waiter
        # bytes arrived while idle and no head is complete: the rest is due in time
        if waiter is not None and not waiter.done() and self.header_timeout > 0:
            self._head_due(self._loop.time() + self.header_timeout)

    def _head_due(self, deadline: float) -> None:
        """Close at `deadline` if no complete head by then; only ever brings the close
        forward, so trickled bytes cannot extend it."""
        handle = self._keepalive_handle
        if handle is not None:
            if deadline >= self._next_keepalive_close_time:
                return
            handle.cancel()
        self._next_keepalive_close_time = deadline
        self._keepalive_handle = self._loop.call_at(deadline, self._process_keepalive)

    def unsettled(self) -> bool:
        """Open, not handling a request, and yet owing one an answer or a chance: accepted
        and silent so far, a head arriving, or a request parsed and queued. aiohttp's
        shutdown waits only for a request being handled and drops these (the client sees
        its connection reset), so a draining worker waits for them first."""
        if self.transport is None or self._request_in_progress:
            return False
        return self.fresh or self.partial or bool(self._messages)

    def idle(self) -> bool:
        """No request in progress: waiting for one (silent, or its head not yet complete)."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._messages


class GatedServer(web.Server):
    """aiohttp's low-level server with a cap on open connections (see the module's
    invariants) and `TimedHandler` connections. The per-connection cost is a counter; the
    search for an idle connection to shed runs only at the cap, oldest first."""

    handler_class: type[TimedHandler] = TimedHandler

    def __init__(self, handler: Any, *, cap: int, header_timeout: float, **options: Any) -> None:
        super().__init__(handler, **options)
        self.cap = cap
        self.header_timeout = header_timeout
        self.open = 0
        self.shed = 0  # connections closed at the cap, for the accept-error log line

    def __call__(self) -> web.RequestHandler:
        handler = self.handler_class(self, loop=self._loop, **self._kwargs)
        handler.header_timeout = self.header_timeout
        return handler

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open += 1
        if self.open > self.cap:
            self.shed += 1
            victim = self._oldest_idle(handler)
            if victim is not None:
                victim.force_close()
            else:
                transport.write(_SHED)
                handler.force_close()

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        if handler in self._connections:
            self.open -= 1
        super().connection_lost(handler, exc)

    def unsettled(self) -> int:
        """How many connections are `TimedHandler.unsettled`."""
        return sum(
            1
            for handler in self._connections
            if isinstance(handler, TimedHandler) and handler.unsettled()
        )

    def _oldest_idle(self, newcomer: web.RequestHandler) -> web.RequestHandler | None:
        for handler in self._connections:  # oldest first: a dict keeps insertion order
            if handler is newcomer:
                return None
            closing = handler.transport is None  # shed already, not yet forgotten
            if not closing and isinstance(handler, TimedHandler) and handler.idle():
                return handler
        return None


class AcceptErrorLog:
    """A loop exception handler: accept failures for lack of resources (EMFILE, ENFILE,
    ENOBUFS, ENOMEM) are counted and logged as one line per `interval` seconds; anything
    else goes to asyncio's default handler, as before."""

    _ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> None:
        self.loop = loop
        self.interval = interval
        self.count = 0  # failures since the last line
        self.total = 0
        self.last: str = ""
        self._flush: asyncio.TimerHandle | None = None

    def install(self) -> None:
        self.loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in self._ERRNOS):
            loop.default_exception_handler(context)
            return
        self.count += 1
        self.total += 1
        self.last = errno.errorcode.get(exc.errno or 0, "OSError")
        if self._flush is None:  # the first of an interval is said at once
            self._say()
            self._flush = loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        if self.count:
            self._say()
            self._flush = self.loop.call_later(self.interval, self._tick)
        else:
            self._flush = None

    def _say(self) -> None:
        log.warning(
            "accept failed %d time(s) (%s, %s); %d since start; new connections wait in "
            "the listen backlog meanwhile (see limits.connections and the file limit)",
            self.count, self.last, _why(self.last), self.total,
        )  # fmt: skip
        self.count = 0


def _why(code: str) -> str:
    return {
        "EMFILE": "the process's open-file limit is reached",
        "ENFILE": "the system's open-file limit is reached",
    }.get(code, "out of kernel memory or buffers")
