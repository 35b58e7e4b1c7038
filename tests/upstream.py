"""Test helpers for the proxy: a real aiohttp upstream app, Intercept in front, a client; and
the repository's demo configuration (`repo_config`)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from intercept.config import Config, load_config
from intercept.doors.proxy import Engine
from intercept.pages import pages_for
from intercept.research.counting import Counts
from intercept.rules.ruleset import compile_rules
from intercept.server.serve import start
from tests.conftest import spec
from tests.processes import free_port

ROOT = Path(__file__).parent.parent
MIB = 1024 * 1024


# --- the upstream: a real aiohttp app that reports what it received ---------------------------


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "target": request.raw_path,
            "headers": list(request.headers.items()),
            "body": body.decode("utf-8", "replace"),
        },
        headers={"X-Upstream": "yes", "Set-Cookie": "session=abc; Path=/"},
    )


async def _gzip(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b"compressed hello" * 100),
        headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
    )


async def _redirect(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/elsewhere"})


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i in range(5):
        await response.write(f"part {i}\n".encode())
    await response.write_eof()
    return response


async def _count_body(request: web.Request) -> web.Response:
    size = 0
    async for chunk in request.content.iter_chunked(MIB):
        size += len(chunk)
    return web.json_response({"received": size})


async def _big(request: web.Request) -> web.StreamResponse:
    total = int(request.query.get("mib", "1")) * MIB
    response = web.StreamResponse(headers={"Content-Length": str(total)})
    await response.prepare(request)
    block = b"x" * MIB
    for _ in range(total // MIB if request.method != "HEAD" else 0):
        await response.write(block)
    await response.write_eof()
    return response


async def _slow_head(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


async def _cut_short(
    request: web.Request, response: web.StreamResponse, sent: bytes, pause: float = 0
) -> web.StreamResponse:
    """Send `response`'s head and `sent`, wait `pause` seconds, then close the connection: an
    upstream that fails mid-body."""
    await response.prepare(request)
    await response.write(sent)
    if pause:
        await asyncio.sleep(pause)
    assert request.transport is not None
    request.transport.close()
    return response


async def _reset_mid_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "100000"})
    return await _cut_short(request, response, b"y" * 1000)


async def _reset_chunked(request: web.Request) -> web.StreamResponse:
    """A chunked body (no Content-Length) that the upstream cuts short."""
    return await _cut_short(request, web.StreamResponse(), b"c" * 1000, pause=0.1)


async def _trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(100):
        await response.write(b"t" * 65536)
        await asyncio.sleep(0.01)
    return response


BODY_RELEASE = web.AppKey("late body release", asyncio.Event)


async def _late_body(request: web.Request) -> web.StreamResponse:
    """The head at once; the body only once the test sets `BODY_RELEASE` (or after 10 s)."""
    response = web.StreamResponse(headers={"Content-Length": "4", "X-Upstream": "late"})
    await response.prepare(request)  # a StreamResponse sends its head at once
    release = request.app[BODY_RELEASE]
    await asyncio.wait_for(release.wait(), 10)
    release.clear()
    await response.write(b"late")
    return response


async def _stall_mid_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "100000"})
    await response.prepare(request)
    await response.write(b"s" * 1000)
    await asyncio.sleep(5)
    return response


async def _results(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(
        text="results page",
        headers={"X-Upstream": "results", "X-Method": request.method,
                 "X-Body": body.decode("ascii", "replace")[:200]},
    )  # fmt: skip


def upstream_app() -> web.Application:
    app = web.Application(client_max_size=200 * MIB)
    app[BODY_RELEASE] = asyncio.Event()
    app.router.add_route("*", "/echo{tail:.*}", _echo)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/chunked", _chunked)
    app.router.add_post("/count", _count_body)
    app.router.add_get("/big", _big)
    app.router.add_get("/slow-head", _slow_head)
    app.router.add_get("/reset", _reset_mid_body)
    app.router.add_get("/reset-chunked", _reset_chunked)
    app.router.add_get("/stall", _stall_mid_body)
    app.router.add_get("/late-body", _late_body)
    app.router.add_get("/trickle", _trickle)
    app.router.add_route("*", "/search", _results)
    app.router.add_route("*", "/autocomplete", _results)
    return app


def repo_config(**overrides: Any) -> Config:
    """The configuration of the repository's demo rules and pages, from no file and no
    environment; `overrides` as `load_config` takes them (a `rules` of its own included)."""
    settings = {"rules": str(ROOT / "rules"), "messages": str(ROOT / "messages"), **overrides}
    return load_config(None, environ={}, overrides=settings)


RULES = compile_rules(
    [
        spec("BLOCK-1", "blocked example"),
        spec("WARN-1", "purple teapot", action="warn"),
        spec("WARN-2", "green kettle", action="warn"),
        spec("SHADOW-1", "velvet moth", action="shadow", category="trial"),
        spec("DE-1", "blaue strasse", language="de"),
    ]
)


Proxy = tuple[str, Engine]


class running_proxy:
    """Intercept in front of `upstream_url` on a free loopback port, started as
    `intercept serve` starts it (`intercept.server.serve.start`)."""

    def __init__(self, upstream_url: str, **settings: Any) -> None:
        self.port = free_port()
        self.config = load_config(
            None,
            environ={},
            overrides={
                "upstream": upstream_url,
                "messages": str(ROOT / "messages"),
                "listen": f"127.0.0.1:{self.port}",
                **settings,
            },
        )
        pages = pages_for(self.config)
        self.engine = Engine(config=self.config, rules=RULES, pages=pages, counts=Counts())
        self.runner: web.BaseRunner | None = None

    async def __aenter__(self) -> Proxy:
        self.runner = await start(self.config, self.engine)
        return f"http://127.0.0.1:{self.port}", self.engine

    async def __aexit__(self, *exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class running_authz(running_proxy):
    """Intercept's decision service (`mode: authz`) on a free loopback port."""

    def __init__(self, **settings: Any) -> None:
        super().__init__("http://127.0.0.1:9", mode="authz", **settings)


Fetch = Callable[..., Awaitable[tuple[int, Any, bytes]]]


async def fetch(method: str, url: str, **kwargs: Any) -> tuple[int, Any, bytes]:
    """One request with a fresh client that decompresses nothing and follows nothing."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            return response.status, response.headers, await response.read()


async def raw_exchange(base: str, request: bytes, size: int = 1000) -> bytes:
    """Send raw bytes to the server at `base` and return the start of its answer."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(size), 10)
    writer.close()
    return answer
