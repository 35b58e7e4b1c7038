"""The signed rule feed with real processes on loopback: `python -m http.server` serving what
`intercept feed publish` wrote, and two replicas polling it every second, one `intercept
serve` alone and one with `--workers 2`. Each version blocks its own synthetic phrase, so
"serves version N" is a decision, not only a status field. Published v1 then v2, both serve
v2 within the poll interval + 5 s; a tampered payload, a tampered manifest, an older version
(rollback) and a set that fails validation are each refused, counted in `/metrics` and shown
in `/admin/status` while both keep serving v2; a replica restarted with the feed down starts
from its cache, and still refuses the rollback. About 35 s."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from intercept.config import RulesFeed
from intercept.errors import RuleError
from intercept.research.counting import Counts
from intercept.rules import feed
from intercept.server.feedpoll import FeedPoller
from tests.processes import free_port, http_status, intercept_process, running
from tests.server.test_workers import ROOT, serving

POLL = 1.0
CONVERGE = POLL * 1.2 + 5.0  # the poll interval (with its jitter) + 5 s


def _rules(term: str, *, broken: bool = False) -> str:
    text = "list: {name: feedtest, source: synthetic, updated: 2026-12-01}\n"
    text += "defaults: {category: demo, action: block, language: en}\nrules:\n"
    text += f'  - id: F-1\n    terms: ["{term}"]\n'
    if broken:  # a repeated id: refused by every load
        text += '  - id: F-1\n    terms: ["second kettle"]\n'
    return text


@dataclass
class Replica:
    name: str
    public: str
    admin: str
    proc: subprocess.Popen[str]

    def blocks(self, phrase: str) -> bool:
        status = http_status(f"{self.public}/_intercept/authz/search?q={phrase}")
        assert status in (200, 403), status
        return status == 403

    def status(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://{self.admin}/admin/status", timeout=10) as reply:
            answer: dict[str, object] = json.loads(reply.read())
            return answer

    def feed(self) -> dict[str, object]:
        section = self.status()["feed"]
        assert isinstance(section, dict)
        return section

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=10) as reply:
            return str(reply.read().decode())

    def metric(self, name: str) -> float:
        found = re.findall(rf"^{re.escape(name)} (\S+)$", self.metrics(), re.MULTILINE)
        assert len(found) == 1, f"{name}: {found}"  # once per replica, whatever its workers
        return float(found[0])


@contextmanager
def _static_server(folder: Path, port: int) -> Iterator[str]:
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
            "--directory", str(folder)]  # fmt: skip
    with running(argv) as proc:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):  # not listening yet
                if http_status(f"http://127.0.0.1:{port}/feed.json") == 200:
                    break
            assert proc.poll() is None, "the static server stopped"
            assert time.monotonic() < deadline, "the static server never answered"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
        proc.terminate()
        proc.wait(timeout=10)


def _config(tmp: Path, name: str, url: str) -> Path:
    path = tmp / f"{name}.yaml"
    feed_section = {"url": url, "public_key_file": str(tmp / "keys" / "feed.pub"),
                    "poll_seconds": POLL, "cache_dir": str(tmp / f"cache-{name}"),
                    "start_wait_seconds": 5}  # fmt: skip
    config = {"mode": "authz", "messages": str(ROOT / "messages"), "rules_feed": feed_section}
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


@contextmanager
def _single(tmp: Path, url: str) -> Iterator[Replica]:
    """`intercept serve` alone, as replica "one"."""
    public, admin = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-test-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": "null",
    }
    args = ["serve", "--config", str(_config(tmp, "one", url)),
            "--listen", f"127.0.0.1:{public}", "--admin-listen", f"127.0.0.1:{admin}"]  # fmt: skip
    with intercept_process(*args, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        line = proc.stdout.readline()
        assert f"127.0.0.1:{public}" in line, proc.stderr.read()
        yield Replica("one", f"http://127.0.0.1:{public}", f"127.0.0.1:{admin}", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@contextmanager
def _workers(tmp: Path, url: str) -> Iterator[Replica]:
    """`intercept serve --workers 2`, as replica "two"."""
    with serving("--config", str(_config(tmp, "two", url))) as server:
        yield Replica("two", server.public, server.admin, server.proc)
        server.stop()


class Feed:
    """The publisher's side: OUT, published to as `intercept feed publish` does."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.out = tmp, tmp / "out"
        feed.keygen(tmp / "keys")
        self.key = tmp / "keys" / "feed.key"
        self.number = 0

    def _folder(self, text: str) -> Path:
        self.number += 1
        folder = self.tmp / f"rules{self.number}"
        folder.mkdir()
        (folder / "rules.yaml").write_text(text, encoding="utf-8")
        return folder

    def publish(self, term: str) -> int:
        """Publish with the CLI: a set that blocks `term`."""
        folder = self._folder(_rules(term))
        done = subprocess.run(
            [sys.executable, "-m", "intercept", "feed", "publish", str(folder),
             "--key", str(self.key), "-o", str(self.out)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return int(json.loads((self.out / feed.MANIFEST).read_bytes())["version"])

    def publish_tampered(self, term: str, what: str, *, broken: bool = False) -> int:
        """Publish into a copy of OUT, change one byte of `what` (`payload`, `manifest`, or
        nothing), then move the files into OUT, payload first, as a damaged mirror would."""
        stage = self.tmp / f"stage{self.number}"
        shutil.copytree(self.out, stage)

        def accept(_: Path) -> tuple[str, int]:  # a publisher that did not validate
            return "unchecked", 1

        manifest = feed.publish(self._folder(_rules(term, broken=broken)), self.key, stage,
                                accept)  # fmt: skip
        if what != "nothing":
            target = stage / (manifest.payload if what == "payload" else feed.MANIFEST)
            data = bytearray(target.read_bytes())
            middle = len(data) // 2
            data[middle] ^= 0x01 if what == "payload" else 0x02  # keeps the manifest JSON
            target.write_bytes(bytes(data))
        for name in (manifest.payload, feed.SIGNATURE, feed.MANIFEST):
            os.utime(stage / name, (manifest.version, manifest.version))
            os.replace(stage / name, self.out / name)
        return manifest.version

    def restore(self, manifest: bytes, signature: bytes) -> None:
        """Put an earlier manifest and its signature back (a mirror rolled back)."""
        for name, data in ((feed.SIGNATURE, signature), (feed.MANIFEST, manifest)):
            temporary = self.out / f".{name}.tmp"
            temporary.write_bytes(data)
            os.replace(temporary, self.out / name)


def _until(
    replicas: list[Replica], check: Callable[[Replica], bool], seconds: float, what: str
) -> float:
    """Seconds until `check(replica)` holds for every replica."""
    started = time.monotonic()
    while True:
        pending = [r.name for r in replicas if not check(r)]
        if not pending:
            return time.monotonic() - started
        assert time.monotonic() - started < seconds, f"{pending}: never {what}"
        time.sleep(0.1)


def _refusal(replica: Replica) -> str | None:
    last = replica.feed()["last_refusal"]
    return str(last["reason"]) if isinstance(last, dict) else None


def _refused(replica: Replica, reason: str) -> float:
    return replica.metric(f'intercept_rules_feed_refusals_total{{reason="{reason}"}}')


def test_two_replicas_follow_the_feed_and_refuse_what_they_must(tmp_path: Path) -> None:
    publisher = Feed(tmp_path)
    v1 = publisher.publish("amber kettle")
    v1_files = [(publisher.out / n).read_bytes() for n in (feed.MANIFEST, feed.SIGNATURE)]
    port = free_port()
    with ExitStack() as stack:
        url = stack.enter_context(_static_server(publisher.out, port))
        one = stack.enter_context(_single(tmp_path, url))
        two = stack.enter_context(_workers(tmp_path, url))
        both = [one, two]
        for replica in both:  # nothing was cached: each fetched v1 before it started
            assert replica.blocks("amber+kettle")
            assert not replica.blocks("violet+lantern")
            assert replica.feed()["serving_version"] == v1
            assert replica.metric("intercept_rules_feed_version") == v1

        v2 = publisher.publish("violet lantern")
        assert v2 > v1
        took = _until(both, lambda r: r.blocks("violet+lantern") and not r.blocks("amber+kettle"),
                      CONVERGE, "serving v2")  # fmt: skip
        print(f"both replicas serve v2 {took:.2f}s after the publish")
        _until(both, lambda r: r.feed()["serving_version"] == v2, 5, "showing v2")
        for replica in both:
            assert replica.metric("intercept_rules_feed_version") == v2
            assert replica.metric("intercept_rules_feed_last_success_timestamp_seconds") > 0

        cases: list[tuple[Callable[[], object], str]] = [  # (the step, the refusal); a download
            # refused is retried with backoff, so it comes last
            (lambda: publisher.publish_tampered("olive teacup", "manifest"), "signature"),
            (lambda: publisher.restore(*v1_files), "rollback"),
            (lambda: publisher.publish_tampered("olive teacup", "nothing", broken=True),
             "invalid"),
            (lambda: publisher.publish_tampered("olive teacup", "payload"), "download"),
        ]  # fmt: skip
        for step, reason in cases:
            step()
            _until(both, lambda r: _refusal(r) == reason, CONVERGE + 1, reason)  # noqa: B023
            for replica in both:
                assert _refused(replica, reason) == 1, (replica.name, reason)
                assert replica.blocks("violet+lantern")
                assert not replica.blocks("olive+teacup")
                assert replica.feed()["serving_version"] == v2
                assert replica.metric("intercept_rules_feed_version") == v2
        time.sleep(POLL * 2)  # more polls of the same refused manifest count nothing more
        for replica in both:
            counted = [_refused(replica, r) for _, r in cases]
            assert counted == [1, 1, 1, 1], (replica.name, counted)
            text = json.dumps(replica.status()) + replica.metrics()
            for word in ("amber", "violet", "olive", "kettle", "teacup", "lantern"):
                assert word not in text  # no rule text anywhere
        stack.pop_all().close()  # both replicas and the static server stop

    # the feed is down: a restart serves the cached v2 and still knows v1 is a rollback
    with _single(tmp_path, url) as one:
        assert one.blocks("violet+lantern")
        assert not one.blocks("amber+kettle")
        _until([one], lambda r: r.feed()["last_poll_error"] is not None, CONVERGE, "failing")
        assert one.feed()["serving_version"] == v2
        assert one.metric("intercept_rules_feed_poll_failures_total") >= 1
        publisher.restore(*v1_files)
        with _static_server(publisher.out, port):  # back, with v1: older than the cache's v2
            _until([one], lambda r: _refusal(r) == "rollback", 20, "refusing the rollback")
            assert one.blocks("violet+lantern")
            assert one.feed()["serving_version"] == v2


def test_a_replica_with_nothing_cached_and_no_feed_says_so(tmp_path: Path) -> None:
    """Nothing cached, the feed unreachable: `intercept serve` exits 2 after
    `start_wait_seconds` (5 s here), naming the feed's address without its credentials."""
    feed.keygen(tmp_path / "keys")
    port = free_port()  # nothing listens there
    config = _config(tmp_path, "lonely", f"http://user:hunter2secret@127.0.0.1:{port}/feed/")
    env = {**os.environ, "INTERCEPT_LEDGER__URL": "null"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "intercept", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert 4 < time.monotonic() - started < 30
    assert "no verified rule set within 5s" in done.stderr
    assert f"http://***@127.0.0.1:{port}/feed/" in done.stderr
    assert "hunter2secret" not in done.stderr + done.stdout


def test_publish_refuses_a_set_that_fails_validation(tmp_path: Path) -> None:
    publisher = Feed(tmp_path)
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "rules.yaml").write_text(_rules("amber kettle", broken=True), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "intercept", "feed", "publish", str(folder),
         "--key", str(publisher.key), "-o", str(publisher.out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "refused, nothing published" in done.stderr
    assert "F-1" in done.stderr
    assert "second kettle" not in done.stderr  # no rule text
    assert not publisher.out.exists()
    with pytest.raises(RuleError):
        feed.publish(folder, publisher.key, publisher.out, _raise_rule_error)


def _raise_rule_error(_: Path) -> tuple[str, int]:
    raise RuleError([])


# --- the poller against an in-process static server (aiohttp's, which sends ETags) ------------


Seen = list[tuple[str, bool]]
ServerFactory = Callable[..., Awaitable[TestServer]]


async def _in_process(tmp_path: Path, aiohttp_server: ServerFactory) -> tuple[Feed, Seen, str]:
    """A publisher, what its static server saw, and the feed's address."""
    publisher = Feed(tmp_path)
    publisher.out.mkdir()
    seen: Seen = []
    server = await aiohttp_server(await _static_app(publisher.out, seen))
    return publisher, seen, str(server.make_url("/feed/"))


async def _static_app(folder: Path, seen: Seen) -> web.Application:
    """`folder` under /feed/; `seen` gets each request's path and whether it was conditional
    (the 304 itself is decided as the file answer is sent, after the middleware)."""

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append((request.path, "If-None-Match" in request.headers))
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.router.add_static("/feed/", folder)
    return app


async def test_an_unchanged_feed_costs_a_304_and_counts_as_a_success(
    tmp_path: Path, aiohttp_server: ServerFactory
) -> None:
    publisher, seen, url = await _in_process(tmp_path, aiohttp_server)
    version = feed.publish(publisher._folder(_rules("amber kettle")), publisher.key,
                           publisher.out, lambda _: ("x", 1)).version  # fmt: skip
    counts = Counts()
    settings = RulesFeed(url=url, cache_dir=tmp_path / "cache",
                         public_key_file=tmp_path / "keys" / "feed.pub")  # fmt: skip
    public = feed.read_public_key(settings.public_key_file)
    poller = FeedPoller(settings, public, counts.feed())
    await poller.poll_once(None)  # as at start: fetched and linked, no reload
    assert poller.serving == version
    assert (tmp_path / "cache" / "current" / "rules.yaml").is_file()
    first = poller.last_success
    assert first is not None
    seen.clear()
    await poller.poll_once(None)
    assert seen == [("/feed/feed.json", True)]  # answered 304: nothing else was fetched
    assert poller.last_success is not None
    assert poller.last_success > first
    metric = "intercept_rules_feed_last_success_timestamp_seconds"
    assert counts.registry.get_sample_value(metric) == poller.last_success


async def test_a_payload_over_max_bytes_is_refused_before_it_is_fetched(
    tmp_path: Path, aiohttp_server: ServerFactory
) -> None:
    publisher, seen, url = await _in_process(tmp_path, aiohttp_server)
    folder = publisher._folder(_rules("amber kettle"))
    (folder / "noise.yaml").write_bytes(os.urandom(4096).hex().encode())  # incompressible
    manifest = feed.publish(folder, publisher.key, publisher.out, lambda _: ("x", 1))
    assert manifest.size > 4096
    counts = Counts()
    settings = RulesFeed(url=url.rstrip("/"), cache_dir=tmp_path / "cache",
                         public_key_file=tmp_path / "keys/feed.pub", max_bytes=4096)  # fmt: skip
    poller = FeedPoller(settings, feed.read_public_key(settings.public_key_file), counts.feed())
    delay = await poller.poll_once(None)
    assert poller.serving is None
    assert poller.last_refusal is not None
    assert poller.last_refusal["reason"] == "download"
    assert "rules_feed.max_bytes" in poller.last_refusal["message"]
    assert [path for path, _ in seen] == ["/feed/feed.json", "/feed/feed.json.sig"]
    assert delay > settings.poll_seconds  # backed off
    labels = {"reason": "download"}
    assert counts.registry.get_sample_value("intercept_rules_feed_refusals_total", labels) == 1
