"""The reverse proxy (`intercept serve --mode proxy`): the aiohttp front door over the core.

Each request goes through `intercept.core.Engine`: its checks, a bounded read of a search
route's body, the decision. An `Answer` (deterrence page, empty suggestion list, error,
redirect) is sent as it is; a `Pass` is relayed transparently to the upstream by
`intercept.doors.relay`. Nothing else happens here, so every front door decides alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import aiohttp
from aiohttp import web

from intercept.core import Answer, Engine, Pass
from intercept.doors.deadlines import Deadlines
from intercept.doors.frontdoor import Read, run_async, steps
from intercept.doors.relay import forward
from intercept.doors.upstream_health import EXTRAS_KEY, UpstreamHealth, probe_forever
from intercept.doors.upstream_pool import EXTRAS_KEY as POOL_KEY
from intercept.doors.upstream_pool import UpstreamPool
from intercept.logscrub import scrub_aiohttp_logs

__all__ = ["Engine", "ProxyDoor", "decide_request", "read_bounded", "response"]

_CHUNK = 64 * 1024


def response(answer: Answer, status: int | None = None) -> web.Response:
    """`answer` as an aiohttp response, for every aiohttp front door; `status` replaces its
    own (the decision service denies with 403 whatever page it carries)."""
    return web.Response(status=status or answer.status, headers=answer.headers, body=answer.body)


async def read_bounded(request: web.BaseRequest, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than `limit`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def decide_request(
    engine: Engine, request: web.BaseRequest
) -> tuple[Answer | Pass, bytes | None]:
    """What `engine` makes of an aiohttp request, for every aiohttp front door: the checks,
    `/_intercept/` paths, a bounded read of a search body, the decision; and the body read
    (None when none was), which the request's stream no longer holds."""
    target, method, headers, raw = (
        request.raw_path,
        request.method,
        request.headers,
        request.raw_headers,
    )

    async def read(limit: int) -> Read:
        try:
            body = await read_bounded(request, limit)
        except ConnectionError:  # the client left mid-upload: nobody to answer, no fault
            return 400
        return 413 if body is None else body

    routine = steps(engine, method, target, headers, _header_bytes(raw),
                    has_body=request.body_exists)  # fmt: skip
    return await run_async(routine, read)


class ProxyDoor:
    """The reverse proxy's request handler, for aiohttp's low-level server (`web.Server`):
    no application, router or signals between a request and the decision, which saves about
    10 µs a request (measured against the same pass-through written as an application).
    `open()` starts the upstream client, the deadline sweep and, with `readiness.upstream`,
    the upstream probe; `close()` ends them. The upstream's health (`health`, also in
    `engine.extras` for the admin listener) and the pool of upstream slots (`pool`, sized
    by `upstream_pool`, with its share for search routes) are this door's: one per worker."""

    def __init__(self, engine: Engine) -> None:
        scrub_aiohttp_logs()
        self.engine = engine
        self._session: aiohttp.ClientSession | None = None
        self._deadlines = Deadlines()
        self._sweeper: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self.health = UpstreamHealth(engine.config.upstream, engine.counts.upstream_up())
        engine.extras[EXTRAS_KEY] = self.health
        settings = engine.config.upstream_pool
        self.pool = UpstreamPool(settings.size, settings.search_reserved)
        engine.extras[POOL_KEY] = self.pool

    async def open(self) -> None:
        timeouts = self.engine.config.timeouts
        self._sweeper = asyncio.create_task(self._deadlines.run())
        if self.engine.config.readiness.upstream:
            self._prober = asyncio.create_task(probe_forever(self.health, self.engine.config))
        self._session = aiohttp.ClientSession(
            # the header and idle-read timeouts are deadlines (intercept.doors.deadlines), not
            # timers
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
            # no limit of its own: `self.pool` bounds the requests (so the connections), and
            # a wait inside aiohttp would count against the header timeout, as a slow upstream
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=60),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # never share one searcher's cookies
            # headers go on as received: none that the client did not send
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        for task in (self._sweeper, self._prober):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        """Every public request: internal pages, decisions on search routes, or forwarding."""
        engine = self.engine
        if not _forwardable(request.raw_headers):
            # aiohttp's writer drops such bytes, so the upstream would get headers other than
            # those decided on (`Content-Type: application/x-www-form-url\xffencoded` becomes
            # a form that was never read)
            return _unread(request, response(engine.error(400, request.headers)))
        if request.headers.get("Expect"):  # as aiohttp's router did: an empty one is none
            refused = _expect(engine, request)
            if refused is not None:
                return _unread(request, refused)
            if request.version >= aiohttp.HttpVersion11:
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                request.writer.output_size = 0
        outcome, _ = await decide_request(engine, request)
        if isinstance(outcome, Answer):
            return _unread(request, response(outcome))
        assert self._session is not None, "ProxyDoor.open() was not awaited"
        return await forward(
            self._session,
            engine.config,
            self._deadlines,
            engine.counts,
            request,
            outcome.target,
            outcome.body,
            lambda status: response(engine.error(status, request.headers)),
            health=self.health,
            pool=self.pool,
            routes=engine.routes,
            method=outcome.method,
            content_type=outcome.content_type,
        )


def _forwardable(raw_headers: tuple[tuple[bytes, bytes], ...]) -> bool:
    """Whether every header value is UTF-8 (almost always plain ASCII), which is what the
    upstream client can send on byte for byte."""
    if b"".join(value for _, value in raw_headers).isascii():
        return True
    for _, value in raw_headers:  # one by one: two broken halves may join into UTF-8
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def _unread(request: web.BaseRequest, sent: web.StreamResponse) -> web.StreamResponse:
    """`sent` closing the connection if the request's body was not read (a refusal
    before it, a page for a GET with a body): a client may send it late, or not at all after
    `Expect: 100-continue`, so no later request on the connection could be told apart."""
    if request.body_exists and not request.content.is_eof():
        sent.force_close()
    return sent


def _header_bytes(raw: tuple[tuple[bytes, bytes], ...]) -> int:
    """The size of the header block as sent: each line's name, value, ": " and CRLF."""
    return sum(map(len, itertools.chain(*raw))) + 4 * len(raw)


def _expect(engine: Engine, request: web.BaseRequest) -> web.StreamResponse | None:
    """`Expect: 100-continue`: a request over the limits, or a search body over its limit, is
    refused before the body is sent, and any other expectation with 417; None: go on (and
    send 100 Continue)."""
    refused = engine.precheck(request.raw_path, _header_bytes(request.raw_headers))
    if refused is not None:
        return response(refused)
    plan = engine.body_plan(request.method, request.raw_path, request.headers)
    if isinstance(plan, Answer):
        return response(plan)
    if request.headers.get("Expect", "").lower() != "100-continue":
        return response(engine.error(417, request.headers))
    return None
