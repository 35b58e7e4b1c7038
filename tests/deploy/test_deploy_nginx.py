"""deploy/nginx/intercept.conf, as shipped, with a real nginx (Debian's `nginx` package).

nginx runs in the foreground with the shipped server block included in a minimal `http { }`;
only the addresses and ports are rewritten. The upstream (tests/upstream.py) and Intercept's
decision service run in-process on loopback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from tests.deploy_helpers import (
    BENIGN,
    BLOCKED,
    DEPLOY,
    INTERCEPT,
    INTERCEPT_PROXY,
    SEARCH_FRONTEND,
    Bodies,
    Deployment,
    backends,
    h2c_get_with_body,
    render,
    require_binary,
)
from tests.upstream import raw_exchange

SHIPPED = DEPLOY / "nginx" / "intercept.conf"

# The test's own nginx.conf: what /etc/nginx/nginx.conf provides on a real host, with every
# path in the temporary directory.
WRAPPER = """\
{user}worker_processes 1;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    access_log {tmp}/access.log;
    include {tmp}/intercept.conf;
}}
"""


# The search location's lines that send requests with a body to Intercept's reverse proxy:
# removing them is the configuration's unsafe opt-out.
BODY_ROUTING = """\
        error_page 418 = @search_body;
        if ($intercept_search_body) {
            return 418;
        }
"""


@contextlib.asynccontextmanager
async def deployed(
    tmp: Path,
    *,
    intercept_down: bool = False,
    fail_open: bool = False,
    bodies: Bodies = Bodies.SHIPPED,
    http2: bool = False,
) -> AsyncIterator[Deployment]:
    """nginx with the shipped configuration in front of the upstream, asking Intercept, and
    Intercept's reverse proxy running for the searches with a body (as shipped; `bodies`: or
    another way). `intercept_down`: the decision service's address is one where nothing
    listens; `fail_open`: with the shipped "#failopen" lines enabled; `http2`: the listener
    speaks cleartext HTTP/2 too."""
    nginx = require_binary("nginx", "nginx")
    async with backends(intercept_down=intercept_down, reverse_proxy=bodies.proxy_runs) as behind:
        replacements = {
            f"{SEARCH_FRONTEND};": f"127.0.0.1:{behind.upstream_port};",
            f"{INTERCEPT};": f"127.0.0.1:{behind.intercept_port};",
            f"{INTERCEPT_PROXY};": f"127.0.0.1:{behind.proxy_port};",
            "listen 8090;": f"listen 127.0.0.1:{behind.port}{' http2' if http2 else ''};",
        }
        if fail_open:
            replacements["#failopen "] = ""
        if bodies is Bodies.REFUSED:
            replacements["#refuse "] = ""
        if bodies is Bodies.UNSAFE:
            replacements[BODY_ROUTING] = ""
        (tmp / "intercept.conf").write_text(render(SHIPPED.read_text(), replacements))
        # as root, nginx's workers would otherwise run as nobody, who cannot enter `tmp`
        user = "user root;\n" if os.geteuid() == 0 else ""
        (tmp / "nginx.conf").write_text(WRAPPER.format(user=user, tmp=tmp))
        argv = [
            nginx,
            "-e",
            "stderr",
            "-p",
            str(tmp),
            "-c",
            str(tmp / "nginx.conf"),
            "-g",
            f"daemon off; pid {tmp}/nginx.pid; error_log stderr;",
        ]
        # the page's own status (block_status), as error_page = passes it
        async with behind.running(argv, tmp, deny_status=200) as deployment:
            yield deployment


async def test_access_log_records_no_search(tmp_path: Path) -> None:
    async with deployed(tmp_path) as nginx:
        await nginx.get(BENIGN)
        await nginx.get(BLOCKED)
        await nginx.get("/echo?q=kites")  # not a search location: logged as usual
        log = (tmp_path / "access.log").read_text()
    assert "/echo?q=kites" in log  # the log works ...
    assert "/search" not in log  # ... and holds no search
    assert "/_intercept/" not in log


async def test_an_unannounced_http2_get_body_never_reaches_the_front_end(tmp_path: Path) -> None:
    """Over HTTP/2 a GET's body needs no Content-Length, so nginx cannot tell it has one and the
    decision service decides on the URI alone: the front-end then gets the GET without the
    body (the search location passes none on), never a body nobody decided."""
    async with deployed(tmp_path, http2=True) as nginx:
        for phrase in (b"blocked+example", b"teapot+museum"):
            nginx.upstream.clear()
            status, body = await h2c_get_with_body(nginx.base, b"q=" + phrase)
            assert status == 200, (body[:200], nginx.explain())
            assert nginx.upstream.requests == [("GET", "/search")]
            assert nginx.upstream.bodies == [b""]


async def test_a_malformed_accept_language_is_dropped_not_fatal(tmp_path: Path) -> None:
    # passed on as it came, it made the decision request malformed: auth_request took that
    # for Intercept being down (500, or results with the "#failopen" lines)
    async with deployed(tmp_path, fail_open=True) as nginx:
        request = (b"GET /search?q=blocked+example HTTP/1.1\r\nHost: search.example\r\n"
                   b"Accept-Language: en\x01\r\nConnection: close\r\n\r\n")  # fmt: skip
        answer = await raw_exchange(nginx.base, request, 100_000)
        assert answer.startswith(b"HTTP/1.1 200 "), (answer[:200], nginx.explain())
        assert b"<html" in answer
        assert nginx.upstream.requests == []
