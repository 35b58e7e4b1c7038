"""The ASGI middleware over real sockets: a Starlette app wrapped by it, served by uvicorn on a
free loopback port in this event loop, with the same behaviours as the reverse proxy."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from intercept.asgi import ASGIApp, InterceptASGI, Message, Receive, Scope, Send, asgi_middleware
from intercept.config import load_config
from intercept.core import Engine
from tests.middleware_helpers import (
    CANARY,
    CANARY_HEADERS,
    FORM,
    ROOT,
    SERVER_TIMEOUT,
    assert_not_shown,
    call,
    form_actions,
    interventions,
    links,
    logged,
    make_engine,
)

Site = tuple[str, Engine]  # base URL, engine


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


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    """Starlette behind the middleware, on a free loopback port: (base URL, engine)."""
    engine = make_engine()
    async with serving(InterceptASGI(starlette_app(), engine)) as base:
        yield base, engine


def seen(body: bytes) -> dict[str, Any]:
    report = json.loads(body)
    assert isinstance(report, dict)
    return report


# --- transparency ------------------------------------------------------------------------------


async def test_benign_get_search_reaches_the_app_untouched(site: Site) -> None:
    base, engine = site
    status, headers, body = await call("GET", base + "/search?q=teapot+museum&page=2")
    assert status == 200
    assert headers["X-App"] == "starlette"
    app = seen(body)
    assert (app["method"], app["path"], app["query"]) == (
        "GET",
        "/search",
        "q=teapot+museum&page=2",
    )
    assert engine.counts.value("searches", route="search") == 1
    assert interventions(engine) == 0


async def test_other_paths_are_not_searches(site: Site) -> None:
    base, engine = site
    _, headers, body = await call("GET", base + "/echo?q=blocked+example")
    assert headers["X-App"] == "starlette"
    assert seen(body)["query"] == "q=blocked+example"
    assert engine.counts.value("searches", route="search") == 0


async def test_a_quoted_path_is_the_same_route(site: Site) -> None:
    base, engine = site
    _, headers, _ = await call("GET", base + "/%73earch?q=blocked+example")
    assert "X-App" not in headers
    assert interventions(engine) == 1


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


# --- decisions ---------------------------------------------------------------------------------


async def test_matching_get_search_gets_the_page(site: Site) -> None:
    base, engine = site
    status, headers, body = await call("GET", base + "/search?q=bl0cked-ex4mple&page=2")
    assert status == engine.config.block_status == 200
    assert "X-App" not in headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert int(headers["Content-Length"]) == len(body)
    assert b"<html" in body
    text = body.decode().lower()
    for form in ("bl0cked", "ex4mple", "blocked example", "page=2"):
        assert form not in text
    assert engine.counts.value("searches", route="search") == 1
    assert interventions(engine, "block") == interventions(engine) == 1


@pytest.mark.parametrize("method", ["PUT", "HEAD", "DELETE"])
async def test_every_method_is_decided(site: Site, method: str) -> None:
    base, _ = site
    status, headers, body = await call(method, base + "/search?q=blocked+example")
    assert status == 200  # answered before the application routes (it has no DELETE here)
    assert "X-App" not in headers
    if method == "HEAD":
        assert body == b""
        assert int(headers["Content-Length"]) > 0
    else:
        assert b"<html" in body


async def test_warn_continue_flow_reaches_the_app_without_the_token(site: Site) -> None:
    base, engine = site
    status, headers, body = await call("GET", base + "/search?q=purple+teapot")
    assert status == 200
    assert "X-App" not in headers
    assert b"purple" not in body
    continues = links(body, "/_intercept/continue/")
    assert len(continues) == 1
    status, headers, _ = await call("GET", base + continues[0])
    assert status == 303
    location = headers["Location"]
    assert location.startswith("/search?q=purple+teapot&_intercept_continue=")
    status, headers, body = await call("GET", base + location)
    assert status == 200
    assert headers["X-App"] == "starlette"
    app = seen(body)
    assert (app["path"], app["raw_path"], app["query"]) == ("/search", "/search", "q=purple+teapot")
    assert interventions(engine, "warn") == interventions(engine) == 1  # shown once
    assert engine.counts.value("searches", route="search") == 2


async def test_shadow_reaches_the_app_and_is_counted(site: Site) -> None:
    base, engine = site
    _, headers, body = await call("GET", base + "/search?q=velvet+moth")
    assert headers["X-App"] == "starlette"
    assert seen(body)["query"] == "q=velvet+moth"
    assert interventions(engine, "shadow") == interventions(engine) == 1


async def test_post_form_searches(site: Site) -> None:
    base, engine = site
    status, headers, body = await call("POST", base + "/search", data={"q": "blocked example"})
    assert status == 200
    assert "X-App" not in headers
    assert b"blocked" not in body
    status, headers, body = await call("POST", base + "/search", data={"q": "kites", "page": "2"})
    assert status == 200
    assert headers["X-App"] == "starlette"
    app = seen(body)
    assert app["method"] == "POST"
    assert app["body"] == "q=kites&page=2"  # the body the middleware received, replayed intact
    assert app["form"] == {"q": ["kites"], "page": ["2"]}
    assert engine.counts.value("searches", route="search") == 2
    assert interventions(engine) == 1


async def test_warned_post_search_is_replayed_by_the_continue_button(site: Site) -> None:
    base, engine = site
    status, headers, body = await call(
        "POST", base + "/search", data={"q": "purple teapot", "page": "2"}
    )
    assert status == 200
    assert "X-App" not in headers
    assert "form-action 'self'" in headers["Content-Security-Policy"]
    actions = form_actions(body)
    assert len(actions) == 1
    assert actions[0].startswith("/_intercept/continue/")
    status, headers, _ = await call("GET", base + actions[0])
    assert status == 405  # following it as a link never replays a POST
    assert headers["Allow"] == "POST"
    assert "X-App" not in headers
    status, headers, body = await call("POST", base + actions[0])
    assert status == 200
    assert headers["X-App"] == "starlette"
    app = seen(body)
    assert (app["method"], app["path"], app["query"]) == ("POST", "/search", "")
    assert app["content_type"] == FORM
    assert app["body"] == "q=purple+teapot&page=2"
    assert app["form"] == {"q": ["purple teapot"], "page": ["2"]}
    assert interventions(engine) == 1


async def test_click_through_counts_and_redirects(site: Site) -> None:
    base, engine = site
    _, _, body = await call("GET", base + "/search?q=blocked+example")
    survey = links(body, "/_intercept/go/survey")
    assert survey
    status, headers, _ = await call("GET", base + survey[0])
    assert status == 303
    assert headers["Location"].startswith(engine.config.survey_url)
    assert headers["Referrer-Policy"] == "no-referrer"
    variant = survey[0].split("v=")[1].split("&")[0]
    assert engine.counts.value("clicks", link="survey", variant=variant) == 1
    status, headers, _ = await call("GET", base + "/_intercept/go/no-such-link?v=harm&l=en")
    assert status == 404
    assert "X-App" not in headers


async def test_autocomplete_answers_an_empty_list(site: Site) -> None:
    base, engine = site
    status, headers, body = await call("GET", base + "/autocomplete?q=blocked+example")
    assert status == 200
    assert "X-App" not in headers
    assert json.loads(body) == []
    _, headers, _ = await call("GET", base + "/autocomplete?q=kit")
    assert headers["X-App"] == "starlette"
    assert engine.counts.value("searches", route="autocomplete") == 2


async def test_oversized_search_body_is_413(site: Site) -> None:
    base, engine = site
    big = b"q=kites&pad=" + b"x" * engine.config.limits.body
    status, headers, _ = await call(
        "POST", base + "/search", data=big, headers={"Content-Type": FORM}
    )
    assert status == 413
    assert "X-App" not in headers


async def test_oversized_chunked_search_body_is_413(site: Site) -> None:
    base, engine = site
    limit = engine.config.limits.body

    async def chunks() -> AsyncIterator[bytes]:
        yield b"q=kites&pad="
        yield b"x" * limit

    status, headers, _ = await call(
        "POST", base + "/search", data=chunks(), headers={"Content-Type": FORM}
    )
    assert status == 413
    assert "X-App" not in headers

    async def small() -> AsyncIterator[bytes]:
        yield b"q=blocked"
        yield b"+example"

    _, headers, _ = await call(
        "POST", base + "/search", data=small(), headers={"Content-Type": FORM}
    )
    assert "X-App" not in headers  # a chunked body is received to its end and decided


async def test_compressed_search_body_is_refused(site: Site) -> None:
    base, _ = site
    status, headers, _ = await call(
        "POST",
        base + "/search",
        data=b"\x1f\x8b not really gzip",
        headers={"Content-Type": FORM, "Content-Encoding": "gzip"},
    )
    assert status == 415
    assert "X-App" not in headers


# --- failures and privacy ------------------------------------------------------------------------


async def test_a_failed_decision_is_a_500_that_logs_no_request_details(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = site

    def broken(self: Engine, *args: object) -> None:
        raise RuntimeError(f"{CANARY} broke while deciding")

    monkeypatch.setattr(Engine, "decide", broken)
    caplog.set_level(logging.DEBUG)
    response = await call("GET", base + f"/search?q={CANARY}+kites", headers=CANARY_HEADERS)
    status, headers, body = response
    assert status == 500
    assert "X-App" not in headers
    assert b"<html" in body  # Intercept's own error page
    assert_not_shown(response, CANARY)
    failures = [r for r in caplog.records if r.name == "intercept.asgi"]
    assert [r.getMessage() for r in failures] == ["intercept: decision failed (RuntimeError)"]
    assert CANARY not in logged(caplog.records)


async def test_no_query_or_header_in_logs_answers_or_pages(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    base, engine = site
    caplog.set_level(logging.DEBUG)
    query = f"{CANARY}+blocked+example"
    shown = [
        await call("GET", base + f"/search?q={query}", headers=CANARY_HEADERS),
        await call(
            "POST",
            base + "/search",
            data={"q": f"{CANARY} blocked example"},
            headers=CANARY_HEADERS,
        ),
        await call("GET", base + f"/search?q={CANARY}+purple+teapot", headers=CANARY_HEADERS),
        await call("GET", base + f"/autocomplete?q={query}", headers=CANARY_HEADERS),
        await call("GET", base + f"/search?q={query}&pad={'x' * 9000}", headers=CANARY_HEADERS),
        await call(
            "POST",
            base + f"/search?q={CANARY}",
            data=b"x" * (engine.config.limits.body + 1),
            headers={**CANARY_HEADERS, "Content-Type": FORM},
        ),
        await call("GET", base + f"/_intercept/go/{CANARY}?v=harm&l=en", headers=CANARY_HEADERS),
    ]
    assert [status for status, _, _ in shown] == [200, 200, 200, 200, 414, 413, 404]
    for response in shown:
        assert "X-App" not in response[1]
        assert_not_shown(response, CANARY, "blocked example", "purple teapot")
    assert CANARY not in logged(caplog.records)
    assert interventions(engine) == 4


# --- building it ---------------------------------------------------------------------------------


def test_factory_builds_the_engine_from_a_config(tmp_path: Path) -> None:
    config = load_config(
        None,
        environ={},
        overrides={
            "rules": str(ROOT / "rules"),
            "messages": str(ROOT / "messages"),
            "ledger": {"url": f"sqlite:{tmp_path / 'ledger.db'}"},
        },
    )
    middleware = asgi_middleware(starlette_app(), config=config)
    assert middleware.engine.config is config
    assert middleware.engine.rules.rules
    ledger = middleware.engine.counts.ledger
    assert ledger is not None  # the configured ledger is fed and flushed
    middleware.engine.counts.search("search")
    assert ledger.flush_now()
    assert (tmp_path / "ledger.db").exists()
    engine = make_engine()
    assert asgi_middleware(starlette_app(), engine=engine).engine is engine


def test_factory_and_class_refuse_wrong_dependencies() -> None:
    app = starlette_app()
    engine = make_engine()
    with pytest.raises(TypeError, match="missing config="):
        asgi_middleware(app)
    with pytest.raises(ValueError, match="not both"):
        asgi_middleware(app, config=engine.config, engine=engine)
    with pytest.raises(TypeError, match=r"engine must be an intercept\.core\.Engine, got str"):
        asgi_middleware(app, engine=cast(Engine, "engine"))
    with pytest.raises(TypeError, match=r"config must be an intercept\.config\.Config, got dict"):
        asgi_middleware(app, config=cast(Any, {"rules": "rules"}))
    with pytest.raises(TypeError, match="app must be an ASGI application"):
        InterceptASGI(cast(Any, None), engine)
    with pytest.raises(TypeError, match="engine must be"):
        InterceptASGI(app, cast(Engine, None))
