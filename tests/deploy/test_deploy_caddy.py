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
    h2c_get_with_body,
    intercept_proxy,
    isolated_env,
    render,
    require_binary,
    running_process,
    services,
)

SHIPPED = DEPLOY / "caddy" / "Caddyfile"


# The route's lines that send requests with a body to Intercept's reverse proxy: removing them
# is the configuration's unsafe opt-out.
BODY_ROUTING = (
    "\t\treverse_proxy @search_method 127.0.0.1:8082 # FILL IN: Intercept (--mode proxy)\n",
    "\t\t\treverse_proxy @has_body 127.0.0.1:8082 # FILL IN: the same\n",
)


@contextlib.asynccontextmanager
async def deployed(
    tmp: Path,
    *,
    intercept_down: bool = False,
    refuse_bodies: bool = False,
    proxy_down: bool = False,
    unsafe: bool = False,
    h2c: bool = False,
) -> AsyncIterator[Deployment]:
    """Caddy with the shipped Caddyfile in front of the upstream, asking Intercept, and
    Intercept's reverse proxy running for the searches with a body (as shipped).
    `intercept_down`: the decision service's address is one where nothing listens;
    `refuse_bodies`: with the "#refuse" lines enabled and no reverse proxy running;
    `proxy_down`: as shipped, but no reverse proxy running; `unsafe`: the body routing removed
    (the opt-out the file warns about); `h2c`: the listener speaks cleartext HTTP/2 too
    (Caddy's global `servers { protocols h1 h2 h2c }`)."""
    caddy = require_binary("caddy", "caddy")
    async with contextlib.AsyncExitStack() as stack:
        upstream_port, authz_port, engine, upstream, authz = await stack.enter_async_context(
            services()
        )
        port = free_port()
        intercept = free_port() if intercept_down else authz_port
        replacements = {
            **({line: "" for line in BODY_ROUTING} if unsafe else {}),
            "admin localhost:2019": "admin off"
            + ("\n\tservers {\n\t\tprotocols h1 h2 h2c\n\t}" if h2c else ""),
            ":8090 {": f":{port} {{\n\tbind 127.0.0.1",
            INTERCEPT: f"127.0.0.1:{intercept}",
            SEARCH_FRONTEND: f"127.0.0.1:{upstream_port}",
        }
        if refuse_bodies:
            replacements["#refuse "] = ""
        if refuse_bodies or proxy_down:
            proxy_port = free_port()  # nothing listens there
        else:
            proxy_port, _ = await stack.enter_async_context(intercept_proxy(upstream_port))
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


async def test_an_unannounced_http2_get_body_is_decided(tmp_path: Path) -> None:
    """Over HTTP/2 a GET's body needs no Content-Length, and Caddy shows no sign of it in the
    headers: @has_body reads the body itself, so the search goes to Intercept's reverse
    proxy, which decides on the body and passes an allowed one on intact."""
    async with deployed(tmp_path, h2c=True) as caddy:
        status, body = await h2c_get_with_body(caddy.base, b"q=blocked+example")
        assert status == 200, caddy.explain()  # block_status, from the reverse proxy
        assert b"/_intercept/go/" in body
        assert caddy.upstream.requests == []
        status, body = await h2c_get_with_body(caddy.base, b"q=teapot+museum")
        assert status == 200, caddy.explain()
        assert body == b"results page"
        assert caddy.upstream.bodies == [b"q=teapot+museum"]
        assert caddy.authz.requests == []
