"""deploy/caddy/Caddyfile, as shipped, with a real Caddy (Debian's `caddy` package).

Caddy runs in the foreground (`caddy run --adapter caddyfile`) with HOME and the XDG
directories in a temporary directory and the admin API off; only the addresses and the listener
are rewritten. The upstream (tests/upstream.py) and Intercept's decision service run in-process
on loopback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.deploy_helpers import (
    BLOCKED,
    DEPLOY,
    INTERCEPT,
    INTERCEPT_PROXY,
    SEARCH_FRONTEND,
    Deployment,
    free_port,
    intercept_proxy,
    isolated_env,
    render,
    require_binary,
    running_process,
    services,
)

SHIPPED = DEPLOY / "caddy" / "Caddyfile"


@contextlib.asynccontextmanager
async def deployed(
    tmp: Path, *, intercept_down: bool = False, post_via_proxy: bool = False
) -> AsyncIterator[Deployment]:
    """Caddy with the shipped Caddyfile in front of the upstream, asking Intercept
    (`intercept_down`: at an address where nothing listens; `post_via_proxy`: with the shipped
    "#post" lines enabled, and Intercept's reverse proxy running for them)."""
    caddy = require_binary("caddy", "caddy")
    async with contextlib.AsyncExitStack() as stack:
        upstream_port, authz_port, engine, upstream, authz = await stack.enter_async_context(
            services()
        )
        port = free_port()
        intercept = free_port() if intercept_down else authz_port
        replacements = {
            "admin localhost:2019": "admin off",
            ":8090 {": f":{port} {{\n\tbind 127.0.0.1",
            INTERCEPT: f"127.0.0.1:{intercept}",
            SEARCH_FRONTEND: f"127.0.0.1:{upstream_port}",
        }
        if post_via_proxy:
            proxy_port, _ = await stack.enter_async_context(intercept_proxy(upstream_port))
            replacements["#post "] = ""
            replacements[INTERCEPT_PROXY] = f"127.0.0.1:{proxy_port}"
        (tmp / "Caddyfile").write_text(render(SHIPPED.read_text(), replacements))
        argv = [caddy, "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"]
        async with running_process(argv, port, tmp, env=isolated_env(tmp)) as process:
            yield Deployment(
                base=f"http://127.0.0.1:{port}",
                engine=engine,
                upstream=upstream,
                authz=authz,
                process=process,
                deny_status=403,  # forward_auth returns the decision service's answer as it is
            )


@pytest.fixture
async def caddy(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployed(tmp_path) as deployment:
        yield deployment


async def test_benign_search_reaches_the_upstream_untouched(caddy: Deployment) -> None:
    await caddy.check_benign_search()
    assert caddy.authz.targets == ["/_intercept/authz"]  # no query in the decision's own URI


async def test_blocked_search_gets_the_page_and_is_counted_once(caddy: Deployment) -> None:
    await caddy.check_blocked_search()
    assert caddy.authz.targets == ["/_intercept/authz"]


async def test_warn_interstitial_then_continue_then_results(caddy: Deployment) -> None:
    await caddy.check_warn_continue()


async def test_click_through_is_counted_and_redirected(caddy: Deployment) -> None:
    await caddy.check_click_through()


async def test_autocomplete_gets_an_empty_suggestion_list(caddy: Deployment) -> None:
    await caddy.check_autocomplete()


async def test_static_and_other_paths_never_reach_the_decision_service(
    caddy: Deployment,
) -> None:
    await caddy.check_other_paths_never_asked()


async def test_decision_endpoints_are_not_reachable_by_clients(caddy: Deployment) -> None:
    await caddy.check_private_endpoints()


async def test_forged_forwarded_headers_change_nothing(caddy: Deployment) -> None:
    await caddy.check_forged_descriptions_ignored()


async def test_other_spellings_of_the_search_path_are_decided(caddy: Deployment) -> None:
    await caddy.check_path_variants(
        [
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
    )


async def test_intercept_down_fails_closed_and_logs_no_query(tmp_path: Path) -> None:
    async with deployed(tmp_path, intercept_down=True) as caddy:
        status, headers, _ = await caddy.get(BLOCKED)
        assert status == 502, caddy.explain()
        assert "X-Upstream" not in headers
        assert caddy.upstream.requests == []
        stderr = caddy.explain()
    assert "http.log.error" in stderr  # the failure is logged ...
    assert "blocked" not in stderr  # ... without the request's URI
    assert "remote_ip" not in stderr  # ... or the searcher's address


async def test_post_search_routes_through_intercept_proxy_mode(tmp_path: Path) -> None:
    """The shipped "#post" lines enabled: POST searches (and a warned one's continue button) go
    through `intercept serve --mode proxy`, which reads the body; GET searches still ask the
    decision service."""
    async with deployed(tmp_path, post_via_proxy=True) as caddy:
        await caddy.check_post_through_proxy_mode()
        await caddy.check_blocked_search()
