"""Relaying a request to the upstream and its answer back, transparently.

The raw request target is sent as received; headers go both ways less the hop-by-hop ones
(RFC 9110 7.6.1, and every header named in `Connection`); bodies are streamed, never
decompressed; redirects are not followed. The response head must arrive within the header
timeout, counted from when the request has been sent in full; a body cut short upstream ends
the client's connection instead of looking complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from intercept.config import Config

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
    (`_prepare_headers` is aiohttp's hook for that; tests/test_httpbin.py guards it)."""

    def __init__(self, *, status: int, reason: str | None, absent: frozenset[str]) -> None:
        super().__init__(status=status, reason=reason)
        self._absent = absent

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in self._absent:
            self.headers.popall(name, None)


_ADDED_BY_AIOHTTP = ("Content-Type", "Server")


def _hop_by_hop(headers: Any) -> frozenset[str] | set[str]:
    if "Connection" not in headers:
        return HOP_BY_HOP
    names = set(HOP_BY_HOP)
    for value in headers.getall("Connection", ()):
        names.update(token.strip().lower() for token in value.split(",") if token.strip())
    return names


def _upstream_headers(request: web.Request, config: Config) -> CIMultiDict[str]:
    drop = _hop_by_hop(request.headers) | _REQUEST_DROP if "Connection" in request.headers else (
        _REQUEST_DROP_ALL
    )  # fmt: skip
    headers: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in request.headers.items() if k.lower() not in drop
    )
    forwarded = config.forwarded
    if forwarded.x_forwarded_for and request.remote:
        prior = ", ".join(request.headers.getall("X-Forwarded-For", ()))
        headers["X-Forwarded-For"] = f"{prior}, {request.remote}" if prior else request.remote
    if forwarded.x_forwarded_proto:
        headers["X-Forwarded-Proto"] = request.scheme
    if forwarded.x_forwarded_host and request.host:
        headers["X-Forwarded-Host"] = request.host
    if forwarded.via:
        prior_via = request.headers.get("Via")
        version = f"{request.version.major}.{request.version.minor}"
        headers["Via"] = (
            f"{prior_via}, {version} intercept" if prior_via else f"{version} intercept"
        )
    return headers


async def _stream_body(request: web.Request, sent: Callable[[], None]) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(_CHUNK):
        yield chunk
    sent()


async def forward(
    session: aiohttp.ClientSession,
    config: Config,
    client_timeout: aiohttp.ClientTimeout,
    request: web.Request,
    target: str,
    body: bytes | None,
    error: Callable[[int], web.StreamResponse],
    *,
    method: str | None = None,
    content_type: str | None = None,
) -> web.StreamResponse:
    """Relay `request` (or the buffered `body` and `method` instead of its own) to `target`
    on the configured upstream; `error(status)` answers 502 and 504."""
    timeouts = config.timeouts
    url = URL(config.upstream_base + target, encoded=True)
    # The response head must come within the header timeout, counted from when the request
    # is sent in full (an upload may take longer). A timer that cancels this task costs a
    # fraction of `asyncio.timeout` on this hot path (measured: 15% of throughput).
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    expired = False
    timer: asyncio.TimerHandle | None = None

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    def start_timer() -> None:
        nonlocal timer
        timer = loop.call_later(timeouts.header, expire)

    data: Any = body
    if body is None and request.body_exists:
        data = _stream_body(request, start_timer)
    else:
        start_timer()
    try:
        headers = _upstream_headers(request, config)
        if body is not None:
            headers.popall("Content-Length", None)  # the client sets it for the bytes sent
        if content_type is not None:
            headers["Content-Type"] = content_type
        upstream = await session.request(
            method or request.method,
            url,
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=client_timeout,
        )
    except asyncio.CancelledError:
        if not expired:
            raise
        task.uncancel()
        return error(504)
    except TimeoutError:
        return error(504)
    except (aiohttp.ClientError, OSError):
        return error(502)
    finally:
        if timer is not None:
            timer.cancel()

    try:
        absent = frozenset(h for h in _ADDED_BY_AIOHTTP if h not in upstream.headers)
        response = _Relay(status=upstream.status, reason=upstream.reason, absent=absent)
        drop = _hop_by_hop(upstream.headers)
        for name, value in upstream.headers.items():
            if name.lower() not in drop:
                response.headers.add(name, value)
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except (aiohttp.ClientError, TimeoutError, OSError):
            # The upstream cut the body short, or the client went away: end this connection
            # rather than present a truncated body as complete.
            if request.transport is not None:
                request.transport.close()
        return response
    finally:
        upstream.release()
