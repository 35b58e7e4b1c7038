"""The multiprocess metrics folder of `intercept serve --workers N`, kept small.

prometheus_client writes one file per process and metric type (`counter_<pid>.db`,
`histogram_<pid>.db`, `gauge_<mode>_<pid>.db`) into `PROMETHEUS_MULTIPROC_DIR`, and every
`/metrics` reads them all. A worker's files outlive it (its counts must stay in the totals),
so with workers re-forked on every reload they would pile up: measured 13 -> 453 files after
55 reloads, `/metrics` 16 -> 60 ms. `retire(pid)`, run by the supervisor when a worker has
ended, adds the worker's counters and histogram buckets into `counter_retired.db` and
`histogram_retired.db` (sums are what the collector makes of them anyway) and deletes all of
its files. Its gauges go with it: the supervisor's gauges are the rules' (version, load
time), which every living worker sets as well, and the upstream's, which living workers set.

Readers and `retire` exclude each other through an advisory lock on `metrics.lock` in the
folder (`reading()` shared, `retire` exclusive): between the merge and the deletion a reader
would see the worker's counts twice, and a Prometheus server would take the drop that follows
for a counter reset. The lock is held for the merge of one worker's files: milliseconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict

__all__ = ["reading", "retire"]

_SUMMED = ("counter", "histogram")
_LOCK = "metrics.lock"


def _folder() -> Path | None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(folder) if folder else None


@contextlib.contextmanager
def _locked(folder: Path, mode: int) -> Iterator[None]:
    fd = os.open(folder / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """Hold while collecting the folder's metrics: no worker's files are merged meanwhile."""
    folder = _folder()
    if folder is None:
        yield
        return
    with _locked(folder, fcntl.LOCK_SH):
        yield


def retire(pid: int) -> int:
    """Worker `pid` has ended: merge its counters and histograms into the folder's
    `*_retired.db` files and delete its files. Returns how many files went."""
    folder = _folder()
    if folder is None or pid <= 0:
        return 0
    with _locked(folder, fcntl.LOCK_EX):
        for kind in _SUMMED:
            source = folder / f"{kind}_{pid}.db"
            if not source.exists():
                continue
            values = MmapedDict.read_all_values_from_file(str(source))  # type: ignore[no-untyped-call]
            archive = MmapedDict(str(folder / f"{kind}_retired.db"))  # type: ignore[no-untyped-call]
            try:
                # zeros too: the collector shows a histogram's buckets only if present
                for key, value, _timestamp, _position in values:
                    total, _ = archive.read_value(key)  # type: ignore[no-untyped-call]
                    archive.write_value(key, total + value, 0.0)  # type: ignore[no-untyped-call]
            finally:
                archive.close()  # type: ignore[no-untyped-call]
        gone = 0
        for path in folder.glob(f"*_{pid}.db"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                gone += 1
        return gone
