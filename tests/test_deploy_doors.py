"""The same checks over every shipped reverse-proxy configuration (nginx, Caddy, HAProxy), each
run for real with its Debian package: what a search, a blocked search, a warn page, a click,
an autocomplete, other paths, private endpoints, forged headers and other spellings of the
search path must do behind any of them (`tests/deploy_helpers.Deployment` holds the checks).

Each proxy's own module keeps what only it does (fail-open switches, body limits, access
logs) and its `deployed` context manager, which this suite borrows. A proxy whose package is
missing is skipped by `require_binary`, with the install command. About 1 s per case."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests import test_deploy_caddy, test_deploy_haproxy, test_deploy_nginx
from tests.deploy_helpers import Deployment

Deployed = Callable[[Path], AbstractAsyncContextManager[Deployment]]

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


async def test_warn_interstitial_then_continue_then_results(door: Deployment) -> None:
    await door.check_warn_continue()


async def test_click_through_is_counted_and_redirected(door: Deployment) -> None:
    await door.check_click_through()


async def test_autocomplete_gets_an_empty_suggestion_list(door: Deployment) -> None:
    await door.check_autocomplete()


async def test_static_and_other_paths_never_reach_the_decision_service(door: Deployment) -> None:
    await door.check_other_paths_never_asked()


async def test_decision_endpoints_are_not_reachable_by_clients(door: Deployment) -> None:
    await door.check_private_endpoints()


async def test_forged_forwarded_headers_change_nothing(door: Deployment) -> None:
    await door.check_forged_descriptions_ignored()


async def test_other_spellings_of_the_search_path_are_decided(door: Deployment, proxy: str) -> None:
    await door.check_path_variants(PATH_VARIANTS + EXTRA_PATH_VARIANTS.get(proxy, []))
