"""Running `intercept` as an operator does, in a real process, for the tests that need one; and
the search site stand-in it may run in front of."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now, and not handed out before in this
    run: two calls in a row (a public and an admin listener) never give the same port."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@contextmanager
def running(
    argv: Sequence[str | Path], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`argv` with text pipes for stdout and stderr; killed if still running, and its pipes
    closed, however the test ends."""
    proc = subprocess.Popen(
        [str(part) for part in argv],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
    )
    try:
        with killed_at_exit(proc):
            yield proc
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def killed_at_exit(proc: subprocess.Popen[Any]) -> Iterator[subprocess.Popen[Any]]:
    """`proc`, killed and reaped if it is still running when the block ends, however it ends."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def demo_serve(mode: str, port: int, *more: str) -> list[str]:
    """The arguments of `intercept serve` in `mode` on loopback `port` with the repository's
    demo rules and pages, then `more`."""
    return [
        "serve", "--mode", mode, "--listen", f"127.0.0.1:{port}",
        "--rules", str(ROOT / "rules"), "--messages", str(ROOT / "messages"), *more,
    ]  # fmt: skip


@contextmanager
def intercept_process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`python -m intercept ARGS`, as `running` starts it."""
    with running([sys.executable, "-m", "intercept", *args], env=env) as proc:
        yield proc


@contextmanager
def search_site(body: bytes) -> Iterator[str]:
    """A search front-end stand-in on loopback, served from threads until the block ends: its
    base URL. Every GET answers 200 with `body`; one whose path holds "slow" only after a
    second (a search still in flight when the server in front is told to stop). A client that
    leaves mid-answer (a proxy killed) is expected: not reported."""

    class Results(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "slow" in self.path:
                time.sleep(1.0)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet

    class Site(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a broken pipe

    site = Site(("127.0.0.1", 0), Results)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()


def http_status(url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None) -> int:
    """The status of one request to `url`, its body read and dropped (10 s at most)."""
    request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            response.read()
            return status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code
