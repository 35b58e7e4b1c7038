"""Decisions through the proxy: block, warn and continue, shadow, autocomplete, extraction."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import aiohttp

from tests.upstream import Proxy, fetch

CANARY = "blocked example"


async def test_block_answers_the_page_and_never_reaches_upstream(proxy: Proxy) -> None:
    base, engine = proxy
    status, headers, body = await fetch("GET", base + "/search?q=bl0cked-ex4mple&page=2")
    assert status == 200
    assert "X-Upstream" not in headers
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert b"<html" in body
    text = body.decode()
    for form in ("bl0cked", "ex4mple", "blocked example", "blocked-example", "page=2"):
        assert form not in text.lower()
    hrefs = re.findall(r'href="([^"]+)"', text)
    assert hrefs
    assert all(h.startswith(("/_intercept/go/", "#")) for h in hrefs)
    assert engine.counts.value("searches", route="search") == 1
    assert sum(
        engine.counts.value("interventions", category="demo", action="block", language="en",
                            variant=v)
        for v in engine.pages.variants
    ) == 1  # fmt: skip


async def test_benign_search_is_forwarded(proxy: Proxy) -> None:
    base, engine = proxy
    status, headers, _body = await fetch("GET", base + "/search?q=teapot+museum")
    assert status == 200
    assert headers["X-Upstream"] == "results"
    assert engine.counts.value("searches", route="search") == 1


async def test_every_value_of_a_repeated_parameter_is_checked(proxy: Proxy) -> None:
    base, _ = proxy
    _, headers, _ = await fetch("GET", base + "/search?q=kites&q=blocked+example")
    assert "X-Upstream" not in headers
    _, headers, _ = await fetch("GET", base + "/search?query=%2562locked%20example")
    assert "X-Upstream" not in headers  # double encoding


async def test_post_form_json_and_multipart(proxy: Proxy) -> None:
    base, _ = proxy
    _, headers, _ = await fetch("POST", base + "/search", data={"q": CANARY})
    assert "X-Upstream" not in headers
    form = aiohttp.FormData()
    form.add_field("q", CANARY)
    _, headers, _ = await fetch("POST", base + "/search", data=form())
    assert "X-Upstream" not in headers
    _, headers, _ = await fetch("POST", base + "/search", data={"q": "kites"})
    assert headers["X-Upstream"] == "results"


async def test_invalid_utf8_and_plus(proxy: Proxy) -> None:
    base, _ = proxy
    _, headers, _ = await fetch("GET", base + "/search?q=%FF%FEblocked+example")
    assert "X-Upstream" not in headers


async def test_shadow_is_forwarded_and_counted(proxy: Proxy) -> None:
    base, engine = proxy
    _, headers, _ = await fetch("GET", base + "/search?q=velvet+moth")
    assert headers["X-Upstream"] == "results"
    assert (
        engine.counts.value(
            "interventions", category="trial", action="shadow", language="en", variant="none"
        )
        == 1
    )


async def test_autocomplete_answers_an_empty_list(proxy: Proxy) -> None:
    base, _ = proxy
    status, headers, body = await fetch("GET", base + "/autocomplete?q=blocked+example")
    assert status == 200
    assert json.loads(body) == []
    assert "X-Upstream" not in headers


async def test_warn_continue_flow(proxy: Proxy) -> None:
    base, _engine = proxy
    status, headers, body = await fetch("GET", base + "/search?q=purple+teapot")
    assert status == 200
    text = body.decode()
    assert "purple" not in text
    assert "teapot" not in text
    links = re.findall(r'href="(/_intercept/continue/[^"]+)"', text)
    assert len(links) == 1
    status, headers, _ = await fetch("GET", base + links[0])
    assert status == 303
    location = headers["Location"]
    assert location.startswith("/search?q=purple+teapot&_intercept_continue=")
    status, headers, body = await fetch("GET", base + location)
    assert headers["X-Upstream"] == "results"
    # the token lifts only this query, on this route
    token = location.split("_intercept_continue=")[1]
    _, headers, _ = await fetch("GET", base + "/search?q=purple+teapots+and+purple+teapot"
                                f"&_intercept_continue={token}")  # fmt: skip
    assert "X-Upstream" not in headers
    _, headers, _ = await fetch(
        "GET", base + f"/search?q=blocked+example&_intercept_continue={token}"
    )
    assert "X-Upstream" not in headers


async def test_forged_continue_link_is_400(proxy: Proxy) -> None:
    base, _ = proxy
    status, _, _ = await fetch("GET", base + "/_intercept/continue/AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert status == 400


async def test_click_through_counts_and_redirects(proxy: Proxy) -> None:
    base, engine = proxy
    _, _, body = await fetch("GET", base + "/search?q=blocked+example")
    link = re.findall(r'href="(/_intercept/go/survey[^"]*)"', body.decode())[0]
    status, headers, _ = await fetch("GET", base + link.replace("&amp;", "&"))
    assert status == 303
    assert headers["Referrer-Policy"] == "no-referrer"
    target = headers["Location"]
    assert target.startswith(engine.config.survey_url)
    assert "blocked" not in target
    variant = re.search(r"v=([a-z]+)", link)
    assert variant is not None
    assert engine.counts.value("clicks", link="survey", variant=variant.group(1)) == 1
    status, _, _ = await fetch("GET", base + "/_intercept/go/no-such-link?v=harm&l=en")
    assert status == 404


async def test_rule_language_wins_over_accept_language(proxy: Proxy) -> None:
    base, _ = proxy
    _, headers, body = await fetch(
        "GET", base + "/search?q=" + quote("blaue straße"), headers={"Accept-Language": "en-US"}
    )
    assert headers["Content-Language"] == "de"
    assert b'lang="de"' in body


async def test_warn_on_a_post_search_replays_it_when_continued(proxy: Proxy) -> None:
    base, _ = proxy
    form = {"q": "purple teapot", "page": "2"}
    status, headers, body = await fetch("POST", base + "/search", data=form)
    assert status == 200
    assert "X-Upstream" not in headers
    text = body.decode()
    assert "purple" not in text
    links = re.findall(r'href="(/_intercept/continue/[^"]+)"', text)
    assert len(links) == 1
    status, headers, body = await fetch("GET", base + links[0])
    assert status == 200
    assert headers["X-Upstream"] == "results"
    assert headers["X-Method"] == "POST"
    assert headers["X-Body"] == "q=purple+teapot&page=2"


async def test_expired_continue_link_is_400(proxy: Proxy) -> None:
    base, engine = proxy
    assert engine.tokens is not None
    sealed = engine.tokens.seal("search", "/search?q=purple+teapot", "purple teapot", now=0)
    status, _, _ = await fetch("GET", base + f"/_intercept/continue/{sealed}")
    assert status == 400
