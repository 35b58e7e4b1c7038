"""A real PostgreSQL server for tests: the one named by `INTERCEPT_TEST_POSTGRES_URL`, or a
throwaway cluster started from the Debian `postgresql` package's binaries.

The throwaway cluster lives in a temporary folder, listens on 127.0.0.1 at a free port with
`trust` authentication, and is removed afterwards. PostgreSQL refuses to run as root, so as
root every server command runs as the `postgres` system user (created by the Debian package)
through `runuser`. Without the binaries the tests are skipped and say why.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.processes import free_port

# free_port: the suite's one port picker, re-exported for the ledger tests
__all__ = ["PostgresServer", "free_port", "fresh_database", "postgres_server"]

ENV_URL = "INTERCEPT_TEST_POSTGRES_URL"
SKIP_REASON = "Debian package postgresql is not installed (.ci/run installs it)"
START_TIMEOUT = 60.0


def find_bindir() -> Path | None:
    """The folder holding initdb, postgres, pg_ctl and pg_isready, newest version first."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        folder = Path(candidate)
        if all((folder / name).is_file() for name in ("initdb", "postgres", "pg_ctl")):
            return folder
    return None


def with_database(url: str, database: str) -> str:
    """`url` pointing at `database` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@dataclass
class PostgresServer:
    """A running server. `url` reaches its administrative database; `managed` servers were
    started here and can be stopped and started again (`stop()`, `start()`)."""

    url: str
    managed: bool = False
    bindir: Path | None = None
    datadir: Path | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    as_user: tuple[str, ...] = ()

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*self.as_user, *args], capture_output=True, check=False, timeout=START_TIMEOUT
        )

    def start(self) -> None:
        """Start the managed server and wait until it accepts connections."""
        assert self.managed
        assert self.bindir is not None
        assert self.datadir is not None
        log = open(self.datadir / "server.log", "ab")  # noqa: SIM115 - kept by the process
        self.process = subprocess.Popen(
            [
                *self.as_user,
                str(self.bindir / "postgres"),
                "-D",
                str(self.datadir / "data"),
                "-k",
                str(self.datadir),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=100",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        isready = self.bindir / "pg_isready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited on start:\n{self.log()}")
            if isready.is_file():
                done = subprocess.run(
                    [str(isready), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
                )
                ready = done.returncode == 0
            else:  # pragma: no cover - pg_isready ships with the server package
                ready = _port_open(self.port)
            if ready:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not become ready in {START_TIMEOUT} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the managed server (fast shutdown: sessions are disconnected)."""
        assert self.managed
        assert self.bindir is not None
        assert self.datadir is not None
        if self.process is None:
            return
        self._run(
            str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir / "data"), "-m", "fast"
        )
        try:
            self.process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - pg_ctl stop failed
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        if self.datadir is None:
            return ""
        with contextlib.suppress(OSError):
            return (self.datadir / "server.log").read_text(errors="replace")[-4000:]
        return ""


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """The server for a test session: `$INTERCEPT_TEST_POSTGRES_URL` if set, else a
    throwaway cluster (skips the tests when the PostgreSQL binaries are missing)."""
    external = os.environ.get(ENV_URL)
    if external:
        yield PostgresServer(url=external)
        return
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    as_user: tuple[str, ...] = ()
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            import pwd

            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres system user to run the server")
        if runuser is None:  # pragma: no cover - util-linux is essential on Debian
            pytest.skip("running as root and runuser is missing")
        as_user = (runuser, "-u", "postgres", "--")
    datadir = Path(tempfile.mkdtemp(prefix="intercept-pg-"))
    if as_user:
        os.chown(datadir, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(
        url="",
        managed=True,
        bindir=bindir,
        datadir=datadir,
        port=free_port(),
        as_user=as_user,
    )
    try:
        init = server._run(
            str(bindir / "initdb"),
            "-D",
            str(datadir / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stderr.decode(errors='replace')}")
        server.url = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A new, empty database on `server` for one test (dropped afterwards); the URL to it.
    A user without CREATEDB gets the server's own database, emptied of ledger tables."""
    import psycopg

    name = f"ledger_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.errors.InsufficientPrivilege:
        _drop_ledger_tables(server.url)
        yield server.url
        _drop_ledger_tables(server.url)
        return
    try:
        yield with_database(server.url, name)
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(server.url, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _drop_ledger_tables(url: str) -> None:
    import psycopg

    from intercept.research.ledger import TABLES

    with psycopg.connect(url, autocommit=True) as conn:
        for table in (*TABLES, "ledger_meta"):  # every counter's table: a new one too
            conn.execute(f"DROP TABLE IF EXISTS {table}")
