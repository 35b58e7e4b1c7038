"""Compiled rule sets on disk: what makes a warm start fast and lets a reload compile away
from the serving process.

An entry is one compiled set (`RuleSet` or `SealedRuleSet`) under the digest of what it was
compiled from (`source_digest`: every file under the rule paths, by relative name, size and
bytes, plus a salt naming the Intercept version, the Python version and the matcher's
version, so an upgrade never reads an entry written by another build). An entry also says
until which UTC day it holds (`valid_until`: the earliest `expires` among its rules; from
that day on the set compiled from the same files differs) and is passed over after it.

Entries are pickles, so the folder is trusted like the configuration: it is created 0700,
entries are written 0600 (write to a temporary name, then rename: a reader never sees half
an entry), and a folder or entry another user could write is never read (`CacheError`
once, then the cache is off). Only the newest `KEEP` entries are kept. A sealed set's entry
holds what its bundle and key file hold (keyed hashes and the key), no phrase.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle  # noqa: TID251 - our own entries only, in a private folder (see above)
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["KEEP", "CacheError", "CompiledCache", "Entry", "source_digest", "source_files",
           "valid_until"]  # fmt: skip

KEEP = 2  # entries kept: the serving set and the one before (a rollback starts warm)
_MAGIC = b"intercept-compiled 1\n"


class CacheError(Exception):
    """The cache folder cannot be used safely (owner, permissions) or at all."""


def source_files(root: Path) -> Iterator[Path]:
    """Every file under `root` (or `root` itself), sorted, dot files left out; folders that
    vanish while walked (a checkout, an rsync) are passed over."""
    if root.is_file():
        yield root
    elif root.is_dir():
        found = []
        for folder, _, names in os.walk(root, onerror=lambda _error: None):
            found += [Path(folder, name) for name in names if not name.startswith(".")]
        yield from sorted(found)


def source_digest(roots: Iterable[Path], salt: str) -> str:
    """The SHA-256 of every regular file under `roots` (relative name, size, bytes) and
    `salt`. Passed over: what is under a dot folder (`.git`, a ConfigMap's `..data`: its
    files are read through their links), what is no regular file (a FIFO would block, a
    dangling link cannot be read) and a file that vanishes meanwhile (the digest differs
    all the same)."""
    digest = hashlib.sha256(salt.encode())
    for number, root in enumerate(roots):
        for path in source_files(root):
            name = str(path.relative_to(root)) if path != root else path.name
            if any(part.startswith(".") for part in Path(name).parts[:-1]):
                continue
            try:
                if not path.is_file():
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            digest.update(f"\0{number}\0{name}\0{len(data)}\0".encode())
            digest.update(data)
    return digest.hexdigest()


def valid_until(expiries: Iterable[str | None]) -> str | None:
    """The first UTC day (YYYY-MM-DD) on which a set with these rule expiries changes."""
    days = [day for day in expiries if day]
    return min(days) if days else None


@dataclass(frozen=True, slots=True)
class Entry:
    """What an entry's header says about its set."""

    digest: str
    version: str
    rules: int
    valid_until: str | None


def _private(path: Path, *, folder: bool) -> None:
    """Raise `CacheError` unless `path` belongs to this user and no one else may write it."""
    info = path.lstat()
    kind = stat.S_ISDIR if folder else stat.S_ISREG
    if not kind(info.st_mode):
        raise CacheError(f"{path} is not a {'folder' if folder else 'regular file'}")
    if info.st_uid != os.geteuid():
        raise CacheError(f"{path} belongs to another user (uid {info.st_uid})")
    if info.st_mode & 0o022:
        raise CacheError(f"{path} may be written by others (mode {info.st_mode & 0o777:o})")


class CompiledCache:
    """Compiled sets in `folder` by source digest (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def check(self) -> None:
        """Create the folder if need be; raise `CacheError` unless it is private to this
        user, `OSError` when it cannot be made."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private(self.folder, folder=True)

    def _path(self, digest: str) -> Path:
        return self.folder / f"{digest}.rules"

    def get(self, digest: str, today: str) -> Any | None:
        """The set stored under `digest` if it holds on `today`, else None. Raises
        `CacheError` for an unsafe folder or entry; an entry that cannot be read whole (cut
        short, another format) is removed and None."""
        return self._read(digest, today, load=True)

    def has(self, digest: str, today: str) -> bool:
        """Whether an entry for `digest` that holds on `today` is there (its header read,
        not its set). Raises `CacheError` as `get` does."""
        return self._read(digest, today, load=False) is not None

    def _read(self, digest: str, today: str, *, load: bool) -> Any | None:
        path = self._path(digest)
        if not self.folder.exists():
            return None
        _private(self.folder, folder=True)
        if not path.exists():
            return None
        _private(path, folder=False)
        try:
            with path.open("rb") as file:
                header = self._header(file.readline(), file.readline())
                if header is None or header.digest != digest:
                    raise ValueError("not an entry of this digest")
                if header.valid_until is not None and today >= header.valid_until:
                    return None
                return pickle.load(file) if load else header
        except Exception:  # any entry that cannot be read is a miss, never a failed start
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    @staticmethod
    def _header(magic: bytes, line: bytes) -> Entry | None:
        if magic != _MAGIC:
            return None
        fields = json.loads(line)
        return Entry(fields["digest"], fields["version"], fields["rules"], fields["valid_until"])

    def put(self, digest: str, rules: Any, expiries: Iterable[str | None]) -> Path:
        """Store `rules` (a compiled set with `version` and a length) under `digest`; keep
        the newest `KEEP` entries. Returns the entry's path. Raises `CacheError`, `OSError`."""
        self.check()
        header = {"digest": digest, "version": rules.version, "rules": len(rules),
                  "valid_until": valid_until(expiries)}  # fmt: skip
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".entry-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(_MAGIC)
                file.write(json.dumps(header).encode() + b"\n")
                pickle.dump(rules, file, protocol=pickle.HIGHEST_PROTOCOL)
            path = self._path(digest)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._prune(keep=path)
        return path

    def _prune(self, keep: Path) -> None:
        """The newest `KEEP` entries stay; so do temporary files and a compile's folders
        (`intercept.compiling`) younger than an hour (a writer may be at work), older ones
        were left by a writer that died."""
        entries = []
        for path in (*self.folder.glob(".entry-*"), *self.folder.glob(".compile-*")):
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > 3600:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        for path in self.folder.glob("*.rules"):
            with contextlib.suppress(OSError):
                entries.append((path.stat().st_mtime_ns, path))
        entries.sort(reverse=True)
        for _, path in entries[KEEP:]:
            if path != keep:
                with contextlib.suppress(OSError):
                    path.unlink()
