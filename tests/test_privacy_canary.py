"""The privacy guarantee, proved per mode: canaries in the query, the client address, the user
agent, a cookie and a referrer never reach a log record (any level), the metrics, the ledger
database, a report, an answer Intercept produced, or a redirect target.

Each mode (reverse proxy, decision service for nginx and for forward-auth proxies, aiohttp,
WSGI and ASGI middleware) runs over real sockets with a real SQLite ledger attached; the
client connects from its own loopback address (127.83.91.7), which is the address canary.
Answers that come from the search front-end itself (benign results) are the operator's own
traffic and are not checked; everything Intercept writes or answers is.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from intercept.cli import main as cli_main
from intercept.core import Engine
from intercept.doors.aiohttp_middleware import setup
from intercept.doors.asgi import asgi_middleware
from intercept.doors.wsgi import wsgi_middleware
from intercept.research.ledger import Ledger
from tests.middleware_helpers import make_engine
from tests.upstream import running_authz, running_proxy, upstream_app

CLIENT_ADDRESS = "127.83.91.7"
CANARIES = (
    "zqxcanaryq",  # in every query
    CLIENT_ADDRESS,
    "198.51.100.77",  # a forwarded-for address the client sends
    "zqxcanaryua",
    "zqxcanaryck",
    "zqxcanaryref",
)
HEADERS = {
    "User-Agent": "Mozilla/5.0 zqxcanaryua",
    "Cookie": "sid=zqxcanaryck",
    "Referer": "https://zqxcanaryref.example/",
    "X-Forwarded-For": "198.51.100.77",
    "Accept-Language": "de-DE,de;q=0.9",
}
RESEARCH: dict[str, Any] = {
    "survey": {"questions": [{"id": "why", "text": {"en": "Why?", "de": "Warum?"},
                              "options": [{"id": "curious", "text": {"en": "Curiosity"}},
                                          {"id": "stop", "text": {"en": "To stop"}}]}]},
    "experiments": [{"name": "canarytrial", "start": str(date.today() - timedelta(days=1)),
                     "end": str(date.today() + timedelta(days=1)),
                     "weights": {"harm": 1, "neutral": 1}, "control": "neutral"}],
}  # fmt: skip
"""Every research count on: the page's own survey questions (answered in every mode) and an
experiment running today (its record in the ledger)."""
QUERIES = ("zqxcanaryq blocked example", "zqxcanaryq purple teapot", "zqxcanaryq velvet moth",
           "zqxcanaryq garden chairs")  # fmt: skip


class _Everything(logging.Handler):
    """Every record at every level, as a handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        formatted = logging.Formatter(
            "%(name)s %(levelname)s %(message)s %(pathname)s", validate=False
        ).format(record)
        self.text.append(f"{formatted} {record.args!r} {record.__dict__!r}")


@contextmanager
def all_logs() -> Iterator[_Everything]:
    handler = _Everything()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("intercept").debug("capture check")
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@dataclass
class Seen:
    """What a mode produced: Intercept's own answers and redirect targets."""

    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)


Ask = Callable[[aiohttp.ClientSession, str, str, bytes | None], Awaitable[tuple[int, Any, bytes]]]


async def _request(
    session: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None, **extra: Any
) -> tuple[int, Any, bytes]:
    headers = {**HEADERS, **extra.pop("headers", {})}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with session.request(
        method, url, data=body, headers=headers, allow_redirects=False, **extra
    ) as response:
        return response.status, response.headers, await response.read()


async def drive(base: str, ask: Ask, seen: Seen, *, posts: bool = True) -> None:
    """Every kind of search, then every link the pages offer, from the canary address."""
    connector = aiohttp.TCPConnector(local_addr=(CLIENT_ADDRESS, 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        pages: list[bytes] = []
        for query in QUERIES:
            target = "/search?q=" + quote_plus(query)
            status, headers, body = await ask(session, "GET", target, None)
            if b"/_intercept/go/" in body:  # Intercept's page, not the front-end's results
                seen.answers.append((status, dict(headers), body))
                pages.append(body)
            if posts:
                form = ("q=" + quote_plus(query)).encode()
                status, headers, body = await ask(session, "POST", "/search", form)
                if b"/_intercept/go/" in body:
                    seen.answers.append((status, dict(headers), body))
                for action in re.findall(rb'<form method="post" action="([^"]+)"', body):
                    await _request(session, "POST", base + action.decode())  # the continue
                    # button: the search goes on to the front-end (its answer, not ours)
        for page in pages:
            token = re.search(rb'name="t" value="([^"]+)"', page)
            assert token is not None, "no answer form on the page"
            answer = b"why=stop&t=" + token.group(1)
            status, headers, body = await _request(session, "POST", base + "/_intercept/answer",
                                                   answer)  # fmt: skip
            seen.answers.append((status, dict(headers), body))  # the thank-you page
            for href in set(re.findall(rb'href="(/_intercept/[^"]+)"', page)):
                link = href.decode().replace("&amp;", "&")
                status, headers, body = await _request(session, "GET", base + link)
                # a continue link leads the searcher back to their own search: that address
                # goes to them alone, so it is checked for being exactly that and nothing else
                if link.startswith("/_intercept/continue/"):
                    assert headers["Location"].startswith(
                        "/search?q=zqxcanaryq+purple+teapot&_intercept_continue="
                    )
                    continue
                seen.answers.append((status, dict(headers), body))
                if "Location" in headers:
                    seen.redirects.append(headers["Location"])


def assert_no_canary(where: str, text: str) -> None:
    for canary in CANARIES:
        assert canary.lower() not in text.lower(), f"{canary!r} found in {where}"


async def check_everything(
    engine: Engine, ledger: Ledger, seen: Seen, logs: _Everything, tmp_path: Path
) -> None:
    assert seen.answers, "the mode produced no answer of its own"
    assert any(r.startswith("http") for r in seen.redirects), "no click-through was followed"
    for status, headers, body in seen.answers:
        assert_no_canary(f"an answer ({status})", repr(headers) + body.decode("latin-1"))
    for target in seen.redirects:
        assert_no_canary("a redirect target", target)
    metrics = engine.counts.exposition().decode()
    assert_no_canary("the metrics", metrics)
    assert ledger.flush_now()
    database = tmp_path / "ledger.db"
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    assert b"search" in stored  # the route label is there: the scan reads real data
    assert_no_canary("the ledger database", stored.decode("latin-1"))
    today = datetime.now(UTC).date()
    for fmt in ("csv", "json", "html"):
        out = tmp_path / f"report.{fmt}"
        code = cli_main(
            ["report", "--ledger", f"sqlite:{database}", "--format", fmt, "-o", str(out),
             "--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1)),
             "--k", "1"]
        )  # fmt: skip
        assert code == 0
        assert_no_canary(f"the {fmt} report", out.read_text())
    assert engine.counts.value("searches", route="search") >= len(QUERIES)
    for metric in ("warn_continues", "survey_answers"):  # every research count, exercised
        found = re.findall(rf"^intercept_{metric}_total\{{.*\}} (\S+)$", metrics, re.M)
        assert sum(map(float, found)) >= 1, f"no {metric} were counted"
    assert b"canarytrial" in stored  # the experiment's record reached the scanned ledger
    assert any("capture check" in line for line in logs.text), "the log capture is not working"
    assert_no_canary("the logs", "\n".join(logs.text))


def attach(engine: Engine, tmp_path: Path) -> Ledger:
    ledger = Ledger.from_url(f"sqlite:{tmp_path / 'ledger.db'}")
    engine.counts.ledger = ledger
    return ledger


def through(base: str) -> Ask:
    """Searches sent straight to `base` (proxy and middleware modes)."""

    async def ask(
        session: aiohttp.ClientSession, method: str, target: str, body: bytes | None
    ) -> tuple[int, Any, bytes]:
        return await _request(session, method, base + target, body)

    return ask


@asynccontextmanager
async def search_upstream() -> AsyncIterator[str]:
    server = TestServer(upstream_app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def test_reverse_proxy(tmp_path: Path) -> None:
    seen = Seen()
    with all_logs() as logs:
        async with (
            search_upstream() as upstream,
            running_proxy(upstream, **RESEARCH) as (base, engine),
        ):
            ledger = attach(engine, tmp_path)
            await drive(base, through(base), seen)
            await _request_garbage(base)
    await check_everything(engine, ledger, seen, logs, tmp_path)


async def _request_garbage(base: str) -> None:
    """A request line the parser refuses, holding the query canary: aiohttp logs such."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /search?q=zqxcanaryq\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(reader.read(1000), 10)
    writer.close()
    await writer.wait_closed()


async def test_decision_service_nginx_flow(tmp_path: Path) -> None:
    seen = Seen()

    async def ask(
        session: aiohttp.ClientSession, method: str, target: str, body: bytes | None
    ) -> tuple[int, Any, bytes]:
        described = {"X-Original-URI": target, "X-Original-Method": method}
        status, headers, answer = await _request(
            session, "GET", base + "/_intercept/auth-request", headers=described
        )
        seen.answers.append((status, dict(headers), answer))
        if status != 403:
            return status, headers, b"results"
        return await _request(session, "GET", base + "/_intercept/page", headers=described)

    with all_logs() as logs:
        async with running_authz(**RESEARCH) as (base, engine):
            ledger = attach(engine, tmp_path)
            await drive(base, ask, seen, posts=False)  # nginx sends no bodies
    await check_everything(engine, ledger, seen, logs, tmp_path)


async def test_decision_service_forward_auth_and_envoy(tmp_path: Path) -> None:
    seen = Seen()

    async def ask(
        session: aiohttp.ClientSession, method: str, target: str, body: bytes | None
    ) -> tuple[int, Any, bytes]:
        if body is None:  # Traefik and Caddy describe it in headers
            described = {
                "X-Forwarded-Method": method,
                "X-Forwarded-Uri": target,
                "X-Forwarded-Host": "search.example",
                "X-Forwarded-Proto": "https",
            }
            answer = await _request(session, "GET", base + "/_intercept/authz", headers=described)
        else:  # Envoy sends the original method, target and body
            answer = await _request(session, method, base + "/_intercept/authz" + target, body)
        seen.answers.append((answer[0], dict(answer[1]), answer[2]))
        return answer

    with all_logs() as logs:
        async with running_authz(**RESEARCH) as (base, engine):
            ledger = attach(engine, tmp_path)
            await drive(base, ask, seen)
    await check_everything(engine, ledger, seen, logs, tmp_path)


async def _results(request: web.Request) -> web.Response:
    return web.Response(text="results")


async def test_aiohttp_middleware(tmp_path: Path) -> None:
    seen = Seen()
    engine = make_engine(**RESEARCH)
    app = web.Application()
    app.router.add_route("*", "/search", _results)
    setup(app, engine.config, engine=engine)
    ledger = attach(engine, tmp_path)
    with all_logs() as logs:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            base = f"http://127.0.0.1:{server.port}"
            await drive(base, through(base), seen)
        finally:
            await server.close()
    await check_everything(engine, ledger, seen, logs, tmp_path)


def _wsgi_results(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"results"]


async def test_wsgi_middleware(tmp_path: Path) -> None:
    from tests.doors.test_wsgi import waitress_serving

    seen = Seen()
    engine = make_engine(**RESEARCH)
    ledger = attach(engine, tmp_path)
    with all_logs() as logs:
        with waitress_serving(wsgi_middleware(_wsgi_results, engine=engine)) as base:
            await drive(base, through(base), seen)
    await check_everything(engine, ledger, seen, logs, tmp_path)


async def _asgi_results(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"results"})


async def test_asgi_middleware(tmp_path: Path) -> None:
    from tests.doors.test_asgi import serving

    seen = Seen()
    engine = make_engine(**RESEARCH)
    ledger = attach(engine, tmp_path)
    with all_logs() as logs:
        async with serving(asgi_middleware(_asgi_results, engine=engine)) as base:
            await drive(base, through(base), seen)
    await check_everything(engine, ledger, seen, logs, tmp_path)


async def test_the_optional_access_log_writes_no_request_details(tmp_path: Path) -> None:
    seen = Seen()
    with all_logs() as logs:
        async with (
            search_upstream() as upstream,
            running_proxy(upstream, access_log=True, **RESEARCH) as (base, engine),
        ):
            ledger = attach(engine, tmp_path)
            await drive(base, through(base), seen)
    access = [line for line in logs.text if line.startswith("intercept.access INFO")]
    assert len(access) >= len(QUERIES)
    assert any(" GET search 200 " in line for line in access)
    await check_everything(engine, ledger, seen, logs, tmp_path)
