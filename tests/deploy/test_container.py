"""The container image (deploy/container), built with Debian's podman and run as an operator
runs it: read-only root file system, the ledger on a bind mount, configuration by the image's
file plus INTERCEPT_* variables, the built-in pages (no `messages` mounted), two workers.

The image is built by the shipped script (`deploy/container/build.py --reuse`): the first build
on a machine makes the Debian base with mmdebstrap (about a minute, then cached by a key over
its recipe), later ones reuse an image built from the same sources. The container uses the
host's network and listens on free loopback ports; its upstream is an HTTP server in this
process on loopback. Needs root, podman, mmdebstrap and runc (`.ci/run` installs them).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import pytest

from intercept.resources import DEMO_RULES
from tests.processes import free_port

ROOT = Path(__file__).parents[2]
BUILD = ROOT / "deploy" / "container" / "build.py"
CONTAINERS_CONF = ROOT / "deploy" / "container" / "containers.conf"
IMAGE = "localhost/intercept-deterrence:test"
BUILD_TIMEOUT = 900.0  # seconds: a base image from nothing, the wheelhouse, the build
START_TIMEOUT = 30.0  # seconds for the container to answer /healthz
DRAIN_BOUND = 15.0  # seconds a SIGTERM stop may take (podman would SIGKILL after 30)
UID = 10001  # the image's user

BENIGN = "/search?q=teapot+museum"
BLOCKED = "/search?q=blocked+example"


def require_podman() -> None:
    """Skip unless podman, mmdebstrap and runc are here and this runs as root."""
    for tool, package in (("podman", "podman"), ("mmdebstrap", "mmdebstrap"), ("runc", "runc")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed: apt-get install {package} (.ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("needs root: rootful podman and mmdebstrap, as CI runs them")


def podman_env() -> dict[str, str]:
    """The environment for podman: the shipped containers.conf (this sandbox has no systemd)
    unless the caller names one."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def podman(
    *args: str, check: bool = True, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=podman_env(), timeout=timeout,
        check=False,
    )  # fmt: skip
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args)}: {result.returncode}\n{result.stderr[-3000:]}")
    return result


def build_image(tag: str = IMAGE) -> str:
    """Intercept's image built by the shipped script (reused when the sources are unchanged)."""
    require_podman()
    result = subprocess.run(
        [sys.executable, str(BUILD), "--reuse", "--tag", tag],
        capture_output=True, text=True, env=podman_env(), timeout=BUILD_TIMEOUT, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"build.py failed ({result.returncode}):\n{result.stderr[-5000:]}")
    return tag


def get(url: str, timeout: float = 10.0) -> tuple[int, Message, str]:
    """Status, headers and text of a GET (an HTTP error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def wait_for(url: str, name: str, timeout: float = START_TIMEOUT) -> None:
    """Until `url` answers 200; else fail with the container's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(url, timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    logs = podman("logs", name, check=False)
    pytest.fail(f"{url} did not answer within {timeout} s:\n{logs.stdout}{logs.stderr}")


@dataclass
class Upstream:
    """A search front-end on loopback that remembers the paths it was asked for."""

    port: int
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    seen = Upstream(free_port())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.paths.append(self.path)
            body = b"upstream results"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # no access log: the paths hold queries

    server = http.server.ThreadingHTTPServer(("127.0.0.1", seen.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield seen
    server.shutdown()
    server.server_close()


@dataclass(frozen=True)
class Running:
    name: str
    public: str
    admin: str
    ledger: Path


@pytest.fixture(scope="module")
def container(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The image run as the operator guide says: --read-only with a tmpfs on /tmp only, rules
    mounted read-only, the ledger folder mounted; the listeners moved to free loopback ports
    by INTERCEPT_* variables. The ledger is flushed only at the stop (flush_seconds 300), so
    the counts found afterwards were written by the graceful stop."""
    image = build_image()
    folder = tmp_path_factory.mktemp("container")
    rules = folder / "rules"
    rules.mkdir()
    shutil.copy(DEMO_RULES, rules / "demo.yaml")
    ledger = folder / "ledger"
    ledger.mkdir()
    ledger.chmod(0o777)  # the container's user (10001) writes here
    public, admin = free_port(), free_port()
    name = f"intercept-test-{os.getpid()}"
    podman(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=16m,mode=1777",
        "--volume", f"{rules}:/etc/intercept/rules:ro",
        "--volume", f"{ledger}:/var/lib/intercept",
        "--env", f"INTERCEPT_UPSTREAM=http://127.0.0.1:{upstream.port}",
        "--env", f"INTERCEPT_LISTEN=127.0.0.1:{public}",
        "--env", f"INTERCEPT_ADMIN_LISTEN=127.0.0.1:{admin}",
        "--env", "INTERCEPT_WORKERS=2",
        "--env", "INTERCEPT_LEDGER__FLUSH_SECONDS=300",
        "--env", "INTERCEPT_WARN__SECRET=container-test-secret-0123456789",
        image,
    )  # fmt: skip
    try:
        running = Running(name, f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}", ledger)
        wait_for(f"{running.admin}/healthz", name)
        wait_for(f"{running.admin}/readyz", name)
        yield running
    finally:
        podman("rm", "--force", "--volumes", "--time", "0", name, check=False)


def test_benign_search_reaches_the_upstream(container: Running, upstream: Upstream) -> None:
    status, _, body = get(container.public + BENIGN)
    assert (status, body) == (200, "upstream results")
    assert BENIGN in upstream.paths


def test_blocked_search_gets_the_built_in_page(container: Running, upstream: Upstream) -> None:
    status, headers, body = get(container.public + BLOCKED)
    assert status == 200
    assert body.startswith("<!DOCTYPE html>")
    assert "/_intercept/go/" in body  # the survey and help links of the packaged template
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "blocked example" not in body  # the query is never echoed
    assert "blocked+example" not in body
    assert BLOCKED not in upstream.paths


def test_admin_listener_and_healthcheck(container: Running) -> None:
    status, _, _ = get(container.admin + "/healthz")
    assert status == 200
    status, _, metrics = get(container.admin + "/metrics")
    assert status == 200
    assert "intercept_rules_loaded" in metrics
    # the image's own HEALTHCHECK, run the way podman's timer runs it
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0


def test_no_process_runs_as_root(container: Running) -> None:
    assert podman("exec", container.name, "id", "-u").stdout.strip() == str(UID)
    # every process in the container: tini as PID 1 and the intercept supervisor and workers
    script = "for f in /proc/[0-9]*/status; do grep -E '^(Name|Uid):' $f | tr '\\n' ' '; echo; done"
    lines = [
        line
        for line in podman("exec", container.name, "sh", "-c", script).stdout.splitlines()
        if line.strip()
    ]
    names = " ".join(lines)
    assert "tini" in names
    assert names.count("intercept") >= 3  # supervisor + 2 workers
    for line in lines:
        uids = line.split("Uid:")[1].split()
        assert uids == [str(UID)] * 4, line  # real, effective, saved, file system


def test_root_file_system_is_read_only(container: Running) -> None:
    for path in ("/probe", "/etc/intercept/probe", "/opt/intercept/probe", "/var/tmp/probe"):
        result = podman("exec", container.name, "touch", path, check=False)
        assert result.returncode != 0, path
        assert "Read-only file system" in result.stderr, (path, result.stderr)
    for path in ("/var/lib/intercept/probe", "/tmp/probe"):  # the ledger volume and the tmpfs
        podman("exec", container.name, "sh", "-c", f"touch {path} && rm {path}")
    # with two workers the summed metrics live on the tmpfs (PROMETHEUS_MULTIPROC_DIR)
    listing = podman("exec", container.name, "sh", "-c", "ls /tmp/*/").stdout
    assert ".db" in listing


def test_sigterm_stops_in_time_and_flushes_the_ledger(container: Running) -> None:
    """Last in this module: it stops the container."""
    before = _searches_counted(container, allow_missing=True)
    for _ in range(3):
        assert get(container.public + BENIGN)[0] == 200
        assert get(container.public + BLOCKED)[0] == 200
    started = time.monotonic()
    podman("stop", "--time", "30", container.name, timeout=60.0)
    elapsed = time.monotonic() - started
    state = podman("inspect", container.name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert state == "0", f"exit code {state}: not a clean stop (137 is SIGKILL)"
    assert elapsed < DRAIN_BOUND
    logs = podman("logs", container.name, check=False)
    for secret in ("teapot", "museum", "blocked", "127.0.0.1 -"):  # no query, no access log
        assert secret not in logs.stdout + logs.stderr
    report = _report(container.ledger)
    assert _total(report, "searches") >= before + 6
    assert _total(report, "interventions") >= 3


def _report(ledger: Path) -> dict[str, object]:
    """`intercept report` on the ledger file the container wrote (every count, k = 1)."""
    result = subprocess.run(
        [sys.executable, "-m", "intercept", "report", "--ledger", f"sqlite:///{ledger}/ledger.sqlite3",
         "--format", "json", "--k", "1", "--dimensions", "none", "--by", "month"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _total(report: dict[str, object], key: str) -> int:
    periods = report["periods"]
    assert isinstance(periods, list)
    return sum(int(period.get(key) or 0) for period in periods)


def _searches_counted(container: Running, *, allow_missing: bool) -> int:
    if allow_missing and not (container.ledger / "ledger.sqlite3").exists():
        return 0
    return _total(_report(container.ledger), "searches")
