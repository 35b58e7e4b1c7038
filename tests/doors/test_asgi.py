"""The ASGI middleware over real sockets: a Starlette app wrapped by it, served by uvicorn on a
free loopback port in this event loop, with the same behaviours as the reverse proxy."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from intercept.doors.asgi import (
    ASGIApp,
    InterceptASGI,
    Message,
    Receive,
    Scope,
    Send,
)
from tests.middleware_helpers import (
    SERVER_TIMEOUT,
    call,
    interventions,
    make_engine,
)

# --- the application: Starlette, reporting what it received ------------------------------------


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query": request.scope["query_string"].decode("latin-1"),
            "content_type": request.headers.get("content-type"),
            "body": body.decode("latin-1"),
            "form": parse_qs(body.decode("latin-1")),
        },
        headers={"X-App": "starlette"},
    )


def starlette_app(events: list[str] | None = None) -> Starlette:
    """A search site that answers every request with what it saw of it; its lifespan records
    "startup" and "shutdown" in `events`."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if events is not None:
            events.append("startup")
        yield
        if events is not None:
            events.append("shutdown")

    return Starlette(
        routes=[
            Route("/search", _echo, methods=["GET", "POST", "PUT"]),
            Route("/autocomplete", _echo),
            Route("/echo", _echo, methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )


# --- the server: uvicorn in this event loop -------------------------------------------------------


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free loopback port, with no access log."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        access_log=False,  # it would record every query
        log_config=None,
        http="h11",
        ws="none",
    )
    # `access_log=False` leaves uvicorn's access logger without handlers, but pytest's log
    # capture hangs one on every logger that does not propagate, which uvicorn reads as "an
    # access log is configured": keep it off here as it is off in a deployment.
    access = logging.getLogger("uvicorn.access")
    was_disabled, access.disabled = access.disabled, True
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(SERVER_TIMEOUT):
            while not server.started:
                if task.done():
                    await task  # raises what stopped it
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, SERVER_TIMEOUT)
        finally:
            access.disabled = was_disabled


def seen(body: bytes) -> dict[str, Any]:
    report = json.loads(body)
    assert isinstance(report, dict)
    return report


# --- transparency ------------------------------------------------------------------------------


async def test_a_rewritten_path_is_decided_as_the_app_routes_it() -> None:
    """An outer middleware that rewrites `path` leaves `raw_path` as the client sent it; the
    decision follows what the application routes on."""
    engine = make_engine()
    inner = InterceptASGI(starlette_app(), engine)

    async def rewrite(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/find":
            scope = {**scope, "path": "/search"}
        await inner(scope, receive, send)

    async with serving(rewrite) as base:
        _, headers, _ = await call("GET", base + "/find?q=blocked+example")
        assert "X-App" not in headers
        _, headers, body = await call("GET", base + "/find?q=kites")
        assert headers["X-App"] == "starlette"
        assert seen(body)["path"] == "/search"
    assert interventions(engine) == 1


async def test_starlette_add_middleware_takes_it_as_it_is() -> None:
    engine = make_engine()
    app = starlette_app()
    app.add_middleware(InterceptASGI, engine=engine)
    async with serving(app) as base:
        _, headers, _ = await call("GET", base + "/search?q=blocked+example")
        assert "X-App" not in headers
        _, headers, _ = await call("GET", base + "/search?q=kites")
        assert headers["X-App"] == "starlette"
    assert interventions(engine) == 1


async def test_lifespan_passes_through() -> None:
    events: list[str] = []
    async with serving(InterceptASGI(starlette_app(events), make_engine())) as base:
        assert events == ["startup"]
        _, headers, _ = await call("GET", base + "/echo")
        assert headers["X-App"] == "starlette"
    assert events == ["startup", "shutdown"]


async def test_websocket_and_other_scopes_pass_untouched() -> None:
    calls: list[tuple[Scope, Any, Any]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        calls.append((scope, receive, send))

    async def receive() -> Message:
        raise AssertionError("the middleware must not receive on this scope")

    async def send(message: Message) -> None:
        raise AssertionError("the middleware must not send on this scope")

    middleware = InterceptASGI(app, make_engine())
    for kind in ("websocket", "lifespan"):
        scope: Scope = {"type": kind, "path": "/search", "raw_path": b"/search",
                        "query_string": b"q=blocked+example", "headers": []}  # fmt: skip
        await middleware(scope, receive, send)
        assert calls[-1] == (scope, receive, send)
        assert calls[-1][0] is scope
    assert middleware.engine.counts.value("searches", route="search") == 0
