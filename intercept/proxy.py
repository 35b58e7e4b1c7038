"""The reverse proxy (`intercept serve --mode proxy`): the aiohttp front door over the core.

Each request goes through `intercept.core.Engine`: its checks, a bounded read of a search
route's body, the decision. An `Answer` (deterrence page, empty suggestion list, error,
redirect) is sent as it is; a `Pass` is relayed transparently to the upstream by
`intercept.relay`. Nothing else happens here, so every front door decides alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from intercept.core import INTERNAL_PREFIX, Answer, Engine, Pass
from intercept.deadlines import Deadlines
from intercept.logscrub import scrub_aiohttp_logs
from intercept.relay import forward

__all__ = ["ENGINE", "Engine", "build_app", "decide_request", "handle", "read_bounded"]

ENGINE = web.AppKey("engine", Engine)
_SESSION = web.AppKey("session", aiohttp.ClientSession)
_DEADLINES = web.AppKey("deadlines", Deadlines)
_CHUNK = 64 * 1024


def _send(answer: Answer) -> web.Response:
    return web.Response(status=answer.status, headers=answer.headers, body=answer.body)


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than `limit`."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def handle(request: web.Request) -> web.StreamResponse:
    """Every public request: internal pages, decisions on search routes, or forwarding."""
    engine = request.app[ENGINE]
    outcome, _ = await decide_request(engine, request)
    if isinstance(outcome, Answer):
        return _send(outcome)
    return await _pass(request, engine, outcome)


async def decide_request(
    engine: Engine, request: web.Request
) -> tuple[Answer | Pass, bytes | None]:
    """What `engine` makes of an aiohttp request, for every aiohttp front door: the checks,
    `/_intercept/` paths, a bounded read of a search body, the decision; and the body read
    (None when none was), which the request's stream no longer holds."""
    target = request.raw_path
    header_bytes = sum(len(k) + len(v) + 4 for k, v in request.raw_headers)
    refused = engine.precheck(target, header_bytes)
    if refused is not None:
        return refused, None
    if target.startswith(INTERNAL_PREFIX):
        return engine.internal(request.method, target, request.headers), None
    plan = engine.body_plan(request.method, target, request.headers)
    if isinstance(plan, Answer):
        return plan, None
    body: bytes | None = None
    if plan is not None and request.body_exists:
        body = await read_bounded(request, plan)
        if body is None:
            return engine.error(413, request.headers), None
    return engine.decide(request.method, target, request.headers, body), body


async def _pass(request: web.Request, engine: Engine, outcome: Pass) -> web.StreamResponse:
    return await forward(
        request.app[_SESSION],
        engine.config,
        request.app[_DEADLINES],
        engine.counts,
        request,
        outcome.target,
        outcome.body,
        lambda status: _send(engine.error(status, request.headers)),
        method=outcome.method,
        content_type=outcome.content_type,
    )


async def _start_session(app: web.Application) -> AsyncIterator[None]:
    timeouts = app[ENGINE].config.timeouts
    deadlines = app[_DEADLINES] = Deadlines()
    sweeper = asyncio.create_task(deadlines.run())
    app[_SESSION] = aiohttp.ClientSession(
        # the header and idle-read timeouts are deadlines (intercept.deadlines), not timers
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
        connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=60),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # never share one searcher's cookies with another
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),  # send as received
        trust_env=False,
    )
    yield
    await app[_SESSION].close()
    sweeper.cancel()
    await sweeper


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue`: a search body over the limit is refused before it is sent."""
    engine = request.app[ENGINE]
    plan = engine.body_plan(request.method, request.raw_path, request.headers)
    if isinstance(plan, Answer):
        return _send(plan)
    if request.headers.get("Expect", "").lower() != "100-continue":
        return _send(engine.error(417, request.headers))
    if request.version >= aiohttp.HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
    return None


def build_app(engine: Engine) -> web.Application:
    """The public application: every method and path goes to `handle`."""
    scrub_aiohttp_logs()
    app = web.Application(client_max_size=engine.config.limits.body)
    app[ENGINE] = engine
    app.cleanup_ctx.append(_start_session)
    app.router.add_route("*", "/{tail:.*}", handle, expect_handler=_expect)
    return app
