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

import pytest

from tests.deploy_helpers import (
    BENIGN,
    BLOCKED,
    DEPLOY,
    INTERCEPT,
    INTERCEPT_PROXY,
    SEARCH_FRONTEND,
    Deployment,
    free_port,
    h2c_get_with_body,
    intercept_proxy,
    render,
    require_binary,
    running_process,
    services,
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
    refuse_bodies: bool = False,
    proxy_down: bool = False,
    unsafe: bool = False,
    http2: bool = False,
) -> AsyncIterator[Deployment]:
    """nginx with the shipped configuration in front of the upstream, asking Intercept, and
    Intercept's reverse proxy running for the searches with a body (as shipped).
    `intercept_down`: the decision service's address is one where nothing listens;
    `fail_open`: with the shipped "#failopen" lines enabled; `refuse_bodies`: with the
    "#refuse" lines enabled and no reverse proxy running; `proxy_down`: as shipped, but
    no reverse proxy running; `unsafe`: the body routing removed
    (the opt-out the file warns about); `http2`: the listener speaks cleartext HTTP/2 too."""
    nginx = require_binary("nginx", "nginx")
    async with contextlib.AsyncExitStack() as stack:
        upstream_port, authz_port, engine, upstream, authz = await stack.enter_async_context(
            services()
        )
        port = free_port()
        replacements = {
            f"{SEARCH_FRONTEND};": f"127.0.0.1:{upstream_port};",
            f"{INTERCEPT};": f"127.0.0.1:{free_port() if intercept_down else authz_port};",
            "listen 8090;": f"listen 127.0.0.1:{port}{' http2' if http2 else ''};",
        }
        if fail_open:
            replacements["#failopen "] = ""
        if refuse_bodies:
            replacements["#refuse "] = ""
        if refuse_bodies or proxy_down:
            proxy_port = free_port()  # nothing listens there
        else:
            proxy_port, _ = await stack.enter_async_context(intercept_proxy(upstream_port))
        replacements[f"{INTERCEPT_PROXY};"] = f"127.0.0.1:{proxy_port};"
        if unsafe:
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
        process = await stack.enter_async_context(running_process(argv, port, tmp))
        yield Deployment(
            base=f"http://127.0.0.1:{port}",
            engine=engine,
            upstream=upstream,
            authz=authz,
            process=process,
            deny_status=200,  # the page's own status (block_status), as error_page = passes it
        )


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployed(tmp_path) as deployment:
        yield deployment


async def test_access_log_records_no_search(nginx: Deployment, tmp_path: Path) -> None:
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


@pytest.mark.parametrize("fail_open", [False, True])
async def test_intercept_down_fails_closed_unless_configured_open(
    tmp_path: Path, fail_open: bool
) -> None:
    async with deployed(tmp_path, intercept_down=True, fail_open=fail_open) as nginx:
        status, headers, _ = await nginx.get(BLOCKED)
        if fail_open:  # the shipped "#failopen" lines: results, unchecked
            assert status == 200, nginx.explain()
            assert headers["X-Upstream"] == "results"
        else:
            assert status == 500, nginx.explain()
            assert nginx.upstream.requests == []
        status, _, _ = await nginx.get("/echo")
        assert status == 200  # other paths never depended on Intercept


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
