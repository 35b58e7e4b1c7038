"""Intercept inside an aiohttp application: a middleware over `intercept.core.Engine`.

    from intercept.doors.aiohttp_middleware import setup
    setup(app, config)              # or: app.middlewares.append(intercept_middleware(engine=e))

Every request is decided as the reverse proxy would decide it: on a match the handler never
runs and the deterrence page (or interstitial, or empty suggestion list) is the answer; a
benign request reaches the handler unchanged, less a valid continue token in its query. A
warned POST search gets the page without a continue button (see `intercept_middleware`).
`/_intercept/` paths (click-through and continue links) are answered by the middleware.

aiohttp's default access log writes the request line, which holds the query: pass
`access_log=None` to `web.run_app` (or `AppRunner`), or a format without `%r`, `%U` and
`%{Referer}i`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from intercept.config import Config
from intercept.core import INTERNAL_PREFIX, Answer, Engine
from intercept.doors.proxy import decide_request, response
from intercept.logscrub import scrub_aiohttp_logs

if TYPE_CHECKING:
    from intercept.research.ledger import Ledger

__all__ = ["intercept_middleware", "setup"]

_LOG = logging.getLogger("intercept.aiohttp")


def intercept_middleware(*, engine: Engine) -> Middleware:
    """The middleware deciding every request of the application with `engine`."""
    if not isinstance(engine, Engine):
        raise TypeError(f"engine must be an intercept Engine, not {type(engine).__name__}")
    # aiohttp routes a request before its middlewares run: a continued POST search could only
    # reach its handler around the application's other middlewares. So a warned POST search
    # gets no continue button here (GET searches continue as everywhere).
    engine.replays_posts = False
    scrub_aiohttp_logs()  # aiohttp's own records would quote request lines and addresses

    @web.middleware
    async def intercept(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            outcome = await _decided(request)
        except Exception as error:  # fail closed, and say only what kind of failure
            _LOG.error("intercept: decision failed (%s)", type(error).__name__)
            return response(engine.error(500, request.headers))
        if isinstance(outcome, web.StreamResponse):
            return outcome
        return await handler(outcome)

    async def _decided(request: web.Request) -> web.StreamResponse | web.Request:
        """Intercept's answer, or the request to hand on to the application."""
        target = request.raw_path
        decided, body = await decide_request(engine, request)
        if isinstance(decided, Answer):
            return response(decided)
        if target.startswith(INTERNAL_PREFIX):  # a POST continue link from another front door
            return response(engine.error(405, request.headers, allow=""))  # not replayable here
        if body is not None:
            return _with_body(request, body, decided.target)
        if decided.target != target:  # the continue token, stripped
            return request.clone(rel_url=URL(decided.target, encoded=True))
        return request

    return intercept


def _with_body(request: web.Request, body: bytes, target: str) -> web.Request:
    """The request as the handler expects it after Intercept read its body."""
    clone = request.clone(rel_url=URL(target, encoded=True))
    clone._read_bytes = body  # aiohttp's cache of a read body; the stream is spent
    return clone


async def _internal(request: web.Request) -> web.StreamResponse:
    # Reached only if the middleware was left out: `setup` installs both.
    raise web.HTTPNotFound()


def _flushing(ledger: Ledger, interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    """Flush the ledger while the application runs, and once more when it stops."""

    async def flushing(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(ledger.run(interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ledger.aclose()

    return flushing


def _syncing(engine: Engine) -> Callable[[web.Application], AsyncIterator[None]]:
    """Hand the tallied counts over every second while the application runs, and once more
    when it stops (see `intercept.research.counting`)."""

    async def syncing(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(engine.counts.sync_every(1.0))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        engine.counts.sync_logged()

    return syncing


def setup(app: web.Application, config: Config, *, engine: Engine | None = None) -> Engine:
    """Install Intercept in `app`: the middleware first in line, and the `/_intercept/` route
    so its paths resolve. Loads rules and pages now (an error is raised here, not at the
    first request), and, built from `config`, feeds the configured research ledger while the
    application runs. Returns the engine (its `counts` hold the aggregate counters)."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be an intercept Config, not {type(config).__name__}")
    if engine is None:
        from intercept.assembly import attach_ledger, build_engine

        engine = build_engine(config)
        ledger = attach_ledger(config, engine)
        if ledger is not None:
            app.cleanup_ctx.append(_flushing(ledger, config.ledger.flush_seconds))
    app.cleanup_ctx.append(_syncing(engine))  # cleaned up before the ledger's last flush
    app.middlewares.insert(0, intercept_middleware(engine=engine))
    app.router.add_route("*", INTERNAL_PREFIX + "{tail:.*}", _internal)
    return engine
