"""Helpers for tests/deploy/test_deploy_*.py: the shipped proxy configurations under deploy/,
run with the real proxy binaries in front of the real upstream (tests/upstream.py) and
Intercept's decision service, everything on loopback.

A test starts what the proxy stands in front of (`backends`), renders a shipped file with only
its addresses, ports and file paths replaced (`render`), starts the proxy (`Backends.running`,
over `running_process`: bounded start-up wait, always terminated, its stderr in every failure
message), and checks behaviour through it with the `Deployment`'s methods, which the nginx,
Caddy and HAProxy tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
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

from intercept.config import DEFAULT_ROUTES
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

# A client's own description of a benign search, in the headers the proxies use to describe the
# request to the decision service: never believed.
FORGED = {
    "X-Original-URI": BENIGN,
    "X-Original-Method": "GET",
    "X-Forwarded-Uri": BENIGN,
    "X-Forwarded-Method": "GET",
}


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
    """Requests a test server answered: (method, raw path with query), in order; for an app
    (`attach`), also the body of each, as far as its handler had read it."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def attach(self, app: web.Application) -> None:
        async def record(request: web.Request, response: web.StreamResponse) -> None:
            self.requests.append((request.method, request.raw_path))
            self.bodies.append(await request.read() if request.body_exists else b"")

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
        self.bodies.clear()


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
        assert len(set(links)) == 1, text  # at the top and after the help list
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
        for target in (
            "/_intercept/auth-request",
            "/_intercept/page",
            "/_intercept/authz",
            "/_intercept/authz/search?q=teapot",
            "/_intercept/metrics",
        ):
            status, _, body = await self.get(target, headers=FORGED)
            assert status == 404, (target, status, body, self.explain())
        assert self.authz.requests == []
        assert self.searches() == 0

    async def check_forged_descriptions_ignored(self) -> None:
        """A client's own X-Original-*/X-Forwarded-* headers do not change the decision."""
        forged = {**FORGED, "X-Forwarded-Host": "elsewhere.example"}
        status, headers, _ = await self.get(BLOCKED, headers=forged)
        assert status == self.deny_status, self.explain()
        assert "X-Upstream" not in headers
        assert self.upstream.requests == []

    async def check_post_through_proxy_mode(self) -> None:
        """As shipped (nginx, Caddy): POST searches go through Intercept's reverse proxy
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

    async def send_blocked_bodies(self) -> dict[str, tuple[int, bool]]:
        """Each of `BLOCKED_BODIES` through the proxy: by name, (status, whether the upstream
        received it). The measure of how many body-borne searches pass undecided."""
        outcome: dict[str, tuple[int, bool]] = {}
        for search in BLOCKED_BODIES:
            self.upstream.clear()
            status, _, _ = await raw_request(self.base, search)
            outcome[search.name] = (status, bool(self.upstream.requests))
        self.upstream.clear()
        return outcome

    async def check_blocked_bodies_decided(self, refused: int | None = None) -> None:
        """Every search body with the blocked phrase gets the deterrence page (an autocomplete
        route: an empty suggestion list), or the status `refused`; none reaches the upstream."""
        for search in BLOCKED_BODIES:
            status, headers, body = await raw_request(self.base, search)
            context = (search.name, status, body[:300], self.explain())
            assert "x-upstream" not in headers, context
            assert self.upstream.requests == [], context
            if refused is not None:
                assert status == refused, context
            elif search.suggestions:
                assert status == 200, context
                assert body == b'["", []]', context
            else:
                assert status == 200, context  # block_status, from Intercept's proxy mode
                assert "default-src 'none'" in headers["content-security-policy"], context
                assert b"<html" in body, context
                assert b"/_intercept/go/" in body, context
                assert b"blocked" not in body, context  # the query is never echoed

    async def check_benign_bodies_pass(self) -> None:
        """Every search body without a match reaches the upstream once, with its method,
        target and body exactly as sent (a chunked one de-chunked), and its answer comes back."""
        for search in BENIGN_BODIES:
            self.upstream.clear()
            status, headers, _ = await raw_request(self.base, search)
            context = (search.name, status, self.upstream.requests, self.explain())
            assert self.upstream.requests == [(search.method, search.target)], context
            assert self.upstream.bodies == [search.body], context
            assert status == (200 if search.target == "/search" else 404), context  # the upstream's
            if status == 200:
                assert headers["x-upstream"] == "results", context
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
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    return await _exchange(host, port, request.encode("ascii"))


async def _exchange(host: str, port: str, payload: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `payload` over a fresh connection and read the answer until the server closes it
    (the requests ask it to), at most 10 s: (status, headers with lower-case names, body as
    framed)."""
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(payload)
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


@web.middleware
async def _printable_results(request: web.Request, handler: Any) -> web.StreamResponse:
    """The upstream's search results (tests/upstream.py), with a body that holds control
    characters (multipart's CRLF, UTF-16's NULs) shown in `X-Body` as "?" instead of failing
    the answer: the tests here send such bodies through to the search front-end."""
    if request.path not in ("/search", "/autocomplete"):
        response: web.StreamResponse = await handler(request)
        return response
    body = await request.read()
    shown = "".join(c if " " <= c < "\x7f" else "?" for c in body.decode("ascii", "replace"))
    return web.Response(
        text="results page",
        headers={"X-Upstream": "results", "X-Method": request.method, "X-Body": shown[:200]},
    )


@contextlib.asynccontextmanager
async def services() -> AsyncIterator[tuple[int, int, Engine, Seen, Seen]]:
    """The upstream and the decision service on free loopback ports: (upstream port, decision
    service port, engine, requests the upstream answered, requests the service answered)."""
    upstream_seen, authz_seen = Seen(), Seen()
    app = upstream_app()
    app.middlewares.append(_printable_results)
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


# Intercept's default routes, with JSON bodies read on /search too (`json_pointers`), as an
# operator whose front-end takes JSON searches configures it: the second Intercept (proxy mode)
# that the proxies send search bodies to runs with these.
JSON_ROUTES = [
    route.model_copy(update={"json_pointers": ("/q",)}) if route.name == "search" else route
    for route in DEFAULT_ROUTES
]


@contextlib.asynccontextmanager
async def intercept_proxy(upstream_port: int) -> AsyncIterator[tuple[int, Engine]]:
    """Intercept's reverse proxy (`mode: proxy`, routes `JSON_ROUTES`) in front of the
    upstream: (port, engine)."""
    upstream = f"http://127.0.0.1:{upstream_port}"
    async with running_proxy(upstream, routes=JSON_ROUTES) as (base, engine):
        yield int(base.rsplit(":", 1)[1]), engine


class Bodies(enum.Enum):
    """How the configurations that send searches with a body to Intercept's reverse proxy
    (nginx, Caddy) are run."""

    SHIPPED = "shipped"  # as shipped, the reverse proxy running
    REFUSED = "refused"  # the "#refuse" lines enabled, no reverse proxy running
    PROXY_DOWN = "proxy down"  # as shipped, but no reverse proxy running
    UNSAFE = "unsafe"  # the body routing removed: the opt-out the file warns about

    @property
    def proxy_runs(self) -> bool:
        return self in (Bodies.SHIPPED, Bodies.UNSAFE)


@dataclass
class Backends:
    """What a proxy under test stands in front of, on loopback, and the port it is to listen
    on. A port of a service that is down is one where nothing listens."""

    port: int  # the proxy's own listener
    upstream_port: int  # the search front-end
    intercept_port: int  # Intercept's decision service
    proxy_port: int  # Intercept's reverse proxy, for searches with a body
    engine: Engine  # the decision service's (the reverse proxy has its own)
    upstream: Seen
    authz: Seen

    @contextlib.asynccontextmanager
    async def running(
        self,
        argv: Sequence[str],
        workdir: Path,
        *,
        deny_status: int,
        env: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Deployment]:
        """The proxy started with `argv` (`running_process`), as the `Deployment` to check."""
        async with running_process(argv, self.port, workdir, env=env) as process:
            yield Deployment(
                base=f"http://127.0.0.1:{self.port}",
                engine=self.engine,
                upstream=self.upstream,
                authz=self.authz,
                process=process,
                deny_status=deny_status,
            )


@contextlib.asynccontextmanager
async def backends(
    *, intercept_down: bool = False, reverse_proxy: bool = False
) -> AsyncIterator[Backends]:
    """The upstream and the decision service (`services`), or with `intercept_down` a port
    where nothing listens in the decision service's place; with `reverse_proxy`, Intercept's
    reverse proxy too (`intercept_proxy`), else a port where nothing listens."""
    async with contextlib.AsyncExitStack() as stack:
        upstream_port, authz_port, engine, upstream, authz = await stack.enter_async_context(
            services()
        )
        port = free_port()
        intercept_port = free_port() if intercept_down else authz_port
        if reverse_proxy:
            proxy_port, _ = await stack.enter_async_context(intercept_proxy(upstream_port))
        else:
            proxy_port = free_port()
        yield Backends(port, upstream_port, intercept_port, proxy_port, engine, upstream, authz)


# --- searches that carry their query in a body ------------------------------------------------


@dataclass(frozen=True)
class BodySearch:
    """One request with a search body: sent as raw bytes (`raw_request`), so the method, the
    framing (Content-Length or chunked) and the body are exactly as written here."""

    name: str
    method: str
    target: str
    content_type: str
    body: bytes
    chunked: bool = False

    @property
    def suggestions(self) -> bool:
        """An autocomplete route: a match is answered with an empty suggestion list."""
        return self.target.startswith("/autocompleter")


def _multipart(field_name: str, value: str) -> bytes:
    return (
        f'--XyZ\r\nContent-Disposition: form-data; name="{field_name}"\r\n\r\n{value}\r\n'
        f'--XyZ\r\nContent-Disposition: form-data; name="lang"\r\n\r\nen\r\n--XyZ--\r\n'
    ).encode()


def body_searches(phrase: str) -> list[BodySearch]:
    """Every way tested here of sending `phrase` as a search in a request body: the forms a
    browser posts, JSON, methods other than POST (Werkzeug reads a form body whatever the
    method, GET included), a UTF-16 form, chunked bodies, another spelling of the path, and
    an autocomplete route that reads its body (`/autocompleter`)."""
    form = "application/x-www-form-urlencoded"
    plus = phrase.replace(" ", "+")
    urlencoded = f"q={plus}".encode()
    multipart = "multipart/form-data; boundary=XyZ"
    json_body = json.dumps({"q": phrase}).encode()
    later = f"lang=en&query={plus}".encode()
    spaced = f"q={phrase.replace(' ', '%20')}".encode()
    return [
        BodySearch("form POST", "POST", "/search", form, urlencoded),
        BodySearch("form POST, query later", "POST", "/search", form, later),
        BodySearch("form POST, %20", "POST", "/search", form, spaced),
        BodySearch("multipart POST", "POST", "/search", multipart, _multipart("q", phrase)),
        BodySearch("JSON POST", "POST", "/search", "application/json", json_body),
        BodySearch("form PUT", "PUT", "/search", form, urlencoded),
        BodySearch("multipart PUT", "PUT", "/search", multipart, _multipart("q", phrase)),
        BodySearch("JSON PUT", "PUT", "/search", "application/json", json_body),
        BodySearch("form PATCH", "PATCH", "/search", form, urlencoded),
        BodySearch("form DELETE", "DELETE", "/search", form, urlencoded),
        BodySearch("form OPTIONS", "OPTIONS", "/search", form, urlencoded),
        BodySearch("form GET", "GET", "/search", form, urlencoded),
        BodySearch("UTF-16 form POST", "POST", "/search", form + "; charset=utf-16",
                   f"q={plus}".encode("utf-16")),
        BodySearch("chunked form POST", "POST", "/search", form, urlencoded, chunked=True),
        BodySearch("chunked multipart POST", "POST", "/search", multipart,
                   _multipart("q", phrase), chunked=True),
        BodySearch("chunked form GET", "GET", "/search", form, urlencoded, chunked=True),
        BodySearch("form POST, /SEARCH/", "POST", "/SEARCH/", form, urlencoded),
        BodySearch("form POST, autocompleter", "POST", "/autocompleter", form, urlencoded),
    ]  # fmt: skip


BLOCKED_BODIES = body_searches("blocked example")
BENIGN_BODIES = body_searches("teapot museum")


async def raw_request(base: str, search: BodySearch) -> tuple[int, dict[str, str], bytes]:
    """Send `search` as raw bytes over a fresh connection: (status, headers with lower-case
    names, body with any chunked framing removed)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    head = (
        f"{search.method} {search.target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: {search.content_type}\r\nConnection: close\r\n"
    )
    if search.chunked:
        half = len(search.body) // 2
        framed = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part)
            for part in (search.body[:half], search.body[half:])
            if part
        )
        payload = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + framed + b"0\r\n\r\n"
    else:
        payload = (head + f"Content-Length: {len(search.body)}\r\n\r\n").encode() + search.body
    status, headers, body = await _exchange(host, port, payload)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return status, headers, body


async def h2c_get_with_body(base: str, body: bytes) -> tuple[int, bytes]:
    """A GET of /search over cleartext HTTP/2 whose form body is announced by no
    Content-Length (possible in HTTP/2 and nowhere in the headers a proxy sees), sent with
    curl: (status, body of the answer). Skips the test without curl."""
    curl = require_binary("curl", "curl")
    process = await asyncio.create_subprocess_exec(
        *(curl, "--silent", "--show-error", "--http2-prior-knowledge", "--max-time", "10"),
        *("-X", "GET", "-H", "Content-Type: application/x-www-form-urlencoded"),
        *("-H", "Transfer-Encoding: chunked", "--data-binary", "@-"),
        *("--write-out", "\n%{http_version} %{http_code}", base + "/search"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(body), 15)
    answer, _, summary = out.rpartition(b"\n")
    version, _, status = summary.decode().partition(" ")
    assert process.returncode == 0, (summary, err)
    assert version == "2", (summary, err)
    return int(status), answer


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def isolated_env(home: Path) -> dict[str, str]:
    """The environment for a proxy process: PATH and locale only, HOME and XDG dirs in `home`."""
    env = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL") if key in os.environ}
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        path = home / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    return env
