"""`intercept report`: numbers, suppression, Wilson intervals and every format, run through the
command line over a real SQLite ledger with known counts."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from intercept.cli import main
from intercept.config import load_config
from intercept.research.ledger import DAY, Ledger, LedgerReader
from intercept.research.report import build_report, build_shadow_report, load_data, render
from intercept.research.report.statistics import holm, two_proportion_p

W45 = date(2026, 11, 2)  # a Monday: ISO week 2026-W45
W46 = date(2026, 11, 9)
OUTSIDE = date(2026, 11, 20)


def at(day: date, hour: int = 12) -> float:
    return (day - date(1970, 1, 1)).days * DAY + hour * 3600 + 30


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def add(ledger: Ledger, method: str, times: int, *labels: str) -> None:
    for _ in range(times):
        getattr(ledger, method)(*labels)


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    """A ledger with known counts; several are below k = 10."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    clock.now = at(W45, 1)
    add(ledger, "add_search", 400, "search")
    clock.now = at(W45, 23)  # same day, another hour
    add(ledger, "add_search", 100, "autocomplete")
    add(ledger, "add_intervention", 60, "demo", "block", "en", "harm")
    add(ledger, "add_intervention", 40, "demo", "block", "en", "help")
    add(ledger, "add_intervention", 5, "trial", "warn", "fi", "harm")  # below k
    add(ledger, "add_intervention", 30, "demo", "shadow", "en", "none")  # never shown
    add(ledger, "add_click", 20, "survey", "harm")
    add(ledger, "add_click", 4, "survey", "help")  # below k
    add(ledger, "add_click", 12, "helpline", "harm")
    clock.now = at(W46 + timedelta(days=3))
    add(ledger, "add_search", 300, "search")
    add(ledger, "add_intervention", 40, "demo", "block", "en", "harm")
    add(ledger, "add_intervention", 15, "trial", "warn", "fi", "harm")
    add(ledger, "add_click", 10, "survey", "harm")
    clock.now = at(OUTSIDE)  # outside the range asked for
    add(ledger, "add_search", 1000, "search")
    add(ledger, "add_intervention", 999, "demo", "block", "en", "harm")
    add(ledger, "add_click", 500, "survey", "harm")
    assert ledger.flush_now()
    ledger.close()
    return url


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def report_json(capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> dict[str, Any]:
    code, out, err = run(
        capsys, "report", "--ledger", url, "--from", "2026-11-02", "--to", "2026-11-15",
        "--format", "json", *extra,
    )  # fmt: skip
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


def pick(rows: list[dict[str, Any]], **labels: str) -> dict[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, found)
    return found[0]


# --- the report -----------------------------------------------------------------------------


def test_json_by_week_and_category(ledger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(capsys, ledger_url, "--by", "week", "--dimensions", "category")
    assert (doc["from"], doc["to"], doc["by"], doc["k"]) == ("2026-11-02", "2026-11-15", "week", 10)
    assert doc["dimensions"] == ["category"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["generated_at"])
    assert any("Aggregate counts only" in note for note in doc["notes"])

    w45, w46 = doc["periods"]
    assert (w45["period"], w45["start"], w45["end"]) == ("2026-W45", "2026-11-02", "2026-11-08")
    # shadow interventions are not pages shown: 60 + 40 + 5; searches on search routes only:
    # the 100 autocomplete requests are counted apart
    assert (w45["searches"], w45["interventions"], w45["clicks"]) == (400, 105, 36)
    assert w45["intervention_rate"] == 0.2625
    assert w45["suppressed"] is False
    assert (w46["searches"], w46["interventions"], w46["clicks"]) == (300, 55, 10)
    assert w46["intervention_rate"] == pytest.approx(55 / 300, abs=1e-6)

    rows = doc["interventions"]
    assert len(rows) == 4  # every category in every period
    demo45 = pick(rows, period="2026-W45", category="demo")
    assert (demo45["interventions"], demo45["searches"], demo45["intervention_rate"]) == (
        100,
        400,
        0.25,
    )
    trial45 = pick(rows, period="2026-W45", category="trial")  # 5 < k
    assert trial45["interventions"] is None
    assert trial45["intervention_rate"] is None
    assert trial45["suppressed"] is True
    assert trial45["suppressed_fields"] == ["intervention_rate", "interventions"]
    assert trial45["searches"] == 400
    trial46 = pick(rows, period="2026-W46", category="trial")
    assert (trial46["interventions"], trial46["intervention_rate"]) == (15, 0.05)


def test_click_through_with_wilson_intervals(
    ledger_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = report_json(capsys, ledger_url)
    overall = doc["click_through_overall"]
    assert {(r["variant"], r["link"]) for r in overall} == {
        ("harm", "helpline"),
        ("harm", "survey"),
        ("help", "helpline"),
        ("help", "survey"),
    }
    harm_survey = pick(overall, variant="harm", link="survey")
    assert (harm_survey["interventions"], harm_survey["clicks"]) == (120, 30)
    assert harm_survey["ctr"] == 0.25
    assert (harm_survey["ctr_low"], harm_survey["ctr_high"]) == pytest.approx(
        (0.181098, 0.334411), abs=1e-6
    )
    harm_help = pick(overall, variant="harm", link="helpline")
    assert (harm_help["clicks"], harm_help["ctr"]) == (12, 0.1)
    assert (harm_help["ctr_low"], harm_help["ctr_high"]) == pytest.approx(
        (0.058134, 0.166682), abs=1e-6
    )
    help_survey = pick(overall, variant="help", link="survey")  # 4 clicks < k
    assert help_survey["interventions"] == 40
    assert help_survey["clicks"] is None
    assert help_survey["ctr"] is help_survey["ctr_low"] is help_survey["ctr_high"] is None
    assert help_survey["suppressed_fields"] == ["clicks", "ctr", "ctr_high", "ctr_low"]

    per_period = doc["click_through"]
    w45 = pick(per_period, period="2026-W45", variant="harm", link="survey")
    assert (w45["interventions"], w45["clicks"]) == (65, 20)
    assert (w45["ctr_low"], w45["ctr_high"]) == pytest.approx((0.208870, 0.427976), abs=1e-6)
    w46 = pick(per_period, period="2026-W46", variant="harm", link="survey")
    assert (w46["interventions"], w46["clicks"]) == (55, 10)
    assert (w46["ctr_low"], w46["ctr_high"]) == pytest.approx((0.101877, 0.303305), abs=1e-6)
    empty = pick(per_period, period="2026-W46", variant="help", link="survey")  # 0 pages
    assert empty["interventions"] is None
    assert empty["ctr"] is None
    assert empty["suppressed"] is True


def test_continue_rate_per_variant_divides_continues_by_warn_pages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The deterrence outcome: of the warn pages a variant showed, the share continued past.
    Block pages and empty suggestion lists are no warn pages; a small count is suppressed."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    clock.now = at(W45)
    add(ledger, "add_search", 500, "search")
    add(ledger, "add_intervention", 30, "demo", "warn", "en", "harm")
    add(ledger, "add_intervention", 20, "demo", "warn", "de", "harm")
    add(ledger, "add_intervention", 40, "demo", "block", "en", "harm")  # no continue offered
    add(ledger, "add_intervention", 9, "demo", "warn", "en", "none")  # suggestions: no page
    add(ledger, "add_intervention", 30, "demo", "warn", "en", "help")
    ledger.add("warn_continues", ("demo", "harm", "en"), 12)
    ledger.add("warn_continues", ("demo", "harm", "de"), 8)
    ledger.add("warn_continues", ("demo", "help", "en"), 4)  # below k
    clock.now = at(W46)
    add(ledger, "add_intervention", 30, "demo", "warn", "en", "help")
    ledger.add("warn_continues", ("demo", "help", "en"), 8)
    assert ledger.flush_now()
    ledger.close()
    doc = report_json(capsys, url)
    overall = doc["continues_overall"]
    assert [r["variant"] for r in overall] == ["harm", "help"]
    harm = pick(overall, variant="harm")
    assert (harm["warn_pages"], harm["continues"], harm["continue_rate"]) == (50, 20, 0.4)
    assert (harm["continue_low"], harm["continue_high"]) == pytest.approx(
        (0.276084, 0.538186), abs=1e-6
    )
    help_ = pick(overall, variant="help")  # 4 + 8 continues of 60 pages
    assert (help_["warn_pages"], help_["continues"], help_["continue_rate"]) == (60, 12, 0.2)
    by_period = doc["continues"]
    help45 = pick(by_period, period="2026-W45", variant="help")
    assert (help45["warn_pages"], help45["continues"], help45["continue_rate"]) == (30, None, None)
    assert help45["suppressed_fields"] == [
        "continue_high", "continue_low", "continue_rate", "continues"
    ]  # fmt: skip
    help46 = pick(by_period, period="2026-W46", variant="help")
    assert (help46["warn_pages"], help46["continues"]) == (30, None)  # 8 < k


def test_a_ledger_from_before_continues_were_counted_reports_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ledger last written by a version without the warn_continues table still reports: it
    has counted no continue, and the report says nothing of them."""
    import sqlite3

    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger.from_url(url, clock=lambda: at(W45))
    add(ledger, "add_intervention", 30, "demo", "warn", "en", "harm")
    assert ledger.flush_now()
    ledger.close()
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("DROP TABLE warn_continues")
    doc = report_json(capsys, url)
    assert doc["continues_overall"] == [
        {"period": "all", "start": "2026-11-02", "end": "2026-11-15", "variant": "harm",
         "warn_pages": 30, "continues": None, "continue_rate": None, "continue_low": None,
         "continue_high": None, "suppressed": True,
         "suppressed_fields": ["continue_high", "continue_low", "continue_rate", "continues"]}
    ]  # fmt: skip


def test_each_variant_against_the_control(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The survey click-through of `harm` (56 of 70 pages) against `neutral` (48 of 80) is
    Newcombe's (1998) first worked example: a difference of 0.2 with the interval 0.0524 to
    0.3339. Comparisons with a count below k are not computed and say so; the p-values are
    Holm-corrected across the three that are."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger.from_url(url, clock=lambda: at(W45))
    add(ledger, "add_intervention", 50, "demo", "block", "en", "neutral")
    add(ledger, "add_intervention", 30, "demo", "warn", "en", "neutral")
    add(ledger, "add_intervention", 70, "demo", "block", "en", "harm")
    add(ledger, "add_intervention", 10, "demo", "block", "en", "help")
    add(ledger, "add_intervention", 30, "demo", "warn", "en", "help")
    for link, variant, clicks in (("survey", "neutral", 48), ("helpline", "neutral", 20),
                                  ("survey", "harm", 56), ("helpline", "harm", 5),
                                  ("survey", "help", 12), ("helpline", "help", 10)):  # fmt: skip
        add(ledger, "add_click", clicks, link, variant)
    ledger.add("warn_continues", ("demo", "neutral", "en"), 15)
    ledger.add("warn_continues", ("demo", "help", "en"), 6)
    assert ledger.flush_now()
    ledger.close()
    rows = report_json(capsys, url)["comparisons"]
    assert {(r["variant"], r["control"], r["outcome"]) for r in rows} == {
        (v, "neutral", o)
        for v in ("harm", "help")
        for o in ("help_click_through", "survey_click_through", "continue_rate")
    }
    harm_survey = pick(rows, variant="harm", outcome="survey_click_through")
    assert harm_survey["difference"] == pytest.approx(0.2)
    assert (harm_survey["ci_low"], harm_survey["ci_high"]) == pytest.approx(
        (0.0524, 0.3339), abs=5e-5
    )
    assert harm_survey["note"] == ""
    computed = [
        (pick(rows, variant="harm", outcome="survey_click_through"), (56, 70, 48, 80)),
        (pick(rows, variant="help", outcome="survey_click_through"), (12, 40, 48, 80)),
        (pick(rows, variant="help", outcome="help_click_through"), (10, 40, 20, 80)),
    ]
    p_values = [two_proportion_p(*counts) for _, counts in computed]
    for (row, _), p, adjusted in zip(computed, p_values, holm(p_values), strict=True):
        assert (row["p_value"], row["p_holm"]) == pytest.approx((p, adjusted), abs=1e-6)
    assert harm_survey["p_value"] == pytest.approx(0.008045, abs=1e-6)  # statsmodels' ztest
    for variant, outcome in (("harm", "help_click_through"), ("harm", "continue_rate"),
                             ("help", "continue_rate")):  # fmt: skip
        skipped = pick(rows, variant=variant, outcome=outcome)
        assert skipped["note"] == "not computed: a count below k = 10"
        assert skipped["difference"] is skipped["p_holm"] is None
    code, out, _ = run(capsys, "report", "--ledger", url, "--from", "2026-11-02", "--to",
                       "2026-11-15", "--format", "json", "--control", "harm")  # fmt: skip
    assert code == 0
    against_harm = pick(json.loads(out)["comparisons"], variant="neutral",
                        outcome="survey_click_through")  # fmt: skip
    assert against_harm["difference"] == pytest.approx(-0.2)


def test_autocomplete_is_reported_apart_and_in_no_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A front-end asking for suggestions on every keystroke makes many autocomplete requests
    per search: they and the empty suggestion lists answered are counted apart, and the
    intervention rate divides interventions on search routes by searches on search routes.
    Without a configuration the default routes' kinds apply (`suggest` is autocomplete)."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    clock.now = at(W45)
    add(ledger, "add_search", 200, "search")
    ledger.add("searches", ("autocomplete",), 1000)  # keystrokes
    ledger.add("searches", ("suggest",), 300)
    add(ledger, "add_intervention", 50, "demo", "block", "en", "harm")  # pages shown
    add(ledger, "add_intervention", 30, "demo", "block", "en", "none")  # empty suggestions
    add(ledger, "add_intervention", 20, "demo", "shadow", "en", "none")  # neither
    add(ledger, "add_click", 20, "survey", "harm")
    assert ledger.flush_now()
    ledger.close()
    doc = report_json(capsys, url, "--dimensions", "category,variant")
    w45 = pick(doc["periods"], period="2026-W45")
    assert (w45["searches"], w45["interventions"], w45["intervention_rate"]) == (200, 50, 0.25)
    assert w45["note"] == ""
    assert [(r["category"], r["variant"], r["interventions"]) for r in doc["interventions"]
            if r["period"] == "2026-W45"] == [("demo", "harm", 50)]  # fmt: skip
    (autocomplete,) = [r for r in doc["autocomplete"] if r["period"] == "2026-W45"]
    assert (autocomplete["requests"], autocomplete["answered"]) == (1300, 30)
    assert "rate" not in " ".join(doc["autocomplete"][0])  # no rate mixes or divides them
    assert [(r["route"], r["kind"], r["requests"]) for r in doc["routes"]] == [
        ("search", "search", 200), ("autocomplete", "autocomplete", 1000),
        ("suggest", "autocomplete", 300),
    ]  # fmt: skip
    overall = doc["click_through_overall"]
    assert [(r["variant"], r["interventions"], r["clicks"]) for r in overall] == [("harm", 50, 20)]
    assert any("search routes only" in note for note in doc["notes"])


def test_route_kinds_come_from_the_configuration(tmp_path: Path) -> None:
    """Route names are the operator's: with the configuration's routes the report knows
    `find` is a search route and `typeahead` an autocomplete one. Without it they are of
    unknown kind, and no intervention rate is computed (their interventions could not be
    divided by their searches); every format says so and names them."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger.from_url(url, clock=lambda: at(W45))
    ledger.add("searches", ("find",), 400)
    ledger.add("searches", ("typeahead",), 2000)
    ledger.add("interventions", ("demo", "warn", "en", "harm"), 40)
    ledger.add("interventions", ("demo", "warn", "en", "none"), 120)
    assert ledger.flush_now()
    ledger.close()
    config_file = tmp_path / "intercept.yaml"
    config_file.write_text(
        "routes:\n"
        "  - {name: find, path: /find, params: [q]}\n"
        "  - {name: typeahead, path: /typeahead, params: [q], kind: autocomplete}\n",
        encoding="utf-8",
    )
    kinds = {route.name: route.kind for route in load_config(config_file).routes}
    config_file.write_text(config_file.read_text() + f'ledger: {{url: "{url}"}}\n')
    code = main(["report", "--config", str(config_file), "--from", "2026-11-02", "--to",
                 "2026-11-08", "--format", "json", "-o", str(tmp_path / "r.json")])  # fmt: skip
    assert code == 0  # the command line hands the configuration's route kinds on too
    (cli_week,) = json.loads((tmp_path / "r.json").read_text())["periods"]
    assert (cli_week["searches"], cli_week["intervention_rate"]) == (400, 0.1)
    with LedgerReader(url) as reader:
        data = load_data(reader, W45, W45 + timedelta(days=6))
    configured = build_report(data, start=W45, end=W45 + timedelta(days=6), route_kinds=kinds)
    tables = {t.name: t for t in configured.tables}
    (week,) = tables["periods"].rows
    assert (week.values["searches"], week.values["interventions"]) == (400, 40)
    assert week.values["intervention_rate"] == 0.1
    (typed,) = tables["autocomplete"].rows
    assert (typed.values["requests"], typed.values["answered"]) == (2000, 120)
    assert configured.unknown_routes == ()

    unconfigured = build_report(data, start=W45, end=W45 + timedelta(days=6))
    assert unconfigured.unknown_routes == ("find", "typeahead")
    tables = {t.name: t for t in unconfigured.tables}
    (week,) = tables["periods"].rows
    assert week.values["searches"] is None  # no search route has counted any (0 < k)
    assert week.values["intervention_rate"] is None
    assert "intervention_rate" not in week.suppressed  # not computed, which is not small
    unknown = "no intervention rate: requests on routes of unknown kind (find, typeahead)"
    assert week.values["note"] == f"{unknown}; pass --config"
    assert {(r.values["route"], r.values["kind"]) for r in tables["routes"].rows} == {
        ("find", "unknown"), ("typeahead", "unknown")
    }  # fmt: skip
    (row,) = tables["interventions"].rows
    assert (row.values["interventions"], row.values["intervention_rate"]) == (40, None)
    document = json.loads(render(unconfigured, "json"))
    assert any("unknown kind (find, typeahead)" in note for note in document["notes"])
    assert "unknown kind (find, typeahead)" in render(unconfigured, "html")
    assert "unknown kind (find, typeahead)" in render(unconfigured, "csv")


def _ledger_from(tmp_path: Path, days: list[date]) -> str:
    """A ledger whose counts are on `days` only: 300 searches, 60 + 20 pages, 30 clicks."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    for day in days:
        clock.now = at(day)
        ledger.add("searches", ("search",), 300)
        ledger.add("interventions", ("demo", "block", "en", "harm"), 60)
        ledger.add("interventions", ("trial", "block", "en", "harm"), 20)
        ledger.add("clicks", ("survey", "harm"), 30)
    assert ledger.flush_now()
    ledger.close()
    return url


NO_DATA = "no data: the ledger's counts start on 2026-11-13"


def test_periods_before_the_ledgers_first_count_have_no_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A two-week report over a ledger that started counting on its 12th day: the days
    before are `no data` (empty, not suppressed), the same in JSON, CSV and HTML; the other
    tables and the chart leave them out. A quiet day after the first count is a small count
    (`<10`), as before."""
    url = _ledger_from(tmp_path, [date(2026, 11, 13), date(2026, 11, 15)])
    doc = report_json(capsys, url, "--by", "day")
    assert doc["data_from"] == "2026-11-13"
    rows = doc["periods"]
    assert len(rows) == 14
    for row in rows[:11]:
        assert (row["searches"], row["interventions"], row["intervention_rate"],
                row["clicks"]) == (None, None, None, None)  # fmt: skip
        assert (row["suppressed"], row["note"]) == (False, NO_DATA)
    first, quiet, last = rows[11:]
    assert (first["searches"], first["interventions"], first["note"]) == (300, 80, "")
    assert (quiet["searches"], quiet["suppressed"], quiet["note"]) == (None, True, "")
    assert last["searches"] == 300
    covered = {"2026-11-13", "2026-11-14", "2026-11-15"}
    for table in ("interventions", "click_through", "continues", "autocomplete"):
        assert {r["period"] for r in doc[table]} <= covered, table
    assert {r["period"] for r in doc["interventions"]} == covered

    code, out, _ = run(capsys, "report", "--ledger", url, "--from", "2026-11-02", "--to",
                       "2026-11-15", "--by", "day")  # fmt: skip
    assert code == 0
    csv_rows = list(csv.DictReader(io.StringIO(out)))
    before = [r for r in csv_rows if r["period"] < "2026-11-13" and r["table"] != "routes"]
    assert {r["table"] for r in before} == {"periods"}
    assert len(before) == 11
    assert all(
        (r["searches"], r["interventions"], r["intervention_rate"], r["clicks"], r["note"])
        == ("", "", "", "", NO_DATA)
        for r in before
    )
    assert "<10" not in {v for r in before for v in r.values()}

    code, page, _ = run(capsys, "report", "--ledger", url, *HTML_ARGS[:4], "--by", "day",
                        "--format", "html")  # fmt: skip
    assert code == 0
    assert page.count(html.escape(NO_DATA)) == 11
    assert "Ledger data from</dt><dd>2026-11-13" in page
    chart = page[page.index("<svg") : page.index("</svg>")]
    assert "2026-11-12" not in chart  # the chart draws the three days with data only
    assert ">2026-11-13</text>" in chart
    assert ">2026-11-15</text>" in chart


def test_a_week_the_first_count_falls_in_is_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _ledger_from(tmp_path, [date(2026, 11, 13)])  # a Friday in 2026-W46
    doc = report_json(capsys, url, "--by", "week")
    w45, w46 = doc["periods"]
    assert (w45["searches"], w45["note"]) == (None, NO_DATA)
    assert (w46["searches"], w46["note"]) == (300, "partial: the ledger's counts start on "
                                                    "2026-11-13")  # fmt: skip


def test_a_ledger_counting_since_before_the_range_has_no_no_data_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _ledger_from(tmp_path, [date(2026, 10, 1), date(2026, 11, 13)])
    doc = report_json(capsys, url, "--by", "day")
    assert doc["data_from"] == "2026-10-01"
    assert {r["note"] for r in doc["periods"]} == {""}
    assert doc["periods"][0]["suppressed"] is True  # a quiet day: fewer than k, maybe none


def test_an_empty_ledger_has_no_data_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    url = _ledger_from(tmp_path, [OUTSIDE])
    with sqlite3.connect(tmp_path / "ledger.db") as db:  # as if pruned to nothing
        for table in ("searches", "interventions", "clicks"):
            db.execute(f"DELETE FROM {table}")
    doc = report_json(capsys, url)
    assert doc["data_from"] is None
    assert [r["note"] for r in doc["periods"]] == ["no data: the ledger holds no count"] * 2
    assert doc["interventions"] == doc["click_through"] == doc["autocomplete"] == []
    assert any(note == "No data: the ledger holds no count." for note in doc["notes"])


def _chart(page: str) -> str:
    return page[page.index("<svg") : page.index("</svg>")]


@pytest.mark.parametrize("days", [1, 2, 3])
def test_a_chart_of_few_periods_draws_labelled_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], days: int
) -> None:
    """One to three periods: a bar per category and period with its value written above
    it, level period labels, nothing on the frame's edge; no line through two points."""
    url = _ledger_from(tmp_path, [W45 + timedelta(days=i) for i in range(days)])
    last = (W45 + timedelta(days=days - 1)).isoformat()
    code, page, _ = run(capsys, "report", "--ledger", url, "--from", "2026-11-02", "--to",
                        last, "--by", "day", "--format", "html")  # fmt: skip
    assert code == 0
    chart = _chart(page)
    assert "<polyline" not in chart
    assert chart.count("<rect") == 1 + 2 * days  # the frame, and a bar per category and day
    assert chart.count(">60</text>") == chart.count(">20</text>") == days  # values written
    assert "rotate(" not in chart
    bars = re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="[\d.]+" '
                      r'fill="#(?!fafbfc)', chart)  # fmt: skip
    assert len(bars) == 2 * days
    assert all(float(x) > 64 for x, _ in bars)
    assert all(float(x) + float(w) < 744 for x, w in bars)


def test_a_chart_of_more_periods_draws_lines_inside_the_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fourteen days: lines; no point on the frame's left or right edge (64 and 744)."""
    url = _ledger_from(tmp_path, [W45 + timedelta(days=i) for i in range(14)])
    code, page, _ = run(capsys, "report", "--ledger", url, *HTML_ARGS[:4], "--by", "day",
                        "--format", "html")  # fmt: skip
    assert code == 0
    chart = _chart(page)
    assert chart.count("<polyline") == 2
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', chart)]
    assert len(xs) == 28
    assert min(xs) > 64
    assert max(xs) < 744


def test_a_suppressed_bar_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A category below k on one day and not the other: `<10` where its bar would be; a
    category below k on every day has no bar and no legend entry."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    for day, trial in ((W45, 4), (W45 + timedelta(days=1), 20)):
        clock.now = at(day)
        ledger.add("searches", ("search",), 300)
        ledger.add("interventions", ("demo", "block", "en", "harm"), 60)
        ledger.add("interventions", ("trial", "block", "en", "harm"), trial)
        ledger.add("interventions", ("rare", "block", "en", "harm"), 3)
    assert ledger.flush_now()
    ledger.close()
    code, page, _ = run(capsys, "report", "--ledger", url, "--from", "2026-11-02", "--to",
                        "2026-11-03", "--by", "day", "--format", "html")  # fmt: skip
    assert code == 0
    chart = _chart(page)
    assert chart.count(">60</text>") == 2
    assert chart.count(">20</text>") == 1
    assert chart.count("&lt;10</text>") == 1
    assert ">4<" not in chart
    assert ">3<" not in chart
    legend = page.split('<ul class="legend">')[1].split("</ul>")[0]
    assert "trial" in legend
    assert "rare" not in legend


def test_dimensions_and_groupings(ledger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(
        capsys, ledger_url, "--by", "month", "--dimensions", "category,action,language,variant"
    )
    (month,) = doc["periods"]
    assert (month["period"], month["start"], month["end"]) == (
        "2026-11",
        "2026-11-02",
        "2026-11-15",
    )
    assert (month["searches"], month["interventions"], month["clicks"]) == (700, 160, 46)
    rows = doc["interventions"]
    assert {(r["category"], r["action"], r["language"], r["variant"]) for r in rows} == {
        ("demo", "block", "en", "harm"),
        ("demo", "block", "en", "help"),
        ("trial", "warn", "fi", "harm"),
    }
    assert pick(rows, variant="help")["interventions"] == 40
    assert pick(rows, category="trial")["interventions"] == 20

    doc = report_json(capsys, ledger_url, "--by", "day", "--dimensions", "none")
    assert len(doc["periods"]) == 14
    assert "interventions" not in doc
    quiet = doc["periods"][1]  # 2026-11-03: nothing counted
    assert (quiet["period"], quiet["searches"], quiet["suppressed"]) == ("2026-11-03", None, True)
    assert doc["periods"][10]["searches"] == 300  # 2026-11-12


def test_k_is_configurable(ledger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = report_json(capsys, ledger_url, "--k", "4")
    assert doc["k"] == 4
    trial45 = pick(doc["interventions"], period="2026-W45", category="trial")
    assert (trial45["interventions"], trial45["intervention_rate"]) == (5, 0.0125)
    help_survey = pick(doc["click_through_overall"], variant="help", link="survey")
    assert (help_survey["clicks"], help_survey["ctr"]) == (4, 0.1)
    assert "Counts below 4 are suppressed (k = 4)" in doc["notes"][1]


def test_csv(ledger_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "report.csv"
    code, out, _ = run(
        capsys, "report", "--ledger", ledger_url, "--from", "2026-11-02", "--to", "2026-11-15",
        "--by", "week", "-o", str(out_file),
    )  # fmt: skip
    assert code == 0
    assert out == ""
    rows = list(csv.DictReader(io.StringIO(out_file.read_text(encoding="utf-8"))))
    assert {r["table"] for r in rows} == {
        "periods",
        "interventions",
        "click_through",
        "click_through_overall",
        "continues",
        "continues_overall",
        "comparisons",
        "autocomplete",
        "routes",
    }
    w45 = next(r for r in rows if r["table"] == "periods" and r["period"] == "2026-W45")
    assert (w45["searches"], w45["interventions"], w45["intervention_rate"]) == (
        "400",
        "105",
        "0.262500",
    )
    trial = next(
        r for r in rows if r["table"] == "interventions" and r["category"] == "trial" and
        r["period"] == "2026-W45"
    )  # fmt: skip
    assert (trial["interventions"], trial["intervention_rate"]) == ("<10", "<10")
    survey = next(
        r for r in rows if r["table"] == "click_through_overall" and r["variant"] == "harm" and
        r["link"] == "survey"
    )  # fmt: skip
    assert (survey["ctr"], survey["ctr_low"], survey["ctr_high"]) == (
        "0.250000",
        "0.181098",
        "0.334411",
    )
    # nothing of the day outside the range: the big counts never appear
    assert not any(
        v in {"999", "1000", "500"} for r in rows for k, v in r.items() if k != "searches"
    )


HTML_ARGS = ("--from", "2026-11-02", "--to", "2026-11-15", "--by", "week", "--format", "html")


def test_html_is_self_contained(ledger_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, page, _ = run(capsys, "report", "--ledger", ledger_url, *HTML_ARGS)
    assert code == 0
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    assert "<script" not in lowered
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", lowered)  # no event handlers
    assert not re.search(r"(src|href|xlink:href|action)\s*=", lowered)  # loads nothing at all
    assert "http://" not in lowered
    assert "https://" not in lowered
    assert "url(" not in lowered
    assert "@import" not in lowered
    assert lowered.count("<svg") >= 2
    assert "Content-Security-Policy" in page
    # states k, the range, the generation time and the privacy note
    assert "k = 10" in page
    assert "2026-11-02 to 2026-11-15" in page
    assert re.search(r"Generated</dt><dd>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page)
    assert "Aggregate counts only" in page
    # numbers and suppression in the tables
    assert "<td>105</td>" in page
    assert '<td class="s">&lt;10</td>' in page
    assert "25.0% (18.1–33.4%)" in page  # the harm · survey point with its interval
    assert ">100</text>" in page  # the demo bar of the first of two weeks, with its value


def test_html_escapes_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    clock = Clock()
    clock.now = at(W45)
    ledger = Ledger.from_url(url, clock=clock)
    evil = '<script>alert("x")</script>&<img src=x>'
    add(ledger, "add_search", 50, "search")
    add(ledger, "add_intervention", 20, evil, "block", "en", evil)
    add(ledger, "add_click", 10, evil, evil)
    assert ledger.flush_now()
    ledger.close()
    code, page, _ = run(
        capsys, "report", "--ledger", url, *HTML_ARGS, "--dimensions", "category,variant"
    )
    assert code == 0
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&lt;img src=x&gt;" in page


def test_html_without_data_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger.from_url(url)
    ledger.add_search("search")
    assert ledger.flush_now()
    ledger.close()
    code, page, _ = run(capsys, "report", "--ledger", url, *HTML_ARGS)
    assert code == 0
    assert "nothing to draw" in page
    assert "No clicks recorded in this range." in page


def test_report_model_never_holds_a_small_count(ledger_url: str) -> None:
    with LedgerReader(ledger_url) as reader:
        data = load_data(reader, W45, W46 + timedelta(days=6))
    report = build_report(data, start=W45, end=W46 + timedelta(days=6), k=10)
    for table in report.tables:
        for row in table.rows:
            for name, value in row.values.items():
                if isinstance(value, int) and name not in ("period", "start", "end"):
                    assert value >= 10, (table.name, name, value)
    for series in report.category_series:
        assert all(v is None or v >= 10 for v in series.values)
    with pytest.raises(ValueError, match="unknown format"):
        render(report, "xlsx")


# --- shadow rules ---------------------------------------------------------------------------


def test_shadow_lists_hits_per_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    clock = Clock()
    ledger = Ledger.from_url(url, clock=clock)
    now = time.time()
    clock.now = now - 1 * DAY
    add(ledger, "add_shadow", 25, "DEMO-009")
    add(ledger, "add_shadow", 3, "DEMO-010")  # below k
    clock.now = now - 3 * DAY
    add(ledger, "add_shadow", 5, "DEMO-009")
    add(ledger, "add_shadow", 11, "DEMO-011")
    clock.now = now - 30 * DAY  # older than the window
    add(ledger, "add_shadow", 100, "DEMO-012")
    assert ledger.flush_now()
    ledger.close()

    code, out, _ = run(capsys, "report", "--ledger", url, "--shadow")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    today = datetime.now(UTC).date()
    assert [r["rule_id"] for r in rows] == ["DEMO-009", "DEMO-011", "DEMO-010"]
    assert rows[0] == {
        "rule_id": "DEMO-009",
        "hits": "30",
        "days_with_hits": "2",
        "first_seen": (today - timedelta(days=3)).isoformat(),
        "last_seen": (today - timedelta(days=1)).isoformat(),
    }
    assert rows[2] == {
        "rule_id": "DEMO-010",
        "hits": "<10",
        "days_with_hits": "<10",
        "first_seen": "<10",
        "last_seen": "<10",
    }

    code, out, _ = run(
        capsys, "report", "--ledger", url, "--shadow", "--days", "60", "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    assert (doc["days"], doc["k"]) == (60, 10)
    assert doc["to"] == today.isoformat()
    assert [r["rule_id"] for r in doc["rules"]] == ["DEMO-012", "DEMO-009", "DEMO-011", "DEMO-010"]
    assert doc["rules"][3]["hits"] is None
    assert doc["rules"][3]["suppressed"] is True

    code, page, _ = run(capsys, "report", "--ledger", url, "--shadow", "--format", "html")
    assert code == 0
    assert "<script" not in page
    assert "DEMO-011" in page
    assert "k = 10" in page


def test_shadow_report_window() -> None:
    report = build_shadow_report(
        load_data_for_shadow(), end=date(2026, 11, 15), days=14, k=1,
        now=datetime(2026, 11, 15, 12, tzinfo=UTC),
    )  # fmt: skip
    assert (report.start, report.end) == (date(2026, 11, 2), date(2026, 11, 15))
    assert [r.values["rule_id"] for r in report.table.rows] == ["IN-RANGE"]


def load_data_for_shadow() -> Any:
    from intercept.research.ledger import DailyCount
    from intercept.research.report import LedgerData

    first = (date(2026, 11, 2) - date(1970, 1, 1)).days
    return LedgerData(
        shadow_hits=(
            DailyCount(first - 1, ("TOO-OLD",), 5),
            DailyCount(first, ("IN-RANGE",), 5),
            DailyCount(first + 14, ("TOO-NEW",), 5),
        )
    )


# --- misuse ---------------------------------------------------------------------------------


def test_misuse_exits_2(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "report", "--ledger", ledger_url, "--shadow", "--by", "day")
    assert (code, err.strip()) == (2, "intercept report: --shadow takes --days, not --by")
    code, _, err = run(capsys, "report", "--ledger", ledger_url, "--days", "3")
    assert code == 2
    code, _, err = run(
        capsys, "report", "--ledger", ledger_url, "--from", "2026-11-15", "--to", "2026-11-02"
    )
    assert (code, err.strip()) == (
        2,
        "intercept report: --from 2026-11-15 is after --to 2026-11-02",
    )
    code, _, err = run(capsys, "report", "--ledger", f"sqlite:///{tmp_path}/nope.db")
    assert code == 2
    assert "no such ledger file" in err
    assert not (tmp_path / "nope.db").exists()
    code, _, err = run(capsys, "report", "--ledger", "mysql://u:hunter2@db/x")
    assert code == 2
    assert "hunter2" not in err
    for bad in (
        ["--dimensions", "category,query"],
        ["--dimensions", "category,category"],
        ["--from", "2026-13-01"],
        ["--k", "0"],
        ["--format", "xlsx"],
    ):
        with pytest.raises(SystemExit) as raised:
            main(["report", "--ledger", ledger_url, *bad])
        assert raised.value.code == 2
    capsys.readouterr()


def test_ledger_url_from_config(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "intercept.yaml"
    config.write_text(f'ledger: {{url: "{ledger_url}"}}\n', encoding="utf-8")
    code, out, _ = run(
        capsys, "report", "--config", str(config), "--from", "2026-11-02", "--to", "2026-11-08"
    )
    assert code == 0
    assert "periods,2026-W45,2026-11-02,2026-11-08" in out
    config.write_text("ledger: {url: null}\n", encoding="utf-8")
    code, _, err = run(capsys, "report", "--config", str(config))
    assert (code, err.strip()) == (2, "intercept report: the ledger is off (ledger.url: null)")
