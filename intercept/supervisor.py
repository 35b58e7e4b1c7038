"""The supervisor of `intercept serve --workers N`: N forked workers, kept at N.

The supervisor binds the public and admin listeners and holds them as long as it runs
(`intercept.listeners`: no second instance can take the addresses, even while workers are
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
- SIGHUP (from the operator, or from a worker's `POST /admin/reload` through
  `intercept.reload.notify_siblings`) goes to the workers running at that moment, replacements
  included; a worker forked afterwards is forked from the reloaded rules, see next.

A replacement never serves an older rule set than its siblings. The supervisor's own copy of
the rules is kept on the set the workers serve (`_Follower`): it reloads on the same triggers
as they do (every SIGHUP; a change of the files, polled every `reload.poll_seconds` when
`reload.watch` is on; a new UTC day when a served rule has an expiry date), from the same
files, and refuses what they refuse, keeping the last good set, as they do. It also looks
once more just before forking, so a change the workers have seen but the supervisor has not
polled yet is not missed. Having the replacement load the files itself would be simpler but
wrong twice: with the files now refused, it would fall back to the set loaded at start
(rules since removed would block again, rules since added would not), and with
`reload.watch` off it would serve files the others have not been told to load. Keeping the
supervisor's copy current costs no memory in steady state (it holds one set either way, and
after the workers have reloaded the start set is shared with nobody), one more load of CPU
per reload, and its replacements share the current set copy-on-write. The supervisor's loads
run in a thread; no fork happens while one runs. It counts and logs nothing about them (the
workers do), and only marks the new set for huge pages: collapsing would copy pages it still
shares with the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

from intercept import served
from intercept.config import Config
from intercept.core import Engine
from intercept.hugepages import advise_heap
from intercept.pages import Pages
from intercept.reload import Signature, load_checked, serve_as_worker_of, signature_of
from intercept.ruleset import RuleSet

__all__ = ["FIRST_DELAY", "GIVE_UP_AFTER", "MAX_DELAY", "STABLE_SECONDS", "ServeWorker",
           "supervise"]  # fmt: skip

STABLE_SECONDS = 10.0  # a worker that lived this long restarts at once and resets its slot
FIRST_DELAY = 0.5  # the wait after a second quick death in a row; doubled each time
MAX_DELAY = 30.0
GIVE_UP_AFTER = 5  # workers in a row that died before they were ready

_LOG = logging.getLogger("intercept.supervisor")
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


@dataclass(slots=True)
class _Slot:
    """One of the N places a worker runs in; `pid` 0 while it has none."""

    index: int
    pid: int = 0
    started: float = 0.0
    ready_fd: int = -1  # the read end of the pipe the worker writes one byte to when ready
    ready: bool = False
    first: bool = False  # this worker announces that the server is up
    quick: int = 0  # its workers that died in a row within STABLE_SECONDS of their start


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
        self.follower = _Follower(config, engine, loaded)
        self.follower.hangup = hangup
        self.slots = [_Slot(index) for index in range(config.workers)]
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
        try:
            self.spawn_later(self.start_all())
            await self.done.wait()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
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
        return [slot.pid for slot in self.slots if slot.pid]

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
        self.forward(signal.SIGHUP)
        self.follower.hangup = True  # also seen by a replacement about to be forked
        self.spawn_later(self.follower.catch_up_locked(force=True))

    def reap(self) -> None:
        for slot in self.slots:
            if not slot.pid:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone all the same
                pid, status = slot.pid, 0
            if pid:
                self.ended(slot, os.waitstatus_to_exitcode(status))

    # --- workers ---------------------------------------------------------------------------

    async def spawn(self, slot: _Slot, delay: float = 0.0) -> None:
        """Fork the slot's worker, after `delay`, from rules brought up to date first."""
        await asyncio.sleep(delay)
        async with self.follower.lock:
            if self.follower.due():
                await self.follower.catch_up()
            if self.stopping:
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
        slot.ready, slot.first = False, first
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
            for slot in self.slots:
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
        if pid and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(pid)  # type: ignore[no-untyped-call]  # its live gauges go; its counters stay in the sums
        if pid:
            served.forget(pid)  # /admin/status lists it no more
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


class _Follower:
    """The supervisor's rules, kept on the set the workers serve (see the module docstring).
    `lock` is held around every load and every fork, so no fork happens while one runs."""

    def __init__(self, config: Config, engine: Engine, loaded: Signature) -> None:
        self.config = config
        self.engine = engine
        self.loaded = loaded  # the files' signature before the current set was read
        self.refused: Signature | None = None  # the files of the last set refused
        self.hangup = False  # a SIGHUP came whose load has not run yet
        self.lock = asyncio.Lock()

    def due(self) -> bool:
        """Whether the workers have loaded, or are loading, files the supervisor has not."""
        if self.hangup:  # forced, as the workers' SIGHUP reloads are
            return True
        if not self.config.reload.watch:
            return False
        return signature_of(self.config) not in (self.loaded, self.refused)

    async def catch_up_locked(self, *, force: bool = False) -> None:
        async with self.lock:
            await self.catch_up(force=force)

    async def catch_up(self, *, force: bool = False) -> None:
        """Load the files if they changed since the last load or refusal (or `force`, or a
        SIGHUP came: the workers' SIGHUP reloads are forced, so an edit that kept the files'
        size and modification time is followed too); call with `lock` held. A refused set is
        kept out, as the workers keep it out."""
        force = force or self.hangup
        self.hangup = False
        signature = signature_of(self.config)  # before reading, as the workers take it
        if not force and signature in (self.loaded, self.refused):
            return
        try:
            rules, pages = await _in_daemon_thread(self._load)
        except Exception:  # the workers report it; the last good set stays
            self.refused = signature
            return
        self.engine.use(rules, pages)
        self.loaded, self.refused = signature, None
        if gc.get_freeze_count():  # as after the first load: see intercept.serve.settle_heap
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def _load(self) -> tuple[RuleSet, Pages]:
        rules, pages = load_checked(self.config)
        if self.config.huge_pages:
            advise_heap(collapse=False)
        return rules, pages

    async def watch(self) -> None:
        """Follow the workers' own triggers: changed files (with `reload.watch`), and a new
        UTC day when a served rule has an expiry date. Runs until cancelled."""
        poll = self.config.reload.poll_seconds
        day = _today()
        while True:
            await asyncio.sleep(poll)
            try:
                if _today() != day:
                    day = _today()
                    if any(spec.expires is not None for spec in self.engine.rules.rules):
                        await self.catch_up_locked(force=True)
                elif self.config.reload.watch and self.due():
                    await asyncio.sleep(min(poll, 0.5))  # as the workers wait for a copy
                    await self.catch_up_locked()
            except Exception as error:  # the follower must outlive any one bad poll
                _LOG.warning("supervisor: rule files poll failed (%s)", type(error).__name__)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


async def _in_daemon_thread(function: Callable[[], _T]) -> _T:
    """`function()` in a daemon thread: a stop that cancels the wait does not wait for it
    (an executor's thread would hold up the exit). Returns once the thread has finished."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            result = function()
        except BaseException as caught:
            error = caught
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    thread = threading.Thread(target=target, name="intercept-supervisor-load", daemon=True)
    thread.start()
    try:
        return await future
    finally:
        if not future.cancelled():  # it is returning: joined so that no fork sees it alive
            thread.join()
