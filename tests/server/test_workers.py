"""`intercept serve --workers 2` keeps two workers: a dead one is replaced while searches go on,
never with an older rule set than its siblings, with backoff, and the supervisor gives up on
workers that cannot start. Real processes on loopback; each test takes a few seconds."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import re
import select
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import pytest

from intercept.server.supervisor import FIRST_DELAY, backoff
from tests.processes import free_port, http_status, intercept_process, running, search_site

ROOT = Path(__file__).parents[2]
CLIENTS = 3  # client threads, each with one search in flight at a time


# --- the server and its workers ---------------------------------------------------------------


@dataclass
class Server:
    proc: Popen[str]
    public: str  # http://host:port of the public listener
    admin: str  # host:port of the admin listener

    def workers(self) -> set[int]:
        """The supervisor's living workers, from /proc: its children running its command
        line (not a helper it runs, such as `ldconfig` for huge pages after a reload), less
        zombies (reaped soon)."""
        found = set()
        command = Path(f"/proc/{self.proc.pid}/cmdline").read_bytes()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                forked = (entry / "cmdline").read_bytes() == command
            except OSError:  # gone meanwhile
                continue
            state, parent = stat.rpartition(")")[2].split()[:2]
            if int(parent) == self.proc.pid and state != "Z" and forked:
                found.add(int(entry.name))
        return found

    def status(self) -> dict[str, object]:
        """`/admin/status` of whichever worker the kernel hands the connection to."""
        with urllib.request.urlopen(f"http://{self.admin}/admin/status", timeout=10) as reply:
            answer: dict[str, object] = json.loads(reply.read())
            return answer

    def version_of(self, pid: int, seconds: float = 20) -> str:
        """The rule set version worker `pid` serves, once it is listening and has said so in
        `/admin/status` (the workers share one accept queue: which one answers a given
        connection cannot be chosen, so the status list is asked)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                listed = dict(self.serving())
            except (urllib.error.URLError, OSError):  # a worker dying just now
                continue
            if pid in listed:
                return listed[pid]
            time.sleep(0.05)
        raise AssertionError(f"worker {pid} never answered")

    def serving(self) -> set[tuple[int, str]]:
        """(pid, rule set version) of every living worker, as `/admin/status` lists them."""
        listed = self.status()["workers"]
        assert isinstance(listed, list)
        return {(int(entry["pid"]), str(entry["version"])) for entry in listed}

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        assert found is not None, f"{name} not in /metrics"
        return float(found.group(1))

    def replacement(self, old: set[int], seconds: float = 20) -> int:
        """The pid of the worker that appears beside `old` (the set before a death)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            new = self.workers() - old
            if new:
                assert len(new) == 1, new
                return new.pop()
            time.sleep(0.005)
        raise AssertionError("no worker was started in place of the dead one")

    def stop(self) -> None:
        """SIGTERM: every worker drains and stops, the supervisor exits 0, nothing is left."""
        workers = self.workers()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.stderr()
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the supervisor"

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read() if self.proc.poll() is not None else ""

    def post_mortem(self) -> str:
        """For a failed test: each child's state and kernel wait channel, then everything the
        server wrote to stderr (the supervisor and its workers are killed to read it)."""
        lines = []
        children = [e for e in Path("/proc").iterdir() if e.name.isdigit()]
        for entry in children:
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
                wchan = (entry / "wchan").read_text()
                threads = len(list((entry / "task").iterdir()))
            except OSError:
                continue
            if int(stat[1]) == self.proc.pid:
                lines.append(f"child {entry.name}: state {stat[0]}, waits in {wchan or '-'}, "
                             f"{threads} threads")  # fmt: skip
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()
        assert self.proc.stderr is not None
        os.set_blocking(self.proc.stderr.fileno(), False)
        deadline, text = time.monotonic() + 5, ""
        while time.monotonic() < deadline:  # until every holder of the pipe has ended
            if not select.select([self.proc.stderr], [], [], 0.2)[0]:
                continue
            chunk = self.proc.stderr.read()
            if chunk == "":
                break
            text += chunk or ""
        return "\n".join([*lines, "the server's stderr:", text[-6000:]])


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """`intercept serve --workers 2 ARGS` on free loopback ports, once both workers answer."""
    public, admin = free_port(), free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": "null",
        **(env or {}),
    }
    command = [
        "serve", "--workers", "2", "--listen", f"127.0.0.1:{public}",
        "--admin-listen", f"127.0.0.1:{admin}", *args,
    ]  # fmt: skip
    with intercept_process(*command, env=environment) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"127.0.0.1:{public}" in line, proc.stderr.read() if proc.stderr else ""
        server = Server(proc, f"http://127.0.0.1:{public}", f"127.0.0.1:{admin}")
        try:
            deadline = time.monotonic() + 20
            while len({pid for pid, _ in server.serving()}) < 2:
                assert time.monotonic() < deadline, "the two workers never both answered"
            yield server
        except BaseException as error:  # what the server said and what its children were
            error.add_note(server.post_mortem())
            raise


# --- clients ------------------------------------------------------------------------------------


@dataclass
class Load:
    """CLIENTS threads searching in a loop, each on a new connection per search; a benign
    search must reach the upstream, a blocked one get the page."""

    base: str
    stop: threading.Event = field(default_factory=threading.Event)
    answered: list[float] = field(default_factory=list)  # when each search was answered
    failed: list[tuple[float, str]] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def search(self, query: str, expect: Callable[[bytes], bool]) -> None:
        try:
            with urllib.request.urlopen(f"{self.base}/search?q={query}", timeout=10) as reply:
                body = reply.read()
                ok = reply.status == 200 and expect(body)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            # reset, refused, no answer, an answer cut short
            with self.lock:
                self.failed.append((time.monotonic(), type(error).__name__))
            return
        with self.lock:
            if ok:
                self.answered.append(time.monotonic())
            else:
                self.wrong.append(query)

    def client(self) -> None:
        for _ in range(5000):  # bounded, whatever happens
            if self.stop.is_set():
                return
            self.search("garden+chairs", lambda body: body == b"results")
            self.search("blocked+example", lambda body: b"<html" in body)

    @contextmanager
    def running(self) -> Iterator[Load]:
        threads = [threading.Thread(target=self.client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(timeout=30)


def _wait_answers(load: Load, count: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    start = len(load.answered)
    while len(load.answered) < start + count:
        assert time.monotonic() < deadline, "searches are not being answered"
        time.sleep(0.01)


# --- the tests ------------------------------------------------------------------------------------


def test_a_killed_worker_is_replaced_while_searches_go_on() -> None:
    args = ["--rules", str(ROOT / "rules"), "--messages", str(ROOT / "messages")]
    with search_site(b"results") as site, serving("--upstream", site, *args) as server:
        before = server.workers()
        assert len(before) == 2
        assert server.metric("intercept_worker_restarts_total") == 0
        victim = min(before)
        with Load(server.public).running() as load:
            _wait_answers(load, 100)
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            new = server.replacement(before - {victim})
            forked = time.monotonic()
            assert server.version_of(new)  # it answers: it is listening
            up = time.monotonic()
            _wait_answers(load, 200)
        after = [at for at in load.answered if at > up]
        print(
            f"\nrestart: forked {1000 * (forked - killed):.0f} ms and serving "
            f"{1000 * (up - killed):.0f} ms after SIGKILL; {len(load.answered)} searches "
            f"answered, {len(load.failed)} failed ({sorted({kind for _, kind in load.failed})})"
        )
        assert not load.wrong, load.wrong
        # Only searches in flight on the victim fail: each client's open one, and at most one
        # more that connected while the dying process still held its listening socket
        # (the kernel closes a killed process's sockets one by one). None after that.
        assert len(load.failed) <= 2 * CLIENTS, load.failed
        assert all(killed < at < forked + 0.5 for at, _ in load.failed), load.failed
        assert len(after) >= 200
        assert {pid for pid, _ in server.serving()} == {*before - {victim}, new}
        for _ in range(4):  # the supervisor's count, in every worker's /metrics
            assert server.metric("intercept_worker_restarts_total") == 1

        slow = Load(server.public)  # SIGTERM: the search in flight is answered first
        searching = threading.Thread(target=slow.search, args=("slow+walk", b"results".__eq__))
        searching.start()
        time.sleep(0.3)
        server.stop()
        searching.join(timeout=30)
        assert (len(slow.answered), slow.failed, slow.wrong) == (1, [], [])


def _rules(*terms: str, broken: bool = False) -> str:
    """A rule file blocking `terms`, one rule each; `broken` adds a duplicate id."""
    text = "list: {name: workers, source: synthetic, updated: 2026-11-29}\n"
    text += "defaults: {category: demo, action: block, language: en}\nrules:\n"
    for number, term in enumerate(terms, 1):
        text += f'  - id: W-{number}\n    terms: ["{term}"]\n'
    if broken:
        text += '  - id: W-1\n    terms: ["duplicate id"]\n'
    return text


def _write(folder: Path, text: str) -> None:
    temporary = folder / ".rules.yaml.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, folder / "rules.yaml")  # as a deployment does: never half a file


def _decision(server: Server, query: str) -> int:
    return http_status(f"{server.public}/_intercept/authz/search?q={query}")


def _settled(server: Server, seconds: float = 30) -> None:
    """Wait until `/admin/status` lists exactly the living workers, none of them draining
    (a reload re-forks every worker and retires the old ones)."""
    deadline = time.monotonic() + seconds
    while True:
        listed = server.status()["workers"]
        assert isinstance(listed, list)
        pids = {int(entry["pid"]) for entry in listed}
        if not any(entry["draining"] for entry in listed) and pids == server.workers():
            return
        assert time.monotonic() < deadline, f"the workers never settled: {listed}"
        time.sleep(0.1)


def _refused(server: Server, seconds: float = 30) -> None:
    """Wait until `/admin/status` says the last reload was refused."""
    deadline = time.monotonic() + seconds
    while not server.status()["rules"]["last_reload_refused"]:  # type: ignore[index]
        assert time.monotonic() < deadline, "the broken rule set was never refused"
        time.sleep(0.1)


@pytest.mark.parametrize("trigger", ["SIGHUP", "files changed"])
def test_a_replacement_serves_the_rules_its_siblings_reloaded(tmp_path: Path, trigger: str) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    _write(folder, _rules("alpha one"))
    args = ["--mode", "authz", "--rules", str(folder), "--messages", str(ROOT / "messages")]
    if trigger == "SIGHUP":
        env = {"INTERCEPT_RELOAD__WATCH": "false"}  # SIGHUP alone reloads
    else:
        env = {"INTERCEPT_RELOAD__POLL_SECONDS": "0.5"}  # every process polls the files

    def reload() -> None:
        if trigger == "SIGHUP":
            server.proc.send_signal(signal.SIGHUP)

    with serving(*args, env=env) as server:
        first = {version for _, version in server.serving()}
        assert len(first) == 1
        assert _decision(server, "beta+two") == 200

        _write(folder, _rules("alpha one", "beta two"))  # a new term
        reload()
        deadline = time.monotonic() + 20
        while {version for _, version in server.serving()} & first:
            assert time.monotonic() < deadline, "the workers never reloaded"
        (second,) = {version for _, version in server.serving()}
        _settled(server)  # the reload's re-fork has finished: no old worker left

        before = server.workers()
        os.kill(min(before), signal.SIGKILL)
        new = server.replacement(before - {min(before)})
        assert server.version_of(new) == second  # not the set the supervisor started with
        assert [_decision(server, "beta+two") for _ in range(20)] == [403] * 20

        # now a set the workers refuse: they keep the second; so must the next replacement
        _write(folder, _rules("alpha one", broken=True))
        reload()
        _refused(server)  # by the supervisor, before it forks: no validation child left
        before = server.workers()
        os.kill(min(before), signal.SIGKILL)
        new = server.replacement(before - {min(before)})
        assert server.version_of(new) == second
        assert {version for _, version in server.serving()} == {second}
        assert [_decision(server, "beta+two") for _ in range(20)] == [403] * 20
        assert server.metric("intercept_worker_restarts_total") == 2
        server.stop()


def test_backoff_grows_and_sigterm_cuts_a_wait_short() -> None:
    args = ["--mode", "authz", "--rules", str(ROOT / "rules"), "--messages", str(ROOT / "messages")]
    with serving(*args) as server:
        gaps = []
        for number, sig in enumerate([signal.SIGTERM, signal.SIGKILL, signal.SIGKILL], 1):
            # the first: a worker told to stop by someone else exits 0, and is replaced too
            before = server.workers()
            victim = max(before)  # the newest: the same slot each time
            assert server.version_of(victim)  # ready: a death while serving
            killed = time.monotonic()
            os.kill(victim, sig)
            while _state(victim) != "Z":
                time.sleep(0.001)
            died = time.monotonic()
            server.replacement(before - {victim})
            gaps.append(time.monotonic() - died)
            assert time.monotonic() - killed >= backoff(number)
        print(f"\nbackoff: replacements {[f'{gap:.2f}' for gap in gaps]} s after each death")
        assert gaps[0] < FIRST_DELAY  # the first replacement starts at once
        assert server.metric("intercept_worker_restarts_total") == 3

        before = server.workers()  # a fourth quick death: the next worker waits backoff(4)
        victim = max(before)
        assert server.version_of(victim)
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.2)
        stopping = time.monotonic()
        survivors = server.workers()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
        took = time.monotonic() - stopping
        print(f"stopped {took:.2f} s after SIGTERM, during a {backoff(4):.1f} s backoff")
        assert took < backoff(4) - 0.2  # the wait was dropped, not sat out
        assert survivors == before - {victim}  # and no worker was started meanwhile
        for pid in survivors:
            assert not Path(f"/proc/{pid}").exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"


# The supervisor alone, over workers that fail on purpose: `intercept serve` itself refuses an
# address in use before forking (intercept.preflight), so a worker that cannot start is made here.
_SUPERVISED = """
import logging, os, sys, time
from intercept.config import load_config
from intercept.reload import signature_of
from intercept.server.serve import build_engine
from intercept.server.supervisor import supervise

logging.basicConfig(format="%(message)s", level=logging.INFO)
rules, messages, how = sys.argv[1:]
config = load_config(None, environ={}, overrides={
    "workers": 2, "mode": "authz", "rules": rules, "messages": messages,
    "warn": {"secret": "a-test-secret-of-enough-length"}, "huge_pages": False,
})
loaded = signature_of(config)
engine = build_engine(config)

def worker(first, loaded, listening):
    if how == "crash after ready":
        listening()
        time.sleep(0.05)
        raise RuntimeError("a crash")
    raise OSError(98, "Address already in use")

print("supervising", flush=True)
supervise(config, engine, loaded, worker)
"""


@contextmanager
def supervised(how: str) -> Iterator[Popen[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    args = [str(ROOT / "rules"), str(ROOT / "messages"), how]
    with running([sys.executable, "-c", _SUPERVISED, *args], env=env) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "supervising\n"
        yield proc


def test_workers_that_cannot_start_make_the_supervisor_give_up() -> None:
    with supervised("cannot start") as proc:
        started = time.monotonic()
        assert proc.wait(timeout=60) == 1
        took = time.monotonic() - started
        assert proc.stderr is not None
        errors = proc.stderr.read()
    print(f"\ngave up {took:.1f} s after start")
    assert "5 workers in a row stopped before they were ready" in errors, errors
    assert errors.count("stopped: [Errno 98] Address already in use") >= 5  # each said why
    assert took < 10


def test_workers_that_die_after_they_were_ready_back_off_but_never_give_up() -> None:
    with supervised("crash after ready") as proc:
        time.sleep(4.0)
        assert proc.poll() is None, "the supervisor gave up on workers that did start"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        errors = proc.stderr.read()
    waits = [float(wait) for wait in re.findall(r"starting another in ([0-9.]+)s", errors)]
    print(f"\nwaits before restarts in 4 s: {waits}")
    assert "giving up" not in errors
    assert sorted(set(waits))[:4] == [backoff(n) for n in range(1, 5)]  # 0, 0.5, 1, 2
    assert len(waits) <= 12  # two slots, each at most 5 deaths in 4 s: no spinning
