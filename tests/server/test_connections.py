"""Client connections under abuse, against real `intercept serve` processes on loopback: many
idle connections under a small file limit, a slowloris head, an idle keep-alive connection.

Cost: about 45 s (three 1,100-connection runs of ~7 s, two timeout runs of ~13 s)."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from intercept.server.connections import GatedServer
from tests.processes import free_port

ROOT = Path(__file__).parents[2]
FILE_LIMIT = 1024
IDLE_CONNECTIONS = 1100
# what the child runs: the file limit set (soft and hard: the start-up raise cannot escape
# it), then `intercept serve` in the same process
_LIMITED = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[1]))); "
    "os.execv(sys.executable, [sys.executable, '-m', 'intercept', *sys.argv[2:]])"
)


class Server:
    """A running `intercept serve`: its public and admin base URLs and its stderr file."""

    def __init__(self, port: int, admin: int, stderr: Path) -> None:
        self.public = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin}"
        self.port = port
        self.admin_port = admin
        self.stderr = stderr


@contextmanager
def serving(
    tmp_path: Path, mode: str, *, file_limit: int = 0, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`intercept serve` (under `file_limit` open files if given), stderr to a file so that a
    flood of log lines cannot block it on a full pipe; killed however the test ends."""
    port, admin = free_port(), free_port()
    serve = [
        "serve", "--mode", mode,
        "--listen", f"127.0.0.1:{port}", "--upstream", "http://127.0.0.1:9",
        "--rules", str(ROOT / "rules"), "--messages", str(ROOT / "messages"),
    ]  # fmt: skip
    if file_limit:
        argv = [sys.executable, "-c", _LIMITED, str(file_limit), *serve]
    else:
        argv = [sys.executable, "-m", "intercept", *serve]
    environ = {
        **os.environ,
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": f"sqlite:{tmp_path / 'ledger.db'}",
        "INTERCEPT_ADMIN_LISTEN": f"127.0.0.1:{admin}",
        **(env or {}),
    }
    stderr = tmp_path / f"stderr-{port}.log"
    with stderr.open("wb") as sink:
        proc = subprocess.Popen(argv, env=environ, stdout=subprocess.PIPE, stderr=sink)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # printed once the listeners are up
        assert f"127.0.0.1:{port}".encode() in ready, stderr.read_text()
        yield Server(port, admin, stderr)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _timed_status(url: str, timeout: float = 5.0) -> tuple[int, float]:
    """The status of one GET (0: no answer within `timeout`) and the seconds it took."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            status: int = response.status
    except urllib.error.HTTPError as error:
        error.read()
        status = error.code
    except (OSError, TimeoutError):
        status = 0
    return status, time.monotonic() - started


def _search_path(mode: str) -> str:
    if mode == "authz":
        return "/_intercept/authz/search?q=blocked+example"
    return "/search?q=blocked+example"


def _blocked_status(mode: str) -> int:
    return 403 if mode == "authz" else 200  # authz: refused; proxy: the deterrence page


def _idle(port: int, count: int, stack: ExitStack) -> None:
    """`count` TCP connections to `port` that never send a byte: non-blocking connects, in
    batches of 50 that the server's accept backlog (128) holds, so that none is dropped."""
    for done in range(count):
        sock = stack.enter_context(socket.socket())
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        if done % 50 == 49:
            time.sleep(0.05)


@pytest.fixture
def many_files() -> Iterator[None]:
    """This test process holds 1,100+ sockets: its own soft file limit raised for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE_CONNECTIONS + 500
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"the hard file limit ({hard}) is below {need}: raise it (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_files")
@pytest.mark.parametrize("mode", ["proxy", "authz"])
def test_idle_connections_beyond_the_file_limit_starve_nothing(mode: str, tmp_path: Path) -> None:
    with serving(tmp_path, mode, file_limit=FILE_LIMIT) as server, ExitStack() as stack:
        _idle(server.port, IDLE_CONNECTIONS, stack)
        _idle(server.admin_port, 100, stack)  # over its own cap (64) too
        time.sleep(1.0)  # the server accepts (and sheds) what it can
        searches = [_timed_status(server.public + _search_path(mode)) for _ in range(5)]
        ready = [_timed_status(server.admin + "/readyz") for _ in range(5)]
        metrics = _timed_status(server.admin + "/metrics")
        time.sleep(3.0)  # a while under siege: what reaches stderr meanwhile
        later = _timed_status(server.public + _search_path(mode))
        stderr_bytes = server.stderr.stat().st_size
        report = f"searches {searches} readyz {ready} later {later} stderr {stderr_bytes} B"
        print(report)
        assert [status for status, _ in searches] == [_blocked_status(mode)] * 5, report
        assert all(seconds < 2.0 for _, seconds in searches), report
        assert [status for status, _ in ready] == [200] * 5, report
        assert all(seconds < 2.0 for _, seconds in ready), report
        assert metrics[0] == 200, report
        assert later[0] == _blocked_status(mode), report
        assert stderr_bytes < 20_000, report
        log = server.stderr.read_text()
    assert "file limit: 1024" in log, log  # the start-up line: the hard limit is the ceiling


def _closed_after(sock: socket.socket, trickle: bytes = b"", limit: float = 8.0) -> float:
    """Seconds until the server closes `sock` (reads EOF or a reset), sending `trickle` one
    byte per 0.2 s meanwhile; `limit` if it stays open that long. Responses are read and
    dropped."""
    started = time.monotonic()
    sock.settimeout(0.2)
    pending = list(trickle)
    while time.monotonic() - started < limit:
        if pending:
            try:
                sock.sendall(bytes([pending.pop(0)]))
            except OSError:  # closed by the server
                return time.monotonic() - started
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return limit


def _one_request(sock: socket.socket, path: str) -> bytes:
    """Send one complete keep-alive GET of `path`; the response head (its body read whole)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    sock.settimeout(5.0)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


HEAD = b"GET /search?q=garden+chairs HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 60


@pytest.mark.parametrize("mode", ["proxy", "authz"])
def test_slow_heads_and_idle_connections_are_closed_in_time(mode: str, tmp_path: Path) -> None:
    """Head deadline 1 s, keep-alive 2.5 s: a head trickled from the start, or after a kept-
    alive request, is cut at about 1 s (its last byte would come at 16 s); a silent new
    connection at 1 s; an idle kept-alive one at about 2.5 s; on both listeners."""
    env = {"INTERCEPT_TIMEOUTS__CLIENT_HEADER": "1", "INTERCEPT_TIMEOUTS__KEEPALIVE": "2.5"}
    with serving(tmp_path, mode, env=env) as server:
        answers = {server.port: (_search_path(mode), _blocked_status(mode))}
        answers[server.admin_port] = ("/readyz", 200)
        for port, (path, status) in answers.items():
            with socket.create_connection(("127.0.0.1", port)) as sock:
                fresh = _closed_after(sock, HEAD)
            with socket.create_connection(("127.0.0.1", port)) as sock:
                silent = _closed_after(sock)
            with socket.create_connection(("127.0.0.1", port)) as sock:
                assert _one_request(sock, path).startswith(f"HTTP/1.1 {status} ".encode())
                kept = _closed_after(sock, HEAD)
            with socket.create_connection(("127.0.0.1", port)) as sock:
                _one_request(sock, path)
                idle = _closed_after(sock)
            report = (
                f"{port}: fresh {fresh:.2f} silent {silent:.2f} kept {kept:.2f} idle {idle:.2f}"
            )
            print(report)
            assert 0.8 < fresh < 2.0, report
            assert 0.8 < silent < 2.0, report
            assert 0.8 < kept < 2.0, report
            assert 2.3 < idle < 3.5, report


@pytest.mark.usefixtures("many_files")
def test_accept_errors_are_summed_up_not_traced(tmp_path: Path) -> None:
    """A cap configured above the file limit lets `accept()` fail with EMFILE: the log says
    so in one line per 10 s with a count, not a traceback per failed accept."""
    env = {"INTERCEPT_LIMITS__CONNECTIONS": "5000"}
    with serving(tmp_path, "proxy", file_limit=FILE_LIMIT, env=env) as server, ExitStack() as stack:
        _idle(server.port, IDLE_CONNECTIONS, stack)
        time.sleep(4.0)
        log = server.stderr.read_text()
    said = [line for line in log.splitlines() if "accept failed" in line]
    assert len(said) == 1, log[-3000:]  # the first at once; the next one 10 s later
    assert "EMFILE" in said[0], said
    assert "Traceback" not in log, log[-3000:]
    assert len(log) < 20_000


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_answered_503() -> None:
    """No idle connection to shed: the newcomer gets a bare 503 and is closed; the busy ones
    finish; once one is gone, a new connection is served."""
    release = asyncio.Event()

    async def slow(request: web.BaseRequest) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    server = GatedServer(slow, cap=2, header_timeout=5.0)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    request = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"
    try:
        busy = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for _, writer in busy:
            writer.write(request)
            await writer.drain()
        await asyncio.sleep(0.2)  # both requests in progress
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), 5.0)  # to EOF: closed by the server
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        release.set()
        for reader, writer in busy:
            head = await asyncio.wait_for(reader.readuntil(b"done"), 5.0)
            assert head.startswith(b"HTTP/1.1 200 "), head
            writer.close()
        await asyncio.sleep(0.2)  # the closes reach the server
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        assert (await asyncio.wait_for(reader.readuntil(b"done"), 5.0)).startswith(b"HTTP/1.1 200 ")
        writer.close()
    finally:
        listener.close()
        await server.shutdown(1.0)
        await listener.wait_closed()
