"""Running `intercept` as an operator does, in a real process, for the tests that need one."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

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
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def intercept_process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`python -m intercept ARGS`, as `running` starts it."""
    with running([sys.executable, "-m", "intercept", *args], env=env) as proc:
        yield proc


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
