"""Live reload of rules and messages, with nothing dropped and nothing half-loaded.

A reload reads, validates (schema, then every rule's examples) and compiles the configured
rules, and loads the message pages, in a worker thread; then the engine swaps to them by
assigning references, so a request in flight finishes with the set it started with and the
next one sees the whole new set. A set that fails is refused: the old one keeps serving, the
failure is counted (`intercept_rule_load_failures_total`) and kept for `/admin/status` with
file, line and rule id (never a phrase or example text: lists are confidential).

Triggers: SIGHUP, a change of the files under `rules` and `messages` (polled every
`reload.poll_seconds`), `POST /admin/reload` and `intercept reload` (which posts there).
A reload whose files have not changed since the last successful one is skipped unless forced.
SIGHUP, `POST /admin/reload` and `intercept reload` force it: an edit that keeps the files'
size and modification time (an rsync with `-t`, a checkout) is loaded all the same; a forced
reload that yields the rule set already served logs "rule set VERSION unchanged".

With `--workers N` the workers never load rules: the supervisor is the only one that does
(`intercept.server.supervisor`), once per trigger, and re-forks the workers from the new set. It
polls the files, takes SIGHUP (a SIGHUP sent to a worker is passed up to it), and a worker
answering `POST /admin/reload` (or `intercept reload`) asks it with a SIGHUP and answers
with its result (`Reloader.reload_all`): 200 once every worker slot runs a worker forked
from the new set and the old workers have stopped accepting, 422 with the problems of a
refused set. Each worker publishes the version it serves (`intercept.served`) for
`/admin/status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from intercept.compiling import CompileRefused, checked_rules, compile_with_pages, in_daemon_thread
from intercept.config import Config
from intercept.core import Engine
from intercept.errors import InterceptError, RuleError
from intercept.hugepages import advise_heap
from intercept.pages import Pages, pages_for
from intercept.rules.compiled import source_files
from intercept.rules.ruleset import RuleSet
from intercept.served import publish, reload_state, request_reload

__all__ = ["ReloadResult", "Reloadable", "Reloader", "files_signature", "load_checked",
           "notify_siblings", "problems_of", "serve_as_worker_of", "signature_of",
           "watch_triggers"]  # fmt: skip

_LOG = logging.getLogger("intercept.reload")
_SUPERVISOR_SECONDS = 600.0  # a 50,000-rule load and two re-forks take well under a minute
Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: `ok`, the version now serving, and the refusal's problems."""

    ok: bool
    changed: bool
    version: str
    rules: int
    problems: tuple[str, ...] = ()
    seconds: float = 0.0
    behind: int = 0  # workers still serving the previous set (a re-fork did not start)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "changed": self.changed,
            "version": self.version,
            "rules": self.rules,
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
            "behind": self.behind,
        }


def files_signature(*roots: Path) -> Signature:
    """Path, modification time and size of every file under `roots`: what a change changes."""
    entries = []
    for root in roots:
        for path in source_files(root):
            try:
                stat = path.stat()
            except OSError:
                continue  # removed while listing: the next poll sees the result
            entries.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


def load_checked(config: Config) -> tuple[RuleSet, Pages]:
    """The configured rules, validated and compiled with every example passing, and the
    pages, in this process. Raises `RuleError` (rules, examples) or another
    `InterceptError` (pages)."""
    rules = checked_rules(config.rules, config.rules_key_file)
    pages = pages_for(config)
    return rules, pages


def problems_of(error: Exception) -> tuple[str, ...]:
    if isinstance(error, RuleError):
        return tuple(str(problem) for problem in error.problems)
    if isinstance(error, CompileRefused):
        return error.problems
    if isinstance(error, InterceptError):
        return (str(error),)
    return (f"unexpected {type(error).__name__} while loading",)


class Reloader:
    """Reloads `engine` from `config`; one reload at a time."""

    def __init__(self, config: Config, engine: Engine, loaded: Signature | None = None) -> None:
        """`loaded`: the files' signature taken before the engine's rules were read (see
        `signature_of`), so that a change made while they loaded is not taken as loaded."""
        self.config = config
        self.engine = engine
        self._lock = asyncio.Lock()
        self._loaded = self._signature() if loaded is None else loaded
        self._refused: Signature | None = None  # files of the last refused set
        self.last: ReloadResult | None = None

    def _signature(self) -> Signature:
        return signature_of(self.config)

    async def reload(self, reason: str, *, force: bool = False) -> ReloadResult:
        """Load, validate and swap in the configured rules and messages (see the module
        docstring). Never raises for a bad set: the result says what was wrong."""
        async with self._lock:
            engine = self.engine
            started = time.monotonic()
            try:
                signature = self._signature()  # before reading: a later change is seen
                if not force and signature == self._loaded:
                    return ReloadResult(True, False, engine.rules.version, len(engine.rules))
                compiled, pages = await compile_with_pages(self.config)
                rules = await in_daemon_thread(compiled.load, background=True)
            except Exception as error:  # every failure is reported, none stops the server
                problems = problems_of(error)
                engine.counts.rule_load_failures.inc()
                engine.reload_problems = problems
                self._refused = self._signature()
                _LOG.warning(
                    "reload (%s) refused, still serving rule set %s: %s",
                    reason, engine.rules.version, "; ".join(problems[:5]),
                )  # fmt: skip
                self.last = ReloadResult(
                    False, False, engine.rules.version, len(engine.rules), problems,
                    time.monotonic() - started,
                )  # fmt: skip
                return self.last
            old = engine.rules.version
            replaced = [engine.rules]
            engine.use(rules, pages)
            self._loaded = signature
            self._refused = None
            _freeze_new_set()
            await asyncio.to_thread(_release, replaced)
            if self.config.huge_pages:  # the new set's memory too (see intercept.hugepages)
                # a worker only marks it: collapsing would copy pages still shared with the
                # supervisor (MADV_COLLAPSE ignores the kernel's sharing limits)
                worker = os.environ.get("INTERCEPT_WORKER") == "1"
                await asyncio.to_thread(advise_heap, not worker)
            publish(engine)
            seconds = time.monotonic() - started
            if rules.version == old:  # forced, same rules (the messages may have changed)
                _LOG.info("reload (%s): rule set %s unchanged", reason, old)
            else:
                _LOG.info(
                    "reload (%s): rule set %s -> %s, %d rules, %.2fs",
                    reason, old, rules.version, len(rules), seconds,
                )  # fmt: skip
            self.last = ReloadResult(True, True, rules.version, len(rules), (), seconds)
            return self.last

    async def reload_all(self, reason: str) -> ReloadResult:
        """A forced reload (an edit that kept the files' size and modification time is
        loaded too). In a worker of `--workers N`: asked of the supervisor, which loads once
        and re-forks every worker from the new set; its result is returned once it has
        finished (see the module docstring)."""
        if os.environ.get("INTERCEPT_WORKER") != "1":
            return await self.reload(reason, force=True)
        async with self._lock:
            started = time.monotonic()
            before = reload_state()
            generation = int(before["generation"]) if before else 0
            request_reload(reason)
            notify_siblings()
            while True:  # a load started after this request has finished
                state = reload_state()
                if state and int(state["generation"]) > generation and state["finished"]:
                    break
                if time.monotonic() - started > _SUPERVISOR_SECONDS:
                    problem = "the supervisor did not finish the reload in time"
                    rules = self.engine.rules
                    return ReloadResult(False, False, rules.version, len(rules), (problem,))
                await asyncio.sleep(0.05)
            problems = tuple(str(problem) for problem in state["problems"])
            self.last = ReloadResult(
                bool(state["ok"]), bool(state["changed"]), str(state["version"]),
                int(state["rules"]), problems, time.monotonic() - started,
                int(state.get("behind", 0)),
            )  # fmt: skip
            return self.last

    async def watch(self, interval: float, *, files: bool = True) -> None:
        """Reload when the files change (with `files`; a refused set is retried once its
        files change again), and when a new UTC day starts (`watch_triggers`). Runs until
        cancelled; a failed poll is logged and retried."""

        def changed() -> bool:
            return files and self._signature() not in (self._loaded, self._refused)

        await watch_triggers(self, interval, changed, _LOG, "reload watcher: poll failed (%s)")


class Reloadable(Protocol):
    """What `watch_triggers` reloads: a `Reloader`, or the supervisor's reloads of
    `--workers N` (`intercept.server.supervisor`)."""

    @property
    def engine(self) -> Engine: ...

    async def reload(self, reason: str, *, force: bool = False) -> object: ...


async def watch_triggers(
    reloads: Reloadable,
    interval: float,
    changed: Callable[[], bool],
    log: logging.Logger,
    failed: str,
) -> None:
    """Every `interval` seconds, until cancelled: reload when `changed()` (the files differ
    from those last loaded and last refused), after a pause that lets an editor or a copy
    finish; and, forced, when a new UTC day starts while a served rule has an expiry date, so
    rules whose `expires` day has come stop matching. A poll that fails is logged on `log`
    as `failed` with the exception's type (`%s`), never its text, and the next one runs."""
    day = _today()
    while True:
        await asyncio.sleep(interval)
        try:
            if _today() != day:
                day = _today()
                if any(spec.expires is not None for spec in reloads.engine.rules.rules):
                    await reloads.reload("a new day: expiry dates", force=True)
            elif changed():
                await asyncio.sleep(min(interval, 0.5))  # let an editor or a copy finish
                await reloads.reload("files changed")
        except Exception as error:  # the watcher must outlive any one bad poll
            log.warning(failed, type(error).__name__)


def signature_of(config: Config) -> Signature:
    """The files a reload reads: rules, messages, and a sealed bundle's key file."""
    key = config.rules_key_file
    return files_signature(config.rules, config.pages_folder, *([key] if key else []))


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _freeze_new_set() -> None:
    """Take the new set out of the collector's reach, as the first one was at start (see
    `intercept.server.serve.settle_heap`); cheap, it walks nothing, where unfreezing and
    collecting walked every object of the new set on the event loop. The replaced set,
    frozen before, is freed by reference counting (a rule set holds no reference cycles);
    the few small cycles the replaced pages leave (measured: 28 objects) stay frozen."""
    if gc.get_freeze_count():
        gc.freeze()


def _release(replaced: list[RuleSet]) -> None:
    """Drop the replaced set (in a thread, off the event loop) and hand the freed heap back
    to the system (glibc's `malloc_trim`, which runs without the interpreter lock), so
    memory stays flat across reloads."""
    replaced.clear()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


_SUPERVISOR: list[int] = []  # the pid of this worker's supervisor, once it is one


def serve_as_worker_of(supervisor: int) -> None:
    """Mark this process a worker of `supervisor` (called in the forked child)."""
    _SUPERVISOR[:] = [supervisor]


def notify_siblings() -> None:
    """In a worker of `--workers N`, ask the supervising parent to reload (it re-forks every
    worker from what it loaded, so all of them end on the same version). Only while that
    parent lives: once it is gone this worker's parent is init or a subreaper, which must
    never get a SIGHUP from it (systemd would reload itself)."""
    if os.environ.get("INTERCEPT_WORKER") == "1" and os.getppid() in _SUPERVISOR:
        import signal

        os.kill(os.getppid(), signal.SIGHUP)
