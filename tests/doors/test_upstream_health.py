"""A failing upstream (proxy mode) is logged, rate-limited and without request details, shows
in `intercept_upstream_up` and `/admin/status`, and with `readiness.upstream` makes `/readyz`
answer 503 until probes see it answer again.

Upstreams are real servers on loopback: a closed port (refused), the test upstream app
answering, and the same app started and stopped on a fixed port. The privacy part follows
tests/test_privacy_canary.py: canary queries and headers from the canary client address, and
every log record at every level scanned for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, Gauge

from intercept.config import ConfigError, load_config
from intercept.core import Engine
from intercept.doors.upstream_health import UpstreamHealth
from intercept.server.admin import build_admin_app, status
from tests.processes import free_port, http_status, intercept_process
from tests.test_privacy_canary import (
    CLIENT_ADDRESS,
    HEADERS,
    QUERIES,
    all_logs,
    assert_no_canary,
)
from tests.upstream import fetch, running_authz, running_proxy, upstream_app

ROOT = Path(__file__).parents[2]
SECRET = "zqxcanarypw"  # the password in the upstream address: never shown


class Switchable:
    """The test upstream app on a fixed loopback port, started and stopped by the test (a
    closed port refuses); it records the method, path and user agent of what reaches it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[tuple[str, str, str]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.seen.append((request.method, request.path, request.headers.get("User-Agent", "")))
            response: web.StreamResponse = await handler(request)
            return response

        app = upstream_app()
        app.middlewares.append(record)
        self._runner = web.AppRunner(app, access_log=None)  # its log would hold queries
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def admin_for(engine: Engine) -> AsyncIterator[str]:
    server = TestServer(build_admin_app(engine), host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def readyz(admin: str) -> tuple[int, dict[str, Any]]:
    code, _, body = await fetch("GET", admin + "/readyz")
    return code, json.loads(body)


def up_value(engine: Engine) -> float | None:
    return engine.counts.registry.get_sample_value("intercept_upstream_up")


def lines(logs: list[str], level: str) -> list[str]:
    """The `intercept` logger's upstream lines at `level`, message only."""
    prefix = f"intercept {level} upstream "
    return [line.split(" /")[0] for line in logs if line.startswith(prefix)]


async def canary_searches(base: str) -> list[int]:
    """Benign canary searches (GET and POST) from the canary address, with canary headers."""
    connector = aiohttp.TCPConnector(local_addr=(CLIENT_ADDRESS, 0), force_close=True)
    codes = []
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS) as session:
        for query in QUERIES[2:]:  # shadow and benign: both go upstream
            async with session.get(base + "/search?q=" + quote_plus(query)) as response:
                codes.append(response.status)
            form = {"q": query}
            async with session.post(base + "/search", data=form) as response:
                codes.append(response.status)
    return codes


async def test_refused_upstream_is_logged_once_shown_and_recovery_logged() -> None:
    upstream = Switchable()  # not started: its port refuses
    address = f"http://user:{SECRET}@127.0.0.1:{upstream.port}"
    with all_logs() as logs:
        async with running_proxy(address) as (base, engine), admin_for(engine) as admin:
            assert up_value(engine) == 1.0  # answering until shown otherwise
            assert await canary_searches(base) == [502] * 4
            assert engine.counts.value("upstream_errors", kind="refused") == 4
            assert up_value(engine) == 0.0
            report = status(engine)["upstream"]
            assert report["url"] == upstream.url  # the address as configured, less userinfo
            assert (report["up"], report["consecutive_failures"]) == (False, 4)
            assert report["last_error_kind"] == "refused"
            assert report["failing_since"] == pytest.approx(time.time(), abs=30)
            assert report["probing"] is False
            code, body = await readyz(admin)
            assert (code, body["upstream_failing"]) == (200, True)  # readiness mode is off

            await upstream.start()
            try:
                assert await canary_searches(base) == [200] * 4
            finally:
                await upstream.stop()
            assert up_value(engine) == 1.0
            assert status(engine)["upstream"]["failing_since"] is None
            assert (await readyz(admin))[1]["upstream_failing"] is False
    # four failures within the interval: one line, written at the first
    assert lines(logs.text, "WARNING") == [
        f"intercept WARNING upstream {upstream.url} failing: 1 failure since the last report "
        "(refused 1)"
    ]
    (recovered,) = lines(logs.text, "INFO")
    assert re.fullmatch(
        rf"intercept INFO upstream {upstream.url} answering again after 4 failures in \d+ s",
        recovered,
    )
    assert all(method != "HEAD" for method, _, _ in upstream.seen)  # no probes in this mode
    assert any("capture check" in line for line in logs.text), "the log capture is not working"
    everything = "\n".join(logs.text)
    assert_no_canary("the logs", everything)
    assert SECRET not in everything
    assert SECRET not in json.dumps(status(engine))
    assert_no_canary("the metrics", engine.counts.exposition().decode())


async def test_timeout_and_reset_are_told_apart(upstream: TestServer) -> None:
    url = f"http://127.0.0.1:{upstream.port}"
    with all_logs() as logs:
        async with running_proxy(url, timeouts={"header": 0.3}) as (base, engine):
            with pytest.raises(aiohttp.ClientPayloadError):  # cut mid-body: so is ours
                await fetch("GET", base + "/reset-chunked")
            assert (await fetch("GET", base + "/slow-head"))[0] == 504
            report = status(engine)["upstream"]
            assert (report["consecutive_failures"], report["last_error_kind"]) == (2, "timeout")
            assert (await fetch("GET", base + "/search?q=garden+chairs"))[0] == 200
    assert lines(logs.text, "WARNING") == [
        f"intercept WARNING upstream {url} failing: 1 failure since the last report (reset 1)"
    ]
    (recovered,) = lines(logs.text, "INFO")
    assert re.fullmatch(
        rf"intercept INFO upstream {url} answering again after 2 failures in \d+ s", recovered
    )


def test_log_lines_are_rate_limited_and_count_what_they_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    registry = CollectorRegistry()
    gauge = Gauge("intercept_upstream_up", "test", registry=registry)
    health = UpstreamHealth("http://search.internal:8000", gauge, clock=lambda: now[0])

    def messages() -> list[str]:
        found = [r.getMessage() for r in caplog.records if r.name == "intercept"]
        caplog.clear()
        return found

    caplog.set_level(logging.INFO, logger="intercept")
    health.failed("refused")
    assert messages() == [
        "upstream http://search.internal:8000 failing: 1 failure since the last report (refused 1)"
    ]
    for kind in ("refused", "refused", "timeout", "reset", "timeout"):
        now[0] += 1.5
        health.failed(kind)
    health.probed("refused")
    assert messages() == []  # within the interval: held back
    now[0] = 1010.0
    health.failed("refused")
    assert messages() == [
        "upstream http://search.internal:8000 failing: 7 failures since the last report "
        "(refused 4, reset 1, timeout 2)"
    ]
    now[0] = 1012.0
    health.probed(None)
    assert messages() == [
        "upstream http://search.internal:8000 answering again after 8 failures in 12 s"
    ]
    assert registry.get_sample_value("intercept_upstream_up") == 1.0
    # flapping within the interval: no lines at all, the gauge follows each change
    for _ in range(50):
        now[0] += 0.1
        health.failed("reset")
        assert registry.get_sample_value("intercept_upstream_up") == 0.0
        health.ok()
        assert registry.get_sample_value("intercept_upstream_up") == 1.0
    assert messages() == []
    now[0] = 1020.0
    health.failed("refused")
    assert messages() == [
        "upstream http://search.internal:8000 failing: 51 failures since the last report "
        "(refused 1, reset 50)"
    ]


async def test_readiness_mode_probes_and_follows_the_upstream() -> None:
    upstream = Switchable()
    readiness = {"upstream": True, "probe_seconds": 0.2, "probe_path": "/probe-here"}
    with all_logs() as logs:
        async with (
            running_proxy(upstream.url, readiness=readiness) as (_, engine),
            admin_for(engine) as admin,
        ):
            # no request at all: the probe finds the upstream refusing
            await until(lambda: _ready_is(admin, 503))
            _, body = await readyz(admin)
            assert body["problems"] == ["upstream failing"]
            assert status(engine)["upstream"]["probing"] is True
            _, _, metrics = await fetch("GET", admin + "/metrics")
            assert "intercept_upstream_up 0.0" in metrics.decode()
            # probes are not requests: the error counter (the alert's ratio) stays at 0
            assert engine.counts.value("upstream_errors", kind="refused") == 0
            await upstream.start()
            try:
                await until(lambda: _ready_is(admin, 200))
                assert ("HEAD", "/probe-here", "intercept-upstream-probe") in upstream.seen
                _, _, metrics = await fetch("GET", admin + "/metrics")
                assert "intercept_upstream_up 1.0" in metrics.decode()
            finally:
                await upstream.stop()
            await until(lambda: _ready_is(admin, 503))
            await upstream.start()
            try:
                await until(lambda: _ready_is(admin, 200))
            finally:
                await upstream.stop()
    warnings = lines(logs.text, "WARNING")
    assert warnings, "no line about the failing upstream"
    assert all(f"upstream {upstream.url} failing: " in line for line in warnings)
    assert f"intercept INFO upstream {upstream.url} answering again after " in "\n".join(
        lines(logs.text, "INFO")
    )


async def _ready_is(admin: str, code: int) -> bool:
    return (await readyz(admin))[0] == code


async def test_a_busy_replica_sends_no_probes() -> None:
    upstream = Switchable()
    await upstream.start()
    try:
        readiness = {"upstream": True, "probe_seconds": 0.5}
        async with running_proxy(upstream.url, readiness=readiness) as (base, _):
            await until(lambda: _probes_are(upstream, 1))  # the first goes out at start
            started = time.monotonic()
            async with aiohttp.ClientSession() as session:
                while time.monotonic() - started < 1.6:  # over three probe intervals
                    async with session.get(base + "/search?q=garden+chairs") as response:
                        assert response.status == 200
            assert await _probes_are(upstream, 1)
            await until(lambda: _probes_are(upstream, 2), seconds=3)  # idle: probed again
    finally:
        await upstream.stop()


async def _probes_are(upstream: Switchable, count: int) -> bool:
    return sum(method == "HEAD" for method, _, _ in upstream.seen) == count


async def test_other_modes_have_no_upstream_to_show() -> None:
    async with running_authz() as (_, engine), admin_for(engine) as admin:
        assert status(engine)["upstream"] is None
        code, body = await readyz(admin)
        assert (code, body["upstream_failing"]) == (200, False)
        _, _, metrics = await fetch("GET", admin + "/metrics")
        assert b"intercept_upstream_up" not in metrics  # a 0 would read as an outage
        assert b"intercept_upstream_errors_total" in metrics


def test_readiness_settings() -> None:
    env = {"INTERCEPT_READINESS__UPSTREAM": "true", "INTERCEPT_READINESS__PROBE_SECONDS": "5"}
    config = load_config(None, environ=env)
    assert (config.readiness.upstream, config.readiness.probe_seconds) == (True, 5.0)
    assert load_config(None, environ={}).readiness.upstream is False
    with pytest.raises(ConfigError, match="only mode proxy has an upstream"):
        load_config(None, environ=env, overrides={"mode": "authz"})
    with pytest.raises(ConfigError, match=r"readiness\.probe_path: must be a path starting"):
        load_config(None, environ={}, overrides={"readiness": {"probe_path": "/a b"}})


def test_intercept_serve_writes_the_line_to_stderr_and_goes_unready(tmp_path: Path) -> None:
    port, admin_port, closed = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": f"sqlite:{tmp_path / 'ledger.db'}",
        "INTERCEPT_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "INTERCEPT_READINESS__UPSTREAM": "true",
        "INTERCEPT_READINESS__PROBE_SECONDS": "0.2",
        "INTERCEPT_HUGE_PAGES": "false",
    }
    command = [
        "serve", "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{closed}",
        "--rules", str(ROOT / "rules"), "--messages", str(ROOT / "messages"),
    ]  # fmt: skip
    with intercept_process(*command, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline(), proc.stderr.read()
        deadline = time.monotonic() + 10
        while http_status(f"http://127.0.0.1:{admin_port}/readyz") != 503:
            assert time.monotonic() < deadline, "/readyz never said 503"
            time.sleep(0.1)
        canary = f"http://127.0.0.1:{port}/search?q=" + quote_plus(QUERIES[3])
        assert http_status(canary) == 502
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        stderr = proc.stderr.read()
    expected = f"upstream http://127.0.0.1:{closed} failing: 1 failure since the last report"
    assert expected in stderr
    assert stderr.count("failing:") == 1  # within one interval: one line
    assert_no_canary("stderr", stderr)
