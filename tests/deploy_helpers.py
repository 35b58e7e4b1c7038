"""Helpers for tests/test_deploy_*.py: the shipped proxy configurations under deploy/, run with
the real proxy binaries in front of the real upstream (tests/upstream.py) and Intercept's
decision service, everything on loopback.

A test renders a shipped file with only its addresses, ports and file paths replaced
(`render`), starts the proxy with `running_process` (bounded start-up wait, always terminated,
its stderr in every failure message), and checks behaviour through it with the `Deployment`'s
methods, which the nginx, Caddy and HAProxy tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from intercept.core import Engine
from tests.upstream import fetch, running_authz, running_proxy, upstream_app

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"

# The placeholder addresses every shipped configuration uses (deploy/README.md).
SEARCH_FRONTEND = "127.0.0.1:8000"
INTERCEPT = "127.0.0.1:8081"
INTERCEPT_PROXY = "127.0.0.1:8082"

START_TIMEOUT = 15.0  # seconds for a proxy to listen
STOP_TIMEOUT = 5.0  # seconds for a proxy to exit on SIGTERM before it is killed

BLOCKED = "/search?q=blocked+example"
WARNED = "/search?q=purple+teapot"
BENIGN = "/search?q=teapot+museum"


def require_binary(name: str, package: str) -> str:
    """The path of `name`, or skip the test: the proxy's Debian package is not installed."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        pytest.skip(f"Debian package {package} is not installed (.ci/run installs it)")
    return found


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render(template: str, replacements: Mapping[str, str]) -> str:
    """`template` with each key replaced everywhere by its value. Every key must occur, so a
    shipped file that changes its placeholders fails loudly instead of running unchanged."""
    for old, new in replacements.items():
        if old not in template:
            raise AssertionError(f"placeholder {old!r} not found in the shipped configuration")
        template = template.replace(old, new)
    return template


@dataclass
class Seen:
    """Requests a test server answered: (method, raw path with query), in order."""

    requests: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, app: web.Application) -> None:
        async def record(request: web.Request, response: web.StreamResponse) -> None:
            self.requests.append((request.method, request.raw_path))

        app.on_response_prepare.append(record)

    def attach_server(self, server: web.Server) -> None:
        """The same for a low-level server (Intercept's front doors), set before it serves."""
        handler = server.request_handler

        async def recording(request: web.BaseRequest) -> web.StreamResponse:
            self.requests.append((request.method, request.raw_path))
            return await handler(request)

        server.request_handler = recording

    @property
    def targets(self) -> list[str]:
        return [target for _, target in self.requests]

    def clear(self) -> None:
        self.requests.clear()


class ProxyProcess:
    """A proxy binary started by `running_process`; `stderr()` reads what it wrote so far."""

    def __init__(self, process: subprocess.Popen[bytes], stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-6000:]
        except OSError:
            return ""


async def wait_for_port(port: int, process: ProxyProcess, timeout: float = START_TIMEOUT) -> None:
    """Until something accepts connections on the loopback `port`; fail (with the process's
    stderr) when the process exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if process.process.poll() is not None:
            raise AssertionError(
                f"{process.process.args!r} exited with {process.process.returncode} before "
                f"listening on port {port}:\n{process.stderr()}"
            )
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{process.process.args!r} did not listen on port {port} within "
                    f"{timeout:.0f} s:\n{process.stderr()}"
                ) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


@contextlib.asynccontextmanager
async def running_process(
    argv: Sequence[str],
    port: int,
    workdir: Path,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[ProxyProcess]:
    """Start `argv` in the foreground (its output in `workdir`), wait until it listens on
    `port`, and always stop it afterwards (SIGTERM, then SIGKILL)."""
    stderr_path = workdir / "stderr.log"
    with (
        open(workdir / "stdout.log", "wb") as stdout,
        open(stderr_path, "wb") as stderr,
    ):
        process = subprocess.Popen(
            list(argv),
            cwd=workdir,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    proxy = ProxyProcess(process, stderr_path)
    try:
        await wait_for_port(port, proxy)
        yield proxy
    finally:
        _stop(process)


@dataclass
class Deployment:
    """A proxy on `base` in front of the upstream, asking the decision service.

    `deny_status` is what a searcher gets with the deterrence page: nginx passes the page's
    own status (`block_status`, 200) on; the proxies that return the decision service's answer
    as it is send its 403."""

    base: str
    engine: Engine
    upstream: Seen
    authz: Seen
    process: ProxyProcess
    deny_status: int

    def explain(self) -> str:
        """Context for a failed assertion: the proxy's stderr."""
        return f"\n--- proxy stderr ---\n{self.process.stderr()}"

    async def get(self, target: str, **kwargs: Any) -> tuple[int, Any, bytes]:
        return await fetch("GET", self.base + target, **kwargs)

    def searches(self, route: str = "search") -> float:
        return self.engine.counts.value("searches", route=route)

    def interventions(self, action: str = "block") -> float:
        """Interventions of the demo category in English, summed over the message variants."""
        return sum(
            self.engine.counts.value(
                "interventions", category="demo", action=action, language="en", variant=variant
            )
            for variant in self.engine.pages.variants
        )

    # --- the checks every proxy passes ----------------------------------------------------

    async def check_benign_search(self) -> None:
        """A search that matches nothing reaches the upstream exactly as sent, and its answer
        comes back."""
        status, headers, body = await self.get(BENIGN)
        assert status == 200, self.explain()
        assert headers.get("X-Upstream") == "results", self.explain()
        assert body == b"results page"
        assert self.upstream.targets == [BENIGN]
        assert self.authz.requests, "the decision service was never asked"
        assert self.searches() == 1
        assert self.interventions() == 0

    async def check_blocked_search(self) -> None:
        """A matching search gets the deterrence page; the upstream never sees it; the search
        and the intervention are counted exactly once."""
        status, headers, body = await self.get(BLOCKED, headers={"Accept-Language": "fi"})
        assert status == self.deny_status, self.explain()
        assert "X-Upstream" not in headers
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer"
        text = body.decode()
        assert "<html" in text
        assert "blocked" not in text.lower()  # the query is never echoed
        assert "example" not in text.lower()
        assert "/_intercept/go/" in text
        assert self.upstream.requests == []
        assert self.searches() == 1
        assert self.interventions() == 1

    async def check_warn_continue(self) -> None:
        """Warn: the interstitial, its continue link followed through the proxy, then the
        results; the warning is counted once."""
        status, headers, body = await self.get(WARNED)
        assert status == self.deny_status, self.explain()
        assert "X-Upstream" not in headers
        text = body.decode()
        assert "purple" not in text
        assert "teapot" not in text
        links = re.findall(r'href="(/_intercept/continue/[^"]+)"', text)
        assert len(links) == 1, text
        status, headers, _ = await self.get(links[0])
        assert status == 303, self.explain()
        location = headers["Location"]
        assert location.startswith(WARNED + "&_intercept_continue=")
        status, headers, body = await self.get(location)
        assert status == 200, self.explain()
        assert headers.get("X-Upstream") == "results"
        assert self.upstream.targets == [location]  # the token stays: see deploy/README.md
        assert self.interventions("warn") == 1
        assert self.searches() == 2

    async def check_click_through(self) -> None:
        """A link on the page, followed through the proxy: counted, then redirected."""
        _, _, body = await self.get(BLOCKED)
        found = re.search(r'href="(/_intercept/go/survey[^"]*)"', body.decode())
        assert found is not None, body
        link = found.group(1).replace("&amp;", "&")
        variant = re.search(r"[?&]v=([a-z]+)", link)
        assert variant is not None
        status, headers, _ = await self.get(link)
        assert status == 303, self.explain()
        assert headers["Location"].startswith(self.engine.config.survey_url)
        assert headers["Referrer-Policy"] == "no-referrer"
        clicks = self.engine.counts.value("clicks", link="survey", variant=variant.group(1))
        assert clicks == 1
        assert self.upstream.requests == []

    async def check_autocomplete(self) -> None:
        """A matching autocomplete query gets an empty suggestion list, never the upstream."""
        status, headers, body = await self.get("/autocomplete?q=blocked+example")
        assert status == self.deny_status, self.explain()
        assert body == b"[]"
        assert "X-Upstream" not in headers
        assert self.upstream.requests == []
        status, headers, body = await self.get("/autocomplete?q=teapot")
        assert status == 200
        assert headers.get("X-Upstream") == "results"

    async def check_other_paths_never_asked(self) -> None:
        """Static files and other paths go straight to the upstream: the decision service never
        hears of them, even with a matching query string."""
        status, headers, _ = await self.get("/echo?q=blocked+example")
        assert status == 200, self.explain()
        assert headers.get("X-Upstream") == "yes"
        status, _, _ = await self.get("/static/app.css")
        assert status == 404  # the upstream has no such file: its answer, passed on
        status, _, _ = await self.get("/searching?q=blocked+example")
        assert status == 404
        assert self.upstream.targets == [
            "/echo?q=blocked+example",
            "/static/app.css",
            "/searching?q=blocked+example",
        ]
        assert self.authz.requests == []
        assert self.searches() == 0

    async def check_private_endpoints(self) -> None:
        """Clients cannot reach the decision endpoints through the proxy."""
        forged = {
            "X-Original-URI": BENIGN,
            "X-Original-Method": "GET",
            "X-Forwarded-Uri": BENIGN,
            "X-Forwarded-Method": "GET",
        }
        for target in (
            "/_intercept/auth-request",
            "/_intercept/page",
            "/_intercept/authz",
            "/_intercept/authz/search?q=teapot",
            "/_intercept/metrics",
        ):
            status, _, body = await self.get(target, headers=forged)
            assert status == 404, (target, status, body, self.explain())
        assert self.authz.requests == []
        assert self.searches() == 0

    async def check_forged_descriptions_ignored(self) -> None:
        """A client's own X-Original-*/X-Forwarded-* headers do not change the decision."""
        forged = {
            "X-Original-URI": BENIGN,
            "X-Original-Method": "GET",
            "X-Forwarded-Uri": BENIGN,
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Host": "elsewhere.example",
        }
        status, headers, _ = await self.get(BLOCKED, headers=forged)
        assert status == self.deny_status, self.explain()
        assert "X-Upstream" not in headers
        assert self.upstream.requests == []

    async def check_post_through_proxy_mode(self) -> None:
        """With the shipped "#post" lines: POST searches go through Intercept's reverse proxy
        (blocked, allowed, and warned then continued with the body resent); the decision
        service never hears of them."""
        status, headers, body = await fetch(
            "POST", self.base + "/search", data={"q": "blocked example"}
        )
        assert status == 200, self.explain()
        assert "X-Upstream" not in headers
        assert b"<html" in body
        assert b"blocked" not in body
        status, headers, _ = await fetch("POST", self.base + "/search", data={"q": "kites"})
        assert status == 200, self.explain()
        assert headers["X-Upstream"] == "results"
        assert headers["X-Body"] == "q=kites"
        for method in ("PUT", "OPTIONS"):  # Werkzeug reads a form body of any method
            status, headers, _ = await fetch(
                method, self.base + "/search", data={"q": "blocked example"}
            )
            assert status == 200, (method, self.explain())
            assert "X-Upstream" not in headers, method
        form = {"q": "purple teapot", "page": "2"}
        status, headers, body = await fetch("POST", self.base + "/search", data=form)
        assert status == 200, self.explain()
        assert "X-Upstream" not in headers
        actions = re.findall(r'<form method="post" action="(/_intercept/continue/[^"]+)"',
                             body.decode())  # fmt: skip
        assert len(actions) == 1, body
        status, headers, _ = await fetch("POST", self.base + actions[0])
        assert status == 200, self.explain()
        assert headers["X-Upstream"] == "results"
        assert headers["X-Method"] == "POST"
        assert headers["X-Body"] == "q=purple+teapot&page=2"
        assert self.upstream.targets == ["/search", "/search"]
        assert self.authz.requests == []
        self.upstream.clear()

    async def check_path_variants(self, targets: Sequence[str]) -> None:
        """Spellings of a search path that a front-end may treat as the search route are
        decided too. Sent as raw bytes: an HTTP client library would tidy the paths up."""
        for target in targets:
            status, headers, body = await raw_get(self.base, target)
            assert "x-upstream" not in headers, (target, status, self.explain())
            page = "default-src 'none'" in headers.get("content-security-policy", "")
            suggestions = body.endswith((b"[]", b'["", []]'))  # an autocomplete route
            assert status == self.deny_status, (target, status, self.explain())
            assert page or suggestions, (target, status, body[:200])
        assert self.upstream.requests == []


async def raw_get(base: str, target: str) -> tuple[int, dict[str, str], bytes]:
    """GET `target` exactly as written (no normalisation), over a fresh connection: (status,
    headers with lower-case names, body)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode("ascii"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@contextlib.asynccontextmanager
async def services() -> AsyncIterator[tuple[int, int, Engine, Seen, Seen]]:
    """The upstream and the decision service on free loopback ports: (upstream port, decision
    service port, engine, requests the upstream answered, requests the service answered)."""
    upstream_seen, authz_seen = Seen(), Seen()
    app = upstream_app()
    upstream_seen.attach(app)
    upstream = TestServer(app, host="127.0.0.1")
    await upstream.start_server()
    try:
        decision = running_authz()
        async with decision as (base, engine):
            assert decision.runner is not None
            assert decision.runner.server is not None
            authz_seen.attach_server(decision.runner.server)
            port = int(base.rsplit(":", 1)[1])
            assert upstream.port is not None
            yield upstream.port, port, engine, upstream_seen, authz_seen
    finally:
        await upstream.close()


@contextlib.asynccontextmanager
async def intercept_proxy(upstream_port: int) -> AsyncIterator[tuple[int, Engine]]:
    """Intercept's reverse proxy (`mode: proxy`) in front of the upstream: (port, engine)."""
    async with running_proxy(f"http://127.0.0.1:{upstream_port}") as (base, engine):
        yield int(base.rsplit(":", 1)[1]), engine


def isolated_env(home: Path) -> dict[str, str]:
    """The environment for a proxy process: PATH and locale only, HOME and XDG dirs in `home`."""
    env = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL") if key in os.environ}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        path = home / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    return env
