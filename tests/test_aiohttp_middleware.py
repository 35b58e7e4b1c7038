"""Intercept as aiohttp middleware in a real aiohttp search app, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from intercept.aiohttp_middleware import intercept_middleware, setup
from intercept.config import load_config
from intercept.core import Engine
from intercept.pages import load_pages
from tests.upstream import ROOT, RULES, fetch

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def _search(request: web.Request) -> web.Response:
    query = request.query.getall("q", [])
    if request.method == "POST":
        query += [str(v) for v in (await request.post()).getall("q", [])]
    return web.json_response(
        {"app": "search", "method": request.method, "target": request.raw_path, "q": query}
    )


def _app() -> tuple[web.Application, Engine]:
    config = load_config(None, environ={}, overrides={"messages": str(ROOT / "messages")})
    pages = load_pages(config.pages_folder, survey_url=config.survey_url)
    engine = Engine(config=config, rules=RULES, pages=pages)
    app = web.Application()
    app.router.add_route("*", "/search", _search)
    app.router.add_get("/autocomplete", _search)
    setup(app, config, engine=engine)
    return app, engine


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Engine]]:
    app, engine = _app()
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", engine
    await server.close()


async def test_benign_search_reaches_the_handler(served: tuple[str, Engine]) -> None:
    base, engine = served
    status, _, body = await fetch("GET", base + "/search?q=garden+chairs")
    assert status == 200
    assert b'"app": "search"' in body
    assert engine.counts.value("searches", route="search") == 1


async def test_counts_reach_the_metrics_without_a_scrape(served: tuple[str, Engine]) -> None:
    """The middleware hands its tallies over every second by itself (intercept.counting), so
    another worker's scrape sees them; read here straight from the registry, no sync."""
    base, engine = served
    await fetch("GET", base + "/search?q=garden+chairs")
    registry = engine.counts.registry
    for _ in range(50):
        if registry.get_sample_value("intercept_searches_total", {"route": "search"}) == 1:
            break
        await asyncio.sleep(0.1)
    assert registry.get_sample_value("intercept_searches_total", {"route": "search"}) == 1


async def test_matching_search_gets_the_page_and_the_handler_never_runs(
    served: tuple[str, Engine],
) -> None:
    base, _ = served
    status, headers, body = await fetch("GET", base + "/search?q=blocked+example")
    assert status == 200
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert b'"app"' not in body
    assert b"blocked example" not in body
    go = re.search(rb'href="(/_intercept/go/[^"]+)"', body)
    assert go is not None
    status, headers, _ = await fetch("GET", base + go.group(1).decode().replace("&amp;", "&"))
    assert status == 303
    assert headers["Location"].startswith("http")


async def test_post_search_is_decided_and_benign_posts_keep_their_body(
    served: tuple[str, Engine],
) -> None:
    base, _ = served
    status, _, body = await fetch("POST", base + "/search", data=b"q=blocked+example", headers=FORM)
    assert status == 200
    assert b'"app"' not in body
    status, _, body = await fetch("POST", base + "/search", data=b"q=garden+chairs", headers=FORM)
    assert status == 200
    assert b'"q": ["garden chairs"]' in body


async def test_warn_continue_reaches_the_handler_without_the_token(
    served: tuple[str, Engine],
) -> None:
    base, _ = served
    _, _, page = await fetch("GET", base + "/search?q=purple+teapot")
    link = re.search(rb'href="(/_intercept/continue/[^"]+)"', page)
    assert link is not None
    status, headers, _ = await fetch("GET", base + link.group(1).decode())
    assert status == 303
    status, _, body = await fetch("GET", base + headers["Location"])
    assert status == 200
    assert b'"target": "/search?q=purple+teapot"' in body


async def test_warned_post_search_gets_no_continue_button(served: tuple[str, Engine]) -> None:
    base, _ = served
    status, _, page = await fetch("POST", base + "/search", data=b"q=purple+teapot", headers=FORM)
    assert status == 200
    assert b'"app"' not in page
    assert b"/_intercept/continue/" not in page


async def test_autocomplete_match_is_an_empty_list(served: tuple[str, Engine]) -> None:
    base, _ = served
    status, headers, body = await fetch("GET", base + "/autocomplete?q=blocked+example")
    assert status == 200
    assert headers["Content-Type"].startswith("application/")
    assert b'"app"' not in body


def test_the_factory_checks_its_dependencies() -> None:
    with pytest.raises(TypeError, match="engine must be an intercept Engine"):
        intercept_middleware(engine="rules.yaml")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be an intercept Config"):
        setup(web.Application(), {"rules": "rules"})  # type: ignore[arg-type]


async def test_a_failing_decision_is_a_500_that_logs_only_its_kind(
    served: tuple[str, Engine], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = served

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom with /search?q=zqxsecret")

    monkeypatch.setattr(Engine, "decide", broken)
    with caplog.at_level(logging.DEBUG):
        status, _, body = await fetch("GET", base + "/search?q=zqxsecret")
    assert status == 500
    assert b"zqxsecret" not in body
    assert "decision failed (RuntimeError)" in caplog.text
    assert "zqxsecret" not in caplog.text


def test_building_the_middleware_scrubs_aiohttp_logs() -> None:
    from intercept.logscrub import _FILTER

    logger = logging.getLogger("aiohttp.server")
    logger.removeFilter(_FILTER)
    intercept_middleware(engine=_app()[1])
    assert _FILTER in logger.filters
