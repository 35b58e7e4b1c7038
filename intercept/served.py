"""Which rule set each worker of `intercept serve --workers N` serves, for `/admin/status`.

A worker answers `/admin/status` for whichever connection the kernel handed it, so it cannot
ask its siblings; instead each worker publishes what it serves in one small file,
`served/<pid>.json` in the multiprocess metrics folder (`PROMETHEUS_MULTIPROC_DIR`, private
to this server), when it starts serving and after every reload that swapped its rules, and
any worker reads them all. A file holds the rule set's version, rule count and load time:
nothing derived from a request. The supervisor clears the folder at start and removes a
worker's file when it ends; files of processes no longer alive are passed over all the same
(a worker killed while its supervisor was also killed). Outside `--workers N` nothing is
written and `workers()` is None.

A worker that is being retired (replaced by one forked from a newer rule set) first stops
accepting, then rewrites its entry with `draining: true`, and is listed until it has ended.

Each entry also says when the worker began serving (`started_at`: a worker re-forked by a
reload starts just after its set's `loaded_at`, one that replaced a dead worker later) and,
worked out when `/admin/status` is read, its `last_reload`: `at` (the load time of the set
it serves, as `loaded_at`), `age_seconds` (how long ago, by the answering worker's clock,
the same host's), and `current`: whether that set is the one the supervisor's latest
finished reload left serving (`reload.state`, below), so an operator sees which worker is
behind, not only how many (`workers_behind`). `current` is true when no reload has run since
the start (every worker was forked from the start-up set), false for a worker still on an
older set (draining after a roll, or one whose re-forked replacement did not start), and null
while a reload is under way (the supervisor has not yet said which set it leaves serving).

Reloads with `--workers N` are the supervisor's (`intercept.server.supervisor`). It records each
one in `reload.state` (`record_reload`): a generation number, whether it has finished, and
its result (ok, version, rule count, the problems of a refused set: file, line, rule id,
never rule text), which `/admin/status` shows as `last_reload_refused` and which a worker
answering `POST /admin/reload` waits for. Such a worker names its trigger in
`reload.request` (`request_reload`) before it signals the supervisor, so the supervisor's
log line says "POST /admin/reload", not "SIGHUP".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from intercept.core import Engine

__all__ = ["clear", "draining", "forget", "publish", "record_reload", "reload_state",
           "request_reload", "take_request", "workers"]  # fmt: skip


_STARTED: dict[int, float] = {}  # pid -> its first publish; by pid, so a forked child
# never takes its parent's time as its own


def _folder() -> Path | None:
    metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(metrics, "served") if metrics else None


def _supervised() -> bool:
    return os.environ.get("INTERCEPT_WORKER") == "1"


def publish(engine: Engine, *, draining: bool = False) -> None:
    """In a worker: record the rule set `engine` serves now, and whether it is `draining`
    (retired: it accepts no more connections). Elsewhere: nothing."""
    folder = _folder()
    if folder is None or not _supervised():
        return
    rules, pid = engine.rules, os.getpid()
    started = _STARTED.setdefault(pid, time.time())  # the first publish: it starts serving
    entry = {"pid": pid, "version": rules.version, "rules": len(rules),
             "loaded_at": engine.rules_loaded_at, "draining": draining,
             "started_at": started}  # fmt: skip
    _write(folder, f"{pid}.json", entry)


def _write(folder: Path, name: str, entry: dict[str, Any]) -> None:
    """Written whole, then renamed: a reader never sees half a file."""
    folder.mkdir(exist_ok=True)
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(entry), encoding="utf-8")
    os.replace(temporary, folder / name)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not written yet, or removed meanwhile
        return None
    return entry if isinstance(entry, dict) else None


def record_reload(state: dict[str, Any]) -> None:
    """In the supervisor: the state of its latest reload (see the module docstring)."""
    folder = _folder()
    if folder is not None:
        _write(folder, "reload.state", state)


def reload_state() -> dict[str, Any] | None:
    """The supervisor's latest reload, or None (none yet, or not `--workers N`)."""
    folder = _folder()
    if folder is None or not _supervised():
        return None
    return _read(folder / "reload.state")


def request_reload(reason: str) -> None:
    """In a worker: name the trigger of the reload it is about to ask the supervisor for."""
    folder = _folder()
    if folder is not None:
        _write(folder, "reload.request", {"reason": reason})


def take_request() -> str | None:
    """In the supervisor: the trigger a worker named, once; None if none did."""
    folder = _folder()
    if folder is None:
        return None
    entry = _read(folder / "reload.request")
    with contextlib.suppress(OSError):
        (folder / "reload.request").unlink()
    reason = entry.get("reason") if entry else None
    return reason if isinstance(reason, str) else None


def forget(pid: int) -> None:
    """Worker `pid` has ended: its entry goes."""
    folder = _folder()
    if folder is not None:
        with contextlib.suppress(OSError):
            (folder / f"{pid}.json").unlink()


def clear() -> None:
    """At the supervisor's start: no entry of an earlier run in an operator-named folder."""
    folder = _folder()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def draining(pid: int) -> bool:
    """Whether worker `pid` has said it is draining (it accepts no more connections)."""
    folder = _folder()
    entry = _read(folder / f"{pid}.json") if folder is not None else None
    return bool(entry and entry.get("draining"))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def workers() -> list[dict[str, Any]] | None:
    """Every living worker's entry, by pid; None outside `--workers N`."""
    folder = _folder()
    if folder is None or not _supervised():
        return None
    found = []
    for path in sorted(folder.glob("*.json")):
        entry = _read(path)
        if entry is not None and _alive(int(entry.get("pid", 0))):
            found.append(entry)
    serving, now = _serving_after_reload(), time.time()
    for entry in found:
        entry["last_reload"] = _last_reload(entry, serving, now)
    return sorted(found, key=lambda entry: int(entry["pid"]))


def _serving_after_reload() -> str | None:
    """The version the supervisor's latest finished reload left serving; "" when no reload
    has run (any version is the start-up set's); None while one is under way."""
    state = reload_state()
    if state is None:
        return ""
    if not state.get("finished"):
        return None
    return str(state.get("version", ""))


def _last_reload(entry: dict[str, Any], serving: str | None, now: float) -> dict[str, Any]:
    """A worker's `last_reload` (see the module docstring)."""
    at = entry.get("loaded_at")
    age = round(now - at, 1) if isinstance(at, int | float) else None
    current = None if serving is None else serving in ("", entry.get("version"))
    return {"at": at, "age_seconds": age, "current": current}
