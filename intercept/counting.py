"""Aggregate counts: how many searches, interventions and clicks, never which ones.

Labels come only from configuration (route names, rule categories and languages, message
variants, link ids), so the number of series is bounded. Nothing about a request other than
those labels is recorded.
"""

from __future__ import annotations

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

    def value(self, name: str, **labels: str) -> float:
        """The current value of a counter sample (for tests and status pages)."""
        sample = self.registry.get_sample_value(f"intercept_{name}_total", labels)
        return 0.0 if sample is None else sample
