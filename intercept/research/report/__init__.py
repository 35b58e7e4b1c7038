"""Research reports over the ledger: `intercept report`.

For a date range (UTC, both ends included) grouped by day, ISO week or calendar month, and by
chosen intervention dimensions (category, action, language, variant), a report gives searches,
interventions, the intervention rate, clicks, and the click-through rate per message variant
and link with a 95% Wilson score interval; `intercept report --shadow` lists hits per shadow
rule id. Small cells are suppressed: a count below `k` (default 10) is never shown and never
used in a derived figure. Searches and the intervention rate count search routes only;
autocomplete requests and their empty suggestion lists are reported apart, with no rate
(`kinds`); periods before the ledger's first count say `no data`, not `<k`.

The rooms, in the order a report flows through them (each imports only those before it):

- `periods`: the calendar (days grouped by day, ISO week or month);
- `kinds`: which kind of route (search, autocomplete) a count comes from;
- `statistics`: rates and Wilson intervals, pure functions of counts;
- `model`: the rows and tables a report holds, only values that may be shown;
- `data`: reading a range's daily counts from the ledger (the only I/O);
- `build`: counts to the model, with suppression of small cells, and the shadow report;
- `charts` and `html`: the self-contained HTML page with inline SVG;
- `formats`: `render` by format name (CSV and JSON there, HTML from `html`).

The public names of the single module this package replaced (its `__all__`, which holds
everything the command line and the tests import) are re-exported here; the rows, tables,
periods and constants used between the rooms are imported from their room.
"""

from __future__ import annotations

from intercept.research.report.build import build_report, build_shadow_report
from intercept.research.report.data import LedgerData, load_data
from intercept.research.report.formats import FORMATS, render, render_shadow
from intercept.research.report.model import DIMENSIONS, Report, ShadowReport
from intercept.research.report.periods import GROUPINGS
from intercept.research.report.statistics import Z95, wilson

__all__ = [
    "DIMENSIONS",
    "FORMATS",
    "GROUPINGS",
    "Z95",
    "LedgerData",
    "Report",
    "ShadowReport",
    "build_report",
    "build_shadow_report",
    "load_data",
    "render",
    "render_shadow",
    "wilson",
]
