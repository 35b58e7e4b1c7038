"""A replica's side of the signed rule feed (`rules_feed`; the format: `intercept.rules.feed`).

With `rules_feed` configured, the rules served are `cache_dir/current`, a symbolic link to
`cache_dir/versions/<N>` (a folder of rule files) or to the sealed bundle in it; `state.json`
beside it records the version last served. The link is only ever swapped by a rename, so a
reader sees the old set or the new one.

Start (`prime`, before the rules are read): with a version cached, the server starts from it
at once, whether or not the feed answers. With nothing cached, it fetches the feed first,
retrying with backoff for up to `rules_feed.start_wait_seconds`; if no verified set came by
then, it exits 2 saying so: a replica that has never had a rule set must not run (the
orchestrator restarts it with its own backoff: in Kubernetes the pod stays not ready and
shows CrashLoopBackOff, which is the signal an operator looks for).

Polling (`poll`, a task of the one process per replica that loads rules: the server, or the
supervisor with `--workers N`): every `poll_seconds` (±20% jitter) a GET of the manifest with
`If-None-Match` when the server gave an ETag (a server without ETags, such as `python -m
http.server`, sends the manifest whole each time: a few hundred bytes; `If-Modified-Since` is
not used, its one-second resolution could hide a publish); after a failure the interval
doubles, up to `MAX_BACKOFF` (±20%). Each request has `timeout_seconds` (the payload ten
times that), and no body is read past its limit: 64 KiB for the manifest, 1 KiB for the signature,
`rules_feed.max_bytes` and the manifest's size for the payload. A new version is verified
(signature, version, size and SHA-256, archive names), unpacked into `versions/<N>`, linked
as `current` and reloaded (`Reloadable.reload`: the `Reloader`, or the supervisor's reloads,
which re-fork the workers). Refused, counted once per manifest
(`intercept_rules_feed_refusals_total{reason}`) and shown in `/admin/status`, while the current
set keeps serving:

- `signature`: the signature does not verify with `public_key_file` (fetched twice, a second
  apart, before refusing: a publish may replace manifest and signature between two GETs);
- `download`: the payload is larger than `max_bytes`, cut short, or its size or digest differ
  from the manifest's (retried with backoff: a download may fail once);
- `rollback`: the version is older than the one served (the served version is kept in
  `state.json`, so this holds across restarts);
- `invalid`: the payload is no safe archive, or the rule set fails validation (the reload
  refused it: the link goes back, the version is not tried again).

`intercept_rules_feed_poll_failures_total` counts polls that found the feed unreachable or
answering an HTTP error. `intercept_rules_feed_last_success_timestamp_seconds` is the time of
the last poll that found the replica serving the feed's version (a 304 or a verified fetch),
`intercept_rules_feed_version` the version served. No rule text reaches a log, a metric or
the status; the feed's address is shown without credentials or query.

With `--workers N` the poller runs in the supervisor; it writes its state to
`feed-state.json` in the multiprocess metrics folder for the workers' `/admin/status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from intercept import __version__
from intercept.config import Config, RulesFeed
from intercept.reload import Reloadable
from intercept.research.counting import FeedMetrics
from intercept.rules.feed import (
    BUNDLE_NAME,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE,
    FeedError,
    FeedRefused,
    Manifest,
    check_payload,
    read_public_key,
    unpack,
    verify_manifest,
)

__all__ = ["MAX_BACKOFF", "FeedCache", "FeedPoller", "feed_status", "poll", "prime",
           "shown_url"]  # fmt: skip

MAX_BACKOFF = 600.0
KEEP_VERSIONS = 3  # version folders kept: the one served and the two before it
SIGNATURE_RETRY_SECONDS = 1.0
_STATUS_FILE = "feed-state.json"
_LOG = logging.getLogger("intercept.feed")


def shown_url(url: str) -> str:
    """`url` without user, password or query: what logs and `/admin/status` may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    if parts.username is not None or parts.password is not None:
        netloc = "***@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _jitter(seconds: float) -> float:
    return seconds * random.uniform(0.8, 1.2)


class _Unreachable(Exception):
    """The feed did not answer, or answered an HTTP error; `kind` says which, no more."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# --- the cache on disk -------------------------------------------------------------------------


class FeedCache:
    """`cache_dir`: `versions/<N>/` (verified, unpacked), `current` (the link `rules` names),
    `state.json` (the version served, the time of the last success)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.versions = folder / "versions"
        self.current = folder / "current"

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, **changes: Any) -> None:
        state = {**self.state(), **changes}
        temporary = self.folder / f".state.json.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temporary, self.folder / "state.json")

    def has(self, version: int) -> bool:
        return (self.versions / str(version)).is_dir()

    def target(self, version: int) -> str:
        """What `current` links to for `version`, relative to the cache folder."""
        bundle = self.versions / str(version) / BUNDLE_NAME
        return f"versions/{version}/{BUNDLE_NAME}" if bundle.is_file() else f"versions/{version}"

    def point(self, version: int | None) -> None:
        """Make `current` name `version` (None: remove it), by one rename."""
        if version is None:
            with contextlib.suppress(FileNotFoundError):
                self.current.unlink()
            return
        temporary = self.folder / f".current.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(self.target(version))
        os.replace(temporary, self.current)

    def linked(self) -> int | None:
        """The version `current` names, if it names one that is there."""
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        parts = Path(target).parts
        if len(parts) >= 2 and parts[0] == "versions" and parts[1].isdigit():
            version = int(parts[1])
            return version if self.has(version) else None
        return None

    def stage(self, manifest: Manifest, data: bytes) -> None:
        """Unpack a verified payload into `versions/<N>` (through a temporary folder, so a
        crash leaves no half version under that name)."""
        self.versions.mkdir(parents=True, exist_ok=True)
        final = self.versions / str(manifest.version)
        partial = self.versions / f".{manifest.version}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        try:
            unpack(manifest, data, partial)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        os.replace(partial, final)

    def discard(self, version: int) -> None:
        shutil.rmtree(self.versions / str(version), ignore_errors=True)

    def prune(self, serving: int) -> None:
        """Keep the `KEEP_VERSIONS` newest versions up to `serving`; the others go."""
        found = []
        with contextlib.suppress(OSError):
            found = sorted(int(p.name) for p in self.versions.iterdir() if p.name.isdigit())
        kept = [v for v in found if v <= serving][-KEEP_VERSIONS:]
        for version in found:
            if version not in kept:
                self.discard(version)


# --- polling ----------------------------------------------------------------------------------


@dataclass
class _Fetched:
    manifest: bytes
    signature: bytes
    etag: str | None


@dataclass
class FeedPoller:
    """One replica's poller (see the module docstring)."""

    feed: RulesFeed = field(repr=False)  # its address may hold credentials
    public: Ed25519PublicKey
    metrics: FeedMetrics | None = None
    backoff_base: float | None = None  # half the first retry's delay; None: poll_seconds
    cache: FeedCache = field(init=False)
    serving: int | None = None
    rule_set: str | None = None
    last_success: float | None = None
    last_error: str | None = None
    failures: int = 0
    last_refusal: dict[str, Any] | None = None
    next_poll: float | None = None
    _etag: str | None = None
    _etag_good: bool = False  # the manifest behind the stored ETag is the version served
    _skip: set[bytes] = field(default_factory=set)  # manifests refused for good
    _digest: bytes = b""  # of the manifest and signature last fetched
    _counted: set[tuple[str, bytes]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.cache = FeedCache(self.feed.cache_dir)
        state = self.cache.state()
        linked = self.cache.linked()
        self.serving = linked if linked is not None else state.get("serving")
        named = self.serving in (state.get("serving"), state.get("staged"))
        self.rule_set = state.get("rule_set") if named else None
        self.last_success = state.get("last_success")
        if self.metrics is not None:
            self.metrics.version.set(self.serving or 0)
            if self.last_success:
                self.metrics.last_success.set(self.last_success)

    @property
    def base(self) -> str:
        return self.feed.url if self.feed.url.endswith("/") else self.feed.url + "/"

    def status(self) -> dict[str, Any]:
        """The `feed` section of `/admin/status`."""
        return {
            "url": shown_url(self.feed.url),
            "serving_version": self.serving,
            "rule_set": self.rule_set,
            "last_success_at": self.last_success,
            "last_poll_error": self.last_error,
            "consecutive_failures": self.failures,
            "last_refusal": self.last_refusal,
            "next_poll_at": self.next_poll,
            "poll_seconds": self.feed.poll_seconds,
        }

    def publish_status(self) -> None:
        _STATUS[:] = [self.status()]
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if folder:
            with contextlib.suppress(OSError):
                temporary = Path(folder, f".{_STATUS_FILE}.{os.getpid()}.tmp")
                temporary.write_text(json.dumps(self.status()), encoding="utf-8")
                os.replace(temporary, Path(folder, _STATUS_FILE))

    def confirm(self) -> None:
        """The set `current` names is loaded and serving: record it as served."""
        if self.serving is not None and self.cache.state().get("serving") != self.serving:
            self.cache.save(serving=self.serving, rule_set=self.rule_set, staged=None)
        if self.metrics is not None:
            self.metrics.version.set(self.serving or 0)

    def _session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=self.feed.timeout_seconds)
        headers = {"Accept-Encoding": "identity", "User-Agent": f"intercept/{__version__} feed"}
        return aiohttp.ClientSession(timeout=timeout, headers=headers, auto_decompress=False)

    async def _get(
        self,
        session: aiohttp.ClientSession,
        name: str,
        limit: int,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """(status, body, headers) of GET `name` under the feed; `_Unreachable` for a
        network failure or an HTTP status other than 200 and 304; `ValueError` for a body
        over `limit` bytes (not read further)."""
        options: dict[str, Any] = {"headers": headers or {}}
        if timeout is not None:
            options["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.get(self.base + name, **options) as response:
                if response.status == 304:
                    return 304, b"", response.headers
                if response.status != 200:
                    raise _Unreachable(f"HTTP {response.status} for {name}")
                if response.content_length is not None and response.content_length > limit:
                    raise ValueError(f"{name}: {response.content_length} bytes, over {limit}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > limit:
                        raise ValueError(f"{name}: over {limit} bytes")
                return 200, bytes(body), response.headers
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _Unreachable(f"{type(error).__name__} for {name}") from None

    async def _fetch(self, session: aiohttp.ClientSession, conditional: bool) -> _Fetched | None:
        """The manifest and its signature; None when the server says the manifest has not
        changed since the last fetch."""
        headers = {"If-None-Match": self._etag} if conditional and self._etag else {}
        try:
            status, manifest, answer = await self._get(
                session, MANIFEST, MAX_MANIFEST_BYTES, headers
            )
            if status == 304:
                return None
            _, signature, _ = await self._get(session, SIGNATURE, MAX_SIGNATURE_BYTES)
        except ValueError as error:
            raise _Unreachable(f"oversized ({str(error).split(':')[0]})") from None
        return _Fetched(manifest, signature, answer.get("ETag"))

    async def fetch_new(self) -> Manifest | None:
        """One poll's fetch and checks: None when the feed's version is the one served
        (or a manifest refused before); else the new version, staged in the cache (not
        yet linked). Raises `_Unreachable` or `FeedRefused`."""
        async with self._session() as session:
            fetched = await self._fetch(session, conditional=True)
            if fetched is None:
                if not self._etag_good:
                    return None
                self._succeeded()
                return None
            self._etag, self._etag_good = fetched.etag, False
            self.last_error = None  # the feed answers (the backoff resets on a success)
            digest = hashlib.sha256(fetched.manifest + b"\0" + fetched.signature).digest()
            if digest in self._skip:
                return None
            try:
                try:
                    manifest = verify_manifest(fetched.manifest, fetched.signature, self.public)
                except FeedRefused as refused:
                    if refused.reason != "signature":
                        raise
                    await asyncio.sleep(SIGNATURE_RETRY_SECONDS)  # a publish in between?
                    again = await self._fetch(session, conditional=False)
                    assert again is not None
                    self._etag = again.etag
                    fetched = again
                    digest = hashlib.sha256(again.manifest + b"\0" + again.signature).digest()
                    manifest = verify_manifest(again.manifest, again.signature, self.public)
                if manifest.version == self.serving:
                    self._etag_good = True
                    self._succeeded()
                    return None
                if self.serving is not None and manifest.version < self.serving:
                    raise FeedRefused(
                        "rollback",
                        f"version {manifest.version} is older than version {self.serving}, "
                        "which this replica serves",
                        manifest.version,
                    )
                await self._download(session, manifest)
            except FeedRefused as refused:
                self._refused(refused, digest)
                raise
            self._digest = digest
            return manifest

    async def _download(self, session: aiohttp.ClientSession, manifest: Manifest) -> None:
        if manifest.size > self.feed.max_bytes:
            raise FeedRefused(
                "download",
                f"payload {manifest.payload}: {manifest.size} bytes, over "
                f"rules_feed.max_bytes ({self.feed.max_bytes})",
                manifest.version,
            )
        try:
            _, data, _ = await self._get(
                session, manifest.payload, manifest.size, timeout=self.feed.timeout_seconds * 10
            )
        except ValueError:
            raise FeedRefused(
                "download",
                f"payload {manifest.payload}: longer than the manifest's {manifest.size} bytes",
                manifest.version,
            ) from None
        except _Unreachable as failed:
            if failed.kind.startswith("HTTP"):
                raise
            raise FeedRefused(
                "download", f"payload {manifest.payload}: cut short ({failed.kind})",
                manifest.version,
            ) from None  # fmt: skip
        await asyncio.to_thread(check_payload, manifest, data)
        await asyncio.to_thread(self.cache.stage, manifest, data)

    def _succeeded(self) -> None:
        self.last_success, self.last_error, self.failures = time.time(), None, 0
        if self.metrics is not None:
            self.metrics.last_success.set(self.last_success)

    def _refused(self, refused: FeedRefused, digest: bytes) -> None:
        """Record a refusal; count and log it once per manifest and reason. Any reason but
        a download's is final for that manifest."""
        self.last_refusal = {
            "reason": refused.reason,
            "version": refused.version,
            "at": time.time(),
            "message": str(refused),
        }
        if refused.reason != "download":
            self._skip.add(digest)
        if (refused.reason, digest) in self._counted:
            return
        self._counted.add((refused.reason, digest))
        if self.metrics is not None:
            self.metrics.refusals.labels(refused.reason).inc()
        _LOG.warning(
            "rules feed: refused (%s): %s; still serving version %s",
            refused.reason, refused, self.serving,
        )  # fmt: skip

    async def swap_in(self, reloads: Reloadable, manifest: Manifest) -> None:
        """Link the staged `manifest.version` as `current` and reload; a refused reload
        links the previous version again and is a refusal (`invalid`)."""
        previous, version = self.serving, manifest.version
        self.cache.point(version)
        done = False
        try:
            await reloads.reload(f"rule feed version {version}", force=True)
            problems = reloads.engine.reload_problems
            done = True
        finally:
            if not done:  # cancelled (a stop): the served set stays the one named
                self.cache.point(previous)
                self.cache.discard(version)
        if problems:
            self.cache.point(previous)
            self.cache.discard(version)
            shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
            refused = FeedRefused(
                "invalid", f"version {version} failed validation: {shown}", version
            )
            self._refused(refused, self._digest)
            raise refused
        self.serving, self.rule_set = version, manifest.rule_set
        self._etag_good = True
        self._succeeded()
        self.cache.save(serving=version, rule_set=manifest.rule_set, staged=None,
                        last_success=self.last_success)  # fmt: skip
        self.cache.prune(version)
        if self.metrics is not None:
            self.metrics.version.set(version)
        _LOG.info(
            "rules feed: now serving version %d (rule set %s, %d rules)",
            version, manifest.rule_set, manifest.rules,
        )  # fmt: skip

    async def poll_once(self, reloads: Reloadable | None) -> float:
        """One poll; returns the seconds until the next one. With `reloads` None (the first
        fetch at start) a new version is linked without a reload."""
        try:
            manifest = await self.fetch_new()
            if manifest is not None:
                if reloads is None:
                    self.cache.point(manifest.version)
                    self.serving, self.rule_set = manifest.version, manifest.rule_set
                    self._etag_good = True
                    self._succeeded()
                    self.cache.save(staged=manifest.version, rule_set=manifest.rule_set,
                                    last_success=self.last_success)  # fmt: skip
                else:
                    await self.swap_in(reloads, manifest)
        except _Unreachable as failed:
            return self._failed(failed.kind)
        except FeedRefused as refused:
            if refused.reason == "download":
                self._etag = None  # fetched again, after the backoff
                return self._failed(None)
        except FeedError as error:  # a cache folder that cannot be written
            _LOG.error("rules feed: %s", error)
            return self._failed("cache")
        except OSError as error:
            _LOG.error("rules feed: the cache folder failed (%s)", error.strerror)
            return self._failed("cache")
        return _jitter(self.feed.poll_seconds)

    def _failed(self, kind: str | None) -> float:
        self.failures += 1
        base = self.backoff_base or self.feed.poll_seconds
        delay = min(base * 2.0 ** min(self.failures, 30), MAX_BACKOFF)
        if kind is not None:
            self.last_error = kind
            if self.metrics is not None:
                self.metrics.poll_failures.inc()
            _LOG.warning(
                "rules feed: poll of %s failed (%s); next try in about %.0fs",
                shown_url(self.feed.url), kind, delay,
            )  # fmt: skip
        return _jitter(delay)

    async def run(self, reloads: Reloadable) -> None:
        """Poll until cancelled; a poll that fails unexpectedly is logged (its kind only)
        and the next one runs, after the backoff."""
        self.confirm()
        while True:
            try:
                delay = await self.poll_once(reloads)
            except Exception as error:  # the poller must outlive any one bad poll
                delay = self._failed(f"unexpected {type(error).__name__}")
            self.next_poll = time.time() + delay
            self.publish_status()
            await asyncio.sleep(delay)


_STATUS: list[dict[str, Any]] = []  # this process's poller's latest status


async def poll(config: Config, reloads: Reloadable) -> None:
    """The poller of `config.rules_feed` over `reloads`, until cancelled; nothing to do
    without a feed."""
    if config.rules_feed is None:
        return
    public = read_public_key(config.rules_feed.public_key_file)
    poller = FeedPoller(config.rules_feed, public, reloads.engine.counts.feed())
    poller.publish_status()
    await poller.run(reloads)


def feed_status(config: Config) -> dict[str, Any] | None:
    """The feed's state for `/admin/status`: this process's poller, or with `--workers N`
    in a worker the supervisor's (from the multiprocess folder). None without a feed."""
    if config.rules_feed is None:
        return None
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and os.environ.get("INTERCEPT_WORKER") == "1":
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(Path(folder, _STATUS_FILE).read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
    elif _STATUS:
        return _STATUS[0]
    return {"url": shown_url(config.rules_feed.url), "serving_version": None}  # not yet polled


# --- start ------------------------------------------------------------------------------------


def prime(config: Config) -> None:
    """Before the rules are read: make `current` name the version last served, or with
    nothing cached fetch the feed's (see the module docstring). Raises `FeedError` when no
    verified set came within `start_wait_seconds`."""
    feed = config.rules_feed
    if feed is None:
        return
    public = read_public_key(feed.public_key_file)
    feed.cache_dir.mkdir(parents=True, exist_ok=True)
    cache = FeedCache(feed.cache_dir)
    served = cache.state().get("serving")
    if isinstance(served, int) and cache.has(served):
        cache.point(served)
        _LOG.info("rules feed: starting from cached version %d; polling %s every %gs",
                  served, shown_url(feed.url), feed.poll_seconds)  # fmt: skip
        return
    cache.point(None)
    _LOG.info("rules feed: nothing served yet from %s; fetching %s",
              feed.cache_dir, shown_url(feed.url))  # fmt: skip
    first = FeedPoller(feed, public, backoff_base=0.5)  # retried after 1, 2, 4 s...
    asyncio.run(_first_fetch(first, feed))


async def _first_fetch(poller: FeedPoller, feed: RulesFeed) -> None:
    deadline = time.monotonic() + feed.start_wait_seconds
    while True:
        delay = await poller.poll_once(None)
        if poller.serving is not None:
            _LOG.info("rules feed: fetched version %d", poller.serving)
            return
        left = deadline - time.monotonic()
        if left <= 0:
            refusal = poller.last_refusal
            why = (
                f"refused ({refusal['reason']}): {refusal['message']}"
                if refusal is not None
                else f"unreachable ({poller.last_error})"
            )
            raise FeedError(
                f"rules_feed: no verified rule set within {feed.start_wait_seconds:g}s and "
                f"none cached in {feed.cache_dir} to start from; the feed at "
                f"{shown_url(feed.url)} was {why}"
            )
        await asyncio.sleep(min(delay, left))  # the last try at the deadline
