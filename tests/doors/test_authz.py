"""The decision service over real sockets: each front proxy's request shapes and counting.

The shipped proxy configurations are exercised with real nginx, Caddy and HAProxy in
tests/deploy/test_deploy_*.py; here the service itself is checked request by request.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

import pytest

from intercept.core import Engine
from tests.upstream import fetch, running_authz

BLOCKED = "/search?q=blocked+example"
WARNED = "/search?q=purple+teapot"
BENIGN = "/search?q=garden+chairs"
NGINX = "/_intercept/auth-request"
PAGE = "/_intercept/page"
AUTHZ = "/_intercept/authz"


def interventions(engine: Engine, action: str = "block") -> float:
    return sum(
        engine.counts.value(
            "interventions", category="demo", action=action, language="en", variant=variant
        )
        for variant in engine.pages.variants
    )


def nginx_headers(target: str, method: str = "GET") -> dict[str, str]:
    return {"X-Original-URI": target, "X-Original-Method": method}


def forward_headers(target: str, method: str = "GET") -> dict[str, str]:
    return {
        "X-Forwarded-Method": method,
        "X-Forwarded-Uri": target,
        "X-Forwarded-Host": "search.example",
        "X-Forwarded-Proto": "https",
    }


async def test_nginx_decision_then_page_counts_once() -> None:
    async with running_authz() as (base, engine):
        status, _, body = await fetch("GET", base + NGINX, headers=nginx_headers(BLOCKED))
        assert (status, body) == (403, b"")
        assert engine.counts.value("searches", route="search") == 1
        assert interventions(engine) == 0  # the page fetch counts it
        status, headers, page = await fetch("GET", base + PAGE, headers=nginx_headers(BLOCKED))
        assert status == 200  # block_status: nginx passes the named location's status on
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert b"/_intercept/go/" in page
        assert b"blocked example" not in page
        assert engine.counts.value("searches", route="search") == 1
        assert interventions(engine) == 1


async def test_nginx_allows_benign_and_unrouted_requests() -> None:
    async with running_authz() as (base, engine):
        for target in (BENIGN, "/static/app.css", "/"):
            status, _, body = await fetch("GET", base + NGINX, headers=nginx_headers(target))
            assert (status, body) == (204, b"")
        assert engine.counts.value("searches", route="search") == 1


async def test_forward_auth_denies_with_the_page_and_counts_once() -> None:
    async with running_authz() as (base, engine):
        status, headers, page = await fetch(
            "GET", base + AUTHZ, headers={**forward_headers(BLOCKED), "Accept-Language": "de"}
        )
        assert status == 403
        assert headers["Content-Language"] == "en"  # the rule's language comes first
        assert headers["Referrer-Policy"] == "no-referrer"
        assert b"/_intercept/go/" in page
        status, _, body = await fetch("GET", base + AUTHZ, headers=forward_headers(BENIGN))
        assert (status, body) == (200, b"")
        assert engine.counts.value("searches", route="search") == 2
        assert interventions(engine) == 1


async def test_envoy_path_prefix_carries_the_original_target() -> None:
    async with running_authz() as (base, engine):
        status, _, page = await fetch("GET", base + AUTHZ + BLOCKED)
        assert status == 403
        assert b"/_intercept/go/" in page
        status, _, body = await fetch("GET", base + AUTHZ + BENIGN)
        assert (status, body) == (200, b"")
        status, _, _ = await fetch("GET", base + AUTHZ + "/")
        assert status == 200
        assert interventions(engine) == 1


async def test_post_search_bodies_are_decided_where_the_proxy_sends_them() -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with running_authz() as (base, engine):
        status, _, _ = await fetch(
            "POST", base + AUTHZ + "/search", data=b"q=blocked+example", headers=form
        )
        assert status == 403
        status, _, _ = await fetch(
            "POST",
            base + AUTHZ,
            data=b"q=blocked+example",
            headers={**forward_headers("/search", "POST"), **form},
        )
        assert status == 403
        status, _, _ = await fetch(
            "POST", base + AUTHZ + "/search", data=b"q=garden+chairs", headers=form
        )
        assert status == 200
        assert interventions(engine) == 2


async def test_warned_post_search_gets_no_continue_link() -> None:
    # nothing in this mode can resend the body, so a continue button would lead nowhere
    async with running_authz() as (base, _):
        status, _, page = await fetch(
            "POST",
            base + AUTHZ + "/search",
            data=b"q=purple+teapot",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert status == 403
    assert b"/_intercept/continue/" not in page


async def test_warn_continue_link_leads_to_an_allowed_search() -> None:
    async with running_authz() as (base, engine):
        status, _, page = await fetch("GET", base + AUTHZ, headers=forward_headers(WARNED))
        assert status == 403
        link = re.search(rb'href="(/_intercept/continue/[^"]+)"', page)
        assert link is not None
        status, headers, _ = await fetch("GET", base + link.group(1).decode())
        assert status == 303
        target = headers["Location"]
        assert target.startswith(WARNED + "&_intercept_continue=")
        status, _, _ = await fetch("GET", base + AUTHZ, headers=forward_headers(target))
        assert status == 200
        status, _, _ = await fetch("GET", base + NGINX, headers=nginx_headers(target))
        assert status == 204
        # a token lifts a warn only for the search it was issued for
        other = target.replace("purple+teapot", "purple+teapot+again")
        status, _, _ = await fetch("GET", base + AUTHZ, headers=forward_headers(other))
        assert status == 403
        assert interventions(engine, "warn") == 2


async def test_forged_descriptions_from_untrusted_addresses_are_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_authz(authz={"trusted_proxies": ["10.0.0.0/8"]}) as (base, engine):
        with caplog.at_level(logging.WARNING, logger="intercept.authz"):
            status, _, _ = await fetch("GET", base + AUTHZ, headers=forward_headers(BENIGN))
        assert status == 403
        assert engine.counts.value("searches", route="search") == 0
    assert "trusted_proxies" in caplog.text
    assert "127.0.0.1" not in caplog.text


async def test_a_misconfigured_proxy_is_refused_and_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_authz() as (base, _):
        with caplog.at_level(logging.WARNING, logger="intercept.authz"):
            status, _, _ = await fetch("GET", base + AUTHZ)
            nginx_status, _, _ = await fetch("GET", base + NGINX)
    assert (status, nginx_status) == (403, 403)
    assert "X-Forwarded-Uri" in caplog.text
    assert "X-Original-URI" in caplog.text


async def test_limits_and_own_paths_deny() -> None:
    async with running_authz() as (base, _):
        long_query = "/search?q=" + "a" * 3000
        status, _, body = await fetch("GET", base + AUTHZ, headers=forward_headers(long_query))
        assert status == 403
        assert b"a" * 100 not in body
        status, _, _ = await fetch("GET", base + NGINX, headers=nginx_headers(long_query))
        assert status == 403
        status, _, _ = await fetch("GET", base + AUTHZ, headers=forward_headers("/_intercept/go/x"))
        assert status == 403


async def test_click_through_and_unknown_paths() -> None:
    async with running_authz() as (base, engine):
        _, _, page = await fetch("GET", base + AUTHZ, headers=forward_headers(BLOCKED))
        link = re.search(rb'href="(/_intercept/go/([^"?]+)\?v=([a-z]+)[^"]*)"', page)
        assert link is not None
        href, link_id, variant = (part.decode() for part in link.groups())
        status, headers, _ = await fetch("GET", base + href.replace("&amp;", "&"))
        assert status == 303
        assert headers["Location"].startswith("http")
        assert engine.counts.value("clicks", link=link_id, variant=variant) == 1
        status, _, _ = await fetch("GET", base + "/search?q=" + quote("blocked example"))
        assert status == 404  # the service answers only its own paths


async def test_autocomplete_denial_is_an_empty_suggestion_list() -> None:
    async with running_authz() as (base, _):
        status, headers, body = await fetch("GET", base + AUTHZ + "/autocomplete?q=blocked+example")
    assert status == 403
    assert headers["Content-Type"].startswith("application/")
    assert body in (b"[]", b'["", []]')


@pytest.mark.parametrize("token", ["1.x", "\u00b2.x", "9999999999.\u00e9", "", "."])
async def test_malformed_continue_tokens_are_ignored_not_errors(token: str) -> None:
    async with running_authz() as (base, _):
        target = WARNED + "&_intercept_continue=" + token  # raw, as nginx passes $request_uri
        status, _, _ = await fetch("GET", base + AUTHZ, headers=forward_headers(target))
        nginx, _, _ = await fetch("GET", base + NGINX, headers=nginx_headers(target))
    assert (status, nginx) == (403, 403)  # the interstitial, as without a token


async def test_a_post_continue_link_from_another_front_door_is_405_with_an_empty_allow() -> None:
    # a reverse proxy with the same warn.secret could have issued it; nothing here can
    # resend the body, so no method will do (RFC 9110: an empty Allow)
    async with running_authz() as (base, engine):
        form = ("application/x-www-form-urlencoded", b"q=purple+teapot")
        sealed = engine.tokens.seal("search", "/search", "purple teapot", form=form)
        for method in ("POST", "GET"):
            status, headers, page = await fetch(method, base + "/_intercept/continue/" + sealed)
            assert status == 405
            assert headers["Allow"] == ""
            assert b"purple" not in page
