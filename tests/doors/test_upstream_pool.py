"""The upstream pool (proxy mode): a bounded number of requests relayed at once, a share kept
for search routes, and a short wait for a slot answered 503 and counted apart from upstream
errors, never held against the upstream's health.

The integration tests run a real upstream on loopback with a path that hangs (it answers only
when the test ends) and Intercept in front with a pool of 8, of which 2 are kept for searches,
and a pool timeout of 0.5 s; every request is bounded by a client timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from intercept.config import ConfigError, load_config
from intercept.core import Engine
from intercept.doors.upstream_health import health_of
from intercept.doors.upstream_pool import UpstreamPool, pool_of
from intercept.server.admin import status as status_of
from tests.upstream import running_proxy

SIZE, RESERVED, POOL_TIMEOUT = 8, 2, 0.5
CLIENT_LIMIT = 10.0  # seconds: no request in these tests may take longer
Tasks = list[asyncio.Task[tuple[int, float, str]]]


# --- the pool on its own ----------------------------------------------------------------------


def test_requests_other_than_searches_leave_the_reserved_share() -> None:
    pool = UpstreamPool(4, 1)
    assert [pool.take(False) for _ in range(4)] == [True, True, True, False]
    assert pool.take(True)  # the reserved slot
    assert not pool.take(True)  # the pool is full
    pool.give(False)
    assert pool.take(True)  # searches may use any slot
    assert pool.status()["in_use"] == 4


def holding(pool: UpstreamPool, *held: bool) -> UpstreamPool:
    """`pool` with a slot taken for each of `held` (True: by a search), each take asserted."""
    for search in held:
        assert pool.take(search)
    return pool


async def queued(pool: UpstreamPool, *searches: bool) -> list[asyncio.Task[None]]:
    """A waiter for each of `searches` (True: a search), queued in that order by the time this
    returns."""
    waiters = [asyncio.create_task(pool.wait(search)) for search in searches]
    await asyncio.sleep(0)
    return waiters


async def test_waiters_are_served_in_turn_searches_first() -> None:
    pool = holding(UpstreamPool(2, 1), False, True)
    other, search = await queued(pool, False, True)
    pool.give(False)  # one slot: the search gets it, the other request still waits
    await asyncio.sleep(0)
    assert search.done()
    assert not other.done()
    pool.give(True)
    await asyncio.wait_for(other, 1)
    assert pool.status() == {
        "size": 2, "search_reserved": 1, "in_use": 2, "others_in_use": 1,
        "searches_waiting": 0, "others_waiting": 0,
    }  # fmt: skip


async def test_a_cancelled_wait_loses_no_slot() -> None:
    pool = holding(UpstreamPool(2, 0), False, False)
    gone, stays = await queued(pool, False, False)
    pool.give(False)  # handed to `gone`, which is cancelled before it runs: passed on
    gone.cancel()
    await asyncio.wait_for(stays, 1)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert pool.status()["in_use"] == 2
    (late,) = await queued(pool, False)
    late.cancel()  # cancelled while waiting: nothing to give back
    with pytest.raises(asyncio.CancelledError):
        await late
    assert pool.status()["others_waiting"] == 0
    assert pool.status()["in_use"] == 2


def test_the_configuration_keeps_the_reserve_below_the_size() -> None:
    config = load_config(None, environ={})
    assert (config.upstream_pool.size, config.upstream_pool.search_reserved) == (256, 64)
    assert config.timeouts.pool == 2
    with pytest.raises(ConfigError, match="search_reserved"):
        load_config(
            None, environ={}, overrides={"upstream_pool": {"size": 4, "search_reserved": 4}}
        )


# --- through the proxy, against a real upstream ----------------------------------------------


@asynccontextmanager
async def _hanging_upstream() -> AsyncIterator[tuple[TestServer, asyncio.Event]]:
    """/hang and /search?q=hang answer only once the event is set (at the end of the test);
    other searches and paths answer at once."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def search(request: web.Request) -> web.Response:
        if request.query.get("q") == "hang":
            await release.wait()
        return web.Response(text="results page")

    async def other(request: web.Request) -> web.Response:
        return web.Response(text="other page")

    app = web.Application()
    app.router.add_get("/hang", hang)
    app.router.add_get("/search", search)
    app.router.add_get("/{tail:.*}", other)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server, release
    finally:
        release.set()
        await server.close()


@asynccontextmanager
async def _pooled_proxy() -> AsyncIterator[tuple[str, Engine, aiohttp.ClientSession, Tasks]]:
    """Intercept with a pool of `SIZE` (`RESERVED` for searches) in front of the hanging
    upstream, and a client. Requests started in the background go into the list yielded:
    they are answered and awaited (the upstream released) before anything stops."""
    async with _hanging_upstream() as (server, release):
        settings = {
            "upstream_pool": {"size": SIZE, "search_reserved": RESERVED},
            "timeouts": {"pool": POOL_TIMEOUT},
        }
        async with running_proxy(f"http://127.0.0.1:{server.port}", **settings) as (base, engine):
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=CLIENT_LIMIT),
            ) as client:
                background: Tasks = []
                try:
                    yield base, engine, client, background
                finally:
                    release.set()  # the hanging requests end before the proxy stops
                    await asyncio.wait_for(
                        asyncio.gather(*background, return_exceptions=True), CLIENT_LIMIT
                    )


async def _get(client: aiohttp.ClientSession, url: str) -> tuple[int, float, str]:
    """Status, seconds taken and `Retry-After` of one GET."""
    started = time.monotonic()
    async with client.get(url) as response:
        await response.read()
        return response.status, time.monotonic() - started, response.headers.get("Retry-After", "")


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CLIENT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


async def test_a_hanging_path_cannot_starve_searches() -> None:
    async with _pooled_proxy() as (base, engine, client, background):
        door_pool = _pool(engine)
        hanging = [asyncio.create_task(_get(client, f"{base}/hang")) for _ in range(SIZE + 4)]
        background += hanging
        await _until(lambda: door_pool.in_use == SIZE - RESERVED, "the hanging requests in")
        # the 6 beyond the share wait for a slot, then get 503 within the pool timeout
        early = await asyncio.wait_for(asyncio.gather(*hanging[SIZE - RESERVED :]), CLIENT_LIMIT)
        assert [status for status, _, _ in early] == [503] * 6
        assert all(took < POOL_TIMEOUT + 0.5 for _, took, _ in early), early

        status, took, _ = await _get(client, f"{base}/search?q=tea")
        assert status == 200
        assert took < 1.0, took  # the header timeout is 30 s

        status, took, retry = await _get(client, f"{base}/another-page")
        assert status == 503
        assert retry == "1"
        assert POOL_TIMEOUT - 0.05 < took < POOL_TIMEOUT + 0.5, took

        counts = engine.counts
        assert counts.value("upstream_pool_timeouts", route_kind="other") == 7
        assert counts.value("upstream_pool_timeouts", route_kind="search") == 0
        for kind in ("refused", "timeout", "reset"):
            assert counts.value("upstream_errors", kind=kind) == 0, kind
        health = health_of(engine.extras)
        assert health is not None
        assert not health.failing
        assert counts.registry.get_sample_value("intercept_upstream_up") == 1
        assert not any(task.done() for task in hanging[: SIZE - RESERVED])  # still hanging
        shown = status_of(engine)["upstream_pool"]  # what /admin/status shows
        assert (shown["size"], shown["search_reserved"], shown["in_use"]) == (
            SIZE, RESERVED, SIZE - RESERVED
        )  # fmt: skip


async def test_searches_may_use_the_whole_pool_and_wait_only_for_their_own() -> None:
    async with _pooled_proxy() as (base, engine, client, background):
        door_pool = _pool(engine)
        searches = [asyncio.create_task(_get(client, f"{base}/search?q=hang")) for _ in range(SIZE)]
        background += searches
        await _until(lambda: door_pool.in_use == SIZE, "the hanging searches in")
        status, took, _ = await _get(client, f"{base}/search?q=tea")
        assert status == 503
        assert took < POOL_TIMEOUT + 0.5, took
        assert engine.counts.value("upstream_pool_timeouts", route_kind="search") == 1
        assert not any(task.done() for task in searches)
        health = health_of(engine.extras)
        assert health is not None
        assert not health.failing


def _pool(engine: Engine) -> UpstreamPool:
    pool = pool_of(engine.extras)
    assert pool is not None, "no proxy pool in the engine's extras"
    return pool
