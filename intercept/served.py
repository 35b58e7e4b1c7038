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
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from intercept.core import Engine

__all__ = ["clear", "forget", "publish", "workers"]


def _folder() -> Path | None:
    metrics = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(metrics, "served") if metrics else None


def _supervised() -> bool:
    return os.environ.get("INTERCEPT_WORKER") == "1"


def publish(engine: Engine) -> None:
    """In a worker: record the rule set `engine` serves now (written whole, then renamed, so a
    reader never sees half a file). Elsewhere: nothing."""
    folder = _folder()
    if folder is None or not _supervised():
        return
    rules = engine.rules
    entry = {"pid": os.getpid(), "version": rules.version, "rules": len(rules),
             "loaded_at": engine.rules_loaded_at}  # fmt: skip
    folder.mkdir(exist_ok=True)
    temporary = folder / f".{os.getpid()}.tmp"
    temporary.write_text(json.dumps(entry), encoding="utf-8")
    os.replace(temporary, folder / f"{os.getpid()}.json")


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
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # removed meanwhile
            continue
        if isinstance(entry, dict) and _alive(int(entry.get("pid", 0))):
            found.append(entry)
    return sorted(found, key=lambda entry: int(entry["pid"]))
