"""Aggregate counts: how many searches, interventions and clicks, never which ones.

Labels come only from configuration (route names, rule categories and languages, message
variants, link ids), so the number of series is bounded; per-rule counts (shadow hits) go only
to the research ledger, never to Prometheus. Nothing about a request other than those labels is
recorded.

With several worker processes, `PROMETHEUS_MULTIPROC_DIR` names a folder that every worker
writes its values to (prometheus-client's multiprocess mode); `exposition()` then sums them, so
any worker's `/metrics` answers for all.

Every per-request event (each research counter of `intercept.research.counters`: searches,
interventions, clicks, shadow hits; and the decision and upstream times) is tallied in
plain dictionaries under one lock and handed to the metrics and the ledger by `sync()`: before
every scrape and ledger flush, every second in every front door (`intercept serve` and the
middlewares), and whenever 10,000 timings are waiting. Inside the server, calling
prometheus-client and the ledger on every request cost about 10 µs of a benign search's 110
(bench/proxy_bench.py). So a scrape of one worker shows another worker's counts up to a second
late, and a count lands in the ledger hour it was synced in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from intercept import __version__
from intercept.research import metricfiles
from intercept.research.counters import COUNTERS, CounterSpec
from intercept.research.forks import reset_in_child

if TYPE_CHECKING:
    from intercept.research.ledger import Ledger

__all__ = ["CONTENT_TYPE_LATEST", "Counts", "FeedMetrics"]

_DECISION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05,
)  # fmt: skip
_MAX_TIMES = 10_000  # timings held before a sync is forced
_UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


FEED_REFUSALS = ("signature", "download", "rollback", "invalid")


@dataclass(frozen=True, slots=True)
class FeedMetrics:
    """The signed rule feed's metrics (`intercept.server.feedpoll`), set only by the one
    process per replica that polls (the server, or the supervisor of `--workers N`): its
    gauges are `mostrecent`, so a replica shows one series however many workers it has, and
    its values stay through reloads and worker replacements (the supervisor's files are never
    merged away)."""

    version: Gauge
    last_success: Gauge
    refusals: Counter
    poll_failures: Counter


class Counts:
    """The product's metrics, registered in `registry` (a fresh one per test), and the
    research ledger that the same events feed, when one is attached."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, ledger: Ledger | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()  # guards the tallies below
        self._handing = threading.Lock()  # one sync at a time, so none returns before its
        # counts are handed over (a last flush must see everything tallied before it)
        self._due: dict[str, dict[tuple[str, ...], int]] = {c.name: {} for c in COUNTERS}
        self._widths = {c.name: len(c.labels) for c in COUNTERS}
        self._decision_times: list[float] = []
        self._upstream_times: list[float] = []
        self._ledger: Ledger | None = None
        self.ledger = ledger
        r = self.registry
        # the research counters first, in table order (intercept.research.counters)
        self.metrics: dict[str, Counter] = {
            c.name: Counter(c.metric, c.help, c.labels, registry=r)
            for c in COUNTERS
            if c.metric is not None
        }
        self._children: dict[str, dict[tuple[str, ...], Any]] = {c.name: {} for c in COUNTERS}
        # kept for the readers that name them (tests, status pages)
        self.searches = self.metrics["searches"]
        self.interventions = self.metrics["interventions"]
        self.clicks = self.metrics["clicks"]
        self.decision_seconds = Histogram(
            "intercept_decision_seconds",
            "Time to decide a search: extraction, normalization and matching.",
            buckets=_DECISION_BUCKETS,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "intercept_upstream_seconds",
            "Time from sending a request upstream to its response head (proxy mode).",
            buckets=_UPSTREAM_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "intercept_upstream_errors",
            "Requests the upstream did not answer: refused or reset (502), timeout (504).",
            ["kind"],
            registry=r,
        )
        self.upstream_pool_timeouts = Counter(
            "intercept_upstream_pool_timeouts",
            "Requests answered 503 because no upstream pool slot came free within "
            "timeouts.pool (proxy mode), by route kind (search, other): the pool is too "
            "small for the load, not an upstream failure.",
            ["route_kind"],
            registry=r,
        )
        self.build_info = Gauge(
            "intercept_build_info",
            "1, labelled with the version of Intercept that is running.",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(__version__).set(1)
        self.config_cautions = Gauge(
            "intercept_config_cautions",
            "1 for each setting that is wrong for production (intercept.preflight), else 0.",
            ["caution"],
            registry=r,
            multiprocess_mode="max",
        )
        self.rules_loaded = Gauge(
            "intercept_rules_loaded",
            "Rules in the rule set being served.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.rules_info = Gauge(
            "intercept_rules_info",
            "1 for the version (content hash) of the rule set being served.",
            ["version"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.rules_loaded_at = Gauge(
            "intercept_rules_load_timestamp_seconds",
            "When the rule set being served was loaded (Unix time).",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.rule_load_failures = Counter(
            "intercept_rule_load_failures",
            "Rule sets refused on load or reload (the previous set kept serving).",
            registry=r,
        )
        self.ledger_failures = Counter(
            "intercept_ledger_flush_failures",
            "Flushes of the research ledger that failed (counts kept and retried).",
            registry=r,
        )
        self.worker_restarts = Counter(  # counted by the supervisor (intercept.server.supervisor)
            "intercept_worker_restarts",
            "Worker processes started in place of one that died (`workers` above 1).",
            registry=r,
        )
        self._version: str | None = None
        self._upstream_up: Gauge | None = None
        self._feed: FeedMetrics | None = None
        for kind in ("refused", "timeout", "reset"):
            self.upstream_errors.labels(kind)  # present at 0, so rates work from the start
        for route_kind in ("search", "other"):
            self.upstream_pool_timeouts.labels(route_kind)
        reset_in_child(self, Counts._forget)  # the parent counts what it tallied

    def _forget(self) -> None:
        self._lock, self._handing = threading.Lock(), threading.Lock()
        self._due = {name: {} for name in self._due}
        self._decision_times, self._upstream_times = [], []

    @property
    def ledger(self) -> Ledger | None:
        """The research ledger fed by these counts, if any; it takes the tallies in before
        each flush."""
        return self._ledger

    @ledger.setter
    def ledger(self, ledger: Ledger | None) -> None:
        if self._ledger is not None and self._ledger is not ledger:
            self._ledger.before_take = None
        self._ledger = ledger
        if ledger is not None:
            ledger.before_take = self.sync_logged  # a metrics failure must not stop a flush

    def upstream_up(self) -> Gauge:
        """`intercept_upstream_up`, registered on the first call. Only the reverse proxy
        calls it (`intercept.doors.upstream_health`): other front doors have no upstream, and a
        series at 0 there would read as an outage."""
        if self._upstream_up is None:
            self._upstream_up = Gauge(
                "intercept_upstream_up",
                "1 while the upstream answers, 0 while it fails: refused, reset or timed out "
                "on its latest request or probe (proxy mode).",
                registry=self.registry,
                multiprocess_mode="mostrecent",
            )
        return self._upstream_up

    def feed(self) -> FeedMetrics:
        """The rule feed's metrics, registered on the first call: only a server with
        `rules_feed` has them (absent, not 0, elsewhere). Every refusal reason is present
        at 0 from the start, so rates and alerts work before the first one."""
        if self._feed is None:
            r = self.registry
            self._feed = FeedMetrics(
                Gauge(
                    "intercept_rules_feed_version",
                    "The rule feed's version this replica serves (0: none yet).",
                    registry=r,
                    multiprocess_mode="mostrecent",
                ),
                Gauge(
                    "intercept_rules_feed_last_success_timestamp_seconds",
                    "When a poll last found this replica serving the feed's version: a 304 "
                    "or a verified fetch (Unix time).",
                    registry=r,
                    multiprocess_mode="mostrecent",
                ),
                Counter(
                    "intercept_rules_feed_refusals",
                    "Feed versions refused, by reason: signature, download (size, digest, "
                    "cut short), rollback (older than the one served), invalid (the rule set "
                    "fails validation); the set served keeps serving.",
                    ["reason"],
                    registry=r,
                ),
                Counter(
                    "intercept_rules_feed_poll_failures",
                    "Polls of the rule feed that failed: unreachable, timed out, HTTP error.",
                    registry=r,
                ),
            )
            for reason in FEED_REFUSALS:
                self._feed.refusals.labels(reason)
        return self._feed

    def count(self, name: str, *labels: str) -> None:
        """Count one event of research counter `name` (`intercept.research.counters.COUNTERS`) with
        these label values, in its order: tallied now, handed to its metric and its ledger
        table by the next `sync()` (see the module docstring for when that is). KeyError for
        an unknown counter, ValueError for the wrong number of labels."""
        if len(labels) != self._widths[name]:
            raise ValueError(f"counter {name} takes {self._widths[name]} labels")
        self._tally(name, labels)

    def _tally(self, name: str, labels: tuple[str, ...]) -> None:
        """`count()` for callers whose signature fixes the number of labels (the hot path)."""
        with self._lock:
            due = self._due[name]
            due[labels] = due.get(labels, 0) + 1

    def intervention(self, category: str, action: str, language: str, variant: str) -> None:
        """Count one intervention (see the module docstring for when it shows)."""
        self._tally("interventions", (category, action, language, variant))

    def search(self, route: str) -> None:
        """Count one search on `route`."""
        self._tally("searches", (route,))

    def decided(self, seconds: float) -> None:
        """Time one decision (`intercept_decision_seconds`)."""
        with self._lock:
            self._decision_times.append(seconds)
            full = len(self._decision_times) >= _MAX_TIMES
        if full:
            self.sync_logged()

    def answered(self, seconds: float) -> None:
        """Time one upstream answer, to its head (`intercept_upstream_seconds`)."""
        with self._lock:
            self._upstream_times.append(seconds)
            full = len(self._upstream_times) >= _MAX_TIMES
        if full:
            self.sync_logged()

    def sync(self) -> None:
        """Hand the tallied events to the metrics and the ledger. Any thread may call it;
        when it returns, everything tallied before the call has been handed over."""
        with self._handing:
            self._hand_over()

    def _hand_over(self) -> None:
        with self._lock:
            due, self._due = self._due, {name: {} for name in self._due}
            decisions, self._decision_times = self._decision_times, []
            upstream, self._upstream_times = self._upstream_times, []
        for counter in COUNTERS:
            tallies = due[counter.name]
            if tallies:
                self._deliver(counter, tallies)
        for seconds in decisions:
            self.decision_seconds.observe(seconds)
        for seconds in upstream:
            self.upstream_seconds.observe(seconds)

    def _deliver(self, counter: CounterSpec, tallies: dict[tuple[str, ...], int]) -> None:
        """Add `tallies` (counts by label values) to `counter`'s metric and ledger table."""
        metric, table, ledger = self.metrics.get(counter.name), counter.table, self._ledger
        children = self._children[counter.name]
        for key, count in tallies.items():
            if metric is not None:
                child = children.get(key)
                if child is None:
                    child = children[key] = metric.labels(*key) if key else metric
                child.inc(count)
            if ledger is not None and table is not None:
                ledger.add(table, key, count)

    async def sync_every(self, seconds: float = 1.0) -> None:
        """`sync()` every `seconds` until cancelled (so that an idle worker's counts show);
        a failed sync is logged and the next one tried."""
        while True:
            await asyncio.sleep(seconds)
            self.sync_logged()

    def sync_logged(self) -> None:
        """`sync()`, logging a failure (its kind only) instead of raising it."""
        try:
            self.sync()
        except Exception as error:  # e.g. the multiprocess metrics folder became unwritable
            logging.getLogger("intercept").warning(
                "handing counts to the metrics failed (%s)", type(error).__name__
            )

    def click(self, link: str, variant: str) -> None:
        """Count one click on link `link` of a page in `variant`."""
        self._tally("clicks", (link, variant))

    def shadow(self, rule_id: str) -> None:
        """A shadow rule's hit: per rule id, so only in the ledger (bounded by nothing here)."""
        self._tally("shadow_hits", (rule_id,))

    def rules(self, count: int, version: str, loaded_at: float | None = None) -> None:
        """The rule set now being served. With several workers the most recent value of
        each series wins (`mostrecent`), so a reload in the workers outdates what the
        supervisor set before forking; the old version's series is removed (or, where
        series cannot be removed, in multiprocess mode, set to 0)."""
        if self._version is not None and self._version != version:
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                self.rules_info.labels(self._version).set(0)
            else:
                self.rules_info.remove(self._version)
        self._version = version
        self.rules_info.labels(version).set(1)
        self.rules_loaded.set(count)
        self.rules_loaded_at.set(time.time() if loaded_at is None else loaded_at)

    def value(self, name: str, **labels: str) -> float:
        """The current value of a counter sample (for tests and status pages)."""
        self.sync()
        sample = self.registry.get_sample_value(f"intercept_{name}_total", labels)
        return 0.0 if sample is None else sample

    def cautions(self, codes: Iterable[str], every: Iterable[str]) -> None:
        """Set `intercept_config_cautions`: 1 for each of `codes`, 0 for the others of `every`
        (all the cautions there are: `intercept.preflight.CAUTIONS`)."""
        present = set(codes)
        for code in every:
            self.config_cautions.labels(code).set(1 if code in present else 0)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric; summed over all workers in
        multiprocess mode."""
        self.sync()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            with metricfiles.reading():  # no ended worker's files merged meanwhile
                return generate_latest(registry)
        return generate_latest(self.registry)
