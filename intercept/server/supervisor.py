"""The supervisor of `intercept serve --workers N`: N forked workers, kept at N.

The supervisor binds the public and admin listeners and holds them as long as it runs
(`intercept.server.listeners`: no second instance can take the addresses, even while workers are
replaced), then loads the rules once; the workers are forked from it, share what it loaded
copy-on-write and accept connections from the same listening sockets. It then only keeps
them running:

- A worker that ends without being asked is replaced, whatever ended it: a signal (SIGKILL
  from the OOM killer or an operator), a crash, or an exit on its own, even with status 0
  (workers only exit when told to stop, so an exit nobody asked for leaves the server one
  worker short all the same). Each replacement counts one in
  `intercept_worker_restarts_total`, written by the supervisor to the multiprocess metrics
  folder and so summed into every worker's `/metrics`. Meanwhile the workers still running
  accept the new connections (the listening sockets and their accept queue are shared, and
  the supervisor's keep them open): only the requests that were in flight on the dead worker
  fail. Its counts of the last second (not yet handed
  to the metrics) are lost; what it had handed over stays in the totals.
- Backoff: a replacement starts at once (measured: forked 30-100 ms after a SIGKILL and
  answering 10-25 ms later). If it too dies within `STABLE_SECONDS` of its start, the next
  one waits `FIRST_DELAY`, then twice as long for each further quick death in a row, at most
  `MAX_DELAY` (see `backoff`), so a crash loop costs next to no CPU. A worker that lived
  `STABLE_SECONDS` resets its slot.
- Giving up: when `GIVE_UP_AFTER` workers in a row die before they are ready (listening),
  with no worker becoming ready in between, something outside the workers is wrong (the port
  is taken, the ledger cannot be opened); the supervisor says so, stops the others and exits
  1, so that systemd or the container runtime sees the failure, instead of looping forever.
  At start that takes about a second. Workers that die after they were ready never make it
  give up (a request that crashes workers must not take the whole server down); backoff
  bounds what they cost.
- SIGTERM and SIGINT: passed to every worker, which stops taking connections and finishes
  the requests in flight; a restart waiting out its backoff (or a load) is dropped at once.
  The supervisor returns when every worker has exited: normally (exit 0 from
  `intercept serve`), or with `SystemExit(1)` when some worker did not stop cleanly or it
  gave up.
- Reloads are the supervisor's alone (`_Reloads`); the workers never load rules. Triggers:
  SIGHUP (from the operator; a SIGHUP sent to a worker is passed up; a worker answering
  `POST /admin/reload` sends one after naming its trigger, `intercept.served`), a change of
  the files (polled every `reload.poll_seconds` with `reload.watch`), a new UTC day when a
  served rule has an expiry date. SIGHUP reloads are forced (an edit that kept the files'
  size and modification time is loaded too); a forced reload that yields the rule set
  already served logs "rule set VERSION unchanged". The set is loaded, validated and
  compiled once, in a thread; a refused set is logged, counted
  (`intercept_rule_load_failures_total`) and recorded for `/admin/status`, and the last good
  set stays (for the workers and for replacements).
- Re-fork on every good load (`roll`), one slot at a time: a worker is forked from the new
  set, and once it is ready (listening) the old one is retired (`RETIRE`): it stops
  accepting on both listeners, marks its `/admin/status` entry draining, finishes its
  requests in flight (its answers say `Connection: close`) and exits; one still running
  after `RETIRE_SECONDS` is killed. The listening sockets are the supervisor's, so no
  connection is refused meanwhile. A retired worker's exit is no death: not restarted, not
  counted; its entry goes and its metric files are merged (`intercept.research.metricfiles`), as for
  any other. The reload is recorded finished once every slot runs a new worker and every old
  one has stopped accepting. If a new worker dies before it is ready, the roll stops there:
  the slots not reached keep their old worker, the reload says how many are `behind`
  (`POST /admin/reload` answers 503, `/admin/status` shows `workers_behind`), and those slots
  are tried again every `ROLL_RETRY_SECONDS` until they are current or a newer load rolls.
- Triggers are merged: a forced trigger (SIGHUP, `POST /admin/reload`) that comes while
  another forced reload waits for its turn joins it (10 SIGHUPs in a row make 2 loads, not
  10); the waiting one reads the files after every trigger it stands for.
- Memory and CPU: the files are read, validated and compiled in a child process
  (`intercept.compiling.compile_in_child`: niced, so the workers keep the CPU they need).
  Only a good set makes the supervisor drop the old one (the collector unfrozen, run and
  frozen again, `malloc_trim`) and load the compiled one into the freed heap, so it keeps
  no stale copy and no fragmented heap for the new workers to inherit. The new workers
  share the new set copy-on-write; the old set's last pages go with the old workers.
  Measured with 50,000 rules and 2 workers (bench/worker_memory.py): total PSS 264 MiB at
  start, 265 MiB after 3 reloads; figures for 100,000 rules and 10 reloads are in the
  README (bench/reload_bench.py). If the compiled set cannot be read after the old one
  was dropped, no good set is left to fork from: that is logged, the workers keep
  serving, and a dead worker's replacement waits for the next good load.

A replacement for a dead worker is forked from the rules the supervisor holds, which are the
ones every worker serves. The loads run in a thread while `lock` is held: no fork happens
during one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from intercept import served
from intercept.compiling import Compiled, compile_with_pages, in_daemon_thread
from intercept.config import Config
from intercept.core import Engine
from intercept.hugepages import advise_heap
from intercept.reload import (
    Signature,
    problems_of,
    serve_as_worker_of,
    signature_of,
    watch_triggers,
)
from intercept.research import metricfiles
from intercept.rules.ruleset import RuleSet, compile_rules
from intercept.server.feedpoll import poll as poll_feed

__all__ = ["FIRST_DELAY", "GIVE_UP_AFTER", "MAX_DELAY", "READY_SECONDS", "RETIRE",
           "RETIRE_SECONDS", "STABLE_SECONDS", "ServeWorker", "supervise"]  # fmt: skip

STABLE_SECONDS = 10.0  # a worker that lived this long restarts at once and resets its slot
FIRST_DELAY = 0.5  # the wait after a second quick death in a row; doubled each time
MAX_DELAY = 30.0
GIVE_UP_AFTER = 5  # workers in a row that died before they were ready
READY_SECONDS = 60.0  # the longest a re-forked worker may take to listen
ROLL_RETRY_SECONDS = 10.0  # after a roll that left workers behind
RETIRE_SECONDS = 150.0  # the longest a retired worker may drain before it is killed
RETIRE = signal.SIGUSR2  # to a worker replaced by a newer one: drain and exit

_LOG = logging.getLogger("intercept.supervisor")
_RELOAD_LOG = logging.getLogger("intercept.reload")
_HANDLED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD}
_T = TypeVar("_T")

ServeWorker = Callable[[bool, Signature, Callable[[], None]], None]
"""Runs one worker in the forked child until it is told to stop: `(first, loaded, listening)`
where `first` says this worker announces that the server is up, `loaded` is the signature of
the files its rules were read from (for its `Reloader`), and `listening()` must be called
once its listeners are open."""


def supervise(
    config: Config,
    engine: Engine,
    loaded: Signature,
    serve_worker: ServeWorker,
    *,
    hangup: bool = False,
) -> None:
    """Fork `config.workers` workers running `serve_worker` over `engine` (whose rules were
    read from files with signature `loaded`) and keep them running until SIGTERM or SIGINT
    (see the module docstring). `hangup`: a SIGHUP came while the rules loaded. Returns
    after a clean stop; raises `SystemExit(1)` otherwise."""
    code = asyncio.run(_Supervisor(config, engine, loaded, serve_worker, hangup).main())
    if code:
        raise SystemExit(code)


def backoff(quick_deaths: int) -> float:
    """Seconds to wait before the next worker in a slot whose last `quick_deaths` workers in
    a row died within `STABLE_SECONDS` of their start (the one just dead included)."""
    if quick_deaths <= 1:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** (quick_deaths - 2))


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass(slots=True, eq=False)
class _Slot:
    """One of the N places a worker runs in; `pid` 0 while it has none."""

    index: int
    pid: int = 0
    started: float = 0.0
    ready_fd: int = -1  # the read end of the pipe the worker writes one byte to when ready
    ready: bool = False
    first: bool = False  # this worker announces that the server is up
    quick: int = 0  # its workers that died in a row within STABLE_SECONDS of their start
    retiring: bool = False  # an old worker told to drain (in `extra`, not in `slots`)
    serial: int = 0  # the good load (`_Reloads.serial`) its worker was forked from
    retired_at: float = 0.0  # when it was told to drain


class _Supervisor:
    def __init__(
        self,
        config: Config,
        engine: Engine,
        loaded: Signature,
        serve_worker: ServeWorker,
        hangup: bool,
    ) -> None:
        self.config = config
        self.engine = engine
        self.serve_worker = serve_worker
        self.follower = _Reloads(config, engine, loaded, self.roll)
        self.hangup_at_start = hangup
        self.slots = [_Slot(index) for index in range(config.workers or 1)]
        self.extra: list[_Slot] = []  # workers being started or retired by a roll
        self.tasks: set[asyncio.Task[None]] = set()  # restarts, loads: dropped on stop
        self.unready = 0  # workers in a row that died before they were ready
        self.announced = False
        self.stopping = False
        self.code = 0
        self.done = asyncio.Event()
        self.hup_before = signal.getsignal(signal.SIGHUP)  # what a new worker starts with

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, sig, 0)
        loop.add_signal_handler(signal.SIGHUP, self.hangup)
        loop.add_signal_handler(signal.SIGCHLD, self.reap)
        served.clear()
        watcher = asyncio.create_task(self.follower.watch())
        feed = asyncio.create_task(poll_feed(self.config, self.follower))  # rules_feed
        try:
            self.spawn_later(self.start_all())
            if self.hangup_at_start:
                self.hangup()
            await self.done.wait()
        finally:
            watcher.cancel()
            feed.cancel()
            await asyncio.gather(watcher, feed, return_exceptions=True)
            for sig in _HANDLED:
                loop.remove_signal_handler(sig)
        return self.code

    async def start_all(self) -> None:
        for slot in self.slots:
            await self.spawn(slot)

    def spawn_later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def live(self) -> list[int]:
        return [slot.pid for slot in (*self.slots, *self.extra) if slot.pid]

    def forward(self, sig: int) -> None:
        for pid in self.live():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    # --- signals ---------------------------------------------------------------------------

    def stop(self, sig: int, code: int) -> None:
        """Stop: drop pending restarts and loads, pass `sig` on, finish once all are gone."""
        if not self.stopping:
            self.stopping = True
            for task in self.tasks:
                task.cancel()
        self.code = max(self.code, code)
        self.forward(sig)
        self.check_done()

    def hangup(self) -> None:
        if self.stopping:
            return
        reason = served.take_request() or "SIGHUP"
        if self.follower.waiting:  # a forced reload waits for the lock: it reads the files
            _RELOAD_LOG.info("reload (%s): merged with the reload already waiting", reason)
            return  # after this trigger, so one load serves both
        self.spawn_later(self.follower.reload(reason, force=True))

    def reap(self) -> None:
        for slot in (*self.slots, *self.extra):
            if not slot.pid:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone all the same
                pid, status = slot.pid, 0
            if pid:
                self.ended(slot, os.waitstatus_to_exitcode(status))

    # --- re-forks after a reload -----------------------------------------------------------

    async def roll(self) -> int:
        """Replace every slot's worker not forked from the rules now held with one that is
        (see the module docstring); called with the reload lock held. Returns once every old
        worker has stopped accepting (or ended): how many slots still run an older one."""
        retired: list[_Slot] = []
        serial = self.follower.serial
        for slot in self.slots:
            if self.stopping:
                break
            if not slot.pid or slot.serial == serial:  # dead (its replacement waits for the
                continue  # lock and forks from the new set), or current already
            incoming = _Slot(slot.index, quick=slot.quick)
            self.extra.append(incoming)
            try:
                self.fork(incoming)
            except OSError as error:
                self.extra.remove(incoming)
                _LOG.error("intercept serve: cannot start a worker (%s)", error.strerror)
                break
            deadline = time.monotonic() + READY_SECONDS
            while not incoming.ready and incoming.pid and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if not incoming.ready:
                _LOG.error("intercept serve: a re-forked worker did not start; worker %d "
                           "keeps serving the previous rule set", slot.pid)  # fmt: skip
                if incoming.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(incoming.pid, signal.SIGKILL)
                break
            self.extra.remove(incoming)
            old = _Slot(slot.index, slot.pid, slot.started, slot.ready_fd, slot.ready,
                        retiring=True, retired_at=time.monotonic())  # fmt: skip
            slot.pid, slot.started, slot.ready_fd = (
                incoming.pid,
                incoming.started,
                incoming.ready_fd,
            )
            slot.ready, slot.first, slot.serial = True, False, incoming.serial
            self.extra.append(old)
            retired.append(old)
            with contextlib.suppress(ProcessLookupError):
                os.kill(old.pid, RETIRE)
            self.spawn_later(self.bound(old))
        deadline = time.monotonic() + 10.0
        while any(old.pid and not served.draining(old.pid) for old in retired):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        behind = sum(1 for slot in self.slots if slot.pid and slot.serial != serial)
        if behind and not self.stopping:
            self.spawn_later(self.roll_again(serial))
        return behind

    async def roll_again(self, serial: int) -> None:
        """After a roll that left workers on an older set: try those slots again every
        `ROLL_RETRY_SECONDS` until they are current (or a newer load has rolled)."""
        await asyncio.sleep(ROLL_RETRY_SECONDS)
        async with self.follower.lock:
            if self.stopping or self.follower.serial != serial:
                return  # a newer load's roll covers them
            self.follower.behind = behind = await self.roll()
            if not behind:
                _RELOAD_LOG.info("reload: every worker now serves rule set %s",
                                 self.engine.rules.version)  # fmt: skip
            self.follower.record(True, ("a re-forked worker did not start",) if behind else ())

    async def bound(self, old: _Slot) -> None:
        """A retired worker gets `RETIRE_SECONDS` to finish its requests and write its last
        counts (aiohttp waits up to 60 s for requests in flight); then it is killed, so no
        hung request or unreachable database keeps an old rule set's copy alive."""
        pid = old.pid
        await asyncio.sleep(RETIRE_SECONDS)
        if old.pid == pid and pid:
            _LOG.warning("intercept serve: retired worker %d still running after %.0fs; "
                         "killing it", pid, RETIRE_SECONDS)  # fmt: skip
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # --- workers ---------------------------------------------------------------------------

    async def spawn(self, slot: _Slot, delay: float = 0.0) -> None:
        """Fork the slot's worker, after `delay`, from rules brought up to date first."""
        await asyncio.sleep(delay)
        while self.follower.lost:  # nothing good to fork from: wait for a good load
            await asyncio.sleep(1.0)
        async with self.follower.lock:
            if self.stopping or slot.pid:  # a roll has started this slot's worker already
                return
            replacing = slot.started > 0
            try:
                self.fork(slot)
            except OSError as error:  # no memory, no processes left: like a failed start
                _LOG.error("intercept serve: cannot start a worker (%s)", error.strerror)
                slot.started = time.monotonic()
                self.ended(slot, 1)
                return
        if replacing:
            self.engine.counts.worker_restarts.inc()

    def fork(self, slot: _Slot) -> None:
        first = slot.index == 0 and not self.announced
        loaded = self.follower.loaded
        read_fd, write_fd = os.pipe()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)  # until the child has
        try:  # its own handlers: none of the supervisor's may run in it
            pid = os.fork()
            if pid == 0:
                self.child(write_fd, first, loaded, blocked)
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        slot.pid, slot.started, slot.ready_fd = pid, time.monotonic(), read_fd
        slot.ready, slot.first, slot.serial = False, first, self.follower.serial
        asyncio.get_running_loop().add_reader(read_fd, self.readiness, slot)

    def child(
        self, ready_fd: int, first: bool, loaded: Signature, mask: set[int | signal.Signals]
    ) -> NoReturn:
        """The forked worker: the signal handling it had before supervision, then serve."""
        code = 0
        try:
            signal.set_wakeup_fd(-1)  # the supervisor's event loop is not this process's
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            before = self.hup_before
            signal.signal(signal.SIGHUP, signal.SIG_DFL if before is None else before)
            for slot in (*self.slots, *self.extra):
                if slot.ready_fd >= 0:
                    os.close(slot.ready_fd)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.environ["INTERCEPT_WORKER"] = "1"  # see intercept.reload.notify_siblings
            serve_as_worker_of(os.getppid())  # never signal whoever adopts it later
            self.serve_worker(first, loaded, _announcer(ready_fd))
        except BaseException as error:  # nothing about a request exists at this point
            print(f"intercept serve: worker {os.getpid()} stopped: {error}", file=sys.stderr)
            code = 1
        os._exit(code)

    def readiness(self, slot: _Slot) -> None:
        """The worker's ready byte, or the end of its pipe (it died: `reap` handles that)."""
        try:
            data = os.read(slot.ready_fd, 1)
        except BlockingIOError:
            return
        asyncio.get_running_loop().remove_reader(slot.ready_fd)
        if data:
            slot.ready = True
            self.unready = 0
            self.announced = self.announced or slot.first

    def ended(self, slot: _Slot, code: int) -> None:
        """Slot `slot`'s worker is gone with exit code `code` (negative: a signal)."""
        pid, lived = slot.pid, time.monotonic() - slot.started
        if slot.ready_fd >= 0:
            if not slot.ready:
                self.readiness(slot)  # a ready byte sent just before it died still counts
            asyncio.get_running_loop().remove_reader(slot.ready_fd)
            os.close(slot.ready_fd)
        slot.pid, slot.ready_fd = 0, -1
        if pid:
            metricfiles.retire(pid)  # its counts stay in the sums; its files go
            served.forget(pid)  # /admin/status lists it no more
        if slot in self.extra:  # retired by a roll (or a roll's worker that did not start)
            self.extra.remove(slot)
            if not slot.retiring:
                _LOG.warning("intercept serve: re-forked worker %d %s", pid, _describe(code))
            elif code not in (0, -RETIRE):
                _LOG.warning("intercept serve: retired worker %d %s", pid, _describe(code))
            self.check_done()
            return
        if self.stopping:
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):  # the last two: before it
                # had its handlers, so with nothing in flight
                _LOG.error("intercept serve: worker %d %s while stopping", pid, _describe(code))
                self.code = 1
            self.check_done()
            return
        if not slot.ready:
            self.unready += 1
            if self.unready >= GIVE_UP_AFTER:
                _LOG.error(
                    "intercept serve: %d workers in a row stopped before they were ready "
                    "(the last one %s); giving up. The reason is in the messages above.",
                    self.unready, _describe(code),
                )  # fmt: skip
                self.stop(signal.SIGTERM, 1)
                return
        slot.quick = slot.quick + 1 if lived < STABLE_SECONDS else 1
        delay = backoff(slot.quick)
        _LOG.warning(
            "intercept serve: worker %d %s after %.1fs; starting another in %.1fs",
            pid, _describe(code), lived, delay,
        )  # fmt: skip
        self.spawn_later(self.spawn(slot, delay))

    def check_done(self) -> None:
        if self.stopping and not self.live():
            self.done.set()


def _announcer(fd: int) -> Callable[[], None]:
    """`listening()` for a worker: tells the supervisor, once, through the pipe `fd`."""

    def listening() -> None:
        nonlocal fd
        if fd >= 0:
            with contextlib.suppress(OSError):  # a supervisor gone: nothing to tell
                os.write(fd, b"r")
            os.close(fd)
            fd = -1

    return listening


class _Reloads:
    """The supervisor's reloads (see the module docstring). `lock` is held around every load
    (and the re-fork after it) and every fork, so no fork happens while one runs."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        loaded: Signature,
        roll: Callable[[], Coroutine[Any, Any, int]],
    ) -> None:
        self.config = config
        self.engine = engine
        self.roll = roll
        self.loaded = loaded  # the files' signature before the current set was read
        self.refused: Signature | None = None  # the files of the last set refused
        self.generation = 0  # reloads begun
        self.serial = 0  # good loads: the set every slot's worker should be forked from
        self.behind = 0  # slots whose worker is older than `serial` after the last roll
        self.waiting = False  # a forced reload waits for `lock` (see `reload`)
        self.lost = False  # no good set to fork from (see `reload`)
        self.lock = asyncio.Lock()

    def record(
        self,
        finished: bool,
        problems: tuple[str, ...] = (),
        changed: bool = False,
        version: str | None = None,
    ) -> None:
        """Write the reload's state for the workers (`intercept.served.record_reload`);
        `version`: the one the workers serve, if not the supervisor's."""
        rules = self.engine.rules
        served.record_reload({
            "generation": self.generation, "finished": finished,
            "ok": not problems and not self.behind, "changed": changed,
            "version": version or rules.version, "rules": len(rules),
            "problems": list(problems), "behind": self.behind,
        })  # fmt: skip

    async def reload(self, reason: str, *, force: bool = False) -> None:
        """Load the files if they changed since the last load or refusal (or `force`); on
        success drop the old set and re-fork every worker from the new one.

        Triggers are merged: while a forced reload waits for the lock (another one runs),
        further forced triggers join it instead of queueing one full reload each (10
        SIGHUPs in a row: at most 2 loads). It reads the files after all of them came."""
        if force:
            self.waiting = True
        try:
            async with self.lock:
                if force:
                    self.waiting = False
                await self._reload(reason, force=force)
        finally:
            if force:
                self.waiting = False

    async def _reload(self, reason: str, *, force: bool) -> None:
        signature = signature_of(self.config)  # before reading: a later change is seen
        if not force and signature in (self.loaded, self.refused):
            return
        self.generation += 1
        self.record(False)
        engine, started = self.engine, time.monotonic()
        old = engine.rules.version
        problems: tuple[str, ...] = ()
        try:  # compiled in a child: the old set is dropped only for a good one
            compiled, pages = await compile_with_pages(self.config)
            problems = compiled.problems
            if not problems:
                engine.rules = _EMPTY  # the new set is loaded into the freed heap
                await in_daemon_thread(_drop_old_set, background=True)
                rules = await in_daemon_thread(lambda: self._load(compiled), background=True)
        except Exception as error:  # the pages, or an entry that cannot be read
            problems = problems_of(error)
            if engine.rules is _EMPTY:
                self.lost = True
                _LOG.error(
                    "supervisor: the compiled rule set could not be read; the workers keep "
                    "serving rule set %s, and a worker that dies is replaced once a good "
                    "set loads", old,
                )  # fmt: skip
        if problems:  # the last good set stays
            self.refused = signature
            engine.counts.rule_load_failures.inc()
            engine.reload_problems = problems
            _RELOAD_LOG.warning(
                "reload (%s) refused, still serving rule set %s: %s",
                reason, old, "; ".join(problems[:5]),
            )  # fmt: skip
            self.record(True, problems, version=old)
            return
        engine.use(rules, pages)
        del rules, pages
        self.loaded, self.refused, self.lost = signature, None, False
        self.serial += 1
        await in_daemon_thread(_drop_old_set, background=True)
        self.behind = await self.roll()
        seconds = time.monotonic() - started
        version = engine.rules.version
        if version == old:  # forced, same rules (the messages may have changed)
            _RELOAD_LOG.info("reload (%s): rule set %s unchanged", reason, old)
        else:
            _RELOAD_LOG.info(
                "reload (%s): rule set %s -> %s, %d rules, %.2fs",
                reason, old, version, len(engine.rules), seconds,
            )  # fmt: skip
        behind: tuple[str, ...] = ()
        if self.behind:
            behind = (f"{self.behind} of {self.config.workers} workers still serve the "
                      f"previous rule set: their re-forked replacement did not start; "
                      f"retried every {ROLL_RETRY_SECONDS:.0f}s",)  # fmt: skip
            _RELOAD_LOG.error("reload (%s): %s", reason, behind[0])
        self.record(True, behind, changed=version != old)

    def _load(self, compiled: Compiled) -> RuleSet:
        rules = compiled.load()
        if self.config.huge_pages:
            advise_heap(collapse=False)
        return rules

    async def watch(self) -> None:
        """The file and day triggers (`intercept.reload.watch_triggers`): changed files
        (with `reload.watch`), and a new UTC day when a served rule has an expiry date. Runs
        until cancelled."""

        def changed() -> bool:
            return self.config.reload.watch and signature_of(self.config) not in (
                self.loaded,
                self.refused,
            )

        poll, failed = self.config.reload.poll_seconds, "supervisor: rule files poll failed (%s)"
        await watch_triggers(self, poll, changed, _LOG, failed)


_EMPTY = compile_rules([])


def _drop_old_set() -> None:
    """Free the set just replaced: it was frozen out of the collector's reach at start (see
    `intercept.server.serve.settle_heap`), so unfreeze, collect, freeze the new one; then hand the
    freed heap back to the system (glibc's `malloc_trim`), so the next workers do not
    inherit it."""
    if gc.get_freeze_count():
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    else:
        gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
