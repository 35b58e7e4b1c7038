"""The admin listener: metrics, health and status, apart from the public listener; and the
metrics summed over two worker processes."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen

import pytest
from aiohttp.test_utils import TestServer

from intercept.core import Engine
from intercept.research.ledger import Ledger
from intercept.server.admin import build_admin_app, status
from tests.processes import demo_serve, free_port, intercept_process
from tests.upstream import RULES, Proxy, fetch, running_proxy


@pytest.fixture
async def admin(proxy: Proxy) -> AsyncIterator[tuple[str, str, Engine]]:
    base, engine = proxy
    server = TestServer(build_admin_app(engine), host="127.0.0.1")
    await server.start_server()
    yield base, f"http://127.0.0.1:{server.port}", engine
    await server.close()


def _sample(metrics: str, name: str, **labels: str) -> float:
    for line in metrics.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if head.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


async def test_metrics_count_searches_interventions_and_decisions(
    admin: tuple[str, str, Engine],
) -> None:
    public, admin_base, _ = admin
    for query in ("garden+chairs", "blocked+example", "velvet+moth"):
        await fetch("GET", public + "/search?q=" + query)
    status, headers, body = await fetch("GET", admin_base + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert _sample(text, "intercept_searches_total", route="search") == 3
    assert _sample(text, "intercept_decision_seconds_count") == 3
    assert _sample(text, "intercept_interventions_total", action="shadow") == 1
    shown = sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("intercept_interventions_total{") and 'action="block"' in line
    )
    assert shown == 1
    assert _sample(text, "intercept_upstream_seconds_count") == 2  # the two results fetched
    assert _sample(text, "intercept_rules_loaded") == len(RULES.rules)
    assert _sample(text, "intercept_upstream_errors_total", kind="refused") == 0


async def test_upstream_errors_are_counted() -> None:
    async with running_proxy("http://127.0.0.1:9") as (base, engine):
        status, _, _ = await fetch("GET", base + "/search?q=garden+chairs")
    assert status == 502
    assert engine.counts.value("upstream_errors", kind="refused") == 1


async def test_health_readiness_and_status(admin: tuple[str, str, Engine]) -> None:
    _, admin_base, engine = admin
    assert (await fetch("GET", admin_base + "/healthz"))[0] == 200
    status, _, body = await fetch("GET", admin_base + "/readyz")
    assert status == 200
    assert json.loads(body)["ready"] is True
    status, _, body = await fetch("GET", admin_base + "/admin/status")
    report = json.loads(body)
    assert report["rules"]["version"] == engine.rules.version
    assert report["rules"]["count"] == len(RULES.rules)
    assert report["mode"] == "proxy"


def test_status_shows_the_tallies_of_the_last_second_as_pending(tmp_path: Path) -> None:
    engine = running_proxy("http://127.0.0.1:9").engine
    engine.counts.ledger = Ledger.from_url(f"sqlite:{tmp_path / 'ledger.db'}")
    engine.counts.search("search")
    engine.counts.intervention("demo", "block", "en", "harm")
    assert status(engine)["ledger"]["pending"] == 2


async def test_the_public_listener_has_no_admin_paths(admin: tuple[str, str, Engine]) -> None:
    public, _, _ = admin
    for path in ("/metrics", "/admin/status", "/readyz"):
        _, _, body = await fetch("GET", public + path)  # forwarded to the upstream
        assert b"intercept_searches_total" not in body
        assert b"uptime_seconds" not in body


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


@contextmanager
def _two_workers(ledger_url: str) -> Iterator[tuple[Popen[str], str, str]]:
    """`intercept serve --mode authz --workers 2` with the demo rules, once it says it serves:
    (the process, the public base URL, the admin base URL)."""
    public, admin_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": ledger_url,
    }
    admin = f"127.0.0.1:{admin_port}"
    command = demo_serve("authz", public, "--workers", "2", "--admin-listen", admin)
    with intercept_process(*command, env=env) as proc:
        assert proc.stdout is not None
        assert "decision service" in proc.stdout.readline()
        yield proc, f"http://127.0.0.1:{public}", f"http://{admin}"


def test_two_workers_share_the_listeners_and_sum_their_metrics(tmp_path: Path) -> None:
    with _two_workers(f"sqlite:{tmp_path / 'ledger.db'}") as (proc, public, admin):
        searches = 40
        for _ in range(searches):
            _get(f"{public}/_intercept/authz/search?q=garden+chairs")
        # the workers accept on the supervisor's sockets: whichever answers lists both
        status = json.loads(_get(f"{admin}/admin/status"))
        assert len({worker["pid"] for worker in status["workers"]}) == 2

        def total() -> float:
            metrics = _get(f"{admin}/metrics")
            return _sample(metrics, "intercept_searches_total", route="search")

        deadline = time.monotonic() + 10  # each worker hands its counts over every second
        while total() != searches and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(3):  # whichever worker answers, the sum is the same
            assert total() == searches
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


async def test_readiness_fails_while_stopping(admin: tuple[str, str, Engine]) -> None:
    _, admin_base, engine = admin
    engine.extras["draining"] = True  # what serve sets before it drains the public listener
    status, _, body = await fetch("GET", admin_base + "/readyz")
    assert status == 503
    assert "stopping" in json.loads(body)["problems"]


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    with _two_workers("null") as (proc, _, admin):
        workers = {json.loads(_get(f"{admin}/admin/status"))["pid"] for _ in range(20)}
        proc.kill()  # SIGKILL: the supervisor cannot pass anything on
        proc.wait()
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
