"""Ledger URLs: which backend a URL names, its SQLite file, and the URL fit for a message.

`sqlite:relative/path.db` (relative to the working directory), `sqlite:///absolute/path.db`
(`sqlite:////absolute/path.db` too), `postgresql://user:password@host:port/database` (also
`postgres://`, and libpq query parameters such as `?sslmode=require`). PostgreSQL needs the
`psycopg` package (version 3). No URL opens anything: a backend connects at its first use.
Every message that names a URL shows it through `redacted_url` (no password).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from intercept.research.ledger.backend import LedgerError, SQLBackend
from intercept.research.ledger.postgres import PostgreSQLBackend
from intercept.research.ledger.sqlite import SQLiteBackend

__all__ = ["backend_for", "redacted_url", "sqlite_path"]


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:` ledger URL, as written (relative paths stay relative)."""
    rest = url[len("sqlite:") :]
    if rest.startswith("//"):
        # sqlite:///abs/path (empty authority); sqlite:////abs/path is accepted too
        authority, _, path = rest[2:].partition("/")
        if authority:
            raise LedgerError(
                "a sqlite URL has no host: use sqlite:relative/path.db or sqlite:///absolute/path.db"
            )
        path = "/" + path.lstrip("/")
    else:
        path = rest
    path = unquote(path.partition("?")[0])
    if not path or path.endswith("/") or path == ":memory:":
        raise LedgerError(f"sqlite ledger URL needs a file name, got {url!r}")
    return Path(path)


def redacted_url(url: str) -> str:
    """`url` with any password replaced by ***, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def backend_for(url: str, *, busy_timeout: float, connect_timeout: float) -> SQLBackend[Any]:
    """The backend of `url` (nothing opened yet); `LedgerError` for a URL it cannot use."""
    if url.startswith("sqlite:"):
        return SQLiteBackend(url, sqlite_path(url).absolute(), busy_timeout)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # noqa: F401
        except ImportError as error:
            raise LedgerError(
                "a postgresql ledger needs the psycopg package: pip install 'psycopg[binary]'"
            ) from error
        return PostgreSQLBackend(url, connect_timeout)
    scheme = url.partition(":")[0] if ":" in url else url
    raise LedgerError(
        f"unknown ledger URL {redacted_url(scheme)!r}: use sqlite:PATH, sqlite:///ABSOLUTE/PATH or "
        "postgresql://user:password@host:port/database"
    )
