"""Differential tests against httpbin (a real app, served by werkzeug on loopback): each response
through Intercept equals the direct one, except hop-by-hop headers and the Date header."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.upstream import Proxy, running_proxy

httpbin = pytest.importorskip("httpbin", reason="httpbin is a test dependency")
serving = pytest.importorskip("werkzeug.serving", reason="werkzeug comes with httpbin")

IGNORED = {"date", "connection", "keep-alive", "transfer-encoding"}


@pytest.fixture(scope="module")
def httpbin_url() -> Iterator[str]:
    server = serving.make_server("127.0.0.1", 0, httpbin.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
async def via_proxy(httpbin_url: str) -> AsyncIterator[Proxy]:
    async with running_proxy(httpbin_url) as started:
        yield started


async def _get(method: str, url: str, **kwargs: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            headers = [(k.lower(), v) for k, v in response.headers.items()
                       if k.lower() not in IGNORED]  # fmt: skip
            return response.status, sorted(headers), await response.read()


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/status/418"),
        ("GET", "/status/204"),
        ("GET", "/bytes/4096?seed=7"),
        ("GET", "/stream-bytes/200000?seed=3&chunk_size=1000"),
        ("GET", "/redirect-to?url=%2Fget%3Fa%3Db&status_code=307"),
        ("GET", "/relative-redirect/2"),
        ("GET", "/cookies/set?flavour=oat&size=large"),
        ("GET", "/response-headers?X-Many=1&X-Many=2&Cache-Control=private"),
        ("GET", "/html"),
        ("HEAD", "/html"),
        ("GET", "/robots.txt"),
        ("GET", "/image/png"),
        ("GET", "/encoding/utf8"),
        ("GET", "/range/2048?duration=0"),
        ("GET", "/deny"),
        ("GET", "/xml"),
        ("DELETE", "/status/202"),
        ("GET", "/base64/aGVsbG8gd29ybGQ%3D"),
    ],
)
async def test_same_response_direct_and_through_intercept(
    httpbin_url: str, via_proxy: Proxy, method: str, target: str
) -> None:
    base, _ = via_proxy
    direct = await _get(method, httpbin_url + target)
    through = await _get(method, base + target)
    assert through == direct


async def test_gzip_and_deflate_pass_compressed(httpbin_url: str, via_proxy: Proxy) -> None:
    base, _ = via_proxy
    for target in ("/gzip", "/deflate", "/brotli"):
        direct_status, direct_headers, _ = await _get("GET", httpbin_url + target)
        status, headers, body = await _get("GET", base + target)
        assert status == direct_status
        assert dict(headers).get("content-encoding") == dict(direct_headers).get("content-encoding")
        assert body  # compressed bytes, not decoded by the proxy


async def test_request_as_seen_by_httpbin(httpbin_url: str, via_proxy: Proxy) -> None:
    base, _ = via_proxy
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base + "/anything/a%20b?x=1&x=2",
            data=b"body \x00 bytes",
            headers={
                "X-Custom": "yes",
                "Cookie": "a=b",
                "Content-Type": "application/octet-stream",
            },
        ) as response,
    ):
        seen = await response.json()
    assert seen["method"] == "POST"
    assert seen["args"] == {"x": ["1", "2"]}
    assert seen["url"].endswith("/anything/a%20b?x=1&x=2")
    assert seen["headers"]["X-Custom"] == "yes"
    assert seen["headers"]["Cookie"] == "a=b"
    assert (
        seen["data"].startswith("data:application/octet-stream;base64,") or "body" in seen["data"]
    )


async def test_many_headers(httpbin_url: str, via_proxy: Proxy) -> None:
    base, _ = via_proxy
    headers = {f"X-Header-{i}": f"value-{i}" for i in range(90)}  # werkzeug allows 100
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/headers", headers=headers) as response:
            seen = (await response.json())["headers"]
    for name, value in headers.items():
        assert seen[name] == value
