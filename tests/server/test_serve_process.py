"""`intercept serve` as an operator runs it: a real process, both modes, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.processes import demo_serve, free_port, http_status, intercept_process


@pytest.mark.parametrize("mode", ["authz", "proxy"])
def test_serve_decides_and_stops_cleanly_on_sigterm(mode: str, tmp_path: Path) -> None:
    port = free_port()
    command = demo_serve(mode, port, "--upstream", "http://127.0.0.1:9")
    env = {
        **os.environ,
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": f"sqlite:{tmp_path / 'ledger.db'}",
        "INTERCEPT_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
    }
    with intercept_process(*command, env=env) as proc:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # printed once the listener is up
        assert f"127.0.0.1:{port}" in ready, proc.stderr.read() if proc.stderr else ""
        base = f"http://127.0.0.1:{port}"
        if mode == "authz":
            deny = http_status(base + "/_intercept/authz/search?q=blocked+example")
            allow = http_status(base + "/_intercept/authz/search?q=garden+chairs")
            assert (deny, allow) == (403, 200)
        else:
            assert http_status(base + "/search?q=blocked+example") == 200  # the page
            assert http_status(base + "/search?q=garden+chairs") == 502  # nothing upstream
        assert proc.stderr is not None
        said: list[str] = []  # huge pages asked for, granted or not: said once serving (one
        while not any(line.startswith("huge pages: ") for line in said):  # process collapses
            said.append(proc.stderr.readline())  # them beside serving), before any stop
            assert said[-1], said  # the server ended without saying it
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 15
