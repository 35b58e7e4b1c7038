"""Relaying a request to the upstream and its answer back, transparently.

The raw request target is sent as received; headers go both ways less the hop-by-hop ones
(RFC 9110 7.6.1, and every header named in `Connection`); bodies are streamed, never
decompressed; redirects are not followed. Each request holds a slot of the upstream pool
(`intercept.doors.upstream_pool`) while it lasts; one that finds none free waits at most the pool
timeout, then gets 503 with `Retry-After`, counted in `intercept_upstream_pool_timeouts_total`
and never held against the upstream (its errors and health are about the upstream answering).
The response head must arrive within the header timeout, counted from when the request has
been sent in full; a body cut short upstream ends the client's connection instead of looking
complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable
from time import perf_counter
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from intercept.config import Config
from intercept.doors.deadlines import Deadlines
from intercept.doors.upstream_health import UpstreamHealth
from intercept.doors.upstream_pool import UpstreamPool
from intercept.extract import RouteTable, find_route
from intercept.research.counting import Counts

__all__ = ["HOP_BY_HOP", "forward"]

_CHUNK = 64 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "proxy-connection",
    }
)  # fmt: skip
# Not forwarded upstream: the proxy answers `Expect` itself, and the client sets `Host`.
_REQUEST_DROP = frozenset({"host", "expect"})
_REQUEST_DROP_ALL = HOP_BY_HOP | _REQUEST_DROP


class _Relay(web.StreamResponse):
    """A response relayed from upstream. aiohttp adds `Content-Type: application/octet-stream`
    and its own `Server` header when they are missing; a transparent proxy must not, so the
    ones the upstream did not send are taken out again once aiohttp has prepared the head
    (`_prepare_headers` is aiohttp's hook for that; tests/doors/test_httpbin.py guards it)."""

    def __init__(
        self,
        *,
        status: int,
        reason: str | None,
        headers: list[tuple[str, str]],
        absent: tuple[str, ...],
    ) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        self._absent = absent

    def defer_head(self) -> None:
        """Send the head with the first body write rather than on its own (aiohttp's
        `web.Response` does the same for its whole body)."""
        self._send_headers_immediately = False

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in self._absent:
            self.headers.popall(name, None)


_ADDED_BY_AIOHTTP = ("Content-Type", "Server")
_VIA = {aiohttp.HttpVersion11: "1.1 intercept", aiohttp.HttpVersion10: "1.0 intercept"}


def _hop_by_hop(headers: Any) -> frozenset[str] | set[str]:
    if "Connection" not in headers:
        return HOP_BY_HOP
    names = set(HOP_BY_HOP)
    for value in headers.getall("Connection", ()):
        names.update(token.strip().lower() for token in value.split(",") if token.strip())
    return names


def _upstream_headers(
    request: web.BaseRequest, config: Config, *, body_replaced: bool, content_type: str | None
) -> list[tuple[str, str]]:
    """The request's headers for the upstream, in order, less hop-by-hop ones; with the
    forwarding headers the configuration asks for (replacing the client's, extending
    `X-Forwarded-For` and `Via`). A list: aiohttp builds its own multidict from it."""
    source = request.headers
    ours: dict[str, tuple[str, str]] = {}
    forwarded = config.forwarded
    if forwarded.x_forwarded_for and request.remote:
        prior = ", ".join(source.getall("X-Forwarded-For", ()))
        chain = f"{prior}, {request.remote}" if prior else request.remote
        ours["x-forwarded-for"] = ("X-Forwarded-For", chain)
    if forwarded.x_forwarded_proto:
        ours["x-forwarded-proto"] = ("X-Forwarded-Proto", request.scheme)
    if forwarded.x_forwarded_host and (host := source.get("Host")):  # never one made up
        ours["x-forwarded-host"] = ("X-Forwarded-Host", host)
    if forwarded.via:
        prior_via = ", ".join(source.getall("Via", ()))
        version = request.version
        hop = _VIA.get(version) or f"{version.major}.{version.minor} intercept"
        ours["via"] = ("Via", f"{prior_via}, {hop}" if prior_via else hop)
    if body_replaced:  # the client sets Content-Length for the bytes it sends
        ours["content-length"] = ("", "")
    if content_type is not None:
        ours["content-type"] = ("Content-Type", content_type)
    drop = _hop_by_hop(source) | _REQUEST_DROP if "Connection" in source else _REQUEST_DROP_ALL
    headers = [
        (k, v) for k, v in source.items() if (low := k.lower()) not in drop and low not in ours
    ]
    headers += [pair for pair in ours.values() if pair[0]]
    return headers


class _Upload:
    """The client's body streamed to the upstream, remembering whether the client failed
    mid-upload: then the upstream request fails too, and that is no upstream error."""

    def __init__(self, request: web.BaseRequest, sent: Callable[[], None]) -> None:
        self._request = request
        self._sent = sent
        self.client_failed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._request.content.iter_chunked(_CHUNK):
                yield chunk
        except Exception:
            self.client_failed = True  # gone, or a malformed chunked body
            raise
        self._sent()


async def forward(
    session: aiohttp.ClientSession,
    config: Config,
    deadlines: Deadlines,
    counts: Counts,
    request: web.BaseRequest,
    target: str,
    body: bytes | None,
    error: Callable[[int], web.StreamResponse],
    *,
    health: UpstreamHealth,
    pool: UpstreamPool,
    routes: RouteTable,
    method: str | None = None,
    content_type: str | None = None,
) -> web.StreamResponse:
    """Relay `request` (or the buffered `body` and `method` instead of its own) to `target`
    on the configured upstream; `error(status)` answers 502, 503 and 504. Each upstream error
    is counted and told to `health`, as is each response head that arrives.

    First a slot of `pool`: a shared one while there is one, else, for a request on a search
    route (in `routes`, looked up only then), one of the reserved ones; else one waited for
    within the pool timeout (then 503). The response head must come within the header
    timeout, counted from when the request has been sent in full (an upload may take
    longer); then each body read within the idle timeout. These are deadlines swept by
    `deadlines`; the connect timeout is aiohttp's."""
    timeouts = config.timeouts
    task: Any = asyncio.current_task()
    url = URL(config.upstream_base + target, encoded=True)
    headers = _upstream_headers(
        request, config, body_replaced=body is not None, content_type=content_type
    )
    search = False  # the kind of slot held: a reserved one only when the shared ones are taken
    if not pool.take(False):
        search = find_route(routes, target.partition("?")[0]) is not None
        taken = search and pool.take(True)
        if not taken and not await _wait_for_slot(pool, search, deadlines, task, timeouts.pool):
            counts.upstream_pool_timeouts.labels("search" if search else "other").inc()
            busy = error(503)
            busy.headers["Retry-After"] = "1"
            if request.body_exists and not request.content.is_eof():
                busy.force_close()  # the body was never read: no next request can be found
            return busy
    data: Any = body
    upload: _Upload | None = None
    if body is None and request.body_exists:
        deadlines.hold(task)  # the upload is timed by the client's side, not ours
        upload = _Upload(request, lambda: deadlines.set(task, timeouts.header))
        data = upload.chunks()
    else:
        deadlines.set(task, timeouts.header)
    response: _Relay | None = None
    upstream: aiohttp.ClientResponse | None = None
    started = perf_counter()
    try:
        try:
            upstream = await session.request(
                method or request.method, url, headers=headers, data=data, allow_redirects=False
            )
        except TimeoutError:  # connecting took longer than the connect timeout
            _failed(counts, health, "timeout")
            return error(504)
        except (aiohttp.ClientError, OSError):
            if upload is not None and upload.client_failed:
                return error(400)  # the client broke off its upload: nobody to answer
            _failed(counts, health, "refused")
            return error(502)
        counts.answered(perf_counter() - started)
        health.ok()
        deadlines.hold(task)
        answer = upstream.headers
        drop = _hop_by_hop(answer)
        response = _Relay(
            status=upstream.status,
            reason=upstream.reason,
            headers=[(name, value) for name, value in answer.items() if name.lower() not in drop],
            absent=tuple(name for name in _ADDED_BY_AIOHTTP if name not in answer),
        )
        content = upstream.content
        # Body bytes that came with the head go out in the same write as the head: one
        # packet and one system call fewer. A head with no body behind it yet goes at once.
        first = content.read_nowait()
        if first:
            response.defer_head()
        try:
            await response.prepare(request)
            if first:
                await response.write(first)
        except ConnectionError:  # aiohttp.ClientConnectionResetError is one
            if first:
                _cut(request)
            return response  # the client went away: nothing to count against the upstream
        while not content.at_eof():  # a body that came whole with its head is done here
            deadlines.set(task, timeouts.read_idle)
            chunk = await content.readany()
            deadlines.hold(task)
            if not chunk:
                break
            try:
                await response.write(chunk)
            except ConnectionError:  # aiohttp.ClientConnectionResetError is one
                _cut(request)  # the client went away mid-body: not an upstream error
                return response
        try:
            await response.write_eof()
        except ConnectionError:  # aiohttp.ClientConnectionResetError is one
            _cut(request)
        return response
    except asyncio.CancelledError:
        if not deadlines.clear(task):
            raise  # not ours: the server is stopping or the client went away
        task.uncancel()
        _failed(counts, health, "timeout")
        if response is None or not response.prepared:
            return error(504)
        _cut(request)  # the upstream stalled mid-body
        return response
    except (aiohttp.ClientError, TimeoutError, OSError):
        _failed(counts, health, "reset")
        if response is None or not response.prepared:
            return error(502)
        _cut(request)  # the upstream cut the body short
        return response
    finally:
        deadlines.clear(task)
        if upstream is not None:
            upstream.release()
        pool.give(search)


async def _wait_for_slot(
    pool: UpstreamPool, search: bool, deadlines: Deadlines, task: Any, seconds: float
) -> bool:
    """Wait at most `seconds` for a slot of `pool`: True when one is held. Not told to the
    upstream's health: a full pool says nothing about the upstream answering."""
    deadlines.set(task, seconds)
    try:
        await pool.wait(search)
    except asyncio.CancelledError:
        if not deadlines.clear(task):
            raise  # not ours: the server is stopping or the client went away
        task.uncancel()
        return False
    return True


def _failed(counts: Counts, health: UpstreamHealth, kind: str) -> None:
    counts.upstream_errors.labels(kind).inc()
    health.failed(kind)


def _cut(request: web.BaseRequest) -> None:
    """End the client's connection rather than present a truncated body as complete: with a
    reset, not an orderly close, since to an HTTP/1.0 client (or any close-delimited body)
    an orderly close is how a complete body ends."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # linger 0: close() sends RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    transport.abort()


_RESET = struct.pack("ii", 1, 0)
