"""The same checks over every shipped reverse-proxy configuration (nginx, Caddy, HAProxy), each
run for real with its Debian package: what a search, a blocked search, a warn page, a click,
an autocomplete, other paths, private endpoints, forged headers and other spellings of the
search path must do behind any of them (`tests/deploy_helpers.Deployment` holds the checks);
how each fails closed while the decision service is down, and, for the two that document it
(nginx, HAProxy), fails open when told to; then, for the two that route searches with a body
to a second Intercept in proxy mode (nginx and Caddy; HAProxy sends bodies to the decision
service itself), the body routing as shipped, its "#refuse" variant, its failure mode and its
unsafe opt-out.

Each proxy's own module keeps what only it does (body limits, logs, HTTP/2 bodies) and its
`deployed` context manager, which this suite borrows. A proxy whose package is missing is
skipped by `require_binary`, with the install command. About 1 s per case."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.deploy import test_deploy_caddy, test_deploy_haproxy, test_deploy_nginx
from tests.deploy_helpers import BLOCKED, Bodies, Deployment
from tests.upstream import fetch

Deployed = Callable[..., AbstractAsyncContextManager[Deployment]]

PROXIES: dict[str, Deployed] = {
    "nginx": test_deploy_nginx.deployed,
    "caddy": test_deploy_caddy.deployed,
    "haproxy": test_deploy_haproxy.deployed,
}

# what the decision service is asked, per proxy: nginx asks auth_request, then the page of a
# blocked search; Caddy and HAProxy ask one endpoint that answers the page itself. Never the
# query: the decision's own URI carries none.
ASKED_BENIGN = {
    "nginx": ["/_intercept/auth-request"],
    "caddy": ["/_intercept/authz"],
    "haproxy": ["/_intercept/authz"],
}
ASKED_BLOCKED = {
    "nginx": ["/_intercept/auth-request", "/_intercept/page"],
    "caddy": ["/_intercept/authz"],
    "haproxy": ["/_intercept/authz"],
}

PATH_VARIANTS = [
    "/%73earch?q=blocked+example",
    "//search?q=blocked+example",
    "/SEARCH?q=blocked+example",
    "/x/../search?q=blocked+example",
    "/search/?q=blocked+example",
    "/search;jsessionid=1?q=blocked+example",
    "/complete//search?q=blocked+example",
    "/search;x/?q=blocked+example",  # servlet containers drop ";x" before routing
    "/foo/..;/search?q=blocked+example",  # ... and read "..;" as ".."
]
EXTRA_PATH_VARIANTS = {"haproxy": ["/search;%zz?q=blocked+example"]}


@pytest.fixture(params=list(PROXIES))
def proxy(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def door(proxy: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with PROXIES[proxy](tmp_path) as deployment:
        yield deployment


async def test_benign_search_reaches_the_upstream_untouched(door: Deployment, proxy: str) -> None:
    await door.check_benign_search()
    assert door.authz.targets == ASKED_BENIGN[proxy]


async def test_blocked_search_gets_the_page_and_is_counted_once(
    door: Deployment, proxy: str
) -> None:
    await door.check_blocked_search()
    assert door.authz.targets == ASKED_BLOCKED[proxy]


# The checks that need nothing per proxy (each documented in tests/deploy_helpers.Deployment):
# the warn interstitial, its continue link, then results; a click-through, counted and
# redirected; an empty suggestion list for a blocked autocomplete; static and other paths never
# reach the decision service; its endpoints are not reachable by clients; forged
# X-Original-*/X-Forwarded-* headers change nothing.
CHECKS = [
    Deployment.check_warn_continue,
    Deployment.check_click_through,
    Deployment.check_autocomplete,
    Deployment.check_other_paths_never_asked,
    Deployment.check_private_endpoints,
    Deployment.check_forged_descriptions_ignored,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
async def test_every_proxy_passes(
    door: Deployment, check: Callable[[Deployment], Awaitable[None]]
) -> None:
    await check(door)


async def test_other_spellings_of_the_search_path_are_decided(door: Deployment, proxy: str) -> None:
    await door.check_path_variants(PATH_VARIANTS + EXTRA_PATH_VARIANTS.get(proxy, []))


# --- while the decision service is down --------------------------------------------------

# What a search gets: each proxy fails closed with its own answer (status, headers).
FAILED_CLOSED: dict[str, tuple[int, dict[str, str]]] = {
    "nginx": (500, {}),  # auth_request's own error
    "caddy": (502, {}),
    "haproxy": (503, {"Retry-After": "10"}),  # intercept.lua's answer
}
# nginx's error log records the request line of a failure (deploy/nginx/intercept.conf says
# so); the other proxies' logs never hold the query
LOGS_REQUEST_LINE = {"nginx"}
# the proxies whose configuration documents how to fail open instead
FAIL_OPEN = ["nginx", "haproxy"]


async def test_searches_fail_closed_while_the_decision_service_is_down(
    proxy: str, tmp_path: Path
) -> None:
    async with PROXIES[proxy](tmp_path, intercept_down=True) as door:
        status, headers, _ = await door.get(BLOCKED)
        expected_status, expected_headers = FAILED_CLOSED[proxy]
        assert status == expected_status, door.explain()
        assert "X-Upstream" not in headers
        assert {name: headers.get(name) for name in expected_headers} == expected_headers
        assert door.upstream.requests == []
        status, _, _ = await door.get("/echo")
        assert status == 200  # other paths never depended on Intercept
        if proxy not in LOGS_REQUEST_LINE:
            assert "blocked" not in door.process.stderr()


@pytest.mark.parametrize("proxy", FAIL_OPEN)
async def test_fail_open_lets_searches_through_while_the_decision_service_is_down(
    proxy: str, tmp_path: Path
) -> None:
    """The documented opt-in (nginx's "#failopen" lines, HAProxy's `setenv
    INTERCEPT_FAIL_OPEN 1`): results, unchecked."""
    async with PROXIES[proxy](tmp_path, intercept_down=True, fail_open=True) as door:
        status, headers, _ = await door.get(BLOCKED)
        assert status == 200, door.explain()
        assert headers["X-Upstream"] == "results"
        status, _, _ = await door.get("/echo")
        assert status == 200


# --- searches with a body: routed to Intercept's reverse proxy (nginx, Caddy) ---------------

BODY_ROUTING = ["nginx", "caddy"]
# with the unsafe opt-out a GET search is still decided: nginx shows the page from
# auth_request's error page (200), Caddy answers the decision's own status (403)
OPT_OUT_BLOCK_STATUS = {"nginx": 200, "caddy": 403}


# the `proxy` fixture, and with it `door`, over these proxies only
body_routing = pytest.mark.parametrize("proxy", BODY_ROUTING)


@body_routing
async def test_post_search_routes_through_intercept_proxy_mode(door: Deployment) -> None:
    """As shipped: POST searches (and a warned one's continue button) go through `intercept
    serve --mode proxy`, which reads the body; GET searches still ask the decision service."""
    await door.check_post_through_proxy_mode()
    await door.check_blocked_search()


@body_routing
async def test_every_blocked_search_body_is_decided(door: Deployment) -> None:
    """As shipped: a blocked phrase in a body (form, multipart, JSON, UTF-16; POST, PUT, PATCH,
    DELETE, OPTIONS, even GET; Content-Length or chunked) gets the deterrence page from
    Intercept's reverse proxy and never reaches the search front-end."""
    await door.check_blocked_bodies_decided()
    assert door.authz.requests == []  # the decision service, which cannot see bodies: never


@body_routing
async def test_benign_search_bodies_reach_the_front_end_intact(door: Deployment) -> None:
    await door.check_benign_bodies_pass()


@body_routing
async def test_search_bodies_refused_with_the_refuse_lines(proxy: str, tmp_path: Path) -> None:
    """The "#refuse" variant, for front-ends that take no searches in bodies: 405, no second
    Intercept needed; GET searches are decided as usual."""
    async with PROXIES[proxy](tmp_path, bodies=Bodies.REFUSED) as door:
        await door.check_blocked_bodies_decided(refused=405)
        status, headers, _ = await fetch("POST", door.base + "/search", data={"q": "kites"})
        assert status == 405, door.explain()
        assert headers["Allow"] == "GET, HEAD"
        assert door.upstream.requests == []
        await door.check_blocked_search()


@body_routing
async def test_search_bodies_fail_closed_while_the_reverse_proxy_is_down(
    proxy: str, tmp_path: Path
) -> None:
    """Without the second Intercept, searches with a body are refused (502), never passed on
    unchecked; GET searches are decided as usual."""
    async with PROXIES[proxy](tmp_path, bodies=Bodies.PROXY_DOWN) as door:
        outcome = await door.send_blocked_bodies()
        assert {status for status, _ in outcome.values()} == {502}, outcome
        assert not any(reached for _, reached in outcome.values()), outcome
        await door.check_benign_search()


@body_routing
async def test_the_unsafe_opt_out_lets_search_bodies_through(proxy: str, tmp_path: Path) -> None:
    """The risk the file states for its opt-out, measured: without the body routing, every
    blocked search body reaches the front-end (what the shipped file did before it routed
    them)."""
    async with PROXIES[proxy](tmp_path, bodies=Bodies.UNSAFE) as door:
        outcome = await door.send_blocked_bodies()
        assert all(reached for _, reached in outcome.values()), outcome
        door.upstream.clear()
        status, headers, _ = await door.get(BLOCKED)  # GET searches are still decided
        assert status == OPT_OUT_BLOCK_STATUS[proxy], door.explain()
        assert "X-Upstream" not in headers
        assert door.upstream.requests == []
