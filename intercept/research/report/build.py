"""Building a report from the ledger's daily counts: sums per period and label, then
suppression of small cells.

For a date range (UTC, both ends included) grouped by day, ISO week or calendar month, and by
chosen intervention dimensions (category, action, language, variant), a report gives searches,
interventions, the intervention rate (interventions / searches), clicks, and the click-through
rate per message variant and link (clicks / interventions shown in that variant) with a 95%
Wilson score interval, and the deterrence outcome per variant: the continue rate (searchers who
went on to the results from a warn page / warn pages shown in that variant), with its interval;
and each variant against the control variant per outcome (`OUTCOMES`): the difference of the
rates with its Newcombe interval and a Holm-corrected two-proportion test (see
`intercept.research.report.statistics`).

Every denominator divides like by like (`intercept.research.report.kinds`): searches,
interventions and the intervention rate count search routes only, from the route kinds of the
configuration (`route_kinds`; else the default routes'). Interventions are the block and warn
pages shown (or their JSON answers), each with a message variant. An autocomplete route's
empty suggestion list shows no page (variant `none`): with the requests on autocomplete
routes it is counted apart (`autocomplete`: no rate, since one search typed may be a request
per keystroke) and takes no part in click-through. `routes` lists the requests per route
with its kind. A route the configuration does not know is of kind `unknown`: while one is in
the range no intervention rate is computed, and the periods' `note` says so. Shadow-rule hits
are recorded, never shown, and are listed separately by `build_shadow_report` (`intercept
report --shadow`), per rule id, so a curator can promote, fix or drop a rule.

A period the ledger holds no data for (it ends before the ledger's first count,
`LedgerData.first_day`) is not a period of small counts: its `periods` row has every count
None, not suppressed, and its `note` says `no data`; the other tables and the chart's series
leave it out. A period the first count falls in says `partial` in its note.

Small cells are suppressed here, as every cell is made (`_Cells`): a count below `k` is never
kept in the model and never used in a derived figure; a rate or interval with a suppressed
numerator or denominator is itself suppressed. This is primary suppression; totals are kept
as they are, so a suppressed cell can sometimes be bounded from a total and the other cells.

Pure functions of `LedgerData`: no I/O; the only clock read is `now` defaulting to the time
of the call, for `generated_at`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Final

from intercept.pages import SURVEY_LINK_ID
from intercept.research.counters import by_name
from intercept.research.report.data import LedgerData
from intercept.research.report.kinds import (
    DEFAULT_KINDS,
    SHADOW_ACTION,
    Kind,
    intervention_kind,
    route_kind,
)
from intercept.research.report.model import (
    DIMENSIONS,
    Report,
    Row,
    Series,
    ShadowReport,
    Table,
    Value,
    has_data,
)
from intercept.research.report.periods import EPOCH, Grouping, Period, period_key, periods
from intercept.research.report.statistics import (
    DECIMALS,
    holm,
    newcombe,
    rate,
    rate_interval,
    two_proportion_p,
)

__all__ = ["SHADOW_ACTION", "build_report", "build_shadow_report"]

# each table's label columns, in the ledger's order, as the counters declare them
_SEARCH_LABELS: Final = by_name("searches").labels
_INTERVENTION_LABELS: Final = by_name("interventions").labels
_CLICK_LABELS: Final = by_name("clicks").labels
_SHADOW_LABELS: Final = by_name("shadow_hits").labels
_CONTINUE_LABELS: Final = by_name("warn_continues").labels
WARN_ACTION: Final = "warn"


class _Cells:
    """Builds rows, applying suppression to every count and derived figure."""

    def __init__(self, k: int) -> None:
        self.k = k

    def count(self, values: dict[str, Value], suppressed: set[str], name: str, n: int) -> None:
        if n < self.k:
            values[name] = None
            suppressed.add(name)
        else:
            values[name] = n

    def ratio(
        self,
        values: dict[str, Value],
        suppressed: set[str],
        name: str,
        numerator: str,
        denominator: str,
        interval: tuple[str, str] | None = None,
    ) -> None:
        names = (name, *(interval or ()))
        num, den = values[numerator], values[denominator]
        if numerator in suppressed or denominator in suppressed:
            for n in names:
                values[n] = None
                suppressed.add(n)
            return
        assert isinstance(num, int)
        assert isinstance(den, int)
        shown = rate(num, den)
        if shown is None:  # undefined (more clicks than pages), not suppressed
            for n in names:
                values[n] = None
            return
        values[name] = shown
        if interval is not None:
            values[interval[0]], values[interval[1]] = rate_interval(num, den)


_PERIOD_COLUMNS: Final = ("period", "start", "end", "searches", "interventions",
                          "intervention_rate", "clicks", "note")  # fmt: skip


class _Notes:
    """The `note` of a period's row: no data before the ledger's first count, a period the
    first count falls in covered in part, no rate while routes of unknown kind are in the
    range. The same words in every format."""

    def __init__(self, data_from: date | None, unknown_routes: Sequence[str]) -> None:
        self.data_from = data_from
        names = ", ".join(unknown_routes)
        self.unknown = (
            f"no intervention rate: requests on routes of unknown kind ({names}); pass --config"
            if unknown_routes
            else ""
        )

    def period(self, period: Period) -> str:
        if self.data_from is None:
            return "no data: the ledger holds no count"
        if period.end < self.data_from:
            return f"no data: the ledger's counts start on {self.data_from.isoformat()}"
        partial = (
            f"partial: the ledger's counts start on {self.data_from.isoformat()}"
            if period.start < self.data_from
            else ""
        )
        return "; ".join(note for note in (partial, self.unknown) if note)


def _period_values(period: Period) -> dict[str, Value]:
    return {"period": period.key, "start": period.start.isoformat(), "end": period.end.isoformat()}


def build_report(
    data: LedgerData,
    *,
    start: date,
    end: date,
    by: Grouping = "week",
    dimensions: Sequence[str] = ("category",),
    k: int = 10,
    control: str = "neutral",
    route_kinds: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> Report:
    """The report over `data` (see the module docstring). `k` >= 1; `control`: the message
    variant every other is compared with; `route_kinds`: route name to kind (`search` or
    `autocomplete`), from the configuration; None: the default routes'."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if start > end:
        raise ValueError(f"the range starts ({start}) after it ends ({end})")
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension {unknown[0]!r}: choose from {', '.join(DIMENSIONS)}")
    dims = tuple(dimensions)
    kinds = DEFAULT_KINDS if route_kinds is None else route_kinds
    spans = periods(start, end, by)
    index = {p.key: i for i, p in enumerate(spans)}
    first_day = (start - EPOCH).days
    data_from = None if data.first_day is None else EPOCH + timedelta(days=data.first_day)
    covered = [has_data(period, data_from) for period in spans]

    def period_of(day: int) -> int | None:
        offset = day - first_day
        if offset < 0 or day > (end - EPOCH).days:
            return None
        return index[period_key(start + timedelta(days=offset), by)]

    requests: dict[tuple[int, Kind], int] = defaultdict(int)  # (period, route kind)
    by_route: dict[str, int] = defaultdict(int)
    for row in data.searches:
        p = period_of(row.day)
        if p is not None:
            route = dict(zip(_SEARCH_LABELS, row.labels, strict=True))["route"]
            requests[(p, route_kind(route, kinds))] += row.count
            by_route[route] += row.count
    unknown_routes = tuple(sorted(r for r in by_route if route_kind(r, kinds) == "unknown"))

    shown: dict[int, int] = defaultdict(int)
    answered: dict[int, int] = defaultdict(int)  # empty suggestion lists, per period
    by_dims: dict[tuple[int, tuple[str, ...]], int] = defaultdict(int)
    by_category: dict[tuple[int, str], int] = defaultdict(int)
    by_variant: dict[tuple[int, str], int] = defaultdict(int)
    warned: dict[tuple[int, str], int] = defaultdict(int)  # warn pages shown: (period, variant)
    columns = _INTERVENTION_LABELS
    for row in data.interventions:
        p = period_of(row.day)
        if p is None:
            continue
        labels = dict(zip(columns, row.labels, strict=True))
        kind = intervention_kind(labels["action"], labels["variant"])
        if kind is None:  # a shadow hit: never shown
            continue
        if kind == "autocomplete":  # no page, so nothing to click through
            answered[p] += row.count
            continue
        shown[p] += row.count
        by_dims[(p, tuple(labels[d] for d in dims))] += row.count
        by_category[(p, labels["category"])] += row.count
        by_variant[(p, labels["variant"])] += row.count
        if labels["action"] == WARN_ACTION:
            warned[(p, labels["variant"])] += row.count

    continued: dict[tuple[int, str], int] = defaultdict(int)  # (period, variant)
    for row in data.warn_continues:
        p = period_of(row.day)
        if p is not None:
            went_on = dict(zip(_CONTINUE_LABELS, row.labels, strict=True))
            continued[(p, went_on["variant"])] += row.count

    clicks: dict[int, int] = defaultdict(int)
    by_click: dict[tuple[int, str, str], int] = defaultdict(int)  # (period, variant, link)
    for row in data.clicks:
        p = period_of(row.day)
        if p is None:
            continue
        clicked = dict(zip(_CLICK_LABELS, row.labels, strict=True))
        link, variant = clicked["link"], clicked["variant"]
        clicks[p] += row.count
        by_click[(p, variant, link)] += row.count

    cells = _Cells(k)
    notes = _Notes(data_from, unknown_routes)

    def intervention_rate(values: dict[str, Value], hidden: set[str]) -> None:
        if unknown_routes:  # not computed: searches on routes of unknown kind are left out
            values["intervention_rate"] = None
        else:
            cells.ratio(values, hidden, "intervention_rate", "interventions", "searches")

    # per period: search routes only; a period the ledger has no data for says so
    period_rows = []
    for i, period in enumerate(spans):
        values, hidden = _period_values(period), set[str]()
        if covered[i]:
            cells.count(values, hidden, "searches", requests.get((i, "search"), 0))
            cells.count(values, hidden, "interventions", shown.get(i, 0))
            intervention_rate(values, hidden)
            cells.count(values, hidden, "clicks", clicks.get(i, 0))
        else:
            values.update(dict.fromkeys(("searches", "interventions", "intervention_rate",
                                         "clicks")))  # fmt: skip
        values["note"] = notes.period(period)
        period_rows.append(Row(values, frozenset(hidden)))
    tables = [
        Table(
            "periods",
            "Searches and interventions per period (search routes)",
            _PERIOD_COLUMNS,
            tuple(period_rows),
        )
    ]

    # per period and chosen dimensions (a full grid: every combination seen in the range)
    if dims:
        combos = sorted({combo for _, combo in by_dims})
        rows = []
        for i, period in enumerate(spans):
            if not covered[i]:
                continue
            for combo in combos:
                values, hidden = _period_values(period), set[str]()
                values.update(zip(dims, combo, strict=True))
                cells.count(values, hidden, "interventions", by_dims.get((i, combo), 0))
                cells.count(values, hidden, "searches", requests.get((i, "search"), 0))
                intervention_rate(values, hidden)
                rows.append(Row(values, frozenset(hidden)))
        tables.append(
            Table(
                "interventions",
                f"Interventions by {', '.join(dims)} (search routes)",
                ("period", "start", "end", *dims, "interventions", "searches", "intervention_rate"),
                tuple(rows),
            )
        )

    # click-through per variant and link
    variants = sorted({v for _, v in by_variant} | {v for _, v, _ in by_click})
    links = sorted({link for _, _, link in by_click})
    ctr_columns = ("variant", "link", "interventions", "clicks", "ctr", "ctr_low", "ctr_high")

    def ctr_row(base: dict[str, Value], variant: str, link: str, pages: int, hits: int) -> Row:
        values, hidden = dict(base), set[str]()
        values.update(variant=variant, link=link)
        cells.count(values, hidden, "interventions", pages)
        cells.count(values, hidden, "clicks", hits)
        cells.ratio(values, hidden, "ctr", "clicks", "interventions", ("ctr_low", "ctr_high"))
        return Row(values, frozenset(hidden))

    overall_base: dict[str, Value] = {
        "period": "all",
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    overall_rows = []
    for variant in variants:
        pages = sum(n for (_, v), n in by_variant.items() if v == variant)
        for link in links:
            hits = sum(n for (_, v, li), n in by_click.items() if v == variant and li == link)
            overall_rows.append(ctr_row(overall_base, variant, link, pages, hits))
    overall = Table(
        "click_through_overall",
        "Click-through per message variant, whole range",
        ("period", "start", "end", *ctr_columns),
        tuple(overall_rows),
    )
    per_period = [
        ctr_row(
            _period_values(period),
            variant,
            link,
            by_variant.get((i, variant), 0),
            by_click.get((i, variant, link), 0),
        )
        for i, period in enumerate(spans)
        if covered[i]
        for variant in variants
        for link in links
    ]
    tables.append(overall)
    tables.append(
        Table(
            "click_through",
            "Click-through per message variant and period",
            ("period", "start", "end", *ctr_columns),
            tuple(per_period),
        )
    )

    tables.extend(_continue_tables(cells, spans, covered, overall_base, warned, continued))
    totals: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)  # outcome: variant: s, n
    for variant in sorted({v for _, v in by_variant} | {v for _, v in warned}):
        pages = sum(n for (_, v), n in by_variant.items() if v == variant)
        links_clicked = [(li, n) for (_, v, li), n in by_click.items() if v == variant]
        survey = sum(n for li, n in links_clicked if li == SURVEY_LINK_ID)
        totals["help_click_through"][variant] = (sum(n for _, n in links_clicked) - survey, pages)
        totals["survey_click_through"][variant] = (survey, pages)
        continues = sum(n for (_, v), n in continued.items() if v == variant)
        totals["continue_rate"][variant] = (continues, sum(
            n for (_, v), n in warned.items() if v == variant))  # fmt: skip
    tables.append(_comparisons(overall_base, totals, control, k))
    tables.extend(_autocomplete_tables(cells, spans, covered, overall_base, requests, answered,
                                       by_route, kinds))  # fmt: skip

    categories = sorted({c for _, c in by_category})
    series = tuple(
        Series(
            category,
            tuple(
                n if covered[i] and (n := by_category.get((i, category), 0)) >= k else None
                for i in range(len(spans))
            ),
        )
        for category in categories
    )
    return Report(
        start=start,
        end=end,
        by=by,
        dimensions=dims,
        k=k,
        generated_at=(now or datetime.now(UTC)).replace(microsecond=0),
        periods=tuple(spans),
        tables=tuple(tables),
        category_series=series,
        ctr_overall=overall,
        data_from=data_from,
        unknown_routes=unknown_routes,
    )


def _continue_tables(
    cells: _Cells,
    spans: Sequence[Period],
    covered: Sequence[bool],
    overall_base: dict[str, Value],
    warned: dict[tuple[int, str], int],
    continued: dict[tuple[int, str], int],
) -> list[Table]:
    """The deterrence outcome per message variant: of the warn pages shown, the share whose
    searcher went on to the results anyway (continues / warn pages), whole range and per
    period the ledger has data for. A variant that showed no warn page in the range has no
    row."""
    variants = sorted({v for _, v in warned} | {v for _, v in continued})
    columns = ("variant", "warn_pages", "continues", "continue_rate", "continue_low",
               "continue_high")  # fmt: skip

    def row(base: dict[str, Value], variant: str, pages: int, went_on: int) -> Row:
        values, hidden = dict(base), set[str]()
        values["variant"] = variant
        cells.count(values, hidden, "warn_pages", pages)
        cells.count(values, hidden, "continues", went_on)
        cells.ratio(values, hidden, "continue_rate", "continues", "warn_pages",
                    ("continue_low", "continue_high"))  # fmt: skip
        return Row(values, frozenset(hidden))

    def total(counts: dict[tuple[int, str], int], variant: str) -> int:
        return sum(n for (_, v), n in counts.items() if v == variant)

    overall = tuple(row(overall_base, v, total(warned, v), total(continued, v)) for v in variants)
    per_period = tuple(
        row(_period_values(period), v, warned.get((i, v), 0), continued.get((i, v), 0))
        for i, period in enumerate(spans)
        if covered[i]
        for v in variants
    )
    head = ("period", "start", "end", *columns)
    whole = "Continues past warn pages per message variant, whole range"
    by_period = "Continues past warn pages per message variant and period"
    return [Table("continues_overall", whole, head, overall),
            Table("continues", by_period, head, per_period)]  # fmt: skip


def _autocomplete_tables(
    cells: _Cells,
    spans: Sequence[Period],
    covered: Sequence[bool],
    base: dict[str, Value],
    requests: Mapping[tuple[int, Kind], int],
    answered: Mapping[int, int],
    by_route: Mapping[str, int],
    kinds: Mapping[str, str],
) -> list[Table]:
    """Autocomplete apart from searches: per period the ledger has data for, its requests
    and the empty suggestion lists answered (no rows when the range has neither); no rate,
    since a request is a keystroke as often as a search. And the requests per route over
    the whole range with each route's kind, so a reader sees what each figure divides by."""
    rows = []
    asked = any(n for (_, kind), n in requests.items() if kind == "autocomplete")
    if asked or any(answered.values()):
        for i, period in enumerate(spans):
            if covered[i]:
                values, hidden = _period_values(period), set[str]()
                cells.count(values, hidden, "requests", requests.get((i, "autocomplete"), 0))
                cells.count(values, hidden, "answered", answered.get(i, 0))
                rows.append(Row(values, frozenset(hidden)))
    by_kind = sorted(by_route, key=lambda r: (_KIND_ORDER.index(route_kind(r, kinds)), r))
    route_rows = []
    for route in by_kind:
        values, hidden = {**base, "route": route, "kind": route_kind(route, kinds)}, set[str]()
        cells.count(values, hidden, "requests", by_route[route])
        route_rows.append(Row(values, frozenset(hidden)))
    head = ("period", "start", "end")
    return [
        Table("autocomplete", "Autocomplete requests and empty suggestion lists answered per "
              "period", (*head, "requests", "answered"), tuple(rows)),
        Table("routes", "Requests per route and its kind, whole range",
              (*head, "route", "kind", "requests"), tuple(route_rows)),
    ]  # fmt: skip


_KIND_ORDER: Final = ("search", "autocomplete", "unknown")


OUTCOMES: Final = ("help_click_through", "survey_click_through", "continue_rate")
"""What the comparisons compare: clicks on help links / pages shown, clicks on the survey link /
pages shown, continues past warn pages / warn pages shown."""


def _comparisons(
    base: dict[str, Value], totals: dict[str, dict[str, tuple[int, int]]], control: str, k: int
) -> Table:
    """Each variant against `control`, per outcome, over the whole range: the difference of
    the rates with its 95% Newcombe interval and the two-proportion test's p-value, Holm-
    corrected across every comparison computed here. A comparison with a count below `k` (or
    a rate that is not defined: more clicks than pages) is not computed, and says why."""
    columns = ("variant", "control", "outcome", "difference", "ci_low", "ci_high", "p_value",
               "p_holm", "note")  # fmt: skip
    rows: list[dict[str, Value]] = []
    tested: list[tuple[int, float]] = []  # (row index, p-value)
    for outcome in OUTCOMES:
        by_variant = totals.get(outcome, {})
        for variant in sorted(v for v in by_variant if v != control):
            values: dict[str, Value] = {**base, "variant": variant, "control": control,
                                        "outcome": outcome}  # fmt: skip
            values.update(dict.fromkeys(columns[3:8]))
            (s1, n1), (s2, n2) = by_variant[variant], by_variant.get(control, (0, 0))
            if n2 == 0:
                shown = "warn page" if outcome == "continue_rate" else "page"
                values["note"] = f"not computed: the control variant showed no {shown}"
            elif min(s1, n1, s2, n2) < k:
                values["note"] = f"not computed: a count below k = {k}"
            elif s1 > n1 or s2 > n2:
                values["note"] = "not computed: more clicks than pages"
            else:
                difference, low, high = newcombe(s1, n1, s2, n2)
                values.update(difference=round(difference, DECIMALS), ci_low=round(low, DECIMALS),
                              ci_high=round(high, DECIMALS), note="")  # fmt: skip
                tested.append((len(rows), two_proportion_p(s1, n1, s2, n2)))
            rows.append(values)
    for (index, p), adjusted in zip(tested, holm([p for _, p in tested]), strict=True):
        rows[index].update(p_value=round(p, DECIMALS), p_holm=round(adjusted, DECIMALS))
    return Table(
        "comparisons",
        f"Each message variant against the control ({control}), whole range",
        ("period", "start", "end", *columns),
        tuple(Row(values) for values in rows),
    )


def build_shadow_report(
    data: LedgerData, *, end: date, days: int = 14, k: int = 10, now: datetime | None = None
) -> ShadowReport:
    """Hits per shadow rule id over the `days` days ending with `end` (included). A rule's
    hits below k are suppressed, and so are its days with hits and first and last day seen."""
    if k < 1 or days < 1:
        raise ValueError("k and days must be at least 1")
    start = end - timedelta(days=days - 1)
    lo, hi = (start - EPOCH).days, (end - EPOCH).days
    hits: dict[str, int] = defaultdict(int)
    seen: dict[str, list[int]] = defaultdict(list)
    rule_at = _SHADOW_LABELS.index("rule_id")
    for row in data.shadow_hits:
        if lo <= row.day <= hi and row.count > 0:
            hits[row.labels[rule_at]] += row.count
            seen[row.labels[rule_at]].append(row.day)
    cells = _Cells(k)
    rows = []
    for rule_id in sorted(hits, key=lambda r: (-hits[r] if hits[r] >= k else 0, r)):
        values: dict[str, Value] = {"rule_id": rule_id}
        hidden: set[str] = set()
        cells.count(values, hidden, "hits", hits[rule_id])
        if "hits" in hidden:
            hidden |= {"days_with_hits", "first_seen", "last_seen"}
            values.update(days_with_hits=None, first_seen=None, last_seen=None)
        else:
            day_list = sorted(set(seen[rule_id]))
            values["days_with_hits"] = len(day_list)
            values["first_seen"] = (EPOCH + timedelta(days=day_list[0])).isoformat()
            values["last_seen"] = (EPOCH + timedelta(days=day_list[-1])).isoformat()
        rows.append(Row(values, frozenset(hidden)))
    table = Table(
        "shadow_hits",
        "Shadow rule hits",
        ("rule_id", "hits", "days_with_hits", "first_seen", "last_seen"),
        tuple(rows),
    )
    return ShadowReport(
        start=start,
        end=end,
        days=days,
        k=k,
        generated_at=(now or datetime.now(UTC)).replace(microsecond=0),
        table=table,
    )
