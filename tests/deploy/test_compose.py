"""deploy/compose/compose.yaml brought up with podman-compose: Intercept in front of the
stand-in search front-end, the ledger in PostgreSQL, Prometheus scraping the admin listener
with the shipped alert rules.

The shipped file is rendered with only addresses, ports and file paths changed, as the other
deploy/ tests do: every service on the host's network (`network_mode: host`) and bound to a
free loopback port, since this machine's traffic stays on loopback; the scrape interval is
1 s so the test need not wait 15. PostgreSQL and Prometheus are the images
`deploy/container/build.py services` makes from Debian's packages (no registry is reachable
here); compose.yaml names the official images, which take the same settings. Needs what
tests/deploy/test_container.py needs, plus podman-compose 1.1 or later (the test extra has it;
Debian's 1.0.3 passes a network to podman alongside `network_mode: host`, which podman
refuses).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.deploy.test_container import BUILD, BUILD_TIMEOUT, build_image, get, podman, podman_env
from tests.processes import free_port

COMPOSE = Path(__file__).parents[2] / "deploy" / "compose"
POSTGRES_IMAGE = "localhost/intercept-postgres:15"
PROMETHEUS_IMAGE = "localhost/intercept-prometheus:2"
PASSWORD = "compose-test-password"
UP_TIMEOUT = 120.0  # seconds for `podman-compose up`
READY_TIMEOUT = 60.0  # seconds for every service to answer
POLL = 0.5
PROJECT_LABEL = "io.podman.compose.project"  # podman-compose labels its containers with it


def podman_compose() -> str:
    """podman-compose 1.1 or later: the test extra's (beside this Python), else on PATH."""
    beside = Path(sys.executable).parent / "podman-compose"
    found = str(beside) if beside.exists() else shutil.which("podman-compose")
    if found is None:
        pytest.skip("podman-compose not installed (pip install podman-compose: the test extra)")
    output = subprocess.run(
        [found, "version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    version = re.search(r"podman-compose version (\d+)\.(\d+)", output)
    if version is None or (int(version[1]), int(version[2])) < (1, 1):
        pytest.skip(f"podman-compose 1.1+ needed for network_mode: host, found: {output[:80]!r}")
    return found


def build_services() -> None:
    result = subprocess.run(
        [sys.executable, str(BUILD), "services"],
        capture_output=True, text=True, env=podman_env(), timeout=BUILD_TIMEOUT, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"build.py services failed ({result.returncode}):\n{result.stderr[-5000:]}")


@dataclass(frozen=True)
class Ports:
    site: int
    public: int
    admin: int
    postgres: int
    prometheus: int


def absolute(volume: str) -> str:
    """A volume whose source is a path relative to compose.yaml, with the path made absolute
    (the rendered file lives elsewhere); a named volume as it is."""
    source, _, rest = volume.partition(":")
    if not source.startswith("."):
        return volume
    return f"{(COMPOSE / source).resolve()}:{rest}"


def render(folder: Path, ports: Ports) -> Path:
    """compose.yaml and prometheus.yml with loopback addresses and absolute paths."""
    compose: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    services: dict[str, dict[str, Any]] = compose["services"]
    for service in services.values():
        service["network_mode"] = "host"
        service.pop("ports", None)
        service["volumes"] = [absolute(volume) for volume in service.get("volumes", [])]
    services["search"]["environment"]["SITE_LISTEN"] = f"127.0.0.1:{ports.site}"
    env = services["intercept"]["environment"]
    env["INTERCEPT_UPSTREAM"] = env["INTERCEPT_UPSTREAM"].replace(
        "search:8000", f"127.0.0.1:{ports.site}"
    )
    env["INTERCEPT_LEDGER__URL"] = env["INTERCEPT_LEDGER__URL"].replace(
        "@postgres:5432", f"@127.0.0.1:{ports.postgres}"
    )
    env["INTERCEPT_LISTEN"] = f"127.0.0.1:{ports.public}"
    env["INTERCEPT_ADMIN_LISTEN"] = f"127.0.0.1:{ports.admin}"
    services["postgres"]["command"] = [
        "postgres", "-c", "listen_addresses=127.0.0.1", "-c", f"port={ports.postgres}",
    ]  # fmt: skip
    prometheus = services["prometheus"]
    prometheus["command"] = [
        f"--web.listen-address=127.0.0.1:{ports.prometheus}"
        if argument.startswith("--web.listen-address=")
        else argument
        for argument in prometheus["command"]
    ]
    scrape = (COMPOSE / "prometheus.yml").read_text()
    scrape = scrape.replace("intercept:9090", f"127.0.0.1:{ports.admin}")
    scrape = re.sub(r"(scrape|evaluation)_interval: 15s", r"\1_interval: 1s", scrape)
    (folder / "prometheus.yml").write_text(scrape)
    prometheus["volumes"] = [
        re.sub(r"^[^:]*/prometheus\.yml:", f"{folder}/prometheus.yml:", volume)
        for volume in prometheus["volumes"]
    ]
    rendered = folder / "compose.yaml"
    rendered.write_text(yaml.safe_dump(compose, sort_keys=False))
    return rendered


@dataclass(frozen=True)
class Stack:
    public: str
    admin: str
    prometheus: str
    ledger_url: str


def wait_until(what: str, check: Any, timeout: float = READY_TIMEOUT) -> Any:
    """Poll `check()` until it returns a true value; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, psycopg.Error) as error:
            value, last = None, error
        if value:
            return value
        time.sleep(POLL)
    pytest.fail(f"{what}: not within {timeout} s (last error: {last!r})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tool = podman_compose()
    image = build_image()
    build_services()
    folder = tmp_path_factory.mktemp("compose")
    ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
    rendered = render(folder, ports)
    env = podman_env() | {
        "INTERCEPT_IMAGE": image,
        "POSTGRES_IMAGE": POSTGRES_IMAGE,
        "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
        "POSTGRES_PASSWORD": PASSWORD,
        "WARN_SECRET": "compose-test-warn-secret-0123456789",
    }
    name = f"intercept-compose-test-{os.getpid()}"
    project = ["--project-name", name, "--file", str(rendered)]
    up = subprocess.run(
        [tool, *project, "up", "--detach"],
        capture_output=True, text=True, env=env, timeout=UP_TIMEOUT, check=False,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        running = Stack(
            public=f"http://127.0.0.1:{ports.public}",
            admin=f"http://127.0.0.1:{ports.admin}",
            prometheus=f"http://127.0.0.1:{ports.prometheus}",
            ledger_url=f"postgresql://intercept:{PASSWORD}@127.0.0.1:{ports.postgres}/intercept",
        )
        try:
            wait_until("Intercept's /readyz", lambda: get(running.admin + "/readyz")[0] == 200)
        except BaseException:
            logs = subprocess.run(
                [tool, *project, "logs"], capture_output=True, text=True, env=env, timeout=60,
                check=False,
            )  # fmt: skip
            print(logs.stdout[-5000:], logs.stderr[-3000:])
            raise
        yield running
    finally:
        _tear_down(tool, project, env, label=f"{PROJECT_LABEL}={name}")


def _tear_down(tool: str, project: list[str], env: dict[str, str], label: str) -> None:
    """Remove the project's containers with their anonymous volumes (the image's VOLUME,
    which `down --volumes` leaves behind), `--depend` because depends_on makes podman refuse
    to remove a container others need first; then the named volumes, then whatever else
    `down` knows of."""
    containers = podman("ps", "--all", "--quiet", "--filter", f"label={label}", check=False)
    if containers.stdout.split():
        podman("rm", "--force", "--volumes", "--depend", "--time", "20",
               *containers.stdout.split(), check=False)  # fmt: skip
    volumes = podman("volume", "ls", "--quiet", "--filter", f"label={label}", check=False)
    if volumes.stdout.split():
        podman("volume", "rm", "--force", *volumes.stdout.split(), check=False)
    subprocess.run(
        [tool, *project, "down", "--volumes", "--timeout", "20"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_search_front_end_behind_intercept(stack: Stack) -> None:
    status, _, body = get(stack.public + "/search?q=teapot+museum")
    assert status == 200
    assert "Results for “teapot museum”" in body  # the demo site's results page
    status, headers, body = get(stack.public + "/search?q=blocked+example")
    assert status == 200
    assert "/_intercept/go/" in body  # the deterrence page, not results
    assert "Results for" not in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_ledger_in_postgres(stack: Stack) -> None:
    for _ in range(2):
        get(stack.public + "/search?q=kite+garden")
        get(stack.public + "/search?q=bl0cked-ex4mple")

    def counted() -> bool:
        with psycopg.connect(stack.ledger_url, connect_timeout=5) as connection:
            searches = connection.execute("SELECT coalesce(sum(count), 0) FROM searches")
            interventions = connection.execute(
                "SELECT coalesce(sum(count), 0) FROM interventions WHERE category = 'example'"
            )
            return int(searches.fetchone()[0]) >= 4 and int(interventions.fetchone()[0]) >= 2  # type: ignore[index]

    wait_until("the searches counted in PostgreSQL", counted)  # flush_seconds is 5


def test_prometheus_scrapes_intercept_with_the_alert_rules(stack: Stack) -> None:
    get(stack.public + "/search?q=river+map")

    def query(expression: str) -> list[dict[str, Any]]:
        url = f"{stack.prometheus}/api/v1/query?query={urllib.parse.quote(expression)}"
        status, _, body = get(url)
        assert status == 200, body
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
        return result

    up = wait_until("up{job=intercept} == 1", lambda: query('up{job="intercept"} == 1'))
    assert up[0]["metric"]["job"] == "intercept"
    wait_until("intercept_searches_total scraped", lambda: query("intercept_searches_total"))
    status, _, body = get(f"{stack.prometheus}/api/v1/rules")
    assert status == 200
    names = {
        rule["name"] for group in json.loads(body)["data"]["groups"] for rule in group["rules"]
    }
    assert {"InterceptDown", "InterceptRulesNotLoaded"} <= names
