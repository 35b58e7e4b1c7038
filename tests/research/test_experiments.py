"""Experiments: a window of days with its own weights and control, recorded with the counts,
and `intercept report --experiment NAME` over exactly that design (never two mixed).

The engine draws variants and counts pages as it does for every front door; its counts go to
a real SQLite ledger; the report runs through the command line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from multidict import CIMultiDict

from intercept.cli import main
from intercept.config import ConfigError, load_config
from intercept.core import Engine
from intercept.pages import pages_for
from intercept.research.ledger import Ledger
from tests.upstream import RULES

ROOT = Path(__file__).parents[2]
TODAY = datetime.now(UTC).date()


def experiment(**changes: Any) -> dict[str, Any]:
    """An experiment running today: harm against neutral, one to one."""
    spec = {"name": "spring", "start": TODAY - timedelta(days=1), "end": TODAY + timedelta(days=1),
            "weights": {"harm": 1, "neutral": 1}, "control": "neutral"}  # fmt: skip
    return {**spec, **changes}


def engine_with(tmp_path: Path, *experiments: dict[str, Any]) -> tuple[Engine, Path]:
    """An engine over the test rules with these experiments, counting into a SQLite ledger;
    and its configuration file (for `intercept report --config`)."""
    settings = {"messages": str(ROOT / "messages"), "experiments": list(experiments),
                "ledger": {"url": f"sqlite:///{tmp_path}/ledger.db"}}  # fmt: skip
    path = tmp_path / "intercept.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(settings, default=str))))
    config = load_config(path, environ={})
    engine = Engine(config, RULES, pages_for(config))
    engine.counts.ledger = Ledger.from_url(str(config.ledger.url))
    return engine, path


def show_pages(engine: Engine, count: int) -> list[str]:
    """`count` block pages; the variant each showed."""
    shown = []
    for _ in range(count):
        page = engine.decide("GET", "/search?q=blocked+example", CIMultiDict(), None)
        assert page.status == 200  # type: ignore[union-attr]
        body = page.body.decode()  # type: ignore[union-attr]
        shown.append(body.split("v=", 1)[1].split("&", 1)[0])
    return shown


def flushed(engine: Engine) -> None:
    engine.counts.sync()
    ledger = engine.counts.ledger
    assert ledger is not None
    assert ledger.flush_now()


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_experiment_draws_its_own_variants_and_is_reported_as_one_design(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, config = engine_with(tmp_path, experiment(weights={"harm": 1, "help": 1},
                                                      control="help"))  # fmt: skip
    shown = show_pages(engine, 60)
    assert set(shown) == {"harm", "help"}  # today's experiment, not variants.weights' four
    flushed(engine)
    code, out, err = report(capsys, "--config", str(config), "--experiment", "spring",
                            "--format", "json", "--k", "1")  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert (document["from"], document["to"]) == (str(TODAY - timedelta(days=1)), str(TODAY))
    compared = {(r["variant"], r["control"]) for r in document["comparisons"]}
    assert compared == {("harm", "help")}


def test_a_design_changed_while_it_ran_is_refused_not_mixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, _ = engine_with(tmp_path, experiment())
    show_pages(engine, 5)
    flushed(engine)
    changed, config = engine_with(tmp_path, experiment(weights={"harm": 3, "neutral": 1}))
    show_pages(changed, 5)
    flushed(changed)
    code, _, err = report(capsys, "--config", str(config), "--experiment", "spring")
    assert code == 2
    assert "ran under 2 design(s)" in err
    assert "give a changed design a name of its own" in err


def test_misuse_of_experiment_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine, config = engine_with(tmp_path, experiment(), experiment(
        name="later", start=TODAY + timedelta(days=5), end=TODAY + timedelta(days=9)))  # fmt: skip
    assert engine.counts.ledger is not None
    engine.counts.ledger.add_search("search")  # a ledger, but no page shown under spring
    flushed(engine)
    for args, said in (
        (("--experiment", "autumn"), "no experiment 'autumn'"),
        (("--experiment", "spring", "--from", "2026-01-01"), "not --from"),
        (("--experiment", "spring"), "holds no page shown under experiment spring"),
        (("--experiment", "later"), "starts"),
    ):
        code, _, err = report(capsys, "--config", str(config), *args)
        assert (code, said in err) == (2, True), err


def test_experiments_are_checked_when_the_configuration_loads() -> None:
    def load(*experiments: dict[str, Any]) -> Any:
        return load_config(None, environ={}, overrides={"experiments": list(experiments)})

    with pytest.raises(ConfigError, match="control: 'legal' is not one of its variants"):
        load(experiment(control="legal"))
    with pytest.raises(ConfigError, match="is before start"):
        load(experiment(start=TODAY, end=TODAY - timedelta(days=1)))
    with pytest.raises(ConfigError, match="spring and autumn overlap"):
        load(experiment(), experiment(name="autumn", start=TODAY))
    later = TODAY + timedelta(days=9)
    with pytest.raises(ConfigError, match="names repeat"):
        load(experiment(), experiment(start=later, end=later))
    (first,) = load(experiment()).experiments
    (reweighted,) = load(experiment(weights={"harm": 2, "neutral": 1})).experiments
    (renamed,) = load(experiment(name="summer")).experiments
    assert first.design != reweighted.design  # the weights are the design
    assert first.design == renamed.design  # the name is not
    assert date.fromisoformat(str(first.start)) == TODAY - timedelta(days=1)
