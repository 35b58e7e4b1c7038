"""No query text or client address in any log record, at any level, in proxy mode."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.upstream import Proxy, fetch

CANARY = "zebraquilt7"  # not a rule; goes through benign paths
MATCHING = "blocked example canarytoken"


async def test_no_query_or_address_in_logs(proxy: Proxy, caplog: pytest.LogCaptureFixture) -> None:
    base, _ = proxy
    caplog.set_level(logging.DEBUG)
    await fetch("GET", base + f"/search?q={CANARY}")
    await fetch("GET", base + "/search?q=" + MATCHING.replace(" ", "+"))
    await fetch("POST", base + "/search", data={"q": MATCHING})
    await fetch("GET", base + f"/echo?q={CANARY}", headers={"User-Agent": "canary-agent/1.0"})
    await fetch("GET", base + "/search?q=" + CANARY + "x" * 9000)  # over the limit
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /search?q={CANARY} \x00BAD\r\n\r\n".encode())
    await writer.drain()
    await reader.read(200)
    writer.close()
    logged = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    for secret in (CANARY, "canarytoken", "canary-agent", "blocked example"):
        assert secret not in logged
    assert "127.0.0.1" not in logged
