"""Settings wrong for production are said at start, in /admin/status and in a metric; a
listener's address in use is refused first, by name; `intercept config` hides secrets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from intercept.config import load_config
from intercept.configshow import shown_settings
from intercept.preflight import in_container, production_cautions
from tests.processes import free_port, intercept_process

ROOT = Path(__file__).parent.parent
SECRET = "warn-secret-canary-0123456789"
TOKEN = "reload-token-canary-0123456789"
PASSWORD = "pg-password-canary"

# /proc/self/mountinfo lines: a container's overlay root, a volume, a tmpfs
MOUNTS = (
    "1 0 0:1 / / rw - overlay overlay rw\n"
    "2 1 8:1 /vol /var/lib/intercept rw - ext4 /dev/sda1 rw\n"
    "3 1 0:2 / /tmp rw - tmpfs tmpfs rw\n"
)


def _codes(
    settings: Mapping[str, object], *, container: bool, mountinfo: str, cwd: Path = ROOT
) -> list[str]:
    config = load_config(None, environ={}, overrides=settings)
    cautions = production_cautions(config, container=container, mountinfo=mountinfo, cwd=cwd)
    return [caution.code for caution in cautions]


GOOD: dict[str, object] = {
    "survey_url": "https://survey.test/start",
    "warn": {"secret": SECRET},
    "ledger": {"url": None},
}


def test_a_production_config_has_no_cautions() -> None:
    assert _codes(GOOD, container=True, mountinfo=MOUNTS, cwd=Path("/")) == []


def test_placeholder_survey_and_missing_secret_are_cautions() -> None:
    assert _codes({"ledger": {"url": None}}, container=False, mountinfo="") == [
        "survey_url_placeholder",
        "warn_secret_unset",
    ]
    secret_file = {**GOOD, "warn": {"secret_file": str(ROOT / "pyproject.toml")}}
    assert _codes(secret_file, container=False, mountinfo="") == []


@pytest.mark.parametrize(
    ("url", "container", "cwd", "caution"),
    [
        ("sqlite:ledger.db", True, "/app", True),  # relative, in a container
        ("sqlite:///data/ledger.db", True, "/", True),  # absolute, not on a volume
        ("sqlite:///var/lib/intercept/ledger.db", True, "/", False),  # on the volume
        ("sqlite:ledger.db", True, "/var/lib/intercept", False),
        ("sqlite:///tmp/ledger.db", False, "/", True),  # a tmpfs, container or not
        ("sqlite:ledger.db", False, "/home/op", False),  # a host's disk
        ("postgresql://u@db/ledger", True, "/", False),
    ],
)
def test_a_ledger_that_will_not_survive_is_a_caution(
    url: str, container: bool, cwd: str, caution: bool
) -> None:
    codes = _codes({**GOOD, "ledger": {"url": url}}, container=container, mountinfo=MOUNTS,
                   cwd=Path(cwd))  # fmt: skip
    assert codes == (["ledger_not_persistent"] if caution else [])


def test_container_markers(tmp_path: Path) -> None:
    assert not in_container({}, root=tmp_path)
    assert in_container({"container": "podman"}, root=tmp_path)
    (tmp_path / ".dockerenv").touch()
    assert in_container({}, root=tmp_path)
    assert in_container({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, root=tmp_path / "none")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INTERCEPT_")}


@pytest.mark.parametrize("production", [False, True])
def test_serve_says_cautions_at_start_in_status_and_metric(
    production: bool, clean_env: dict[str, str], tmp_path: Path
) -> None:
    port, admin = free_port(), free_port()
    env = {**clean_env, "INTERCEPT_LEDGER__URL": f"sqlite:{tmp_path / 'ledger.db'}",
           "INTERCEPT_ADMIN_LISTEN": f"127.0.0.1:{admin}"}  # fmt: skip
    if production:
        env |= {"INTERCEPT_SURVEY_URL": "https://survey.test/", "INTERCEPT_WARN__SECRET": SECRET}
    command = ["serve", "--listen", f"127.0.0.1:{port}", "--upstream", "http://127.0.0.1:9",
               "--rules", str(ROOT / "rules")]  # fmt: skip
    with intercept_process(*command, env=env) as proc:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert "serving on" in ready, proc.stderr.read() if proc.stderr else ""
        status = json.loads(_get(f"http://127.0.0.1:{admin}/admin/status"))
        metrics = _get(f"http://127.0.0.1:{admin}/metrics")
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        stderr = proc.stderr.read()
    codes = {caution["code"] for caution in status["cautions"]}
    placeholders = {"survey_url_placeholder", "warn_secret_unset"}
    assert placeholders.isdisjoint(codes) if production else placeholders <= codes
    for code in placeholders:
        value = 0.0 if production else 1.0
        assert f'intercept_config_cautions{{caution="{code}"}} {value}' in metrics
    assert ("CAUTION" in stderr) == (not production or bool(codes)), stderr
    if not production:
        assert "survey_url is the placeholder" in stderr
    assert SECRET not in stderr


def _hold(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.mark.parametrize("which", ["public", "admin"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_named_before_the_rules_load(
    which: str, workers: str, clean_env: dict[str, str], tmp_path: Path
) -> None:
    public, admin = free_port(), free_port()
    held = _hold(public if which == "public" else admin)
    try:
        # rules that do not exist: the port must be refused first, so their error never shows
        done = subprocess.run(
            [sys.executable, "-m", "intercept", "serve", "--listen", f"127.0.0.1:{public}",
             "--admin-listen", f"127.0.0.1:{admin}", "--rules", str(tmp_path / "nowhere"),
             "--workers", workers],
            capture_output=True, text=True, timeout=60, env=clean_env, check=False,
        )  # fmt: skip
    finally:
        held.close()
    name = "public listener (listen)" if which == "public" else "admin listener (admin_listen)"
    port = public if which == "public" else admin
    assert done.returncode == 2
    assert f"{name} 127.0.0.1:{port}: address already in use" in done.stderr
    assert "nowhere" not in done.stderr
    assert "Unclosed" not in done.stderr


def test_config_never_prints_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "intercept.yaml"
    path.write_text(
        f"warn: {{secret: {SECRET}}}\nledger: {{url: 'postgresql://u:{PASSWORD}@db/x'}}\n",
        encoding="utf-8",
    )
    environ = {"INTERCEPT_ADMIN__RELOAD_TOKEN": TOKEN}
    config = load_config(path, environ=environ)
    shown = shown_settings(config, path, environ)
    text = json.dumps(shown)
    for secret in (SECRET, TOKEN, PASSWORD):
        assert secret not in text
    assert shown["warn"]["secret"] == f"*** (from {path})"
    assert shown["admin"]["reload_token"] == "*** (from environment INTERCEPT_ADMIN__RELOAD_TOKEN)"
    assert shown["ledger"]["url"] == f"postgresql://u:***@db/x (password from {path})"


def test_config_hides_credentials_in_the_rule_feed_address(tmp_path: Path) -> None:
    path = tmp_path / "intercept.yaml"
    keygen = [sys.executable, "-m", "intercept", "feed", "keygen", str(tmp_path)]
    subprocess.run(keygen, check=True, capture_output=True, timeout=60)
    path.write_text(
        f"rules_feed: {{url: 'https://reader:{PASSWORD}@feed.example/rules/?sig={TOKEN}',"
        f" public_key_file: {tmp_path / 'feed.pub'}, cache_dir: {tmp_path / 'cache'}}}\n",
        encoding="utf-8",
    )
    shown = shown_settings(load_config(path, environ={}), path, {})
    assert PASSWORD not in json.dumps(shown)
    assert TOKEN not in json.dumps(shown)
    assert shown["rules_feed"]["url"] == (
        f"https://***@feed.example/rules/?*** (credentials from {path})"
    )


def test_config_command_hides_secrets(tmp_path: Path, clean_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "intercept", "config"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**clean_env, "INTERCEPT_WARN__SECRET": SECRET},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout
    assert '"secret": "*** (from environment INTERCEPT_WARN__SECRET)"' in done.stdout


def test_demo_on_a_port_in_use_says_how_to_choose_another(clean_env: dict[str, str]) -> None:
    port = free_port()
    held = _hold(port)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "intercept", "demo", "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, env=clean_env, check=False,
        )  # fmt: skip
    finally:
        held.close()
    assert done.returncode == 2
    assert f"127.0.0.1:{port} is in use; choose another with --listen" in done.stderr
