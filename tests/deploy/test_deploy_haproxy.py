"""deploy/haproxy/haproxy.cfg and intercept.lua, as shipped, with a real HAProxy (Debian's
`haproxy` package, 2.6, built with Lua).

HAProxy runs in the foreground (`haproxy -f FILE -db`); only the three addresses in the
global section and the path of `lua-load` are rewritten. The upstream (tests/upstream.py) and
Intercept's decision service run in-process on loopback.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.deploy_helpers import (
    DEPLOY,
    INTERCEPT,
    SEARCH_FRONTEND,
    Deployment,
    backends,
    render,
    require_binary,
)
from tests.upstream import fetch, raw_exchange

SHIPPED = DEPLOY / "haproxy" / "haproxy.cfg"
LUA = DEPLOY / "haproxy" / "intercept.lua"


@contextlib.asynccontextmanager
async def deployed(
    tmp: Path, *, intercept_down: bool = False, fail_open: bool = False
) -> AsyncIterator[Deployment]:
    """HAProxy with the shipped configuration in front of the upstream, asking Intercept
    (`intercept_down`: at an address where nothing listens; `fail_open`: with the documented
    `setenv INTERCEPT_FAIL_OPEN 1` added)."""
    haproxy = require_binary("haproxy", "haproxy")
    async with backends(intercept_down=intercept_down) as behind:
        shutil.copy(LUA, tmp / "intercept.lua")
        config = render(
            SHIPPED.read_text(),
            {
                f"SEARCH_FRONTEND {SEARCH_FRONTEND}": (
                    f"SEARCH_FRONTEND 127.0.0.1:{behind.upstream_port}"
                ),
                f"INTERCEPT_ADDR {INTERCEPT}": f"INTERCEPT_ADDR 127.0.0.1:{behind.intercept_port}",
                "PUBLIC_BIND :8090": f"PUBLIC_BIND 127.0.0.1:{behind.port}",
                "lua-load /etc/haproxy/intercept.lua": (
                    ("setenv INTERCEPT_FAIL_OPEN 1\n    " if fail_open else "")
                    + f"lua-load {tmp}/intercept.lua"
                ),
            },
        )
        (tmp / "haproxy.cfg").write_text(config)
        argv = [haproxy, "-f", str(tmp / "haproxy.cfg"), "-db"]
        # intercept.lua returns the decision service's answer as it is
        async with behind.running(argv, tmp, deny_status=403) as deployment:
            yield deployment


@pytest.fixture
async def haproxy(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with deployed(tmp_path) as deployment:
        yield deployment


async def test_shipped_configuration_is_valid(tmp_path: Path) -> None:
    """HAProxy starts with the shipped file without a warning or an alert."""
    async with deployed(tmp_path) as haproxy:
        assert "WARNING" not in haproxy.process.stderr()
        assert "ALERT" not in haproxy.process.stderr()


async def test_post_search_bodies_are_decided(haproxy: Deployment) -> None:
    """POST searches are buffered and their body is sent to the decision service."""
    status, headers, body = await fetch(
        "POST",
        haproxy.base + "/search",
        data={"q": "blocked example"},
        headers={"Accept-Language": "fi"},
    )
    assert status == 403, haproxy.explain()
    assert "X-Upstream" not in headers
    assert b"<html" in body
    assert b"blocked" not in body
    assert haproxy.upstream.requests == []
    assert haproxy.interventions() == 1
    status, headers, body = await fetch(
        "POST", haproxy.base + "/search", data={"q": "kites", "page": "2"}
    )
    assert status == 200, haproxy.explain()
    assert headers["X-Upstream"] == "results"
    assert headers["X-Body"] == "q=kites&page=2"  # the upstream got the body as sent
    assert haproxy.upstream.targets == ["/search"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_search_bodies_of_other_methods_are_decided(haproxy: Deployment, method: str) -> None:
    # Werkzeug reads a PUT or PATCH form as it reads a POST one
    status, headers, _ = await fetch(
        method, haproxy.base + "/search", data={"q": "blocked example"}
    )
    assert status == 403, haproxy.explain()
    assert "X-Upstream" not in headers
    assert haproxy.upstream.requests == []


async def test_post_search_body_larger_than_the_buffer_is_refused(haproxy: Deployment) -> None:
    form = {"q": "kites", "pad": "x" * 40_000}
    status, _, _ = await fetch("POST", haproxy.base + "/search", data=form)
    assert status == 413, haproxy.explain()
    assert haproxy.upstream.requests == []


async def test_post_search_without_a_length_is_refused(haproxy: Deployment) -> None:
    request = (
        b"POST /search HTTP/1.1\r\nHost: search.example\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"11\r\nq=blocked+example\r\n0\r\n\r\n"
    )
    answer = await raw_exchange(haproxy.base, request, 200)
    assert answer.startswith(b"HTTP/1.1 411 "), (answer, haproxy.explain())
    assert haproxy.upstream.requests == []


async def test_a_search_body_with_two_content_types_is_refused(haproxy: Deployment) -> None:
    # intercept.lua passes on one; a front-end reading the other would read another body
    request = (b"POST /search HTTP/1.1\r\nHost: search.example\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\nContent-Type: text/plain\r\n"
               b"Content-Length: 17\r\n\r\nq=blocked+example")  # fmt: skip
    answer = await raw_exchange(haproxy.base, request, 200)
    assert answer.startswith(b"HTTP/1.1 400 "), (answer, haproxy.explain())
    assert haproxy.upstream.requests == []
