"""Is the upstream (the search front-end) answering? The reverse proxy's view, logged and shown.

Observations are the requests relayed (`ok()` when a response head arrives; `failed(kind)`
when the upstream refuses, resets or times out: the events `intercept_upstream_errors_total`
counts) and, with `readiness.upstream`, probes. The upstream is *failing* from a failure until
the next answer: the latest observation decides, with no window or threshold of its own (a
load balancer's fall and rise counts smooth out a single failure). Any HTTP answer, whatever
its status, is an answer.

What it shows:

- `intercept_upstream_up` (1 answering, 0 failing), set when the state changes only, so a
  relayed request costs one attribute test. Registered by the reverse proxy alone: other
  front doors have no upstream, and a 0 there would read as an outage. With several workers
  the most recent change of any worker shows (`mostrecent`).
- The `intercept` log: a WARNING when failures start, then, while they go on, at most one
  WARNING per `LOG_EVERY` seconds (10), each giving the failures since the previous one by
  kind; one INFO line when the upstream answers again after an episode that was warned about
  (an unreported episode's failures go into the next WARNING instead), so even a flapping
  upstream writes at most two lines per interval. The lines name the configured upstream
  address (without user and password) and counts, never anything about a request.
- `/admin/status` (`status()`) and `/readyz` (`intercept.server.admin`).

Readiness (`readiness.upstream: true`): `/readyz` answers 503 while the upstream is failing,
so a load balancer takes the replica out. A replica taken out gets no requests, so requests
alone would never show it the upstream answering again: in this mode `probe_forever` sends
`HEAD readiness.probe_path` every `readiness.probe_seconds`, skipping a round whenever a
request reached the upstream since the last one (a busy replica sends no probes; an idle or
taken-out one does). The first probe goes out at start, so an upstream that is down then is
seen within the connect timeout (a refused connection at once). A probe uses a fresh
connection each time and the requests' own limits (the connect timeout, and the connect and
header timeouts together for the response head), so it fails when a request would. Probes count for
the state, the gauge and the log, not for `intercept_upstream_errors_total`, which counts
requests (the upstream-error alert divides it by requests answered).

One instance per proxy worker, used from its event loop only (no locking).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

if TYPE_CHECKING:
    from prometheus_client import Gauge

    from intercept.config import Config

__all__ = ["EXTRAS_KEY", "LOG_EVERY", "UpstreamHealth", "health_of", "probe_forever", "shown"]

LOG_EVERY = 10.0  # seconds between two WARNING lines about a failing upstream, at least
EXTRAS_KEY = "upstream_health"  # where the proxy keeps its UpstreamHealth in `Engine.extras`
_LOG = logging.getLogger("intercept")


def shown(upstream: str) -> str:
    """The upstream address as logs and status show it: scheme, host and port, never the
    user and password an `http://user:password@host` address may carry."""
    return str(URL(upstream).origin())


def health_of(extras: dict[str, object]) -> UpstreamHealth | None:
    """The reverse proxy's upstream health in an engine's `extras`; None in other modes."""
    health = extras.get(EXTRAS_KEY)
    return health if isinstance(health, UpstreamHealth) else None


class UpstreamHealth:
    """The upstream's state from the latest observation, with the rate-limited log lines and
    the gauge (see the module docstring). `clock` is monotonic seconds (injectable for
    tests of the rate limit)."""

    def __init__(
        self,
        upstream: str,
        up: Gauge | None = None,
        *,
        log_every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = shown(upstream)
        self.log_every = log_every
        self.consecutive_failures = 0  # since the last answer: > 0 is failing
        self.failing_since: float | None = None  # Unix time of this episode's first failure
        self.last_error_kind: str | None = None  # kept after recovery, for the status
        self.probing = False  # a probe task is running (readiness.upstream)
        self.traffic = False  # a request reached the upstream since the probe task last looked
        self._up = up
        self._clock = clock
        self._episode_start = 0.0  # monotonic, for the recovery line's duration
        self._unreported: dict[str, int] = {}  # failures by kind since the last WARNING
        self._last_warning: float | None = None  # monotonic
        self._warned = False  # this episode has had a WARNING
        if up is not None:
            up.set(1)  # answering until shown otherwise

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0

    def ok(self) -> None:
        """A request's response head arrived."""
        self.traffic = True
        if self.consecutive_failures:
            self._recovered()

    def failed(self, kind: str) -> None:
        """A request was refused, reset or timed out (`kind`)."""
        self.traffic = True
        self._failure(kind)

    def probed(self, kind: str | None) -> None:
        """A probe's outcome: None when it got an answer, else the kind of failure."""
        if kind is None:
            if self.consecutive_failures:
                self._recovered()
        else:
            self._failure(kind)

    def status(self) -> dict[str, Any]:
        """What `/admin/status` shows under `upstream`."""
        return {
            "url": self.url,
            "up": not self.failing,
            "failing_since": self.failing_since,
            "consecutive_failures": self.consecutive_failures,
            "last_error_kind": self.last_error_kind,
            "probing": self.probing,
        }

    def _failure(self, kind: str) -> None:
        now = self._clock()
        self.last_error_kind = kind
        if not self.consecutive_failures:
            self.failing_since = time.time()
            self._episode_start = now
            self._warned = False
            if self._up is not None:
                self._up.set(0)
        self.consecutive_failures += 1
        self._unreported[kind] = self._unreported.get(kind, 0) + 1
        if self._last_warning is None or now - self._last_warning >= self.log_every:
            self._last_warning = now
            self._warned = True
            total = sum(self._unreported.values())
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self._unreported.items()))
            self._unreported = {}
            _LOG.warning(
                "upstream %s failing: %d %s since the last report (%s)",
                self.url, total, "failure" if total == 1 else "failures", kinds,
            )  # fmt: skip

    def _recovered(self) -> None:
        failures, self.consecutive_failures = self.consecutive_failures, 0
        self.failing_since = None
        if self._up is not None:
            self._up.set(1)
        if self._warned:
            self._warned = False
            _LOG.info(
                "upstream %s answering again after %d %s in %.0f s",
                self.url, failures, "failure" if failures == 1 else "failures",
                self._clock() - self._episode_start,
            )  # fmt: skip


async def probe_forever(health: UpstreamHealth, config: Config) -> None:
    """Probe the upstream for `health` until cancelled (see the module docstring)."""
    readiness, timeouts = config.readiness, config.timeouts
    url = URL(config.upstream_base + readiness.probe_path, encoded=True)
    limit = timeouts.connect + timeouts.header  # a request's connect, then its head
    health.probing = True
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
            connector=aiohttp.TCPConnector(force_close=True),  # each probe connects afresh
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            headers={"User-Agent": "intercept-upstream-probe"},
            trust_env=False,
        ) as session:
            while True:
                if health.traffic:  # requests were evidence enough
                    health.traffic = False
                else:
                    health.probed(await probe_once(session, url, limit))
                await asyncio.sleep(readiness.probe_seconds)
    finally:
        health.probing = False


async def probe_once(session: aiohttp.ClientSession, url: URL, limit: float) -> str | None:
    """One `HEAD url`: None when an answer came within `limit` seconds, else the kind of
    failure (the session's connect timeout applies too). Anything else that keeps a probe
    from an answer is a failure as well ("refused")."""
    try:
        async with asyncio.timeout(limit), session.head(url, allow_redirects=False):
            return None
    except TimeoutError:
        return "timeout"
    except Exception:  # refused, reset, or whatever else keeps an answer away
        return "refused"
