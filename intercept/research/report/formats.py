"""The report's formats by name (`FORMATS`): CSV and JSON here, HTML from
`intercept.research.report.html`.

CSV is one table in long form, its `table` column naming the part (a shadow report: its one
table, without that column); a suppressed cell is `<k`, an undefined rate empty, rates have
six decimals; new columns are added at the end. JSON is one document with the range,
grouping, k, the first day the ledger holds a count for (`data_from`, null when none), the
notes (privacy, small cells, days, click-through, route kinds, where the data start) and each
table as a list of rows; a suppressed value is `null`, with `"suppressed": true` and its
`suppressed_fields` on the row. A period with no data is the same in every format: its
`periods` row has empty counts (`null`, not suppressed) and a `note` that starts `no data`;
the other tables have no row for it. Renderers only write out
the model: they decide nothing about which count may be shown (see
`intercept.research.report.model`), and their output is the same bytes for the same model.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from intercept.research.report.html import html_report, html_shadow
from intercept.research.report.model import (
    PRIVACY_NOTE,
    CellText,
    Report,
    ShadowReport,
    Table,
    Value,
    report_notes,
    stamp,
)

__all__ = ["FORMATS", "render", "render_shadow"]

FORMATS: Final = ("csv", "json", "html")


_CELL: Final = CellText(
    suppressed=lambda k: f"<{k}",
    undefined="",
    rate=lambda rate: f"{rate:.6f}",
    count=str,
    label=str,
)


_CSV_COLUMNS: Final = (
    "table", "period", "start", "end", "category", "action", "language", "variant", "link",
    "searches", "interventions", "intervention_rate", "clicks", "ctr", "ctr_low", "ctr_high",
    "warn_pages", "continues", "continue_rate", "continue_low", "continue_high",
    "control", "outcome", "difference", "ci_low", "ci_high", "p_value", "p_holm", "note",
    "route", "kind", "requests", "answered",
)  # fmt: skip
# (new columns go at the end, so a script that reads columns by position keeps working)


def _csv(tables: Iterable[Table], columns: Sequence[str], k: int, with_table: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for table in tables:
        for row in table.rows:
            writer.writerow(
                table.name if c == "table" and with_table else _CELL.text(row, c, k)
                for c in columns
            )
    return out.getvalue()


def _json_rows(table: Table) -> list[dict[str, Value | bool | list[str]]]:
    rows: list[dict[str, Value | bool | list[str]]] = []
    for row in table.rows:
        item: dict[str, Value | bool | list[str]] = {c: row.values.get(c) for c in table.columns}
        item["suppressed"] = bool(row.suppressed)
        item["suppressed_fields"] = sorted(row.suppressed)
        rows.append(item)
    return rows


def _json(title: str, report: Report | ShadowReport, fields: Mapping[str, object]) -> str:
    """A JSON document: its title, time stamp and date range first, then `fields` in order."""
    document = {
        "report": title,
        "generated_at": stamp(report.generated_at),
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        **fields,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render(report: Report, fmt: str) -> str:
    """The report as `csv`, `json` or `html`."""
    if fmt == "csv":
        return _csv(report.tables, _CSV_COLUMNS, report.k, with_table=True)
    if fmt == "json":
        fields = {
            "timezone": "UTC",
            "by": report.by,
            "dimensions": list(report.dimensions),
            "k": report.k,
            "confidence": 0.95,
            "interval": "Wilson score",
            "data_from": None if report.data_from is None else report.data_from.isoformat(),
            "notes": report_notes(report),
            **{table.name: _json_rows(table) for table in report.tables},
        }
        return _json("intercept research report", report, fields)
    if fmt == "html":
        return html_report(report)
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")


def render_shadow(report: ShadowReport, fmt: str) -> str:
    """The shadow-rule listing as `csv`, `json` or `html`."""
    if fmt == "csv":
        return _csv([report.table], report.table.columns, report.k, with_table=False)
    if fmt == "json":
        fields = {
            "days": report.days,
            "timezone": "UTC",
            "k": report.k,
            "notes": [PRIVACY_NOTE, f"Counts below {report.k} are suppressed (k = {report.k})."],
            "rules": _json_rows(report.table),
        }
        return _json("intercept shadow rule hits", report, fields)
    if fmt == "html":
        return html_shadow(report)
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")
