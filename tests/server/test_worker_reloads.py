"""`intercept serve --workers 2`: every reload trigger ends with both workers on the same rule
set, even after an edit that keeps the files' size and modification time; `/admin/status`
lists the version each worker serves; a SIGHUP that changes nothing says so; and a second
Intercept on the same public or admin address refuses to start, naming it, while the first
keeps serving. Real processes on loopback; each test takes 2-5 seconds."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bench.worker_memory import Clients, pss_kib, rule_lines
from tests.processes import free_port, intercept_process
from tests.server.test_workers import ROOT, Server, _decision, _rules, serving

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

        pids = server.workers()
        server.proc.send_signal(signal.SIGHUP)  # nothing changed since
        assert _swapped(server, pids, "") == second  # re-forked all the same (the messages
        # may have changed), on the same rule set
        server.stop()
        log = server.stderr()
    unchanged = f"reload (SIGHUP): rule set {second} unchanged"
    assert log.count(unchanged) == 1, log  # the supervisor reloads, once for all workers


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


# --- re-forked after every reload: no stale copy, no failed search ------------------------------

BIG_RULES = 20_000  # synthetic rules: a set big enough to show in the processes' memory


def _big_rules(extra: int) -> str:
    """`BIG_RULES` synthetic rules, the rule blocking "alpha one", and `extra` more."""
    return _rules("alpha one") + "".join(f"{line}\n" for line in rule_lines(BIG_RULES, extra))


def _total_pss_kib(server: Server) -> int:
    """PSS of the supervisor and its workers (a page shared by k processes counts 1/k in
    each): what the group really costs."""
    return sum(pss_kib(pid) for pid in (server.proc.pid, *server.workers()))


class _Decisions(Clients):
    """Two client threads asking decisions in a loop, each on a new connection, for at most
    `seconds`: "alpha one" must be blocked (403), an unmatched query allowed (200)."""

    def __init__(self, server: Server, seconds: float = 120) -> None:
        super().__init__([self.run] * 2)
        self.server, self.until = server, time.monotonic() + seconds
        self.answered = 0
        self.failed: list[str] = []  # no answer, or a wrong one

    def run(self) -> None:
        while not self.stop.is_set() and time.monotonic() < self.until:
            for query, expected in (("alpha+one", 403), ("qqplain+zzquery", 200)):
                try:
                    status = _decision(self.server, query)
                except OSError as error:  # refused, reset, timed out
                    self.failed.append(type(error).__name__)
                    continue
                if status != expected:
                    self.failed.append(f"{query}: {status}")
                self.answered += 1


def _swapped(server: Server, old_pids: set[int], old: str, seconds: float = 60) -> str:
    """The new version, once two workers forked after `old_pids` serve it, none drains and
    no other worker is left."""
    deadline = time.monotonic() + seconds
    while True:
        listed = server.status()["workers"]
        assert isinstance(listed, list)
        pids = {int(entry["pid"]) for entry in listed}
        versions = {str(entry["version"]) for entry in listed}
        draining = any(entry["draining"] for entry in listed)
        swapped = len(pids) == 2 and not pids & old_pids and not draining
        if swapped and versions != {old} and len(versions) == 1 and pids == server.workers():
            return versions.pop()
        assert time.monotonic() < deadline, f"the workers were not re-forked: {listed}"
        time.sleep(0.1)


def test_reloads_re_fork_the_workers_with_no_failed_search_and_no_stale_copy(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(_big_rules(0), encoding="utf-8")
    args = ["--mode", "authz", "--rules", str(folder), "--messages", str(ROOT / "messages")]
    with serving(*args, env={"INTERCEPT_RELOAD__WATCH": "false"}) as server:
        version = str(_workers(server)[min(server.workers())])
        time.sleep(1.0)
        at_start = _total_pss_kib(server)
        with _Decisions(server) as decisions:
            for number in range(1, 4):
                pids = server.workers()
                (folder / "rules.yaml").write_text(_big_rules(number), encoding="utf-8")
                server.proc.send_signal(signal.SIGHUP)
                version = _swapped(server, pids, version)
                phrase = f"zzextra{number - 1}+phrase"
                assert [_decision(server, phrase) for _ in range(PROBES)] == [403] * PROBES
        assert decisions.failed == [], decisions.failed[:10]
        assert decisions.answered > 100
        time.sleep(1.0)
        after = _total_pss_kib(server)
        # before re-forking (each worker compiled its own copy, the supervisor kept the start
        # set) 3.7x with 50,000 rules; now 1.0x (bench/worker_memory.py)
        assert after <= 1.3 * at_start, (at_start, after)
        server.stop()
        log = server.stderr()
    assert log.count("reload (SIGHUP): rule set") == 3, log


def test_a_sighup_storm_makes_two_loads_not_ten(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(_big_rules(0), encoding="utf-8")
    args = ["--mode", "authz", "--rules", str(folder), "--messages", str(ROOT / "messages")]
    with serving(*args, env={"INTERCEPT_RELOAD__WATCH": "false"}) as server:
        (version,) = set(_workers(server).values())
        pids = server.workers()
        for _ in range(10):  # apart enough to be ten signals, within the first load
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        assert _swapped(server, pids, "") == version  # the first load's re-fork
        first = server.workers()
        assert _swapped(server, first, "") == version  # the merged one's (each load re-forks)
        second = server.workers()
        time.sleep(3.0)  # a third load, if one were queued, would have begun by now
        assert server.workers() == second
        server.stop()
        log = server.stderr()
    assert log.count(f"reload (SIGHUP): rule set {version} unchanged") == 2, log
    assert log.count("reload (SIGHUP): merged with the reload already waiting") == 8, log


def test_workers_left_on_the_old_set_are_reported_and_rolled_later(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(_rules("alpha one"), encoding="utf-8")
    args = ["--mode", "authz", "--rules", str(folder), "--messages", str(ROOT / "messages")]
    env = {"INTERCEPT_ADMIN__RELOAD_TOKEN": TOKEN, "INTERCEPT_RELOAD__WATCH": "false"}
    with serving(*args, env=env) as server:
        (first,) = set(_workers(server).values())
        (folder / "rules.yaml").write_text(_rules("alpha one", "beta two"), encoding="utf-8")
        # the supervisor's file limit just above what it has open: it can still load and
        # fork, a new worker (which needs a few more) dies at start with EMFILE
        pid = server.proc.pid
        highest = max(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (highest + 3, hard))
        try:
            with pytest.raises(urllib.error.HTTPError) as refused:
                _post_reload(server)
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        assert refused.value.code == 503
        answer = json.loads(refused.value.read())
        assert answer["behind"] == 2, answer
        assert answer["ok"] is False
        assert "2 of 2 workers still serve the previous rule set" in answer["problems"][0]
        assert set(_workers(server).values()) == {first}  # the old ones keep serving
        status = server.status()["rules"]
        assert isinstance(status, dict)
        assert status["workers_behind"] == 2
        assert status["last_reload_refused"] is None
        assert _decision(server, "alpha+one") == 403

        second = _converged(server, first, seconds=40)  # retried every 10 s
        assert [_decision(server, "beta+two") for _ in range(PROBES)] == [403] * PROBES
        status = server.status()["rules"]
        assert isinstance(status, dict)
        assert status["workers_behind"] == 0
        assert second != first
        server.stop()
        log = server.stderr()
    assert f"reload: every worker now serves rule set {second}" in log, log
