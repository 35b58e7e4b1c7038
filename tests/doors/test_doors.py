"""The same cases over every front door that stands in front of a search site, each a real
server on loopback: the reverse proxy (`intercept serve`) before an aiohttp site, the aiohttp
middleware in that site, the WSGI middleware around Flask under waitress, werkzeug and
wsgiref, and the ASGI middleware around Starlette under uvicorn. What a benign search, another
path, a quoted path, a blocked search, any method, a shadow rule, a form search, a warned form
search's replay, a click, an autocomplete, an oversized or compressed body, a failed decision
and a privacy canary must do behind any of them. Each door's own module keeps what only it
does (its environ or scope, its server's quirks, its factory). The decision service (`mode:
authz`) has no site behind it: its cases run behind real nginx, Caddy and HAProxy in
`tests/deploy/test_deploy_doors.py`. About 0.2 s per case."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from intercept.core import Engine
from intercept.doors.aiohttp_middleware import setup
from intercept.doors.asgi import InterceptASGI
from intercept.doors.wsgi import InterceptWSGI
from tests.doors import test_asgi, test_wsgi
from tests.middleware_helpers import (
    CANARY,
    CANARY_HEADERS,
    FORM,
    assert_not_shown,
    call,
    continues,
    counted,
    form_actions,
    interventions,
    links,
    logged,
    make_engine,
    variant_of,
)
from tests.upstream import running_proxy


@dataclass(frozen=True, slots=True)
class Door:
    base: str  # the server's base URL
    engine: Engine
    app: str  # what the application behind it says in X-App
    failure: tuple[str, str]  # the logger and the line of a failed decision
    replays_posts: bool = True  # a warned form search's continue button replays it
    long_target: int = 414  # the answer to a request line longer than 8 KiB
    continued: Callable[[dict[str, Any]], None] = lambda app: None  # what else a continued
    # search must look like to the site (a WSGI server's REQUEST_URI, an ASGI raw_path)


DOORS = [
    "proxy",
    "aiohttp",
    *(f"wsgi-{server}" for server in sorted(test_wsgi.SERVERS)),
    "asgi-uvicorn",
]


async def _site(request: web.Request) -> web.Response:
    """The aiohttp search site: what it saw of each request, as the Flask and Starlette ones
    say it."""
    body = await request.read()
    form: dict[str, list[str]] = {}
    if request.content_type == FORM:
        form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
    seen = {
        "method": request.method,
        "path": request.path,
        "query": request.rel_url.raw_query_string,
        "content_type": request.content_type,
        "body": body.decode("latin-1"),
        "form": form,
    }
    return web.json_response(seen, headers={"X-App": "aiohttp"})


def site_app() -> web.Application:
    app = web.Application()
    for path in ("/search", "/autocomplete", "/echo"):
        app.router.add_route("*", path, _site)
    return app


@asynccontextmanager
async def aiohttp_serving(app: web.Application) -> AsyncIterator[str]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


@pytest.fixture
def door_settings() -> dict[str, Any]:
    """Configuration every door of a test is built with (a test class may override it)."""
    return {}


@pytest.fixture(params=DOORS)
async def door(
    request: pytest.FixtureRequest, door_settings: dict[str, Any]
) -> AsyncIterator[Door]:
    engine = make_engine(**door_settings)
    kind, _, server = str(request.param).partition("-")
    if kind == "proxy":
        async with aiohttp_serving(site_app()) as site:
            async with running_proxy(site, **door_settings) as (base, engine):
                failure = ("aiohttp.server", "request failed (RuntimeError)")
                yield Door(base, engine, "aiohttp", failure)
    elif kind == "aiohttp":
        app = site_app()
        setup(app, engine.config, engine=engine)
        async with aiohttp_serving(app) as base:
            # aiohttp's own request parser refuses a long line first (400); aiohttp routes a
            # request before its middlewares run, so a replayed POST is not offered
            failure = ("intercept.aiohttp", FAILED)
            yield Door(base, engine, "aiohttp", failure, replays_posts=False, long_target=400)
    elif kind == "wsgi":

        def uri(app: dict[str, Any]) -> None:  # what each server puts in the environ
            assert app["uri"] == URIS[server]

        with test_wsgi.SERVERS[server](InterceptWSGI(test_wsgi.flask_app(), engine)) as base:
            yield Door(base, engine, "flask", ("intercept.wsgi", FAILED), continued=uri)
    else:

        def raw_path(app: dict[str, Any]) -> None:
            assert app["raw_path"] == "/search"

        async with test_asgi.serving(InterceptASGI(test_asgi.starlette_app(), engine)) as base:
            failure = ("intercept.asgi", FAILED)
            yield Door(base, engine, "starlette", failure, continued=raw_path)


URIS = {
    "waitress": ["/search?q=purple+teapot", None],
    "werkzeug": ["/search?q=purple+teapot", "/search?q=purple+teapot"],
    "wsgiref": [None, None],
}
"""REQUEST_URI and RAW_URI of a continued search, as each WSGI server sets them (the token
gone from both)."""


FAILED = "intercept: decision failed (RuntimeError)"


def seen(body: bytes) -> dict[str, Any]:
    report = json.loads(body)
    assert isinstance(report, dict)
    return report


async def test_benign_get_search_reaches_the_app_untouched(door: Door) -> None:
    base, engine = door.base, door.engine
    status, headers, body = await call("GET", base + "/search?q=teapot+museum&page=2")
    assert status == 200
    assert headers["X-App"] == door.app
    app = seen(body)
    assert (app["method"], app["path"], app["query"]) == (
        "GET",
        "/search",
        "q=teapot+museum&page=2",
    )
    assert engine.counts.value("searches", route="search") == 1
    assert interventions(engine) == 0


async def test_other_paths_are_not_searches(door: Door) -> None:
    base, engine = door.base, door.engine
    _, headers, body = await call("GET", base + "/echo?q=blocked+example")
    assert headers["X-App"] == door.app
    assert seen(body)["query"] == "q=blocked+example"
    assert engine.counts.value("searches", route="search") == 0


async def test_a_quoted_path_is_the_same_route(door: Door) -> None:
    base, engine = door.base, door.engine
    _, headers, _ = await call("GET", base + "/%73earch?q=blocked+example")
    assert "X-App" not in headers
    assert interventions(engine) == 1


async def test_matching_get_search_gets_the_page(door: Door) -> None:
    base, engine = door.base, door.engine
    status, headers, body = await call("GET", base + "/search?q=bl0cked-ex4mple&page=2")
    assert status == engine.config.block_status == 200
    assert "X-App" not in headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert int(headers["Content-Length"]) == len(body)
    assert b"<html" in body
    text = body.decode().lower()
    for form in ("bl0cked", "ex4mple", "blocked example", "blocked-example", "page=2"):
        assert form not in text
    hrefs = re.findall(r'href="([^"]+)"', text)
    assert hrefs
    assert all(href.startswith(("/_intercept/go/", "#", "tel:")) for href in hrefs)
    assert engine.counts.value("searches", route="search") == 1
    assert interventions(engine, "block") == interventions(engine) == 1


async def test_every_text_of_a_search_is_decided(door: Door) -> None:
    """Every value of a repeated parameter, every query parameter the route names, a double
    percent-encoding, invalid UTF-8 beside the words, a multipart form."""
    base, engine = door.base, door.engine
    for target in (
        "/search?q=kites&q=blocked+example",
        "/search?query=%2562locked%20example",
        "/search?q=%FF%FEblocked+example",
    ):
        _, headers, _ = await call("GET", base + target)
        assert "X-App" not in headers, target
    form = aiohttp.FormData()
    form.add_field("q", "blocked example")
    _, headers, _ = await call("POST", base + "/search", data=form())
    assert "X-App" not in headers
    assert interventions(engine, "block") == interventions(engine) == 4


async def test_warn_continue_flow_reaches_the_site_without_the_token(door: Door) -> None:
    base, engine = door.base, door.engine
    status, headers, page = await call("GET", base + "/search?q=purple+teapot")
    assert status == 200
    assert "X-App" not in headers
    assert b"purple" not in page
    assert b"teapot" not in page
    continue_links = links(page, "/_intercept/continue/")
    assert len(continue_links) == 2  # at the top and after the help list: one way on
    assert len(set(continue_links)) == 1
    assert continues(engine) == {}  # shown, not yet continued
    status, headers, _ = await call("GET", base + continue_links[0])
    assert status == 303
    location = headers["Location"]
    assert location.startswith("/search?q=purple+teapot&_intercept_continue=")
    status, headers, body = await call("GET", base + location)
    assert status == 200
    assert headers["X-App"] == door.app
    app = seen(body)
    assert (app["path"], app["query"]) == ("/search", "q=purple+teapot")
    door.continued(app)
    assert interventions(engine, "warn") == interventions(engine) == 1  # shown once
    assert continues(engine) == {("demo", variant_of(page), "en"): 1}  # went on past it
    assert engine.counts.value("searches", route="search") == 2
    # the token lifts only this query, on this route; never a block
    token = location.split("_intercept_continue=")[1]
    for query in ("purple+teapots+and+purple+teapot", "blocked+example"):
        _, headers, _ = await call("GET", base + f"/search?q={query}&_intercept_continue={token}")
        assert "X-App" not in headers, query


async def test_an_api_client_gets_the_intervention_as_json(door: Door) -> None:
    """A request that names JSON first in Accept gets the page's message and links as JSON,
    with the page's status and policy, counted like a page; a browser's Accept gets the page."""
    base, engine = door.base, door.engine
    api = {"Accept": "application/json, text/plain;q=0.5"}
    status, headers, body = await call("GET", base + "/search?q=blocked+example", headers=api)
    assert status == engine.config.block_status
    assert "X-App" not in headers
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert (headers["Cache-Control"], headers["Referrer-Policy"]) == ("no-store", "no-referrer")
    answer = json.loads(body)
    assert (answer["intervention"], answer["action"], answer["language"]) == (True, "block", "en")
    assert answer["continue"] is None
    assert answer["title"]
    assert len(answer["message"]) >= 2  # the lead and the body, as the page says them
    assert answer["links"][0]["id"] == "survey"
    assert all(link["href"].startswith("/_intercept/go/") for link in answer["links"])
    assert b"blocked" not in body.lower()
    assert interventions(engine, "block") == interventions(engine) == 1
    status, headers, body = await call(
        "GET", base + "/search?q=purple+teapot", headers={"Accept": "application/vnd.api+json"}
    )
    onward = json.loads(body)["continue"]
    assert (json.loads(body)["action"], onward["method"]) == ("warn", "GET")
    assert b"purple" not in body
    status, headers, _ = await call("GET", base + onward["href"])
    assert status == 303  # the same continue link as the page's
    assert headers["Location"].startswith("/search?q=purple+teapot&_intercept_continue=")
    browser = {"Accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"}
    _, headers, body = await call("GET", base + "/search?q=blocked+example", headers=browser)
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<html" in body


@pytest.mark.parametrize("method", ["PUT", "HEAD", "DELETE"])
async def test_every_method_is_decided(door: Door, method: str) -> None:
    base = door.base
    status, headers, body = await call(method, base + "/search?q=blocked+example")
    assert status == 200  # answered before the application routes (it has no DELETE here)
    assert "X-App" not in headers
    if method == "HEAD":
        assert body == b""
        assert int(headers["Content-Length"]) > 0
    else:
        assert b"<html" in body


async def test_shadow_reaches_the_app_and_is_counted(door: Door) -> None:
    base, engine = door.base, door.engine
    _, headers, body = await call("GET", base + "/search?q=velvet+moth")
    assert headers["X-App"] == door.app
    assert seen(body)["query"] == "q=velvet+moth"
    assert interventions(engine, "shadow") == interventions(engine) == 1


async def test_post_form_searches(door: Door) -> None:
    base, engine = door.base, door.engine
    status, headers, body = await call("POST", base + "/search", data={"q": "blocked example"})
    assert status == 200
    assert "X-App" not in headers
    assert b"blocked" not in body
    status, headers, body = await call("POST", base + "/search", data={"q": "kites", "page": "2"})
    assert status == 200
    assert headers["X-App"] == door.app
    app = seen(body)
    assert app["method"] == "POST"
    assert app["body"] == "q=kites&page=2"  # the body the middleware read, handed on intact
    assert app["form"] == {"q": ["kites"], "page": ["2"]}
    assert engine.counts.value("searches", route="search") == 2
    assert interventions(engine) == 1


async def test_warned_post_search_is_replayed_by_the_continue_button_where_it_can_be(
    door: Door,
) -> None:
    base, engine = door.base, door.engine
    status, headers, page = await call(
        "POST", base + "/search", data={"q": "purple teapot", "page": "2"}
    )
    assert status == 200
    assert "X-App" not in headers
    if not door.replays_posts:  # the page offers no button, and its policy allows no form
        assert "form-action 'none'" in headers["Content-Security-Policy"]
        assert form_actions(page) == []
        assert b"/_intercept/continue/" not in page
        return
    assert "form-action 'self'" in headers["Content-Security-Policy"]
    actions = form_actions(page)
    assert len(actions) == 1
    assert actions[0].startswith("/_intercept/continue/")
    status, headers, _ = await call("GET", base + actions[0])
    assert continues(engine) == {}  # following it as a link is no continue
    assert status == 405  # following it as a link never replays a POST
    assert headers["Allow"] == "POST"
    assert "X-App" not in headers
    status, headers, body = await call("POST", base + actions[0])
    assert status == 200
    assert headers["X-App"] == door.app
    app = seen(body)
    assert (app["method"], app["path"], app["query"]) == ("POST", "/search", "")
    assert app["content_type"] == FORM
    assert app["body"] == "q=purple+teapot&page=2"
    assert app["form"] == {"q": ["purple teapot"], "page": ["2"]}
    assert interventions(engine) == 1
    assert continues(engine) == {("demo", variant_of(page), "en"): 1}  # the button


async def test_click_through_counts_and_redirects(door: Door) -> None:
    base, engine = door.base, door.engine
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


async def test_autocomplete_answers_an_empty_list(door: Door) -> None:
    base, engine = door.base, door.engine
    status, headers, body = await call("GET", base + "/autocomplete?q=blocked+example")
    assert status == 200
    assert "X-App" not in headers
    assert json.loads(body) == []
    _, headers, _ = await call("GET", base + "/autocomplete?q=kit")
    assert headers["X-App"] == door.app
    assert engine.counts.value("searches", route="autocomplete") == 2


async def test_oversized_search_body_is_413(door: Door) -> None:
    base, engine = door.base, door.engine
    big = b"q=kites&pad=" + b"x" * engine.config.limits.body
    status, headers, _ = await call(
        "POST", base + "/search", data=big, headers={"Content-Type": FORM}
    )
    assert status == 413
    assert "X-App" not in headers


async def test_compressed_search_body_is_refused(door: Door) -> None:
    base = door.base
    status, headers, _ = await call(
        "POST",
        base + "/search",
        data=b"\x1f\x8b not really gzip",
        headers={"Content-Type": FORM, "Content-Encoding": "gzip"},
    )
    assert status == 415
    assert "X-App" not in headers


async def test_a_failed_decision_is_a_500_that_logs_no_request_details(
    door: Door, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    base = door.base

    def broken(self: Engine, *args: object, **counting: bool) -> None:
        raise RuntimeError(f"{CANARY} broke while deciding")

    monkeypatch.setattr(Engine, "decide", broken)
    caplog.set_level(logging.DEBUG)
    response = await call("GET", base + f"/search?q={CANARY}+kites", headers=CANARY_HEADERS)
    status, headers, body = response
    assert status == 500
    assert "X-App" not in headers
    assert b"<html" in body  # Intercept's own error page
    assert_not_shown(response, CANARY)
    logger, line = door.failure
    assert [r.getMessage() for r in caplog.records if r.name == logger] == [line]
    assert CANARY not in logged(caplog.records)


async def test_no_query_or_header_in_logs_answers_or_pages(
    door: Door, caplog: pytest.LogCaptureFixture
) -> None:
    base, engine = door.base, door.engine
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
    assert [status for status, _, _ in shown] == [200, 200, 200, 200, door.long_target, 413, 404]
    for response in shown:
        assert "X-App" not in response[1]
        assert_not_shown(response, CANARY, "blocked example", "purple teapot")
    assert CANARY not in logged(caplog.records)
    assert interventions(engine) == 4


SURVEY = {
    "questions": [
        {"id": "why", "text": {"en": "What brought you here?"},
         "options": [{"id": "curious", "text": {"en": "Curiosity"}},
                     {"id": "stop", "text": {"en": "I want to stop"}}]},
        {"id": "help", "text": {"en": "Would you like help?"},
         "options": [{"id": "yes", "text": {"en": "Yes"}}, {"id": "no", "text": {"en": "No"}}]},
    ]
}  # fmt: skip


def answers(engine: Engine) -> dict[tuple[str, ...], float]:
    """Answers counted so far: (question, option, variant, language) -> count."""
    return counted(engine, "survey_answers")


class TestTheSurveyOnThePage:
    """With `survey.questions` the page asks them in a plain form; its answers are counted
    once per page shown, whatever is replayed or forged."""

    @pytest.fixture
    def door_settings(self) -> dict[str, Any]:
        return {"survey": SURVEY}

    async def test_answers_are_counted_once_per_page_and_thanked(self, door: Door) -> None:
        base, engine = door.base, door.engine
        _, headers, page = await call("GET", base + "/search?q=blocked+example")
        assert "form-action 'self'" in headers["Content-Security-Policy"]
        assert form_actions(page) == ["/_intercept/answer"]
        token = re.search(rb'name="t" value="([^"]+)"', page)
        assert token is not None
        variant = variant_of(page)
        form = {"why": "stop", "help": "yes", "t": token.group(1).decode(), "note": "free text"}
        status, headers, thanks = await call("POST", base + "/_intercept/answer", data=form)
        assert status == 200
        assert "X-App" not in headers
        assert links(thanks, "/_intercept/go/survey")  # the full survey, and the help list
        assert links(thanks, "/_intercept/go/help-")
        assert b"free text" not in thanks
        counted = {("why", "stop", variant, "en"): 1, ("help", "yes", variant, "en"): 1}
        assert answers(engine) == counted
        for replay in (form, {**form, "why": "curious"}):  # the same token again: not counted
            status, _, _ = await call("POST", base + "/_intercept/answer", data=replay)
            assert status == 200
        forged = {**form, "t": form["t"][:-2] + "AA"}
        await call("POST", base + "/_intercept/answer", data=forged)
        assert answers(engine) == counted
        status, headers, _ = await call("GET", base + "/_intercept/answer")
        assert (status, headers["Allow"]) == (405, "POST")
