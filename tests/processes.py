"""Running `intercept` as an operator does, in a real process, for the tests that need one."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def intercept_process(*args: str, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`python -m intercept ARGS` with text pipes for stdout and stderr; killed if still
    running, and its pipes closed, however the test ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "intercept", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
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
