"""Aggregate counts: how many searches, interventions and clicks, never which ones.

Labels come only from configuration (route names, rule categories and languages, message
variants, link ids), so the number of series is bounded. Nothing about a request other than
those labels is recorded.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter

__all__ = ["Counts"]


class Counts:
    """The product's counters, registered in `registry` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.searches = Counter(
            "intercept_searches",
            "Searches seen on configured routes (the denominator).",
            ["route"],
            registry=self.registry,
        )
        self.interventions = Counter(
            "intercept_interventions",
            "Interventions shown or recorded, by the matched rule's category and action.",
            ["category", "action", "language", "variant"],
            registry=self.registry,
        )
        self.clicks = Counter(
            "intercept_clicks",
            "Clicks on the page's links, by link id and message variant.",
            ["link", "variant"],
            registry=self.registry,
        )
        self._interventions: dict[tuple[str, str, str, str], Any] = {}
        self._searches: dict[str, Any] = {}

    def intervention(self, category: str, action: str, language: str, variant: str) -> None:
        """Count one intervention (label children are cached: this runs per request)."""
        key = (category, action, language, variant)
        child = self._interventions.get(key)
        if child is None:
            child = self._interventions[key] = self.interventions.labels(*key)
        child.inc()

    def search(self, route: str) -> None:
        """Count one search on `route`."""
        child = self._searches.get(route)
        if child is None:
            child = self._searches[route] = self.searches.labels(route)
        child.inc()

    def value(self, name: str, **labels: str) -> float:
        """The current value of a counter sample (for tests and status pages)."""
        sample = self.registry.get_sample_value(f"intercept_{name}_total", labels)
        return 0.0 if sample is None else sample
