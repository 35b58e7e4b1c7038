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

from tests.deploy_helpers import (
    BLOCKED,
    DEPLOY,
    INTERCEPT,
    INTERCEPT_PROXY,
    SEARCH_FRONTEND,
    Bodies,
    Deployment,
    backends,
    h2c_get_with_body,
    isolated_env,
    render,
    require_binary,
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
    bodies: Bodies = Bodies.SHIPPED,
    h2c: bool = False,
) -> AsyncIterator[Deployment]:
    """Caddy with the shipped Caddyfile in front of the upstream, asking Intercept, and
    Intercept's reverse proxy running for the searches with a body (as shipped; `bodies`: or
    another way). `intercept_down`: the decision service's address is one where nothing
    listens; `h2c`: the listener speaks cleartext HTTP/2 too (Caddy's global `servers {
    protocols h1 h2 h2c }`)."""
    caddy = require_binary("caddy", "caddy")
    async with backends(intercept_down=intercept_down, reverse_proxy=bodies.proxy_runs) as behind:
        replacements = {
            **({line: "" for line in BODY_ROUTING} if bodies is Bodies.UNSAFE else {}),
            "admin localhost:2019": "admin off"
            + ("\n\tservers {\n\t\tprotocols h1 h2 h2c\n\t}" if h2c else ""),
            ":8090 {": f":{behind.port} {{\n\tbind 127.0.0.1",
            INTERCEPT: f"127.0.0.1:{behind.intercept_port}",
            SEARCH_FRONTEND: f"127.0.0.1:{behind.upstream_port}",
            INTERCEPT_PROXY: f"127.0.0.1:{behind.proxy_port}",
        }
        if bodies is Bodies.REFUSED:
            replacements["#refuse "] = ""
        (tmp / "Caddyfile").write_text(render(SHIPPED.read_text(), replacements))
        argv = [caddy, "run", "--config", str(tmp / "Caddyfile"), "--adapter", "caddyfile"]
        # forward_auth returns the decision service's answer as it is
        async with behind.running(argv, tmp, deny_status=403, env=isolated_env(tmp)) as deployment:
            yield deployment


async def test_intercept_down_is_logged_without_the_query_or_the_address(tmp_path: Path) -> None:
    """How it fails closed is in the shared suite (tests/deploy/test_deploy_doors.py); what
    Caddy's log says of it, here."""
    async with deployed(tmp_path, intercept_down=True) as caddy:
        status, _, _ = await caddy.get(BLOCKED)
        assert status == 502, caddy.explain()
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
