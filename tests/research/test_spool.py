"""Counts survive a ledger that cannot be written at shutdown: they are spooled to a local file
(aggregate rows only) and the next start adds them to the ledger, exactly once.

End to end, with real `intercept serve` processes: a SQLite ledger on a small tmpfs that is
filled up (needs mount privileges, as root here and in CI), and a real PostgreSQL server that is
stopped (tests/pg_helpers.py). Both: searches, SIGTERM, free the disk or start the database,
start again: every count arrives. Cost: about 15 s in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from intercept.research.ledger import DAY, TABLES, Backend, Ledger
from intercept.research.spool import Spool
from tests.pg_helpers import PostgresServer
from tests.processes import demo_serve, free_port, http_status, intercept_process

T0 = 1_790_000_000 - 1_790_000_000 % DAY + 3 * 3600
SECRET = "a-test-secret-of-enough-length"
BLOCKED, BENIGN = 100, 200  # 300 searches + 100 interventions: 400 counts per run


class Clock:
    def __init__(self, now: float = T0 + 60) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fill(ledger: Ledger) -> None:
    """4 searches, 2 interventions, 1 click, 1 shadow hit: 8 counts in 5 rows."""
    ledger.add_search("web", 3)
    ledger.add_search("images")
    ledger.add_intervention("demo", "block", "en", "a", 2)
    ledger.add_click("help", "a")
    ledger.add_shadow("r1")


EXPECTED = {
    ("searches", ("web",)): 3,
    ("searches", ("images",)): 1,
    ("interventions", ("demo", "block", "en", "a")): 2,
    ("clicks", ("help", "a")): 1,
    ("shadow_hits", ("r1",)): 1,
}


Summed = dict[tuple[str, tuple[str, ...]], int]


def summed(execute: Callable[[str], Iterable[Sequence[Any]]]) -> Summed:
    """Every stored count by table and labels, summed over hours, read with the database's
    own client (`execute` runs one query)."""
    out: Summed = {}
    for table, labels in TABLES.items():
        query = f"SELECT {', '.join(labels)}, SUM(count) FROM {table} GROUP BY {', '.join(labels)}"
        for *values, count in execute(query):
            out[(table, tuple(values))] = int(count)
    return out


def sqlite_rows(path: Path) -> Summed:
    """`summed` for a SQLite file (none before the ledger made its tables)."""
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'shadow_hits'").fetchone():
            return {}
        return summed(conn.execute)


class Broken(Backend):
    """A database that is down."""

    name = "postgresql"

    def write(self, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        raise OSError(28, "No space left on device")

    def prune(self, before_hour: int) -> int:
        return 0

    def close(self) -> None:
        pass


def spool_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("intercept-spool.jsonl."))


# --- units ---------------------------------------------------------------------------------


async def test_shutdown_spools_what_it_cannot_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(Broken(), clock=Clock(), spool=tmp_path / "intercept-spool.jsonl")
    fill(ledger)
    await ledger.aclose()
    (path,) = spool_files(tmp_path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"intercept_spool": 1, "id": path.name.rsplit(".", 1)[1]}
    hour = T0
    assert sorted(map(json.dumps, lines[1:])) == sorted(
        json.dumps({"table": t, "hour": hour, "labels": list(labels), "count": c})
        for (t, labels), c in EXPECTED.items()
    )
    assert ledger.status.pending == 0
    assert ledger.spool["spooled_rows"] == 5
    assert ledger.spool["spooled_counts"] == 8
    assert "8 counts could not be written at shutdown" in caplog.text
    assert "spooled as 5 rows" in caplog.text
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


async def test_an_unwritable_spool_logs_the_loss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(Broken(), clock=Clock(), spool=tmp_path / "missing-folder" / "spool")
    fill(ledger)
    await ledger.aclose()
    assert ledger.status.pending == 8
    assert "8 counts could not be written at shutdown" in caplog.text
    assert "nor spooled: FileNotFoundError" in caplog.text


def test_replay_adds_each_file_once_whatever_crashes(tmp_path: Path) -> None:
    """A crash after the commit and before the file is deleted: the next replay finds the
    marker in the same transaction and adds nothing; the file goes."""
    spool = tmp_path / "intercept-spool.jsonl"
    broken = Ledger(Broken(), clock=Clock(), spool=spool)
    fill(broken)
    broken.close()
    (path,) = spool_files(tmp_path)
    kept = path.read_bytes()
    database = tmp_path / "ledger.db"
    ledger = Ledger.from_url(f"sqlite:{database}", clock=Clock(), spool=spool)
    assert ledger.replay_spool() == 8
    assert not path.exists()
    assert sqlite_rows(database) == EXPECTED
    path.write_bytes(kept)  # as if the process died before unlink
    assert ledger.spool["spooled_rows"] == 0
    assert ledger.replay_spool() == 0  # already added: not again
    assert not path.exists()
    assert sqlite_rows(database) == EXPECTED
    # a second ledger (a sibling worker) replaying the same file: once in all
    path.write_bytes(kept)
    other = Ledger.from_url(f"sqlite:{database}", clock=Clock(), spool=spool)
    assert other.replay_spool() + ledger.replay_spool() == 0
    assert sqlite_rows(database) == EXPECTED
    ledger.close()
    other.close()


def test_a_failing_replay_keeps_the_file(tmp_path: Path) -> None:
    spool = tmp_path / "intercept-spool.jsonl"
    broken = Ledger(Broken(), clock=Clock(), spool=spool)
    fill(broken)
    broken.close()
    fill(broken)
    broken.close()  # two shutdowns, two files
    assert len(spool_files(tmp_path)) == 2
    database = tmp_path / "ledger.db"
    database.mkdir()  # not a database file: every write fails
    ledger = Ledger.from_url(f"sqlite:{database}", clock=Clock(), spool=spool)
    assert ledger.spool["spooled_counts"] == 16  # known from the start
    assert ledger.replay_spool() == 0
    assert len(spool_files(tmp_path)) == 2
    assert ledger.spool["spooled_rows"] == 10
    assert ledger.spool["spooled_counts"] == 16
    database.rmdir()
    assert ledger.replay_spool() == 16
    assert spool_files(tmp_path) == []
    assert sqlite_rows(database) == {key: 2 * count for key, count in EXPECTED.items()}
    assert ledger.spool["spooled_rows"] == 0
    ledger.close()


def test_malformed_files_are_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    prefix = tmp_path / "intercept-spool.jsonl"
    spool = Spool(prefix, TABLES)
    good = spool.write([(("searches", T0, ("web",)), 5)])
    bad_id = "0" * 32
    header = json.dumps({"intercept_spool": 1, "id": bad_id})
    row = {"table": "searches", "hour": T0, "labels": ["web", "extra"], "count": 1}
    (tmp_path / f"intercept-spool.jsonl.{bad_id}").write_text(f"{header}\n{json.dumps(row)}\n")
    (tmp_path / "intercept-spool.jsonl.notanid").write_text("ignored\n")
    database = tmp_path / "ledger.db"
    ledger = Ledger.from_url(f"sqlite:{database}", clock=Clock(), spool=prefix)
    assert ledger.replay_spool() == 5
    assert not good.exists()
    assert (tmp_path / f"intercept-spool.jsonl.{bad_id}.bad").exists()
    assert (tmp_path / "intercept-spool.jsonl.notanid").exists()  # not a spool file name
    assert "is malformed (a row's labels do not fit its table)" in caplog.text
    assert sqlite_rows(database) == {("searches", ("web",)): 5}
    ledger.close()


async def test_run_replays_at_start_and_after_a_successful_flush(tmp_path: Path) -> None:
    prefix = tmp_path / "intercept-spool.jsonl"
    spool = Spool(prefix, TABLES)
    spool.write([(("searches", T0, ("web",)), 5)])
    database = tmp_path / "ledger.db"
    ledger = Ledger.from_url(f"sqlite:{database}", clock=Clock(), spool=prefix)
    task = asyncio.create_task(ledger.run(0.05))
    for _ in range(100):
        if sqlite_rows(database):
            break
        await asyncio.sleep(0.02)
    assert sqlite_rows(database) == {("searches", ("web",)): 5}  # at start
    spool.write([(("searches", T0, ("web",)), 2)])  # a sibling worker stopped meanwhile
    ledger.add_search("web")
    for _ in range(100):
        if sqlite_rows(database)[("searches", ("web",))] == 8:
            break
        await asyncio.sleep(0.02)
    assert sqlite_rows(database) == {("searches", ("web",)): 8}
    assert spool_files(tmp_path) == []
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await ledger.aclose()


def test_prune_removes_old_markers(tmp_path: Path) -> None:
    prefix = tmp_path / "intercept-spool.jsonl"
    Spool(prefix, TABLES).write([(("searches", T0, ("web",)), 5)])
    database = tmp_path / "ledger.db"
    clock = Clock()
    ledger = Ledger.from_url(f"sqlite:{database}", clock=clock, spool=prefix)
    assert ledger.replay_spool() == 5
    marker = "SELECT COUNT(*) FROM ledger_meta WHERE key LIKE 'spool:%'"
    with contextlib.closing(sqlite3.connect(database)) as conn:
        assert conn.execute(marker).fetchone() == (1,)
    clock.now += 3 * DAY
    ledger.prune(1)
    with contextlib.closing(sqlite3.connect(database)) as conn:
        assert conn.execute(marker).fetchone() == (0,)
        assert conn.execute("SELECT key FROM ledger_meta").fetchall() == [("schema_version",)]
    ledger.close()


# --- end to end ----------------------------------------------------------------------------


def serve_env(ledger_url: str, spool: Path | None, admin_port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "INTERCEPT_WARN__SECRET": SECRET,
        "INTERCEPT_LEDGER__URL": ledger_url,
        "INTERCEPT_LEDGER__FLUSH_SECONDS": "0.2",
        "INTERCEPT_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
    }
    if spool is not None:
        env["INTERCEPT_LEDGER__SPOOL"] = str(spool)
    return env


def admin_status(admin_port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{admin_port}/admin/status"
    with urllib.request.urlopen(url, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
        return body


def serve_once(
    env: dict[str, str], *, searches: bool, until: Any = None, admin_port: int = 0
) -> tuple[str, dict[str, Any] | None]:
    """One `intercept serve` (authz mode): optionally 400 counts' worth of searches, then
    (optionally) wait for `until()`, look at /admin/status, SIGTERM; its stderr."""
    port = free_port()
    command = demo_serve("authz", port, "--upstream", "http://127.0.0.1:9")
    with intercept_process(*command, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        ready = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in ready, proc.stderr.read()
        base = f"http://127.0.0.1:{port}/_intercept/authz/search?q="
        if searches:
            statuses = [http_status(base + "blocked+example") for _ in range(BLOCKED)]
            statuses += [http_status(base + "garden+chairs") for _ in range(BENIGN)]
            assert statuses == [403] * BLOCKED + [200] * BENIGN
        if until is not None:
            deadline = time.monotonic() + 20
            while not until():
                assert time.monotonic() < deadline, "the spool was not replayed in 20 s"
                time.sleep(0.1)
        shown = admin_status(admin_port) if admin_port else None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        return proc.stderr.read(), shown


def totals(rows: Summed) -> tuple[int, int]:
    searches = sum(c for (t, _), c in rows.items() if t == "searches")
    interventions = sum(c for (t, _), c in rows.items() if t == "interventions")
    return searches, interventions


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_up(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte; the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def unwritten(stderr: str) -> int:
    """The counts the shutdown could not write, summed over the processes that said so."""
    found = re.findall(r"(\d+) counts could not be written at shutdown", stderr)
    return sum(map(int, found))


@pytest.mark.parametrize("workers", [1, 2])
def test_sqlite_disk_full_at_sigterm_every_count_arrives(
    small_disk: Path, tmp_path: Path, workers: int
) -> None:
    """Start (disk free) and stop once so the ledger exists; fill the disk; searches,
    SIGTERM: the counts are spooled (on the state folder, another filesystem), one file per
    worker; free the disk; start: every count arrives, and /admin/status showed the
    spooled rows."""
    database = small_disk / "ledger.sqlite3"
    state = tmp_path / "state"
    state.mkdir()
    spool = state / "intercept-spool.jsonl"
    admin = free_port()
    env = serve_env(f"sqlite:{database}", spool, admin)
    env["INTERCEPT_WORKERS"] = str(workers)
    serve_once(env, searches=True)
    assert totals(sqlite_rows(database)) == (BLOCKED + BENIGN, BLOCKED)
    filler = fill_up(small_disk)
    stderr, _ = serve_once(env, searches=True)
    assert unwritten(stderr) == 400, stderr
    assert stderr.count("spooled as") == len(spool_files(state)), stderr
    assert 1 <= len(spool_files(state)) <= workers  # an idle worker has nothing to spool
    # still full: the next start cannot replay, and says what waits
    stderr, shown = serve_once(env, searches=False, admin_port=admin)
    assert shown is not None
    assert shown["ledger"]["spooled_counts"] == 400, shown
    assert shown["ledger"]["spooled_rows"] >= 3
    assert 1 <= len(spool_files(state)) <= workers
    filler.unlink()
    stderr, _ = serve_once(
        env, searches=False, until=lambda: spool_files(state) == [], admin_port=admin
    )
    assert totals(sqlite_rows(database)) == (2 * (BLOCKED + BENIGN), 2 * BLOCKED), stderr


def pg_rows(url: str) -> Summed:
    """`summed` for a PostgreSQL database."""
    import psycopg

    with psycopg.connect(url) as conn:
        return summed(conn.execute)


def test_postgresql_down_at_sigterm_every_count_arrives(
    postgres: PostgresServer, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database stops; searches; SIGTERM: spooled (default place: the working
    directory); the database starts; start again: every count arrives."""
    if not postgres.managed:
        pytest.skip("needs a throwaway PostgreSQL cluster to stop and start")
    admin = free_port()
    env = serve_env(pg_url, None, admin)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # the default spool is in the working directory for PostgreSQL
    serve_once(env, searches=True)
    assert totals(pg_rows(pg_url)) == (BLOCKED + BENIGN, BLOCKED)
    postgres.stop()
    try:
        stderr, _ = serve_once(env, searches=True)
    finally:
        postgres.start()
    assert unwritten(stderr) == 400, stderr
    assert len(spool_files(workdir)) == 1
    serve_once(env, searches=False, until=lambda: spool_files(workdir) == [])
    assert totals(pg_rows(pg_url)) == (2 * (BLOCKED + BENIGN), 2 * BLOCKED)
