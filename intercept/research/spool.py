"""The ledger's spool: aggregate counts that could not be written at shutdown, kept on local
disk until a later start adds them to the ledger.

What a spool file holds: exactly the ledger's rows (table, hour bucket, the configured label
values, count), nothing else: no query text, client address, user agent or per-request
identifier, and no time finer than the ledger's hour. Its one extra value is a random id of
the file itself (not of any request), which makes the replay idempotent.

Where: `ledger.spool` is a path prefix (default: `intercept-spool.jsonl` beside a SQLite
ledger file, or in the working directory for PostgreSQL; `/var/lib/intercept` in the shipped
container and systemd unit). Every spooling writes a new file `PREFIX.<32 hex id>`, so
several workers, each spooling its own counts at shutdown, never write the same file and
need no lock.

Format: JSON lines. The first line is `{"intercept_spool": 1, "id": "<hex>"}`, each further
line one row: `{"table": ..., "hour": ..., "labels": [...], "count": ...}`. The file is
written under a hidden temporary name, flushed to disk (fsync) and renamed into place, so a
file under the final name is always complete; a crash while spooling leaves at most a hidden
`.PREFIX.<id>.tmp` that is never read (removed by a successful replay once an hour old).

Replay (`Ledger.replay_spool`): the rows of one file are added in ONE transaction together
with a marker `spool:<id>` in the ledger's `ledger_meta` table; a file whose marker is
already there is not added again. The file is deleted only after that commit. So a crash or
a failure at any point of the replay, or two workers replaying the same file at once, never
count a row twice and never lose one. A file that cannot be parsed is renamed to
`PREFIX.<id>.bad` (kept for the operator, never replayed) and logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["FORMAT", "Spool", "SpoolError", "SpoolFile", "default_spool_path"]

logger = logging.getLogger("intercept.ledger")

FORMAT: Final = 1
DEFAULT_NAME: Final = "intercept-spool.jsonl"
STALE_SECONDS: Final = 3600.0

# (table, hour start in Unix seconds, label values): the ledger's row key
Key = tuple[str, int, tuple[str, ...]]


class SpoolError(Exception):
    """A spool file that is not one Intercept wrote (malformed, or of an unknown format)."""


def default_spool_path(sqlite_file: Path | None) -> Path:
    """`intercept-spool.jsonl` beside a SQLite ledger file, or in the working directory."""
    if sqlite_file is not None:
        return sqlite_file.parent / DEFAULT_NAME
    return Path(DEFAULT_NAME)


@dataclass(frozen=True, slots=True)
class SpoolFile:
    """One spool file's content: its id and its rows (key -> count)."""

    id: str
    rows: dict[Key, int]

    @property
    def counts(self) -> int:
        return sum(self.rows.values())


class Spool:
    """The spool files under one path prefix (see the module docstring). `tables` maps each
    ledger table to its label columns: only rows that fit them are written or read."""

    def __init__(self, prefix: Path, tables: dict[str, tuple[str, ...]]) -> None:
        self.prefix = prefix.absolute()
        self.tables = tables
        self._pattern = re.compile(re.escape(self.prefix.name) + r"\.([0-9a-f]{32})")

    def files(self) -> list[Path]:
        """The complete spool files waiting to be replayed, oldest first."""
        try:
            entries = list(os.scandir(self.prefix.parent))
        except OSError:  # no folder yet, or not readable: nothing to replay here
            return []
        found = []
        for entry in entries:
            if self._pattern.fullmatch(entry.name):
                try:
                    found.append((entry.stat().st_mtime, Path(entry.path)))
                except OSError:  # replayed and deleted by a sibling meanwhile
                    continue
        return [path for _, path in sorted(found)]

    def waiting(self) -> tuple[int, int]:
        """The rows and counts in the spool files now (malformed files count nothing)."""
        rows = counts = 0
        for path in self.files():
            try:
                content = self.read(path)
            except (OSError, SpoolError):
                continue
            rows += len(content.rows)
            counts += content.counts
        return rows, counts

    def write(self, rows: Iterable[tuple[Key, int]]) -> Path:
        """A new spool file holding `rows`; raises OSError when it cannot be written (a
        full or read-only disk), leaving no file under the final name."""
        spool_id = uuid.uuid4().hex
        final = self.prefix.with_name(f"{self.prefix.name}.{spool_id}")
        temporary = self.prefix.with_name(f".{self.prefix.name}.{spool_id}.tmp")
        lines = [json.dumps({"intercept_spool": FORMAT, "id": spool_id})]
        for (table, hour, labels), count in sorted(rows):
            if count:
                row = {"table": table, "hour": hour, "labels": list(labels), "count": count}
                lines.append(json.dumps(row, ensure_ascii=False))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, final)
            _sync_folder(final.parent)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        return final

    def read(self, path: Path) -> SpoolFile:
        """The content of the spool file `path`; SpoolError when it is malformed."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            header = json.loads(lines[0]) if lines else None
            if not isinstance(header, dict) or header.get("intercept_spool") != FORMAT:
                raise SpoolError("not a spool file of format 1")
            spool_id = header.get("id")
            if not isinstance(spool_id, str) or not re.fullmatch(r"[0-9a-f]{32}", spool_id):
                raise SpoolError("no valid id")
            rows: dict[Key, int] = {}
            for line in lines[1:]:
                key, count = self._row(json.loads(line))
                rows[key] = rows.get(key, 0) + count
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SpoolError(type(error).__name__) from None
        return SpoolFile(spool_id, rows)

    def _row(self, row: Any) -> tuple[Key, int]:
        if not isinstance(row, dict) or set(row) != {"table", "hour", "labels", "count"}:
            raise SpoolError("a row is not {table, hour, labels, count}")
        table, hour, labels, count = row["table"], row["hour"], row["labels"], row["count"]
        if table not in self.tables:
            raise SpoolError("a row names an unknown table")
        if not isinstance(labels, list) or len(labels) != len(self.tables[table]):
            raise SpoolError("a row's labels do not fit its table")
        if not all(isinstance(label, str) for label in labels):
            raise SpoolError("a row's labels are not strings")
        if type(hour) is not int or hour % 3600 or type(count) is not int or count <= 0:
            raise SpoolError("a row's hour or count is not valid")
        return (table, hour, tuple(labels)), count

    def quarantine(self, path: Path) -> None:
        """Set a malformed file aside (`.bad`), kept for the operator, never replayed."""
        try:
            path.rename(path.with_name(path.name + ".bad"))
        except OSError:
            logger.exception("research ledger: cannot set the malformed spool file aside")

    def remove(self, path: Path) -> None:
        """Delete a replayed file, and any temporary file a crash left while spooling."""
        path.unlink(missing_ok=True)
        stale = re.compile(r"\." + re.escape(self.prefix.name) + r"\.[0-9a-f]{32}\.tmp")
        now = time.time()
        try:
            for entry in os.scandir(self.prefix.parent):
                # an hour old: a sibling worker spooling right now is never disturbed
                if stale.fullmatch(entry.name) and now - entry.stat().st_mtime > STALE_SECONDS:
                    Path(entry.path).unlink(missing_ok=True)
        except OSError:
            pass


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (the folder's entry reaches the disk)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
