"""The reverse proxy over real sockets: a real aiohttp upstream on loopback, Intercept in front."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import resource
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.upstream import (
    BODY_RELEASE,
    MIB,
    Proxy,
    fetch,
    raw_exchange,
    repo_config,
    running_proxy,
)

# --- transparency ------------------------------------------------------------------------------


async def test_benign_request_reaches_upstream_untouched(proxy: Proxy) -> None:
    base, _ = proxy
    target = "/echo/a%2Fb%7Cc?x=1&x=2&q=%E2%9C%93+ok&raw=a%20b"
    status, headers, body = await fetch(
        "GET", base + target, headers={"X-Custom": "kept", "Cookie": "a=1"}
    )
    assert status == 200
    seen = json.loads(body)
    assert seen["target"] == target  # forwarded exactly as received, no re-quoting
    received = {k.lower(): v for k, v in seen["headers"]}
    assert received["x-custom"] == "kept"
    assert received["cookie"] == "a=1"
    assert received["x-forwarded-for"] == "127.0.0.1"
    assert received["x-forwarded-proto"] == "http"
    assert received["via"] == "1.1 intercept"
    assert headers["X-Upstream"] == "yes"
    assert headers["Set-Cookie"] == "session=abc; Path=/"


async def test_hop_by_hop_headers_are_dropped_both_ways(proxy: Proxy) -> None:
    base, _ = proxy
    status, _, body = await fetch(
        "GET",
        base + "/echo",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "TE": "trailers",
            "Keep-Alive": "timeout=5",
            "X-Stays": "1",
        },
    )
    assert status == 200
    names = {k.lower() for k, _ in json.loads(body)["headers"]}
    assert "x-secret-hop" not in names
    assert "te" not in names
    assert "keep-alive" not in names
    assert "x-stays" in names


async def test_post_body_and_methods(proxy: Proxy) -> None:
    base, _ = proxy
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        status, _, body = await fetch(method, base + "/echo", data=b"payload \x00\xff")
        assert status == 200
        seen = json.loads(body)
        assert seen["method"] == method
        assert seen["body"] == "payload \x00\ufffd"


async def test_head(proxy: Proxy) -> None:
    base, _ = proxy
    status, headers, body = await fetch("HEAD", base + "/big?mib=1")
    assert status == 200
    assert headers["Content-Length"] == str(MIB)
    assert body == b""


async def test_gzip_is_not_decompressed(proxy: Proxy) -> None:
    base, _ = proxy
    status, headers, body = await fetch("GET", base + "/gzip")
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == b"compressed hello" * 100


async def test_redirects_are_not_followed(proxy: Proxy) -> None:
    base, _ = proxy
    status, headers, _ = await fetch("GET", base + "/redirect")
    assert status == 302
    assert headers["Location"] == "/elsewhere"


async def test_chunked_response(proxy: Proxy) -> None:
    base, _ = proxy
    status, _, body = await fetch("GET", base + "/chunked")
    assert status == 200
    assert body == b"".join(f"part {i}\n".encode() for i in range(5))


async def test_head_and_a_ready_body_leave_in_one_write(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small answer relayed whole: the head goes out with the body (one packet), so no
    write to any socket carries the head of the results page without its body."""
    base, _ = proxy
    heads: list[bytes] = []
    write = asyncio.selector_events._SelectorSocketTransport.write  # type: ignore[attr-defined]

    def recording(self: Any, data: bytes) -> None:
        if bytes(data).startswith(b"HTTP/1.1 200") and b"X-Upstream: results" in bytes(data):
            heads.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(asyncio.selector_events._SelectorSocketTransport, "write", recording)  # type: ignore[attr-defined]
    status, _, body = await fetch("GET", base + "/search?q=weather")
    assert (status, body) == (200, b"results page")
    assert len(heads) == 2  # the upstream's answer and the proxy's relay of it
    assert all(head.endswith(b"\r\n\r\nresults page") for head in heads)


async def test_a_head_without_a_body_yet_is_relayed_at_once(
    proxy: Proxy, upstream: TestServer
) -> None:
    """Waiting for the body to send the head with it must not hold a streamed answer back:
    the upstream sends its body only after the client has read the head."""
    base, _ = proxy
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET /late-body HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"X-Upstream: late" in head
        upstream.app[BODY_RELEASE].set()
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"late"
    finally:
        writer.close()


async def test_an_empty_expect_header_expects_nothing(proxy: Proxy) -> None:
    base, _ = proxy
    answer = await raw_exchange(
        base, b"GET /search?q=weather HTTP/1.1\r\nHost: x\r\nExpect:\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.endswith(b"results page")


async def test_100_continue(proxy: Proxy) -> None:
    base, _ = proxy
    status, _, body = await fetch("POST", base + "/echo", data=b"later", expect100=True)
    assert status == 200
    assert json.loads(body)["body"] == "later"


async def test_100_mb_streams_both_ways_without_memory_growth(proxy: Proxy) -> None:
    base, _ = proxy
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def upload() -> AsyncIterator[bytes]:
        block = b"z" * MIB
        for _ in range(100):
            yield block

    status, _, body = await fetch("POST", base + "/count", data=upload())
    assert status == 200
    assert json.loads(body) == {"received": 100 * MIB}
    size = 0
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/big?mib=100") as response:
            async for chunk in response.content.iter_chunked(MIB):
                size += len(chunk)
    assert size == 100 * MIB
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 50, f"peak memory grew by {grown_mib:.0f} MiB"


# --- failures and limits -----------------------------------------------------------------------


async def test_upstream_refused_is_502() -> None:
    async with running_proxy("http://127.0.0.1:9") as (base, _):  # discard port: nothing listens
        status, headers, body = await fetch("GET", base + "/anything")
    assert status == 502
    assert headers["Content-Type"].startswith("text/html")
    assert b"<html" in body


async def test_upstream_too_slow_is_504(upstream: TestServer) -> None:
    url = f"http://127.0.0.1:{upstream.port}"
    async with running_proxy(url, timeouts={"header": 0.5}) as (base, _):
        status, _, _ = await fetch("GET", base + "/slow-head")
    assert status == 504


async def test_upstream_stalling_mid_body_closes_the_client_connection(
    upstream: TestServer,
) -> None:
    url = f"http://127.0.0.1:{upstream.port}"
    async with running_proxy(url, timeouts={"read_idle": 0.5}) as (base, _):
        started = time.monotonic()
        with pytest.raises(aiohttp.ClientPayloadError):
            await fetch("GET", base + "/stall")
        assert time.monotonic() - started < 4  # the idle timeout, not the upstream, ended it
        status, _, _ = await fetch("GET", base + "/echo")  # the proxy itself carries on
    assert status == 200


async def test_reset_mid_body_closes_the_client_connection(proxy: Proxy) -> None:
    base, _ = proxy
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch("GET", base + "/reset")


async def test_a_body_cut_short_resets_an_http10_clients_connection(proxy: Proxy) -> None:
    # HTTP/1.0 has no chunks: the body ends where the connection does, so an orderly close
    # would present the cut body as complete; a reset cannot be mistaken
    base, _ = proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    writer.write(b"GET /reset-chunked HTTP/1.0\r\nHost: x\r\n\r\n")
    received: list[bytes] = []

    async def read_to_the_end() -> None:
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            received.append(chunk)

    with pytest.raises(ConnectionResetError):
        await read_to_the_end()
    writer.close()
    answer = b"".join(received)
    assert answer.startswith(b"HTTP/1.0 200 ")
    assert b"c" * 1000 in answer
    status, _, _ = await fetch("GET", base + "/echo")  # the proxy carries on
    assert status == 200


@pytest.mark.parametrize(
    "head",
    [
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",  # streamed on
        b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"  # read first
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n",
    ],
)  # fmt: skip
async def test_a_client_leaving_mid_upload_is_no_upstream_error(
    proxy: Proxy, head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    base, engine = proxy
    port = int(base.rsplit(":", 1)[1])
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + b"q=" + b"x" * 500)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.transport.abort()  # the searcher gives up mid-upload
    await asyncio.sleep(0.5)
    for kind in ("refused", "timeout", "reset"):
        assert engine.counts.value("upstream_errors", kind=kind) == 0, kind
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    status, _, _ = await fetch("GET", base + "/echo")
    assert status == 200


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/echo?" + "a" * 9000, {}, 414),
        ("GET", "/search?q=" + "a" * 3000, {}, 414),
        ("GET", "/echo", {"headers": {f"X-H{i}": "v" * 1000 for i in range(40)}}, 431),
        ("POST", "/search", {"data": {"q": "x" * 3000}}, 413),
        (
            "POST",
            "/search",
            {
                "data": io.BytesIO(b"q=" + b"x" * (2 * MIB)),
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            413,
        ),
    ],
)
async def test_limits(
    proxy: Proxy, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    base, _ = proxy
    got, _, body = await fetch(method, base + path, **kwargs)
    assert got == status
    assert b"a" * 100 not in body
    assert b"x" * 100 not in body


async def test_server_survives_a_bad_request_line(proxy: Proxy) -> None:
    base, _ = proxy
    answer = await raw_exchange(base, b"GARBAGE \x00\xff HTTP/9.9\r\n\r\n", 100_000)
    assert answer.startswith(b"HTTP/1.")
    assert b" 400 " in answer[:20]
    assert b"\r\nServer: intercept\r\n" in answer  # our page, naming no software version
    assert b"aiohttp" not in answer
    status, _, _ = await fetch("GET", base + "/echo")
    assert status == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        # far past the limits, where aiohttp's parser refuses before Intercept's checks
        (b"GET /echo?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 40_000 + b"\r\n\r\n", 431),
        (b"GET /echo HTTP/1.1\r\nHost: a\r\n"
         + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n", 431),
    ],
)  # fmt: skip
async def test_requests_the_parser_refuses_get_the_promised_status(
    proxy: Proxy, request_bytes: bytes, status: int
) -> None:
    base, _ = proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    writer.write(request_bytes)
    answer = await asyncio.wait_for(reader.read(), 10)  # to the end: the server closes
    writer.close()
    assert answer[:13] in (b"HTTP/1.0 %d " % status, b"HTTP/1.1 %d " % status)
    assert b"\r\nServer: intercept\r\n" in answer
    assert b"a" * 100 not in answer
    assert b"v" * 100 not in answer
    got, _, _ = await fetch("GET", base + "/echo")
    assert got == 200


async def test_header_timeout_starts_after_the_upload(upstream: TestServer) -> None:
    url = f"http://127.0.0.1:{upstream.port}"
    async with running_proxy(url, timeouts={"header": 0.5}) as (base, _):

        async def slow_upload() -> AsyncIterator[bytes]:
            for _ in range(4):
                await asyncio.sleep(0.3)
                yield b"z" * 1000

        status, _, body = await fetch("POST", base + "/count", data=slow_upload())
    assert status == 200
    assert json.loads(body) == {"received": 4000}


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /search HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
         b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 20000000\r\n", 413),
        (b"POST /search?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
         b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n", 414),
        (b"POST /search HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Encoding: gzip\r\n"
         b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n", 415),
        (b"POST /search HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n"
         b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 20\r\n", 417),
    ],
)  # fmt: skip
async def test_expect_100_continue_refuses_before_the_body_and_closes(
    proxy: Proxy, head: bytes, status: int
) -> None:
    base, _ = proxy
    # the client, refused, never sends the body: a next request on the connection would be
    # taken for it, so the answer says the connection closes
    answer = await raw_exchange(base, head + b"\r\n", 100_000)
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    assert b"\r\nConnection: close\r\n" in answer.partition(b"\r\n\r\n")[0] + b"\r\n"


async def test_a_client_leaving_mid_body_is_not_an_upstream_error(upstream: TestServer) -> None:
    # served by `intercept.server.serve.start` as in production (the test server cancels handlers
    # of departed clients, which hides this path)
    from intercept.server.serve import build_engine, start
    from tests.processes import free_port

    port = free_port()
    config = repo_config(
        listen=f"127.0.0.1:{port}",
        upstream=f"http://127.0.0.1:{upstream.port}",
        ledger={"url": None},
    )
    engine = build_engine(config)
    runner = await start(config, engine)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /trickle HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.readexactly(100_000), 10)
        writer.transport.abort()  # the searcher navigates away mid-download
        await asyncio.sleep(1.0)
        for kind in ("refused", "timeout", "reset"):
            assert engine.counts.value("upstream_errors", kind=kind) == 0, kind
    finally:
        await runner.cleanup()
