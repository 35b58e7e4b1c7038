"""`intercept serve --workers 2`: every reload trigger ends with both workers on the same rule
set, even after an edit that keeps the files' size and modification time; `/admin/status`
lists the version each worker serves; a SIGHUP that changes nothing says so; and a second
Intercept on the same public or admin address refuses to start, naming it, while the first
keeps serving. Real processes on loopback; each test takes 2-5 seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port, intercept_process
from tests.test_workers import ROOT, Server, _decision, _rules, serving

TOKEN = "a-reload-token-of-enough-length"
PROBES = 40  # decisions asked after a reload, each on a new connection


def _edit_in_place(folder: Path, text: str) -> None:
    """Rewrite rules.yaml with `text` (the same length as before) and put its modification
    time back: a change that the files' signature (path, size, mtime) cannot see."""
    path = folder / "rules.yaml"
    before = path.stat()
    assert len(text.encode()) == before.st_size
    with path.open("r+", encoding="utf-8") as file:  # in place, as an editor may write
        file.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def _workers(server: Server) -> dict[int, str]:
    """pid -> rule set version, as `/admin/status` lists the workers (whoever answers)."""
    listed = server.status()["workers"]
    assert isinstance(listed, list)
    return {int(entry["pid"]): str(entry["version"]) for entry in listed}


def _converged(server: Server, old: str, seconds: float = 20) -> str:
    """The one version every worker serves once none serves `old` any more."""
    deadline = time.monotonic() + seconds
    while True:
        listed = _workers(server)
        versions = set(listed.values()) | {version for _, version in server.serving()}
        if old not in versions and len(versions) == 1:
            assert set(listed) == server.workers()  # every living worker, and only those
            return versions.pop()
        assert time.monotonic() < deadline, f"the workers did not converge: {listed}"
        time.sleep(0.1)


def _post_reload(server: Server) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://{server.admin}/admin/reload",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        answer: dict[str, object] = json.loads(reply.read())
        return answer


TRIGGERS = ["POST /admin/reload", "intercept reload", "SIGHUP"]


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_worker_serves_an_in_place_edit_after_a_reload(tmp_path: Path, trigger: str) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(_rules("alpha one", "delta two"), encoding="utf-8")
    args = ["--mode", "authz", "--rules", str(folder), "--messages", str(ROOT / "messages")]
    env = {"INTERCEPT_ADMIN__RELOAD_TOKEN": TOKEN, "INTERCEPT_RELOAD__POLL_SECONDS": "0.5"}
    with serving(*args, env=env) as server:
        listed = _workers(server)
        assert set(listed) == server.workers()
        (first,) = set(listed.values())
        assert _decision(server, "delta+two") == 403

        _edit_in_place(folder, _rules("alpha one", "gamma two"))
        time.sleep(1.2)  # two polls: the file watchers see nothing
        assert set(_workers(server).values()) == {first}
        if trigger == "POST /admin/reload":
            answer = _post_reload(server)
            assert answer["ok"] is True, answer
            assert answer["version"] != first, answer
        elif trigger == "intercept reload":
            command = [sys.executable, "-m", "intercept", "reload",
                       "--admin-listen", server.admin]  # fmt: skip
            done = subprocess.run(command, env={**os.environ, **env}, capture_output=True,
                                  text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, done.stderr
        else:
            server.proc.send_signal(signal.SIGHUP)
        second = _converged(server, first)
        assert second != first
        decisions = [_decision(server, "gamma+two") for _ in range(PROBES)]
        assert decisions == [403] * PROBES  # every worker blocks the new phrase
        assert [_decision(server, "delta+two") for _ in range(PROBES)] == [200] * PROBES
        assert len({pid for pid, _ in server.serving()}) == 2
        server.stop()


def test_a_file_change_reaches_every_worker_and_an_empty_sighup_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(_rules("alpha one"), encoding="utf-8")
    args = ["--mode", "authz", "--rules", str(folder), "--messages", str(ROOT / "messages")]
    with serving(*args, env={"INTERCEPT_RELOAD__POLL_SECONDS": "0.5"}) as server:
        (first,) = set(_workers(server).values())
        temporary = folder / ".rules.yaml.tmp"
        temporary.write_text(_rules("alpha one", "beta two"), encoding="utf-8")
        os.replace(temporary, folder / "rules.yaml")  # a new file: the watchers see it
        second = _converged(server, first)
        assert [_decision(server, "beta+two") for _ in range(PROBES)] == [403] * PROBES

        server.proc.send_signal(signal.SIGHUP)  # nothing changed since
        time.sleep(2.0)
        assert set(_workers(server).values()) == {second}
        server.stop()
        log = server.stderr()
    unchanged = f"reload (SIGHUP): rule set {second} unchanged"
    assert log.count(unchanged) == 2, log  # one line from each worker


# --- one instance per address ---------------------------------------------------------------------


def _second_instance(server: Server, public: str, admin: str) -> tuple[int, str]:
    """Start another `serve --workers 2` on `public` and `admin` (host:port): its exit status
    and stderr (it is killed, and the test fails, if it has not exited within 30 s)."""
    environment = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": "null",
    }
    command = ["serve", "--workers", "2", "--mode", "authz", "--listen", public,
               "--admin-listen", admin, "--rules", str(ROOT / "rules"),
               "--messages", str(ROOT / "messages")]  # fmt: skip
    with intercept_process(*command, env=environment) as proc:
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("a second instance on the same address is running")
        assert proc.stderr is not None
        return code, proc.stderr.read()


def _blocks_everything(server: Server) -> None:
    """Every decision comes from the first instance: its phrase is blocked every time."""
    assert [_decision(server, "blocked+example") for _ in range(PROBES)] == [403] * PROBES


def test_a_second_instance_on_the_same_address_refuses_to_start() -> None:
    args = ["--mode", "authz", "--rules", str(ROOT / "rules"), "--messages", str(ROOT / "messages")]
    with serving(*args) as server:
        public = server.public.removeprefix("http://")
        _blocks_everything(server)
        code, errors = _second_instance(server, public, f"127.0.0.1:{free_port()}")
        assert code == 2, errors
        assert f"public listener (listen) {public}" in errors, errors
        code, errors = _second_instance(server, f"127.0.0.1:{free_port()}", server.admin)
        assert code == 2, errors
        assert f"admin listener (admin_listen) {server.admin}" in errors, errors
        _blocks_everything(server)

        # while no worker is running (both killed, the supervisor not yet replacing them),
        # the address stays the first instance's: the supervisor itself holds the listeners
        workers = server.workers()
        server.proc.send_signal(signal.SIGSTOP)
        try:
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            code, errors = _second_instance(server, public, f"127.0.0.1:{free_port()}")
        finally:
            server.proc.send_signal(signal.SIGCONT)
        assert code == 2, errors
        assert f"public listener (listen) {public}" in errors, errors
        deadline = time.monotonic() + 20
        while len({pid for pid, _ in server.serving()} - workers) < 2:
            assert time.monotonic() < deadline, "the killed workers were not replaced"
        _blocks_everything(server)
        server.stop()
