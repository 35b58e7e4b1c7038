"""The signed rule feed: a rule set published as files any static HTTP server can serve.

`intercept feed keygen DIR` makes an Ed25519 key pair: `DIR/feed.key` (PKCS#8 PEM, mode
0600, never overwritten without `--force`) and `DIR/feed.pub` (SubjectPublicKeyInfo PEM, for
the replicas' `rules_feed.public_key_file`). `intercept feed publish RULES --key DIR/feed.key
-o OUT` writes into OUT:

- the payload, named by version so that a replica never reads a file being replaced:
  `rules-<V>.tar.gz` (kind `folder`: the rule files, `*.yaml`/`*.yml` as `intercept check`
  reads them, as regular files under safe relative names, every modification time set to V)
  or `rules-<V>.bundle` (kind `bundle`: a sealed bundle, byte for byte);
- `feed.json`, the manifest: format marker, version, creation time, payload name, its size
  and SHA-256, kind, the signing key's id, the rule set's content version and rule count
  (never a phrase or a rule's text);
- `feed.json.sig`: the Ed25519 signature over the manifest's exact bytes, base64.

The payload is written first, then the signature and the manifest, each to a temporary name
and renamed. The manifest's modification time is set to its version: servers whose ETag or
Last-Modified has one-second resolution (nginx, `python -m http.server`) still see two
publishes made within one second as different. Versions are Unix seconds, one more than the
previous version found in OUT when the clock has not moved on, so every publish increases
the version, even into an empty folder. The payloads of the last `KEEP_PAYLOADS` versions stay
(a replica that read the manifest just before a publish still finds its payload); older ones
are deleted.

A replica (`intercept.server.feedpoll`) checks, in this order: the signature over the
manifest with its configured public key (`verify_manifest`), the version against the one it
serves, the payload's size and digest (`check_payload`), the archive's member names and types
(`unpack`); then it loads the rules like any reload. Each check raises `FeedRefused` with a
`reason` (signature, download, rollback, invalid) and a message naming no rule text.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from intercept.errors import InterceptError
from intercept.rules.rulefile import RULE_FILE_SUFFIXES
from intercept.rules.seal import is_sealed_bundle

__all__ = ["FORMAT", "KEEP_PAYLOADS", "MANIFEST", "SIGNATURE", "FeedError", "FeedRefused",
           "Manifest", "Validate", "check_payload", "key_id", "keygen", "publish",
           "read_private_key", "read_public_key", "unpack", "verify_manifest"]  # fmt: skip

FORMAT = "intercept-rule-feed/1"
MANIFEST = "feed.json"
SIGNATURE = "feed.json.sig"
PRIVATE_KEY = "feed.key"
PUBLIC_KEY = "feed.pub"
KEEP_PAYLOADS = 3
MAX_MANIFEST_BYTES = 64 * 1024
MAX_SIGNATURE_BYTES = 1024
MAX_MEMBERS = 100_000  # files in one payload archive
UNPACKED_FACTOR = 20  # an archive may unpack to at most this many times its size
_PAYLOAD = re.compile(r"^rules-([0-9]{1,15})\.(tar\.gz|bundle)$")
Kind = Literal["folder", "bundle"]
Reason = Literal["signature", "download", "rollback", "invalid"]
Validate = Callable[[Path], tuple[str, int]]
"""Loads and checks a rule set (a folder, a file, or a sealed bundle) as a reload would:
returns its content version and rule count, raises `RuleError` for a refused set."""


class FeedError(InterceptError):
    """A feed cannot be written or read: a key, a folder, a file."""


class FeedRefused(FeedError):
    """What a replica fetched is refused; `reason` is one of signature, download, rollback,
    invalid (the label of `intercept_rules_feed_refusals_total`); `version` the version the
    manifest claims, when it could be read."""

    def __init__(self, reason: Reason, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.version = version


# --- keys --------------------------------------------------------------------------------------


def key_id(public: Ed25519PublicKey) -> str:
    """16 hex digits naming a public key: the start of SHA-256 over its 32 raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(folder: Path, *, force: bool = False) -> str:
    """Write `folder/feed.key` (mode 0600) and `folder/feed.pub`; returns the key's id.
    An existing private key is never replaced unless `force`: the replicas trust its public
    half, and a new one would make them refuse every later publish until reconfigured."""
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / PRIVATE_KEY, folder / PUBLIC_KEY
    if private_path.exists() and not force:
        raise FeedError(
            f"{private_path} exists already: replicas trust its public half; --force "
            "replaces it (then every replica needs the new feed.pub)"
        )
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    temporary = folder / f".{PRIVATE_KEY}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(private)
    os.chmod(temporary, 0o600)  # whatever the umask
    os.replace(temporary, private_path)
    _write_atomic(public_path, public)
    return key_id(key.public_key())


def _read_key(path: Path, what: str, load: Callable[[bytes], object]) -> object:
    try:
        return load(path.read_bytes())
    except OSError as error:
        raise FeedError(f"{path}: cannot read the {what} ({error.strerror})") from None
    except (ValueError, TypeError):
        raise FeedError(f"{path}: not a PEM {what} (unencrypted)") from None


def read_private_key(path: Path) -> Ed25519PrivateKey:
    key = _read_key(path, "private key", lambda raw: serialization.load_pem_private_key(raw, None))
    if not isinstance(key, Ed25519PrivateKey):
        raise FeedError(f"{path}: not an Ed25519 key (`intercept feed keygen` makes one)")
    return key


def read_public_key(path: Path) -> Ed25519PublicKey:
    key = _read_key(path, "public key", serialization.load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise FeedError(f"{path}: not an Ed25519 public key (`intercept feed keygen` makes one)")
    return key


# --- the manifest ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manifest:
    """What `feed.json` says (see the module docstring)."""

    version: int
    created: str  # ISO 8601, UTC
    kind: Kind
    payload: str
    size: int
    sha256: str
    key_id: str
    rule_set: str  # the rule set's content version, as `/admin/status` shows it
    rules: int
    format: str = FORMAT

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """The manifest in `data` (already verified), or `FeedRefused` (invalid)."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                raise ValueError("format")
            manifest = cls(**raw)
            if not (
                isinstance(manifest.version, int)
                and manifest.version > 0
                and manifest.kind in ("folder", "bundle")
                and isinstance(manifest.size, int)
                and manifest.size >= 0
                and re.fullmatch(r"[0-9a-f]{64}", str(manifest.sha256))
                and _payload_version(str(manifest.payload)) == manifest.version
            ):
                raise ValueError("fields")
        except (ValueError, TypeError):
            raise FeedRefused(
                "invalid", f"the manifest is signed but not an {FORMAT} manifest"
            ) from None
        return manifest


def _payload_version(name: str) -> int | None:
    found = _PAYLOAD.fullmatch(name)
    return int(found.group(1)) if found else None


def verify_manifest(data: bytes, signature: bytes, public: Ed25519PublicKey) -> Manifest:
    """The manifest in `data` if `signature` (the `.sig` file's content) is the configured
    key's signature over exactly these bytes; else `FeedRefused("signature")`."""
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
        public.verify(raw, data)
    except (InvalidSignature, binascii.Error, ValueError):
        claimed = _claimed_version(data)
        if _claimed(data, "format") != FORMAT:
            raise FeedRefused(
                "signature",
                f"{MANIFEST} is no {FORMAT} manifest, and not signed: a wrong rules_feed.url, "
                "or a server answering with another page",
            ) from None
        raise FeedRefused(
            "signature",
            "the manifest's signature does not verify with rules_feed.public_key_file "
            f"(key {key_id(public)}; the manifest names key {_claimed_key(data)})",
            claimed,
        ) from None
    return Manifest.parse(data)


def _claimed(data: bytes, field: str) -> object:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return json.loads(data).get(field)
    return None


def _claimed_version(data: bytes) -> int | None:
    value = _claimed(data, "version")
    return value if isinstance(value, int) else None


def _claimed_key(data: bytes) -> str:
    value = _claimed(data, "key_id")
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{16}", value) else "?"


def check_payload(manifest: Manifest, data: bytes) -> None:
    """`FeedRefused("download")` unless `data` has the manifest's size and SHA-256."""
    if len(data) != manifest.size:
        raise FeedRefused(
            "download",
            f"payload {manifest.payload}: {len(data)} bytes, the manifest says {manifest.size}",
            manifest.version,
        )
    if hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise FeedRefused(
            "download",
            f"payload {manifest.payload}: its SHA-256 differs from the manifest's",
            manifest.version,
        )


# --- unpacking (replicas) ---------------------------------------------------------------------

BUNDLE_NAME = "rules.bundle"


def unpack(manifest: Manifest, data: bytes, target: Path) -> Path:
    """Write a verified payload into the new folder `target` (its parent exists); returns
    what `rules` must name: the folder, or the bundle file in it. An archive with anything
    but regular rule files under plain relative names (a link, a device, an absolute name, a
    `..`), too many members or too large unpacked is refused whole (`invalid`)."""
    target.mkdir()
    if manifest.kind == "bundle":
        (target / BUNDLE_NAME).write_bytes(data)
        return target / BUNDLE_NAME
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = archive.getmembers()
            _check_members(manifest, members, len(data))
            archive.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as error:
        raise FeedRefused(
            "invalid", f"payload {manifest.payload}: {type(error).__name__}", manifest.version
        ) from None
    return target


def _check_members(manifest: Manifest, members: list[tarfile.TarInfo], packed: int) -> None:
    def refuse(why: str) -> FeedRefused:
        return FeedRefused("invalid", f"payload {manifest.payload}: {why}", manifest.version)

    if not members:
        raise refuse("an empty archive")
    if len(members) > MAX_MEMBERS:
        raise refuse(f"more than {MAX_MEMBERS} files")
    if sum(member.size for member in members) > max(packed, 1 << 20) * UNPACKED_FACTOR:
        raise refuse(f"unpacks to more than {UNPACKED_FACTOR} times its size")
    for member in members:
        if not _safe_name(member.name):
            raise refuse("a member name that is absolute, empty or has '..'")
        if not (member.isfile() or member.isdir()):
            raise refuse("a member that is neither a file nor a folder (a link, a device)")


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


# --- publishing (curators) ------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes, *, mtime: int | None = None) -> None:
    """Written whole under a temporary name, then renamed: a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    if mtime is not None:
        os.utime(temporary, (mtime, mtime))
    os.replace(temporary, path)


def _previous_version(out: Path) -> int:
    """The highest version in `out`: its manifest's (unverified: only ever raises the next
    version) and its payloads' names."""
    found = [0]
    with contextlib.suppress(OSError):
        found += [v for p in out.iterdir() if (v := _payload_version(p.name)) is not None]
    with contextlib.suppress(OSError):
        found.append(_claimed_version((out / MANIFEST).read_bytes()) or 0)
    return max(found)


def _rule_files(root: Path) -> list[tuple[str, Path]]:
    """(name in the archive, file) for every rule file `read_rules` would read under
    `root`: a file is packed under its own name."""
    if root.is_file():
        return [(root.name, root)]
    found = []
    for folder, folders, files in os.walk(root):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(RULE_FILE_SUFFIXES):
                path = Path(folder, name)
                found.append((path.relative_to(root).as_posix(), path))
    return found


def _pack(root: Path, version: int) -> bytes:
    """A gzipped tar of the rule files under `root`: regular files only (a linked file is
    packed as the file it names), mode 0644, owner 0, modification time `version`."""
    files = _rule_files(root)
    if not files:
        raise FeedError(f"{root}: no rule files (*.yaml, *.yml)")
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=version) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, version
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def publish(
    rules: Path,
    key_file: Path,
    out: Path,
    validate: Validate,
    *,
    now: float | None = None,
) -> Manifest:
    """Publish the rule set at `rules` (a rule file or folder, or a sealed bundle) into
    `out` (see the module docstring), after `validate` accepted it: a refused set raises
    its `RuleError` and nothing is written."""
    key = read_private_key(key_file)
    if not rules.exists():
        raise FeedError(f"{rules}: no such file or folder")
    rule_set, count = validate(rules)
    out.mkdir(parents=True, exist_ok=True)
    version = max(_previous_version(out) + 1, int(time.time() if now is None else now))
    if rules.is_file() and is_sealed_bundle(rules):
        kind: Kind = "bundle"
        data, payload = rules.read_bytes(), f"rules-{version}.bundle"
    else:
        kind, data, payload = "folder", _pack(rules, version), f"rules-{version}.tar.gz"
    _write_atomic(out / payload, data, mtime=version)
    manifest = Manifest(
        version=version,
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        kind=kind,
        payload=payload,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        key_id=key_id(key.public_key()),
        rule_set=rule_set,
        rules=count,
    )
    body = manifest.to_bytes()
    signature = base64.b64encode(key.sign(body)) + b"\n"
    _write_atomic(out / SIGNATURE, signature, mtime=version)
    _write_atomic(out / MANIFEST, body, mtime=version)
    _prune(out)
    return manifest


def _prune(out: Path) -> None:
    """Delete payloads older than the last `KEEP_PAYLOADS` versions."""
    versions = sorted((v, p) for p in out.iterdir() if (v := _payload_version(p.name)))
    for _, path in versions[:-KEEP_PAYLOADS]:
        with contextlib.suppress(OSError):
            path.unlink()
