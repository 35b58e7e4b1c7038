"""The research counters, declared once: what is counted, under which labels, and where it goes.

`COUNTERS` is the one list of the product's research counts. From it:

- `intercept.research.counting.Counts` builds a tally per counter (every count goes through the same
  batched path: tallied under one lock on the request path, handed over by `Counts.sync()`)
  and, for a counter with a `metric`, its Prometheus counter (registered in this order, so
  the exposition lists them in this order, before the other metrics);
- `intercept.research.ledger.schema.TABLES` is the counters that have a `table`, in this order, with
  their `labels` as the table's label columns (primary-key order after `hour`);
- the dashboard/alert test (`tests/deploy/test_observability_files.py`) counts one of each and
  checks that the shipped files name only metrics that exist.

Invariants:
- Labels come only from configuration (route names, rule categories and languages, message
  variants, link ids, rule ids): no query text, client address, user agent or per-request
  identifier is ever a label. A counter whose label is not bounded by configuration size
  (`rule_id`, one per rule) has no `metric`: it goes only to the ledger.
- A counter with a `metric` exports `<metric>_total` (and `_created`) labelled by `labels`,
  in this order; one with a `table` stores `(hour, *labels, count)`.
- `page` says whether the counted event concerns a page shown to the searcher: those
  counters carry the message `variant` label, whose value `intercept.research.ledger.NO_PAGE` marks
  an event with no page (a shadow hit, an autocomplete route's empty suggestions), so that
  click-through per variant divides by pages that were shown.

Adding a counter takes exactly:
1. one `CounterSpec(...)` entry at the end of `COUNTERS` below (at the end, so that the
   existing metrics keep their place in the exposition; a new `name`; `metric` None if its
   labels are not bounded by configuration; `table` None if research never needs it);
2. its call site: `counts.count("<name>", *label_values)` where the event happens (the
   request path may call it: one dictionary increment under a lock, about 0.5 µs).
Nothing else: the tally, the metric, the ledger table (created on the next connect with
`CREATE TABLE IF NOT EXISTS`; an added table needs no `SCHEMA_VERSION` bump, which is for
changing an existing table's columns), the upsert, pruning, the spool,
`LedgerReader.daily("<table>", ...)`, and the checks of `tests/research/test_counters.py` and the
dashboard test all follow from the entry. A dashboard panel or alert on the new metric, and
a section of `intercept report` that shows it, are separate, optional changes (the report
gives each table its own meaning: a denominator, a rate).

This module imports nothing from Intercept, so every other module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["COUNTERS", "CounterSpec", "by_name"]


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """One research counter (see the module docstring).

    - `name`: how call sites name it (`Counts.count(name, ...)`); unique.
    - `metric`: the Prometheus counter's name (without `_total`), or None: ledger only.
    - `labels`: label names, in order; the ledger's label columns too.
    - `help`: the metric's help text.
    - `table`: the ledger table, or None: Prometheus only.
    - `page`: the event concerns a page shown (then `variant` is among `labels`).
    """

    name: str
    metric: str | None
    labels: tuple[str, ...]
    help: str
    table: str | None
    page: bool


COUNTERS: Final[tuple[CounterSpec, ...]] = (
    CounterSpec(
        name="searches",
        metric="intercept_searches",
        labels=("route",),
        help="Searches seen on configured routes (the denominator).",
        table="searches",
        page=False,
    ),
    CounterSpec(
        name="interventions",
        metric="intercept_interventions",
        labels=("category", "action", "language", "variant"),
        help="Interventions shown or recorded, by the matched rule's category and action.",
        table="interventions",
        page=True,
    ),
    CounterSpec(
        name="clicks",
        metric="intercept_clicks",
        labels=("link", "variant"),
        help="Clicks on the page's links, by link id and message variant.",
        table="clicks",
        page=True,
    ),
    CounterSpec(
        name="shadow_hits",
        metric=None,  # one series per rule id: bounded by nothing here, so ledger only
        labels=("rule_id",),
        help="Hits of shadow rules (counted, never shown), by rule id.",
        table="shadow_hits",
        page=False,
    ),
    CounterSpec(
        name="warn_continues",
        metric="intercept_warn_continues",
        labels=("category", "variant", "language"),
        help="Searchers who went on to results from a warn page (its continue link or "
        "button), by the warn rule's category, message variant and language.",
        table="warn_continues",
        page=True,
    ),
    CounterSpec(
        name="survey_answers",
        metric="intercept_survey_answers",
        labels=("question", "option", "variant", "language"),
        help="Answers to the page's own survey questions, one per question answered, by "
        "question and option id, message variant and language.",
        table="survey_answers",
        page=True,
    ),
    CounterSpec(
        name="experiment_pages",
        metric=None,  # bookkeeping for reports, not for dashboards
        labels=("experiment", "design"),
        help="Pages shown while an experiment ran, by its name and design fingerprint: the "
        "record that a report over the experiment covers one design.",
        table="experiment_pages",
        page=False,
    ),
)


def by_name(name: str) -> CounterSpec:
    """The counter called `name`; KeyError if there is none."""
    for counter in COUNTERS:
        if counter.name == name:
            return counter
    raise KeyError(name)
